# Zoology-style MQAR figure: accuracy vs d_model, one panel per task, one line per model.
set terminal pngcairo noenhanced size 640,460 font "sans,10"
set output 'mqar.png'
set multiplot layout 1,1 title "MQAR accuracy vs model width (quick)" margins 0.1,0.98,0.26,0.86 spacing 0.06,0
set logscale x 2
set xtics (32, 64)
set xrange [24.615384615384613:83.2]
set yrange [0:1.05]
set ytics 0,0.25,1
set grid
set xlabel "d_model"
set ylabel "accuracy"
set key at screen 0.5,0.03 center bottom horizontal maxrows 1 width 2
set title "4 pairs (L=64)"
plot 'mqar.dat' index 0 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 1 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 2 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 3 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset multiplot
set terminal svg noenhanced size 640,460 font "sans,10"
set output 'mqar.svg'
set multiplot layout 1,1 title "MQAR accuracy vs model width (quick)" margins 0.1,0.98,0.26,0.86 spacing 0.06,0
set logscale x 2
set xtics (32, 64)
set xrange [24.615384615384613:83.2]
set yrange [0:1.05]
set ytics 0,0.25,1
set grid
set xlabel "d_model"
set ylabel "accuracy"
set key at screen 0.5,0.03 center bottom horizontal maxrows 1 width 2
set title "4 pairs (L=64)"
plot 'mqar.dat' index 0 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 1 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 2 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 3 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset multiplot
