# plots/timeline.gp: a Gantt timeline from a demo's --trace CSV, one row per thread.
#
#   race --variant window --threads 10 --iters 20 --trace race-window.csv
#   gnuplot -e "in='race-window.csv'; out='race-timeline'; title='window'" plots/timeline.gp
#   gnuplot -e "in='race-window.csv'; term='dumb'" plots/timeline.gp
#
# Variables (set them with -e; only `in` is required), beside the common ones of
# plots/common.gp (out, title, term, prov, key):
#   in      a --trace CSV: header "thread,kind,start_s,end_s", then one interval a line;
#           kind is run (thin grey bar under the row: the thread's whole job),
#           wait (thick orange: sleeping or blocked) or hold (thick blue: holding a lock)
#   key     as in common.gp (default here: "top right"); the legend runs across
#           a row of its own above the first thread
# Time runs left to right in milliseconds from the earliest start in the file.

if (!exists("key")) key = "top right"
name = "timeline.gp"
here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
load here(ARG0)."common.gp"

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
# a row above the first thread for the legend
set yrange [thmax + 0.6 : thmin - 1.3]
set ytics thmin, 1, thmax
set mxtics 5
set grid xtics noytics lc rgb "#e5e5e5"
set xlabel "time (ms)"
set ylabel "thread"
set key horizontal maxrows 1
set style fill solid 1.0 noborder

plotcmd = "\
    plot in skip 1 using (ms(($3 + $4) / 2)):(is('run')):(ms($3)):(ms($4)):(is('run') + 0.30):(is('run') + 0.40) \
             with boxxyerror lc rgb '#888888' title 'run', \
         '' skip 1 using (ms(($3 + $4) / 2)):(is('wait')):(ms($3)):(ms($4)):(is('wait') - 0.36):(is('wait') + 0.24) \
             with boxxyerror lc rgb PALETTE[4] fs solid 0.85 border lc rgb '#a04d00' title (nwait > 0 ? 'wait' : ''), \
         '' skip 1 using (ms(($3 + $4) / 2)):(is('hold')):(ms($3)):(ms($4)):(is('hold') - 0.36):(is('hold') + 0.24) \
             with boxxyerror lc rgb PALETTE[1] fs solid 0.85 border lc rgb '#0d3d66' title (nhold > 0 ? 'hold' : '')"
eval render
