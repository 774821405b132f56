# plots/speedup.gp: speedup against workers, one line per executor, with the
# ideal line and Amdahl's law fitted to each line.
#
#   gnuplot -e "in='speedup-cpu.chart.tsv'; out='speedup-cpu'; ideal=2" plots/speedup.gp
#   gnuplot -e "in='speedup-mixed.chart.tsv'; ideal=1; term='dumb'" plots/speedup.gp
#
# Variables (set them with -e; only `in` is required), beside the common ones of
# plots/common.gp (out, title, term, prov, key, colours, cores):
#   in      input, tab-separated, "wide" as for lines.gp: a header naming the x
#           column (workers) and each series, then one row per x; NaN: missing
#   errors  1: interval columns after the series, as for lines.gp (default 0)
#   xlabel, ylabel, logx, logy   as in lines.gp (default logx 1); with an ideal
#           line, a log axis on one side makes the other log too (base 2), so
#           that the ideal stays a straight line
#   ideal   1: ideal speedup = W, and Amdahl fitted over every point (I/O work:
#           no core limit); 2: ideal = min(W, cores), fitted over W <= cores
#           only (CPU work: past the cores the curve is saturation, not Amdahl);
#           0: neither (default 2)
#
# Amdahl: S(W) = 1 / (s + (1 - s) / W), with s the serial fraction, fitted by
# least squares for each series (gnuplot's fit, quiet); the key shows each s.
# The y axis ends a little above the highest point: an uncapped ideal may leave it.

name = "speedup.gp"
here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
load here(ARG0)."common.gp"

if (!exists("xlabel")) xlabel = "workers"
if (!exists("ylabel")) ylabel = "speedup (x)"
if (!exists("logx")) logx = 1
if (!exists("logy")) logy = 0
if (!exists("ideal")) ideal = 2
if (!exists("errors")) errors = 0

set datafile separator "\t"
set datafile missing "NaN"
set fit quiet nolog

stats in skip 1 using 1 nooutput
ncol = STATS_columns
xmin = STATS_min
xmax = STATS_max
nval = errors ? (ncol - 1) / 3 : ncol - 1
fitmax = (ideal == 2) ? cores : xmax
if (ideal && (logx || logy)) { logx = 1; logy = 2 }

# Amdahl's serial fraction for each series; NaN where a fit is impossible
# (fewer than two points within the fit range) or pointless (the seq baseline).
header = system(sprintf("head -n 1 '%s'", in))
array S[nval + 1]
amdahl(x, s) = 1 / (s + (1 - s) / x)
ymin = 1
ymax = (ideal == 2 && cores < xmax) ? cores : 1
do for [i=2:nval+1] {
    S[i] = NaN
    stats in skip 1 using i nooutput
    if (STATS_records > 0 && STATS_max > ymax) { ymax = STATS_max }
    if (STATS_records > 0 && STATS_min < ymin) { ymin = STATS_min }
    stats in skip 1 using (($1 >= xmin && $1 <= fitmax) ? column(i) : NaN) nooutput
    if (ideal && STATS_records >= 2 && word(header, i) ne "seq") {
        s = 0.1
        fit [xmin:fitmax] amdahl(x, s) in using 1:i via s
        S[i] = s
    }
}
if (errors) {
    do for [i=nval+2:ncol] {
        stats in skip 1 using i nooutput
        if (STATS_records > 0 && STATS_max > ymax) { ymax = STATS_max }
        if (STATS_records > 0 && STATS_min < ymin) { ymin = STATS_min }
    }
}
fits = 0
do for [i=2:nval+1] { fits = fits + (S[i] == S[i] ? 1 : 0) }
entries = nval + fits + (ideal ? 1 : 0)
rows = entries < 6 ? entries : 6
set key maxrows 6
eval numeric_axes
set samples 400

set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
set xtics noenhanced

ideal_f(x) = (ideal == 2 && x > cores) ? cores : x
ideal_title = (ideal == 2) ? sprintf("ideal: min(W, %d cores)", cores) : "ideal: W"
fit_title(i) = (S[i] == S[i]) ? sprintf("%s: Amdahl fit, s = %.3f", word(header, i), S[i]) : ""

series = errors ? \
    "for [i=2:nval+1] in using 1:i:(column(i+nval)):(column(i+2*nval)):xtic(1) with yerrorlines lt series_lt(i) title columnhead(i)" : \
    "for [i=2:nval+1] in using 1:i:xtic(1) with linespoints lt series_lt(i) title columnhead(i)"
fitted = "for [i=2:nval+1] (S[i] == S[i] && x >= xmin && x <= fitmax ? amdahl(x, S[i]) : NaN) with lines dt 3 lw 1.5 lt series_lt(i) title fit_title(i)"
plotcmd = "plot ".series.(ideal ? ", ".fitted.", ideal_f(x) with lines dt 2 lw 1.5 lc rgb IDEAL_COLOUR title ideal_title" : "")
eval render
