set terminal pngcairo noenhanced size 990,660 font "sans,10"
set output 'throughput_batch_1.png'
set multiplot layout 2,3 title "Throughput, bf16, B = 1, H 16, K = V = 128"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:98304]
set grid
set xtics ("512" 512, "2K" 2048, "8K" 8192, "32K" 32768)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [1.18097:88.1543]
plot 'throughput_batch_1.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [1.18097:88.1543]
plot 'throughput_batch_1.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "linear_attention"
set yrange [1.18097:102.871]
plot 'throughput_batch_1.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.297233:24.587]
plot 'throughput_batch_1.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.297233:24.587]
plot 'throughput_batch_1.dat' index 12 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 13 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_batch_1.dat' index 14 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
set terminal svg noenhanced size 990,660 font "sans,10"
set output 'throughput_batch_1.svg'
set multiplot layout 2,3 title "Throughput, bf16, B = 1, H 16, K = V = 128"
set logscale xy 2
set format y "%g"
set xrange [341.3333333333333:98304]
set grid
set xtics ("512" 512, "2K" 2048, "8K" 8192, "32K" 32768)
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
set yrange [1.18097:88.1543]
plot 'throughput_batch_1.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 2 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "gated_delta_rule"
set yrange [1.18097:88.1543]
plot 'throughput_batch_1.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 5 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "linear_attention"
set yrange [1.18097:102.871]
plot 'throughput_batch_1.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 8 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_delta_rule"
set yrange [0.297233:24.587]
plot 'throughput_batch_1.dat' index 9 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 10 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla", \
     'throughput_batch_1.dat' index 11 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
set title "fwd_bwd_gated_delta_rule"
set yrange [0.297233:24.587]
plot 'throughput_batch_1.dat' index 12 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_batch_1.dat' index 13 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)", \
     'throughput_batch_1.dat' index 14 using 1:2 with linespoints lw 2 pt 7 lt 3 title "torch-sdpa"
unset multiplot
