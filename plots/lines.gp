# plots/lines.gp: a value against a numeric parameter, one line per series
# (e.g. ns/op against threads, one line per variant; throughput against a size).
#
#   gnuplot -e "in='race-threads.chart.tsv'; out='race-threads'; logx=1; logy=1" plots/lines.gp
#   gnuplot -e "in='race-threads.chart.tsv'; term='dumb'" plots/lines.gp
#
# Variables (set them with -e; only `in` is required):
#   in      input, tab-separated, "wide": a header line naming the x column and
#           then each series, then one row per x value:
#             x <TAB> series1 <TAB> series2 ...
#           x must be numeric; a missing point is NaN.
#   out     output file base: writes out.svg and/or out.png (default: in without .tsv)
#   title   chart title (default: the input's name)
#   term    both (default: out.svg and out.png), svg, png, dumb (text on stdout)
#   xlabel  x-axis label (default: "x")
#   ylabel  y-axis label (default: "value")
#   logx    1: log2 x axis (for 1, 2, 4, 8 ... workers); default 0
#   logy    1: log10 y axis; default 0
#   prov    provenance (host, commit, date), printed small under the chart
#   ideal   1: also draw y = x, dashed, as "ideal" (for a speedup against workers)
#
# bench/run derives `in` from hyperfine's JSON (see bench/README.md).

if (!exists("in")) { print "lines.gp: set in='file.tsv' with -e"; exit status 2 }
if (!exists("out")) out = (in[strlen(in)-3:] eq ".tsv") ? in[1:strlen(in)-4] : in
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("xlabel")) xlabel = "x"
if (!exists("ylabel")) ylabel = "value"
if (!exists("logx")) logx = 0
if (!exists("logy")) logy = 0
if (!exists("prov")) prov = ""
if (!exists("ideal")) ideal = 0

set datafile separator "\t"
set datafile missing "NaN"

stats in skip 1 using 1 nooutput
ncol = STATS_columns
xmin = STATS_min
xmax = STATS_max

# ten distinguishable colours and point types, then gnuplot's defaults
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
if (logy) {
    set logscale y 10
    set format y "10^{%L}"
    set mytics 10
}

set title title noenhanced
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set xtics nomirror noenhanced
set ytics nomirror
set grid xtics ytics mytics lc rgb "#dddddd" lw 1 dt 1
set border 3
set key outside right top vertical noenhanced box lc rgb "#cccccc"
set key autotitle columnhead
set bmargin 5
if (strlen(prov) > 0) set label 99 prov at screen 0.99, screen 0.015 right font ",8" tc rgb "#777777" noenhanced

do for [t in (term eq "both" ? "svg png" : term)] {
    if (t eq "svg") { set terminal svg size 900,540 dynamic font "Sans,12" background "white" enhanced; set output out.".svg" }
    if (t eq "png" || t eq "pngcairo") { set terminal pngcairo size 1200,720 font "Sans,13" background "white" enhanced; set output out.".png" }
    if (t eq "dumb") { set terminal dumb size 120,36 noenhanced; set output; set format y "%g"; unset grid }
    if (ideal) {
        plot for [i=2:ncol] in using 1:i:xtic(1) with linespoints lt (i - 1) title columnhead(i), \
             x with lines dt 2 lw 1.5 lc rgb "#555555" title "ideal"
    } else {
        plot for [i=2:ncol] in using 1:i:xtic(1) with linespoints lt (i - 1) title columnhead(i)
    }
    unset output
}
