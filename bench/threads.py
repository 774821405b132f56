"""bench/threads.toml's summary code: memory per blocked thread (each figure per
thread count and stack size), CPython's figures, the table of C beside CPython, and
the chart of memory per thread against the thread count."""

from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt

STACKS = (("8192", "8 MiB stacks"), ("64", "64 KiB stacks"))
COUNTS = ("1000", "10000")


def _per_run(s, exp, sel, metric):
    return s.per_run(exp, sel, f"metric:{metric}")


def memory_figures(s, spec):
    """For 1,000 and 10,000 threads (those that ran) and each stack size, run by
    run, against the goal: resident + kernel stack per thread, and everything
    attributed to a thread (those, its page tables and its share of the slab);
    then each part, and the virtual size, for information."""
    out = []
    for count in COUNTS:
        for stack, label in STACKS:
            sel = {"count": count, "stack_kib": stack}
            if s.row("memory", sel) is None:
                continue
            part = {m: _per_run(s, "memory", sel, m) for m in ("rss_kib", "kstack_kib", "ptables_kib", "slab_kib")}
            n = f"{int(count):,}"
            for name, keys, what in (
                ("user_kstack_kib", ("rss_kib", "kstack_kib"), "resident + kernel stack"),
                ("user_kernel_kib", tuple(part), "resident + kernel stack + page tables + slab"),
            ):
                runs = sorted(set.intersection(*(set(part[k]) for k in keys)))
                xs = [sum(part[k][r] for k in keys) for r in runs if None not in (part[k][r] for k in keys)]
                out.append(s.figure(spec, xs, name=f"{name}_{count}_{stack}", unit=" KiB", sources=["memory"],
                                    what=f"{n} threads, {label}: {what} per thread (KiB)"))  # fmt: skip
            for metric, what, unit in (
                ("rss_kib", "resident (VmRSS)", " KiB"),
                ("kstack_kib", "kernel stack (KernelStack)", " KiB"),
                ("ptables_kib", "page tables (VmPTE)", " KiB"),
                ("slab_kib", "kernel objects (Slab, whole system)", " KiB"),
                ("virt_mib", "virtual (VmSize)", " MiB"),
            ):
                xs = [v for _, v in sorted(_per_run(s, "memory", sel, metric).items())]
                out.append(s.figure({}, xs, name=f"{metric}_{count}_{stack}", unit=unit, sources=["memory"],
                                    what=f"{n} threads, {label}: {what} per thread"))  # fmt: skip
    return out


def python_figures(s, spec):
    out = []
    for count in COUNTS:
        exp, sel = "python", {"count": count}
        if s.row(exp, sel) is None:
            continue
        n = f"{int(count):,}"
        for metric, what, unit in (
            ("rss_kib", f"CPython, {n} threads: resident per thread", " KiB"),
            ("kstack_kib", f"CPython, {n} threads: kernel stack per thread", " KiB"),
            ("virt_mib", f"CPython, {n} threads: virtual per thread", " MiB"),
            ("create_join_us", f"CPython: Thread.start() + join() (µs; the run with {n} threads)", " µs"),
        ):
            xs = [v for _, v in sorted(_per_run(s, exp, sel, metric).items())]
            out.append(s.figure({}, xs, name=f"cpython_{metric}_{count}", what=what, unit=unit, sources=[exp]))
    return out


def _median(row, key):
    return row["metrics"].get(key) if row else None


def tables(s):
    """C with each stack size beside CPython, per thread count; and the chart of
    memory per thread against the thread count."""
    counts = sorted({r["params"]["count"] for r in s.rows("memory")}, key=int)
    table, points = [], {}
    for count in counts:
        c8, c64 = (s.row("memory", {"count": count, "stack_kib": k}) for k, _ in STACKS)
        py = s.row("python", {"count": count})
        rows = (("resident KiB", "rss_kib"), ("kernel stack KiB", "kstack_kib"), ("page tables KiB", "ptables_kib"),
                ("slab KiB", "slab_kib"), ("virtual MiB", "virt_mib"), ("create µs", "create_us"))  # fmt: skip
        for what, key in rows:
            table.append([f"{int(count):,}", what, fmt(_median(c8, key)), fmt(_median(c64, key)), fmt(_median(py, key))])
        for series, row, key in (
            ("resident KiB, 8 MiB stacks", c8, "rss_kib"),
            ("resident KiB, 64 KiB stacks", c64, "rss_kib"),
            ("kernel stack KiB", c8, "kstack_kib"),
            ("page tables KiB, 8 MiB stacks", c8, "ptables_kib"),
            ("resident KiB, CPython", py, "rss_kib"),
            ("virtual KiB, 8 MiB stacks", c8, "virt_mib"),
            ("virtual KiB, 64 KiB stacks", c64, "virt_mib"),
        ):
            v = _median(row, key)
            points[(int(count), series)] = v * 1024 if v is not None and key == "virt_mib" else v
    s.extra["memory_table"] = table
    py = next((m.get("python") for m in s.lines("python")), None)
    out = [f"Memory per blocked thread, medians (CPython here: {py or 'not run'}; its page tables and slab are not read):", ""]
    out += markdown_table(["threads", "per thread", "C, 8 MiB stacks", "C, 64 KiB stacks", "CPython"], table,
                          ["--:", ":--", "--:", "--:", "--:"])  # fmt: skip
    out.append("")
    series = [name for name in dict.fromkeys(k for _, k in points) if any(points.get((c, name)) for c, _ in points)]
    out += s.chart(
        "lines", wide_tsv("threads", series, points), "threads-memory-per-thread",
        "memory per blocked thread against threads (KiB, log)",
        xlabel="threads blocked at once", ylabel="KiB per thread (log)", logx=1, logy=1,
    )  # fmt: skip
    return out
