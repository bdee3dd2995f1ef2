# growth.gp - cost of a guest answer lookup against outstanding groups:
# libiopf's hash index beside a per-PASID list search (bench/iopf-bench).
# Columns of dat: pairs outstanding intake_ns libiopf_ns list_ns
set terminal pngcairo size 900,540 noenhanced
set output png
set title "Guest answer lookup (device, PASID, PRG index): ns per answer"
set logscale xy
set xlabel "outstanding groups"
set ylabel "ns per answer (random order)"
set key top left
set grid
plot for [p in "1 100 10000"] \
       dat using ($1==p ? $2 : 1/0):4 with linespoints lw 2 title "libiopf, ".p." dev x PASID pairs", \
     for [p in "1 100 10000"] \
       dat using ($1==p ? $2 : 1/0):5 with linespoints dt 2 title "per-PASID list, ".p." pairs"
