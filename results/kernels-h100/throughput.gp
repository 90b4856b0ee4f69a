set terminal pngcairo noenhanced size 880,420 font "sans,10"
set output 'throughput.png'
set multiplot layout 1,2 title "Forward throughput at B x T = 32768, H 16, K = V = 128, bf16"
set logscale x 2
set xtics (2048, 8192, 32768)
set xrange [1400:48000]
set yrange [0:*]
set grid
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
plot 'throughput.dat' index 0 using 1:2 with linespoints lw 2 pt 7 title "deltabench", \
     'throughput.dat' index 1 using 1:2 with linespoints lw 2 pt 7 title "fla", \
     'throughput.dat' index 2 using 1:2 with linespoints lw 2 pt 7 title "torch-sdpa"
set title "gated_delta_rule"
plot 'throughput.dat' index 3 using 1:2 with linespoints lw 2 pt 7 title "deltabench", \
     'throughput.dat' index 4 using 1:2 with linespoints lw 2 pt 7 title "fla", \
     'throughput.dat' index 5 using 1:2 with linespoints lw 2 pt 7 title "torch-sdpa"
unset multiplot
set terminal svg noenhanced size 880,420 font "sans,10"
set output 'throughput.svg'
set multiplot layout 1,2 title "Forward throughput at B x T = 32768, H 16, K = V = 128, bf16"
set logscale x 2
set xtics (2048, 8192, 32768)
set xrange [1400:48000]
set yrange [0:*]
set grid
set xlabel "T (tokens per sequence)"
set ylabel "million tokens/s"
set key below
set title "delta_rule"
plot 'throughput.dat' index 0 using 1:2 with linespoints lw 2 pt 7 title "deltabench", \
     'throughput.dat' index 1 using 1:2 with linespoints lw 2 pt 7 title "fla", \
     'throughput.dat' index 2 using 1:2 with linespoints lw 2 pt 7 title "torch-sdpa"
set title "gated_delta_rule"
plot 'throughput.dat' index 3 using 1:2 with linespoints lw 2 pt 7 title "deltabench", \
     'throughput.dat' index 4 using 1:2 with linespoints lw 2 pt 7 title "fla", \
     'throughput.dat' index 5 using 1:2 with linespoints lw 2 pt 7 title "torch-sdpa"
unset multiplot
