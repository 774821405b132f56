# plots/speedup.gp: speedup against workers, one line per executor, with the
# ideal line and Amdahl's law fitted to each line.
#
#   gnuplot -e "in='speedup-cpu.chart.tsv'; out='speedup-cpu'; ideal=2" plots/speedup.gp
#   gnuplot -e "in='speedup-mixed.chart.tsv'; ideal=1; term='dumb'" plots/speedup.gp
#
# Variables (set them with -e; only `in` is required):
#   in      input, tab-separated, "wide" as for lines.gp: a header naming the x
#           column (workers) and each series, then one row per x; NaN: missing
#   out     output file base: writes out.svg and/or out.png (default: in without .tsv)
#   title, xlabel, ylabel, prov, logx, logy   as in lines.gp
#   term    both (default), svg, png, dumb (text on stdout)
#   ideal   1: ideal speedup = W, and Amdahl fitted over every point (I/O work:
#           no core limit); 2: ideal = min(W, cores), fitted over W <= cores
#           only (CPU work: past the cores the curve is saturation, not Amdahl);
#           0: neither (default 2)
#   cores   the cores for ideal=2 (default: nproc)
#
# Amdahl: S(W) = 1 / (s + (1 - s) / W), with s the serial fraction, fitted by
# least squares for each series (gnuplot's fit, quiet); the key shows each s.

if (!exists("in")) { print "speedup.gp: set in='file.tsv' with -e"; exit status 2 }
if (!exists("out")) out = (in[strlen(in)-3:] eq ".tsv") ? in[1:strlen(in)-4] : in
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("xlabel")) xlabel = "workers"
if (!exists("ylabel")) ylabel = "speedup (x)"
if (!exists("logx")) logx = 1
if (!exists("logy")) logy = 0
if (!exists("prov")) prov = ""
if (!exists("ideal")) ideal = 2
if (!exists("cores")) cores = int(system("nproc"))

set datafile separator "\t"
set datafile missing "NaN"
set fit quiet nolog

stats in skip 1 using 1 nooutput
ncol = STATS_columns
xmin = STATS_min
xmax = STATS_max
fitmax = (ideal == 2) ? cores : xmax

# Amdahl's serial fraction for each series; NaN where a fit is impossible
# (fewer than two points within the fit range) or pointless (the seq baseline).
# The y axis ends a little above the highest point: the ideal line may leave it.
header = system(sprintf("head -n 1 '%s'", in))
array S[ncol]
amdahl(x, s) = 1 / (s + (1 - s) / x)
ymax = 1
do for [i=2:ncol] {
    S[i] = NaN
    stats in skip 1 using i nooutput
    if (STATS_max > ymax) { ymax = STATS_max }
    stats in skip 1 using (($1 >= xmin && $1 <= fitmax) ? column(i) : NaN) nooutput
    if (STATS_records >= 2 && word(header, i) ne "seq") {
        s = 0.1
        fit [xmin:fitmax] amdahl(x, s) in using 1:i via s
        S[i] = s
    }
}

array C[10] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", \
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
do for [i=1:10] { set linetype i lc rgb C[i] lw 2 pt (i % 13 + 1) ps 1.2 }

if (logx) {
    set logscale x 2
    set xrange [xmin / 1.25 : xmax * 1.25]
} else {
    pad = (xmax > xmin) ? 0.05 * (xmax - xmin) : 1
    set xrange [xmin - pad : xmax + pad]
}
if (logy) { set logscale y 2 }
set yrange [0:ymax * 1.25]

set title title noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set xtics nomirror noenhanced
set ytics nomirror
set grid xtics ytics lc rgb "#dddddd" lw 1 dt 1
set border 3
set key outside right top vertical noenhanced box lc rgb "#cccccc"
set bmargin 5
if (strlen(prov) > 0) set label 99 prov at screen 0.99, screen 0.015 right font ",8" tc rgb "#777777" noenhanced

ideal_f(x) = (ideal == 2) ? (x < cores ? x : cores) : x
ideal_title = (ideal == 2) ? sprintf("ideal min(W, %d)", cores) : "ideal W"
fit_title(i) = (S[i] == S[i]) ? sprintf("%s: Amdahl fit, s = %.3f", word(header, i), S[i]) : ""

do for [t in (term eq "both" ? "svg png" : term)] {
    if (t eq "svg") { set terminal svg size 900,540 dynamic font "Sans,12" background "white" enhanced; set output out.".svg" }
    if (t eq "png" || t eq "pngcairo") { set terminal pngcairo size 1200,720 font "Sans,13" background "white" enhanced; set output out.".png" }
    if (t eq "dumb") { set terminal dumb size 120,36 noenhanced; set output; unset grid }
    if (ideal == 0) {
        plot for [i=2:ncol] in using 1:i:xtic(1) with linespoints lt (i - 1) title columnhead(i)
    } else {
        plot for [i=2:ncol] in using 1:i:xtic(1) with linespoints lt (i - 1) title columnhead(i), \
             for [i=2:ncol] (S[i] == S[i] && x >= xmin && x <= fitmax ? amdahl(x, S[i]) : NaN) \
                 with lines dt 3 lw 1.5 lt (i - 1) title fit_title(i), \
             ideal_f(x) with lines dt 2 lw 1.5 lc rgb "#555555" title ideal_title
    }
    unset output
}
