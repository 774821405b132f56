# plots/bars.gp: one bar per label (e.g. per variant), with error bars.
#
#   gnuplot -e "in='race-variants.chart.tsv'; out='race-variants'; title='ns/op'" plots/bars.gp
#   gnuplot -e "in='race-variants.chart.tsv'; term='dumb'" plots/bars.gp
#
# Variables (set them with -e; only `in` is required), beside the common ones of
# plots/common.gp (out, title, term, prov, key):
#   in      input, tab-separated, one header line, then one row per bar:
#             label <TAB> value <TAB> low <TAB> high [<TAB> class]
#           low and high are the error bar's ends: bench/run writes the 95%
#           interval of the median there (both equal to the value: no error bar).
#           class colours the bar: correct (green), broken (red), other/absent
#           (blue); the legend names the classes when there are two or more.
#           A value of NaN leaves the bar out.
#   ylabel  y-axis label (default: "value")
#   logy    1: logarithmic y axis (use it when values span decades); default 0
#   key     as in common.gp (default here: "top right")
#
# bench/run derives `in` from its rows (see bench/README.md).

if (!exists("key")) key = "top right"
name = "bars.gp"
here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
load here(ARG0)."common.gp"

if (!exists("ylabel")) ylabel = "value"
if (!exists("logy")) logy = 0

set datafile separator "\t"
set datafile missing "NaN"

# y range from the data: bottom at the smallest low end, headroom for the value
# labels and the legend
stats in skip 1 using 0 nooutput
nbars = STATS_records
stats in skip 1 using 3 nooutput
ylo = STATS_min
stats in skip 1 using 4 nooutput
yhi = STATS_max
stats in skip 1 using (strcol(5) eq "correct" ? 1 : 0) nooutput
ncorrect = STATS_sum
stats in skip 1 using (strcol(5) eq "broken" ? 1 : 0) nooutput
nbroken = STATS_sum
nother = nbars - ncorrect - nbroken
classes = (ncorrect > 0) + (nbroken > 0) + (nother > 0)
rows = (classes > 1) ? classes : 0

if (logy) {
    set logscale y 10
    ybottom = 10**floor(log10(ylo) - 0.05)
    set yrange [ybottom : top_log(ybottom, yhi * 1.6, rows)]
    set format y "10^{%L}"
    set mytics 10
} else {
    ybottom = 0
    set yrange [ybottom : top_linear(ybottom, yhi * 1.12, rows)]
}
set xrange [-0.6:nbars - 0.4]

colour(c) = (c eq "correct") ? PALETTE[3] : (c eq "broken") ? PALETTE[2] : PALETTE[1]
rgb(c) = int(("0x".colour(c)[2:]) + 0)  # "#2ca02c" as the number lc rgb variable takes

set ylabel ylabel noenhanced
set xtics rotate by 30 right noenhanced
set grid noxtics ytics mytics
set style fill solid 0.8 border lc rgb "#333333"
set bmargin 7
if (classes < 2) { unset key }

# In text every other label goes one line down, so that long names do not
# collide, and the labels stand upright.
label(t) = (t eq "dumb" && int($0) % 2) ? "\n".strcol(1) : strcol(1)
plotcmd = "\
    if (t eq 'dumb') { set xtics norotate }; \
    plot in skip 1 using 0:2:($0 - 0.35):($0 + 0.35):(ybottom):2:(rgb(strcol(5))):xtic(label(t)) \
             with boxxyerror lc rgb variable notitle, \
         '' skip 1 using ($3 < $4 ? $0 : NaN):3:(0):($4 - $3) with vectors heads size screen 0.008,90 lw 1.5 lc rgb 'black' notitle, \
         '' skip 1 using 0:4:(sprintf('%.3g', $2)) with labels offset 0,0.8 font ',10' notitle, \
         NaN with boxes lc rgb colour('correct') title (ncorrect > 0 ? 'correct' : ''), \
         NaN with boxes lc rgb colour('broken') title (nbroken > 0 ? 'racy / wrong' : ''), \
         NaN with boxes lc rgb colour('other') title (nother > 0 ? 'other' : '')"
eval render
