set terminal pngcairo noenhanced size 1030,520 font "sans,10"
set output 'ablations.png'
set title "Ablations: accuracy per switch setting (ablations)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:1.05]
set ylabel "accuracy"
set grid ytics
set xtics rotate by -30 left nomirror
set key outside right top vertical
set bmargin 9
plot 'ablations.dat' using 2:xtic(1) title "MQAR L=256" fs solid 0.85 lc 1, 'ablations.dat' using 3 title "in-context-recall:baseline" fs pattern 2 lc 2, 'ablations.dat' using 4 title "fuzzy-in-context-recall:baseline" fs pattern 3 lc 3
set terminal svg noenhanced size 1030,520 font "sans,10"
set output 'ablations.svg'
set title "Ablations: accuracy per switch setting (ablations)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:1.05]
set ylabel "accuracy"
set grid ytics
set xtics rotate by -30 left nomirror
set key outside right top vertical
set bmargin 9
plot 'ablations.dat' using 2:xtic(1) title "MQAR L=256" fs solid 0.85 lc 1, 'ablations.dat' using 3 title "in-context-recall:baseline" fs pattern 2 lc 2, 'ablations.dat' using 4 title "fuzzy-in-context-recall:baseline" fs pattern 3 lc 3
