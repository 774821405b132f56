# plots/bars.gp: one bar per label (e.g. per variant), with min-max error bars.
#
#   gnuplot -e "in='race-variants.chart.tsv'; out='race-variants'; title='ns/op'" plots/bars.gp
#   gnuplot -e "in='race-variants.chart.tsv'; term='dumb'" plots/bars.gp
#
# Variables (set them with -e; only `in` is required):
#   in      input, tab-separated, one header line, then one row per bar:
#             label <TAB> value <TAB> min <TAB> max [<TAB> class]
#           class colours the bar: correct (green), broken (red), other/absent (blue).
#           A value of NaN leaves the bar out.
#   out     output file base: writes out.svg and/or out.png (default: in without .tsv)
#   title   chart title (default: the input's name)
#   term    both (default: out.svg and out.png), svg, png, dumb (text on stdout)
#   ylabel  y-axis label (default: "value")
#   logy    1: logarithmic y axis (use it when values span decades); default 0
#   prov    provenance (host, commit, date), printed small under the chart
#
# bench/run derives `in` from hyperfine's JSON (see bench/README.md).

if (!exists("in")) { print "bars.gp: set in='file.tsv' with -e"; exit status 2 }
if (!exists("out")) out = (in[strlen(in)-3:] eq ".tsv") ? in[1:strlen(in)-4] : in
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("ylabel")) ylabel = "value"
if (!exists("logy")) logy = 0
if (!exists("prov")) prov = ""

set datafile separator "\t"
set datafile missing "NaN"

# y range from the data: bottom at the smallest min, headroom for the value labels
stats in skip 1 using 3 nooutput
ylo = STATS_min
nbars = STATS_records
stats in skip 1 using 4 nooutput
yhi = STATS_max
stats in skip 1 using (strcol(5) eq "correct" ? 1 : 0) nooutput
ncorrect = STATS_sum
stats in skip 1 using (strcol(5) eq "broken" ? 1 : 0) nooutput
nbroken = STATS_sum

if (logy) {
    set logscale y 10
    ybottom = 10**floor(log10(ylo) - 0.05)
    ytop = 10**(log10(yhi) + 0.25 * (log10(yhi) - log10(ybottom)) + 0.1)
    set format y "10^{%L}"
    set mytics 10
} else {
    ybottom = 0
    ytop = yhi * 1.15
}
set yrange [ybottom:ytop]
set xrange [-0.6:nbars - 0.4]

colour(c) = (c eq "correct") ? 0x2ca02c : (c eq "broken") ? 0xd62728 : 0x1f77b4

set title title noenhanced
set ylabel ylabel noenhanced
set xtics rotate by 30 right nomirror noenhanced
set ytics nomirror
set grid ytics mytics lc rgb "#dddddd" lw 1 dt 1
set border 3
set key top right noenhanced
set style fill solid 0.8 border lc rgb "#333333"
set bmargin 7
set rmargin 2
if (strlen(prov) > 0) set label 99 prov at screen 0.99, screen 0.015 right font ",8" tc rgb "#777777" noenhanced

do for [t in (term eq "both" ? "svg png" : term)] {
    if (t eq "svg") { set terminal svg size 900,540 dynamic font "Sans,12" background "white" enhanced; set output out.".svg" }
    if (t eq "png" || t eq "pngcairo") { set terminal pngcairo size 1200,720 font "Sans,13" background "white" enhanced; set output out.".png" }
    if (t eq "dumb") { set terminal dumb size 130,36 noenhanced; set output; set format y "%g"; unset grid; set xtics norotate }
    # in text, every other label goes one line down so that long names do not collide
    plot in skip 1 using 0:2:($0 - 0.35):($0 + 0.35):(ybottom):2:(colour(strcol(5))):xtic((t eq "dumb" && int($0) % 2) ? "\n".strcol(1) : strcol(1)) \
             with boxxyerror lc rgb variable notitle, \
         '' skip 1 using 0:3:(0):($4 - $3) with vectors heads size screen 0.008,90 lw 1.5 lc rgb "black" notitle, \
         '' skip 1 using 0:4:(sprintf("%.3g", $2)) with labels offset 0,0.8 font ",10" notitle, \
         NaN with boxes lc rgb colour("correct") title (ncorrect > 0 ? "correct" : ""), \
         NaN with boxes lc rgb colour("broken") title (nbroken > 0 ? "racy / wrong" : "")
    unset output
}
