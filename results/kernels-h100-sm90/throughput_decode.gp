set terminal pngcairo noenhanced size 990,360 font "sans,10"
set output 'throughput_decode.png'
set multiplot layout 1,3 title "Throughput, bf16, decode, one token a sequence, H 16, K = V = 128"
set logscale xy 2
set format y "%g"
set xrange [0.6666666666666666:1536]
set grid
set xtics ("1" 1, "16" 16, "256" 256)
set xlabel "B (sequences, T = 1)"
set ylabel "million tokens/s"
set key below
set title "decode_delta_rule"
set yrange [0.155618:3.36453]
plot 'throughput_decode.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)"
set title "decode_gated_delta_rule"
set yrange [0.0425423:3.3309]
plot 'throughput_decode.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla"
set title "decode_linear_attention"
set yrange [0.149701:3.2932]
plot 'throughput_decode.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)"
unset multiplot
set terminal svg noenhanced size 990,360 font "sans,10"
set output 'throughput_decode.svg'
set multiplot layout 1,3 title "Throughput, bf16, decode, one token a sequence, H 16, K = V = 128"
set logscale xy 2
set format y "%g"
set xrange [0.6666666666666666:1536]
set grid
set xtics ("1" 1, "16" 16, "256" 256)
set xlabel "B (sequences, T = 1)"
set ylabel "million tokens/s"
set key below
set title "decode_delta_rule"
set yrange [0.155618:3.36453]
plot 'throughput_decode.dat' index 0 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 1 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)"
set title "decode_gated_delta_rule"
set yrange [0.0425423:3.3309]
plot 'throughput_decode.dat' index 3 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 4 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla"
set title "decode_linear_attention"
set yrange [0.149701:3.2932]
plot 'throughput_decode.dat' index 6 using 1:2 with linespoints lw 2 pt 7 lt 1 title "deltabench", \
     'throughput_decode.dat' index 7 using 1:2 with linespoints lw 2 pt 7 lt 2 title "fla (not timed)"
unset multiplot
