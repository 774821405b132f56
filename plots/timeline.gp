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
#           wait (thick orange: sleeping or blocked) or hold (thick blue: holding a
#           lock), the program's view; or the scheduler's view (lib/cl_sched.h), each
#           thick: running (green), runnable (gold: ready, no CPU), blocked (red),
#           sleeping (purple), exited (grey)
#   key     as in common.gp (default here: "top right"); the legend runs across
#           a row of its own above the first thread
#   lanes   names for the rows instead of thread numbers, as gnuplot tic labels:
#           lanes="'loop' 1, 'threads' 2" (hybrid's lanes are not threads)
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
# the thick kinds, their colours and their borders; a kind is in the key only
# when the file has it
kinds = "wait hold running runnable blocked sleeping exited"
array fill[7] = [PALETTE[4], PALETTE[1], PALETTE[3], "#f2c12e", PALETTE[2], PALETTE[5], "#b0b0b0"]
array edge[7] = ["#a04d00", "#0d3d66", "#17601a", "#9c7a10", "#7a1516", "#54367a", "#707070"]
array count[7]
do for [k = 1:words(kinds)] {
    stats in skip 1 using (strcol(2) eq word(kinds, k) ? 1 : 0) nooutput
    count[k] = STATS_sum
}
stats in skip 1 using (strcol(2) eq "run" ? 1 : 0) nooutput
nrun = STATS_sum

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
if (exists("lanes")) { eval "set ytics (".lanes.")"; unset ylabel }
set key horizontal maxrows 1
set style fill solid 1.0 noborder

plotcmd = "\
    plot in skip 1 using (ms(($3 + $4) / 2)):(is('run')):(ms($3)):(ms($4)):(is('run') + 0.30):(is('run') + 0.40) \
             with boxxyerror lc rgb '#888888' title (nrun > 0 ? 'run' : ''), \
         for [k = 1:words(kinds)] '' skip 1 \
             using (ms(($3 + $4) / 2)):(is(word(kinds, k))):(ms($3)):(ms($4)):(is(word(kinds, k)) - 0.36):(is(word(kinds, k)) + 0.24) \
             with boxxyerror lc rgb fill[k] fs solid 0.85 border lc rgb edge[k] \
             title (count[k] > 0 ? word(kinds, k) : '')"
eval render
