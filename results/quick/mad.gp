set terminal pngcairo noenhanced size 720,520 font "sans,10"
set output 'mad.png'
set title "MAD accuracy (%) by task (quick)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:105]
set ylabel "accuracy (%)"
set grid ytics
set xtics rotate by -30 left nomirror
set key outside right top vertical
set bmargin 9
plot 'mad.dat' using 2:xtic(1) title "ICR" fs solid 0.85 lc 1, 'mad.dat' using 3 title "SelCopy" fs pattern 2 lc 2
set terminal svg noenhanced size 720,520 font "sans,10"
set output 'mad.svg'
set title "MAD accuracy (%) by task (quick)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:105]
set ylabel "accuracy (%)"
set grid ytics
set xtics rotate by -30 left nomirror
set key outside right top vertical
set bmargin 9
plot 'mad.dat' using 2:xtic(1) title "ICR" fs solid 0.85 lc 1, 'mad.dat' using 3 title "SelCopy" fs pattern 2 lc 2
