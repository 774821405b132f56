# plots/timeline.gp: a Gantt timeline from a demo's --trace CSV, one row per thread.
#
#   race --variant window --threads 10 --iters 20 --trace race-window.csv
#   gnuplot -e "in='race-window.csv'; out='race-timeline'; title='window'" plots/timeline.gp
#   gnuplot -e "in='race-window.csv'; term='dumb'" plots/timeline.gp
#
# Variables (set them with -e; only `in` is required):
#   in      a --trace CSV: header "thread,kind,start_s,end_s", then one interval a line;
#           kind is run (thin grey bar under the row: the thread's whole job),
#           wait (thick orange: sleeping or blocked) or hold (thick blue: holding a lock)
#   out     output file base: writes out.svg and/or out.png (default: in without .csv)
#   title   chart title (default: the input's name)
#   term    both (default: out.svg and out.png), svg, png, dumb (text on stdout)
#   prov    provenance (host, commit, date), printed small under the chart
# Time runs left to right in milliseconds from the earliest start in the file.

if (!exists("in")) { print "timeline.gp: set in='file.csv' with -e"; exit status 2 }
if (!exists("out")) out = (in[strlen(in)-3:] eq ".csv") ? in[1:strlen(in)-4] : in
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("prov")) prov = ""

set datafile separator comma

stats in skip 1 using 3 nooutput
t0 = STATS_min
stats in skip 1 using 4 nooutput
t1 = STATS_max
stats in skip 1 using 1 nooutput
thmin = STATS_min
thmax = STATS_max
stats in skip 1 using (strcol(2) eq "wait" ? 1 : 0) nooutput
nwait = STATS_sum
stats in skip 1 using (strcol(2) eq "hold" ? 1 : 0) nooutput
nhold = STATS_sum

ms(s) = (s - t0) * 1000.0
span = ms(t1)
# a row per thread; kind k of row r: 1/0 unless the line has that kind
is(k) = (strcol(2) eq k) ? $1 : NaN

set xrange [-0.01 * span : span * 1.01]
set yrange [thmax + 0.6 : thmin - 0.6]
set ytics 1 nomirror
set xtics nomirror
set mxtics 5
set grid xtics lc rgb "#e5e5e5"
set border 3
set title title noenhanced
set xlabel "time (ms)"
set ylabel "thread"
set key outside right top vertical noenhanced
set style fill solid 1.0 noborder
set bmargin 5
if (strlen(prov) > 0) set label 99 prov at screen 0.99, screen 0.015 right font ",8" tc rgb "#777777" noenhanced

do for [t in (term eq "both" ? "svg png" : term)] {
    if (t eq "svg") { set terminal svg size 900,540 dynamic font "Sans,12" background "white" enhanced; set output out.".svg" }
    if (t eq "png" || t eq "pngcairo") { set terminal pngcairo size 1200,720 font "Sans,13" background "white" enhanced; set output out.".png" }
    if (t eq "dumb") { set terminal dumb size 120,36 noenhanced; set output; unset grid }
    plot in skip 1 using (ms(($3 + $4) / 2)):(is("run")):(ms($3)):(ms($4)):(is("run") + 0.30):(is("run") + 0.40) \
             with boxxyerror lc rgb "#888888" title "run", \
         '' skip 1 using (ms(($3 + $4) / 2)):(is("wait")):(ms($3)):(ms($4)):(is("wait") - 0.36):(is("wait") + 0.24) \
             with boxxyerror lc rgb "#ff7f0e" fs solid 0.85 border lc rgb "#a04d00" title (nwait > 0 ? "wait" : ""), \
         '' skip 1 using (ms(($3 + $4) / 2)):(is("hold")):(ms($3)):(ms($4)):(is("hold") - 0.36):(is("hold") + 0.24) \
             with boxxyerror lc rgb "#1f77b4" fs solid 0.85 border lc rgb "#0d3d66" title (nhold > 0 ? "hold" : "")
    unset output
}
