set terminal pngcairo noenhanced size 990,660 font "sans,10"
set output 'throughput_head_dim_256.png'
set multiplot layout 2,3 title "Throughput, bf16, B x T = 32768, H 8, K = V = 256"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:49152]
set grid
set xtics ("512" 512, "8K" 8192)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [2.59113:330.376]
plot 'throughput_head_dim_256.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [2.59113:330.376]
plot 'throughput_head_dim_256.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.471283:52.1531]
plot 'throughput_head_dim_256.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.420389:52.1531]
plot 'throughput_head_dim_256.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
set terminal svg noenhanced size 990,660 font "sans,10"
set output 'throughput_head_dim_256.svg'
set multiplot layout 2,3 title "Throughput, bf16, B x T = 32768, H 8, K = V = 256"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:49152]
set grid
set xtics ("512" 512, "8K" 8192)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [2.59113:330.376]
plot 'throughput_head_dim_256.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [2.59113:330.376]
plot 'throughput_head_dim_256.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.471283:52.1531]
plot 'throughput_head_dim_256.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.420389:52.1531]
plot 'throughput_head_dim_256.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_head_dim_256.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_head_dim_256.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
