set terminal pngcairo noenhanced size 990,660 font "sans,10"
set output 'throughput_fp16.png'
set multiplot layout 2,3 title "Throughput, bf16, B x T = 32768, H 16, K = V = 128, fp16"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:49152]
set grid
set xtics ("512" 512, "8K" 8192)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "linear_attention"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 12 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 13 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 14 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_linear_attention"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 15 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 16 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 17 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
set terminal svg noenhanced size 990,660 font "sans,10"
set output 'throughput_fp16.svg'
set multiplot layout 2,3 title "Throughput, bf16, B x T = 32768, H 16, K = V = 128, fp16"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:49152]
set grid
set xtics ("512" 512, "8K" 8192)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "linear_attention"
set yrange [2.30572:327.785]
plot 'throughput_fp16.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 12 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 13 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 14 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_linear_attention"
set yrange [0.591529:55.8662]
plot 'throughput_fp16.dat' index 15 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_fp16.dat' index 16 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_fp16.dat' index 17 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
