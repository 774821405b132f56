# plots/lines.gp: a value against a numeric parameter, one line per series
# (e.g. ns/op against threads, one line per variant; throughput against a size).
#
#   gnuplot -e "in='race-threads.chart.tsv'; out='race-threads'; logx=1; logy=1" plots/lines.gp
#   gnuplot -e "in='race-threads.chart.tsv'; term='dumb'" plots/lines.gp
#
# Variables (set them with -e; only `in` is required), beside the common ones of
# plots/common.gp (out, title, term, prov, key, colours, cores):
#   in      input, tab-separated, "wide": a header line naming the x column and
#           then each series, then one row per x value:
#             x <TAB> series1 <TAB> series2 ...
#           x must be numeric; a missing point is NaN.
#   errors  1: after the N series columns come N columns of each point's low end
#           and N of its high end (in the same order), drawn as error bars:
#           bench/run writes the 95% interval of each median there; default 0
#   xlabel  x-axis label (default: "x")
#   ylabel  y-axis label (default: "value")
#   logx    1: log2 x axis (for 1, 2, 4, 8 ... workers); default 0
#   logy    1: log10 y axis; default 0
#   ideal   1: also draw the ideal y = x, dashed (a speedup or a parallelism
#           that has no core limit: waiting, not computing); 2: y = min(x, cores),
#           the ideal of CPU work; default 0. With an ideal line, a log axis on
#           one side makes the other one log too (base 2): only on log-log (or
#           linear-linear) axes is y = x a straight line.
#
# bench/run derives `in` from its rows (see bench/README.md).

name = "lines.gp"
here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
load here(ARG0)."common.gp"

if (!exists("xlabel")) xlabel = "x"
if (!exists("ylabel")) ylabel = "value"
if (!exists("logx")) logx = 0
if (!exists("logy")) logy = 0
if (!exists("ideal")) ideal = 0
if (!exists("errors")) errors = 0

set datafile separator "\t"
set datafile missing "NaN"

stats in skip 1 using 1 nooutput
ncol = STATS_columns
xmin = STATS_min
xmax = STATS_max
nval = errors ? (ncol - 1) / 3 : ncol - 1
if (ideal && (logx || logy)) { logx = 1; logy = 2 }

# The data's range, the error bars' ends and an ideal capped at the cores
# included (an uncapped ideal may leave the top of the chart).
ymin = 1e308
ymax = -1e308
do for [i=2:(errors ? ncol : nval + 1)] {
    stats in skip 1 using i nooutput
    if (STATS_records > 0 && STATS_min < ymin) { ymin = STATS_min }
    if (STATS_records > 0 && STATS_max > ymax) { ymax = STATS_max }
}
if (ideal == 2) { ymax = (ymax > (xmax < cores ? xmax : cores)) ? ymax : (xmax < cores ? xmax : cores) }
if (ideal) { ymin = (ymin < 1) ? ymin : 1 }
entries = nval + (ideal ? 1 : 0)
rows = entries < 5 ? entries : 5
set key maxrows 5

eval numeric_axes
set samples 400

set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set xtics noenhanced

ideal_f(x) = (ideal == 2 && x > cores) ? cores : x
ideal_title = (ideal == 2) ? sprintf("ideal: min(x, %d cores)", cores) : "ideal: y = x"
series = errors ? \
    "for [i=2:nval+1] in using 1:i:(column(i+nval)):(column(i+2*nval)):xtic(1) with yerrorlines lt series_lt(i) title columnhead(i)" : \
    "for [i=2:nval+1] in using 1:i:xtic(1) with linespoints lt series_lt(i) title columnhead(i)"
plotcmd = "plot ".series.(ideal ? ", ideal_f(x) with lines dt 2 lw 1.5 lc rgb IDEAL_COLOUR title ideal_title" : "")
eval render
