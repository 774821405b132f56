# plots/series.gp: a quantity sampled over time by a demo (resident memory, a
# buffer's fill level), from the FILE.samples.tsv a demo writes next to its
# --trace FILE; optionally a second run's samples drawn over it.
#
#   prodcons --variant unbounded --trace u.csv     # writes u.samples.tsv
#   gnuplot -e "in='u.samples.tsv'; in2='b.samples.tsv'; label1='unbounded'; label2='bounded'" plots/series.gp
#   gnuplot -e "in='w.samples.tsv'; y='fill_pct'; high=80; low=30; term='dumb'" plots/series.gp
#   gnuplot -e "in='s.samples.tsv'; ys='answered refused'; steps=1; shade='draining'" plots/series.gp
#
# Variables (set them with -e; only `in` is required), beside the common ones of
# plots/common.gp (out, title, term, prov, key):
#   in      tab-separated, a header line naming the columns, then one sample a line;
#           the first column is the time in seconds
#   y       the column to plot, by its header name (default: rss_mib)
#   ylabel  y-axis label (default: by y: "resident memory (MiB)", "buffer fill (%)", or y)
#   in2     a second file with the same columns, drawn as a second line (optional)
#   label1, label2  the two lines' names in the legend (default: the file names)
#   high, low  horizontal reference lines (watermarks), in the units of y (optional)
#   ys      several columns of `in` by name, space separated, one line each (instead
#           of y and in2); labels names them ("'no reply' refused", quoted where a
#           name has a space; default: the column names)
#   steps   1: each value holds until the next row (a state, a running count),
#           drawn as steps rather than slopes
#   shade   a column of `in`: the plot's height is shaded grey where it is above 0
#           (a down period, a drain), named shade_label in the legend
#   xlabel  the x axis's label (default: time (s)); ytics a gnuplot tic list for the
#           y axis, e.g. "('closed' 0, 'open' 2)" (default: numbers)
# bench/run passes `in` as the experiment's samples file for chart = { kind =
# "series" }, and the rest through the chart's `args`, where {out} is the output
# folder.

name = "series.gp"
here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
load here(ARG0)."common.gp"

if (!exists("y")) y = "rss_mib"
if (!exists("ylabel")) ylabel = (y eq "rss_mib") ? "resident memory (MiB)" : (y eq "fill_pct") ? "buffer fill (% of capacity)" : y
if (!exists("label1")) label1 = in
if (!exists("label2")) label2 = exists("in2") ? in2 : ""
if (!exists("ys")) ys = ""
if (!exists("labels")) labels = ys
if (!exists("steps")) steps = 0
if (!exists("xlabel")) xlabel = "time (s)"
if (!exists("shade_label")) shade_label = exists("shade") ? shade : ""
style = steps ? "steps" : "lines"

set datafile separator "\t"

ymax = 0
if (words(ys) == 0) {
    stats in using y nooutput
    ymax = STATS_max
} else {
    do for [i = 1:words(ys)] {
        stats in using (column(word(ys, i))) nooutput
        ymax = (STATS_max > ymax) ? STATS_max : ymax
    }
}
if (exists("in2")) { stats in2 using y nooutput; ymax = (STATS_max > ymax) ? STATS_max : ymax }
if (exists("high")) { ymax = (high > ymax) ? high : ymax }
if (ymax <= 0) ymax = 1
rows = (words(ys) > 0 ? words(ys) : exists("in2") ? 2 : 1) + exists("shade")
ytop = top_linear(0, ymax, rows)
set yrange [0 : ytop]
set xrange [0:*]
set xlabel xlabel noenhanced
set ylabel ylabel noenhanced
if (exists("ytics")) { eval "set ytics ".ytics }
if (exists("high")) {
    set arrow 1 from graph 0, first high to graph 1, first high nohead lc rgb PALETTE[2] dt 2 lw 1.5
    set label 1 sprintf("high %g", high) at graph 0.99, first high right offset 0,0.6 tc rgb PALETTE[2] font ",10"
}
if (exists("low")) {
    set arrow 2 from graph 0, first low to graph 1, first low nohead lc rgb PALETTE[3] dt 2 lw 1.5
    set label 2 sprintf("low %g", low) at graph 0.99, first low right offset 0,0.6 tc rgb PALETTE[3] font ",10"
}

# the shaded span first, under the lines
shaded = exists("shade") ? \
    "in using 1:(column(shade) > 0 ? ytop : 0) with fillsteps fs solid 0.35 noborder lc rgb '#c8c8c8' title shade_label, " : ""
plotcmd = "plot ".shaded.(words(ys) > 0 ? \
    "for [i = 1:words(ys)] in using 1:(column(word(ys, i))) with ".style." lt series_lt(i + 1) lw 2 title word(labels, i)" : \
    exists("in2") ? \
    "in using 1:y with ".style." lc rgb PALETTE[2] lw 2 title label1, in2 using 1:y with ".style." lc rgb PALETTE[1] lw 2 title label2" : \
    "in using 1:y with ".style." lc rgb PALETTE[1] lw 2 title label1")
eval render
