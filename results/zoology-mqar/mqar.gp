# Zoology-style MQAR figure: accuracy vs d_model, one panel per task, one line per model.
set terminal pngcairo noenhanced size 1440,460 font "sans,10"
set output 'mqar.png'
set multiplot layout 1,4 title "MQAR accuracy vs model width (zoology-mqar)" margins 0.1,0.98,0.26,0.86 spacing 0.06,0
set logscale x 2
set xtics (64, 128, 256, 512)
set xrange [49.230769230769226:665.6]
set yrange [0:1.05]
set ytics 0,0.25,1
set grid
set xlabel "d_model"
set ylabel "accuracy"
set key at screen 0.5,0.03 center bottom horizontal maxrows 1 width 2
set title "L=64, 4 pairs"
plot 'mqar.dat' index 0 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 1 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 2 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 3 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
unset ylabel
set title "L=128, 8 pairs"
plot 'mqar.dat' index 4 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 5 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 6 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 7 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
set title "L=256, 16 pairs"
plot 'mqar.dat' index 8 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 9 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 10 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 11 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
set title "L=512, 64 pairs"
plot 'mqar.dat' index 12 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 13 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 14 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 15 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset multiplot
set terminal svg noenhanced size 1440,460 font "sans,10"
set output 'mqar.svg'
set multiplot layout 1,4 title "MQAR accuracy vs model width (zoology-mqar)" margins 0.1,0.98,0.26,0.86 spacing 0.06,0
set logscale x 2
set xtics (64, 128, 256, 512)
set xrange [49.230769230769226:665.6]
set yrange [0:1.05]
set ytics 0,0.25,1
set grid
set xlabel "d_model"
set ylabel "accuracy"
set key at screen 0.5,0.03 center bottom horizontal maxrows 1 width 2
set title "L=64, 4 pairs"
plot 'mqar.dat' index 0 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 1 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 2 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 3 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
unset ylabel
set title "L=128, 8 pairs"
plot 'mqar.dat' index 4 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 5 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 6 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 7 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
set title "L=256, 16 pairs"
plot 'mqar.dat' index 8 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 9 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 10 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 11 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset key
set title "L=512, 64 pairs"
plot 'mqar.dat' index 12 using 1:2 with linespoints lw 2 ps 1.2 pt 7 dt 1 lc 1 title "Attention", \
     'mqar.dat' index 13 using 1:2 with linespoints lw 2 ps 1.2 pt 5 dt 2 lc 2 title "Linear attention", \
     'mqar.dat' index 14 using 1:2 with linespoints lw 2 ps 1.2 pt 9 dt 4 lc 3 title "DeltaNet", \
     'mqar.dat' index 15 using 1:2 with linespoints lw 2 ps 1.2 pt 11 dt 5 lc 4 title "Gated DeltaNet"
unset multiplot
