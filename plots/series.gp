# plots/series.gp: a quantity sampled over time by a demo (resident memory, a
# buffer's fill level), from the FILE.samples.tsv a demo writes next to its
# --trace FILE; optionally a second run's samples drawn over it.
#
#   prodcons --variant unbounded --trace u.csv     # writes u.samples.tsv
#   gnuplot -e "in='u.samples.tsv'; in2='b.samples.tsv'; label1='unbounded'; label2='bounded'" plots/series.gp
#   gnuplot -e "in='w.samples.tsv'; y='fill_pct'; high=80; low=30; term='dumb'" plots/series.gp
#
# Variables (set them with -e; only `in` is required):
#   in      tab-separated, a header line naming the columns, then one sample a line;
#           the first column is the time in seconds
#   y       the column to plot, by its header name (default: rss_mib)
#   ylabel  y-axis label (default: by y: "resident memory (MiB)", "buffer fill (%)", or y)
#   in2     a second file with the same columns, drawn as a second line (optional)
#   label1, label2  the two lines' names in the key (default: the file names)
#   high, low  horizontal reference lines (watermarks), in the units of y (optional)
#   out     output file base: writes out.svg and/or out.png (default: in without .tsv)
#   title   chart title (default: the input's name)
#   term    both (default: out.svg and out.png), svg, png, dumb (text on stdout)
#   prov    provenance (host, commit, date), printed small under the chart
# bench/run passes `in` as the experiment's samples file for `X_chart=series`, and
# the rest through `X_chart_args`, where {out} is the output folder.

if (!exists("in")) { print "series.gp: set in='file.samples.tsv' with -e"; exit status 2 }
if (!exists("out")) out = (in[strlen(in)-3:] eq ".tsv") ? in[1:strlen(in)-4] : in
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("prov")) prov = ""
if (!exists("y")) y = "rss_mib"
if (!exists("ylabel")) ylabel = (y eq "rss_mib") ? "resident memory (MiB)" : (y eq "fill_pct") ? "buffer fill (% of capacity)" : y
if (!exists("label1")) label1 = in
if (!exists("label2")) label2 = exists("in2") ? in2 : ""

set datafile separator "\t"

set title title noenhanced
set xlabel "time (s)"
set ylabel ylabel noenhanced
set xtics nomirror
set ytics nomirror
set yrange [0:*]
set xrange [0:*]
set grid xtics ytics lc rgb "#dddddd" lw 1 dt 1
set border 3
set key outside right top vertical noenhanced box lc rgb "#cccccc"
set bmargin 5
if (strlen(prov) > 0) set label 99 prov at screen 0.99, screen 0.015 right font ",8" tc rgb "#777777" noenhanced
if (exists("high")) set arrow 1 from graph 0, first high to graph 1, first high nohead lc rgb "#d62728" dt 2 lw 1.5
if (exists("low")) set arrow 2 from graph 0, first low to graph 1, first low nohead lc rgb "#2ca02c" dt 2 lw 1.5
if (exists("high")) set label 1 sprintf("high %g", high) at graph 1.01, first high left tc rgb "#d62728" font ",10"
if (exists("low")) set label 2 sprintf("low %g", low) at graph 1.01, first low left tc rgb "#2ca02c" font ",10"

do for [t in (term eq "both" ? "svg png" : term)] {
    if (t eq "svg") { set terminal svg size 900,540 dynamic font "Sans,12" background "white" enhanced; set output out.".svg" }
    if (t eq "png" || t eq "pngcairo") { set terminal pngcairo size 1200,720 font "Sans,13" background "white" enhanced; set output out.".png" }
    if (t eq "dumb") { set terminal dumb size 120,36 noenhanced; set output; unset grid }
    if (exists("in2")) {
        plot in using 1:y with lines lc rgb "#d62728" lw 2 title label1, \
             in2 using 1:y with lines lc rgb "#1f77b4" lw 2 title label2
    } else {
        plot in using 1:y with lines lc rgb "#1f77b4" lw 2 title label1
    }
    unset output
}
