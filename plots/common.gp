# plots/common.gp: the prelude every chart script loads first. It holds what
# all charts share: the defaults of the common variables, the look (fonts, grid,
# palette, legend inside the plot), the provenance line and the output loop.
#
# A chart script starts with
#
#   name = "lines.gp"                       # for the messages
#   here(p) = (p eq "" || p[strlen(p):] eq "/") ? p : here(p[1:strlen(p)-1])
#   load here(ARG0)."common.gp"             # the folder of this script
#
# then sets up its axes, puts its plot command in the string `plotcmd`, and
# ends with `eval render`: the command runs once per output (svg, png or dumb),
# with `t` set to the terminal, so that a plot may differ in text (dumb).
#
# The common variables (set them with -e; only `in` is required):
#   in      the input file
#   out     output file base: writes out.svg and/or out.png (default: in without
#           its .tsv or .csv)
#   title   chart title (default: the input's name)
#   term    both (default: out.svg and out.png), svg, png, dumb (text on stdout)
#   prov    provenance (host, commit, date), printed under the chart
#   key     where the legend goes, inside the plot: "top left" (default),
#           "top right", "bottom right", ...
#   colours the palette index (1 to 10) of each series column, in order, space
#           separated: bench/run gives a series the same colour on every chart of
#           its chapter (default: 1, 2, 3 ... in column order)
#   cores   the core count an ideal line stops at (default: nproc)

if (!exists("in")) { print name.": set in='file' with -e (see its header)"; exit status 2 }
if (!exists("out")) {
    ext = in[strlen(in)-3:]
    out = (ext eq ".tsv" || ext eq ".csv") ? in[1:strlen(in)-4] : in
}
if (!exists("title")) title = in
if (!exists("term")) term = "both"
if (!exists("prov")) prov = ""
if (!exists("key")) key = "top left"
if (!exists("cores")) cores = int(system("nproc"))
if (!exists("colours")) colours = ""
if (term ne "both" && term ne "svg" && term ne "png" && term ne "dumb") {
    print name.": term must be both, svg, png or dumb"; exit status 2
}
terms = (term eq "both") ? "svg png" : term

# Ten colours that stay apart in print and for most colour-blind readers
# (matplotlib's tab10), each with its own point type; series 11 on reuse them.
array PALETTE[10] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", \
                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
do for [i=1:10] { set linetype i lc rgb PALETTE[i] lw 2 pt (i % 13 + 1) ps 1.2 }
# The linetype of the series in column `col` (2 for the first series).
series_lt(col) = ((words(colours) >= col - 1 ? int(word(colours, col - 1)) : col - 1) - 1) % 10 + 1
IDEAL_COLOUR = "#555555"

set title title noenhanced
set tics nomirror
set grid lc rgb "#dddddd" lw 1 dt 1
set border 3
# The legend sits inside the plot, on a white ground over whatever it covers;
# scripts leave headroom above the data for it (key_headroom).
eval "set key inside ".key." vertical Left reverse opaque box lc rgb '#bbbbbb' noenhanced samplen 2.5 spacing 1.1"
set bmargin 5
if (strlen(prov) > 0) {
    set label 99 prov at screen 0.01, screen 0.02 left font ",11" tc rgb "#444444" noenhanced
}

# The fraction of the plot's height to leave empty above the data for a legend
# of `rows` entries (and a little air).
key_headroom(rows) = (rows < 1 ? 0.06 : 0.07 * rows + 0.06)
# The top of a linear y axis that leaves that headroom over the data (lo to hi).
top_linear(lo, hi, rows) = hi + (hi - lo) * key_headroom(rows) / (1 - key_headroom(rows))
# The same on a log axis.
top_log(lo, hi, rows) = exp(log(hi) + (log(hi) - log(lo)) * key_headroom(rows) / (1 - key_headroom(rows)))

# A numeric x axis over xmin..xmax (log2 when logx) and a y axis over
# ymin..ymax (log10 when logy is 1, log2 when 2) with room for a legend of `rows`
# entries: `eval numeric_axes` once those are set. A linear y axis starts at 0.
numeric_axes = "\
    if (logx) { set logscale x 2; set xrange [xmin / 1.25 : xmax * 1.25] } \
    else { pad = (xmax > xmin) ? 0.05 * (xmax - xmin) : 1; set xrange [xmin - pad : xmax + pad] }; \
    if (logy) { \
        set logscale y (logy == 2 ? 2 : 10); \
        if (logy == 1) { set format y '10^{%L}'; set mytics 10 }; \
        ybottom = ymin / 1.5; set yrange [ybottom : top_log(ybottom, ymax * 1.1, rows)] \
    } else { ybottom = (ymin < 0) ? ymin : 0; set yrange [ybottom : top_linear(ybottom, ymax, rows)] }"

# The output loop: once per terminal, then the plot. In text, every log axis
# gets plain numbers (no superscripts) and the grid goes.
setterm(t) = (t eq "svg") ? \
    'set terminal svg size 900,560 dynamic font "Sans,12" background "white" enhanced; set output out.".svg"' : \
  (t eq "png") ? \
    'set terminal pngcairo size 1200,750 font "Sans,13" background "white" enhanced; set output out.".png"' : \
    'set terminal dumb size 120,36 noenhanced; set output; set format y "%g"; set format x "%g"; unset grid'
render = "do for [t in terms] { eval setterm(t); eval plotcmd; unset output }"
