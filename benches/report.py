#!/usr/bin/env python3
"""BENCHMARKS.md from the raw results of one benches/full.sh run (or any benches/e2e.sh runs).

Usage (normally through benches/report.sh, which provides matplotlib from a pinned venv):
    report.py --results DIR --out BENCHMARKS.md [--notes benches/NOTES.md] [--no-plots]

Reads every DIR/e2e-*.tsv (one per benches/e2e.sh run) with its .meta and writes:
- --out: the report at a glance (the targets, the headline figures, the plots, the method, the
  machine; about two screens), linking DIR, DIR/tables.md and the notes file (the history);
- DIR/tables.md: every table (each block's samples, medians, CPU and ratios; partitioned
  topics; record shapes; the samples left out);
- the plots into DIR (PNG), linked from --out by relative path.
Nothing in them is typed by hand: every figure comes from the raw samples, every verdict from
the targets below.
"""
import argparse
import csv
import glob
import math
import os
import re
import statistics
import sys
from collections import OrderedDict, defaultdict

# The targets of issue 13, section 3 (reported, not asserted).
FLINK_X_INLONG = 10.0  # run >= 10 x flink-inlong at every size
LOAD_DATA_RATIO = 0.9  # run >= 0.9 x LOAD DATA at 1e6 and 1e7 on 1, 4, 16 and 64 partitions (issue 25)
RSS_MIB = 64.0  # peak RSS < 64 MiB, flat to 1e7
SEED_WALL_S = 0.5  # the seed's 10,000 records in < 0.5 s wall
OK = ("ok", "success")
TABLES = "tables.md"  # every table, written into the results directory

CONTENDER_ORDER = ["run", "dry-run", "load-data", "insert-dump", "flink-inlong", "flink-tuned"]
COLORS = {
    "run": "#d62728",
    "dry-run": "#ff9896",
    "load-data": "#1f77b4",
    "insert-dump": "#9ecae1",
    "flink-inlong": "#2ca02c",
    "flink-tuned": "#98df8a",
}


def med(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def fnum(x, fmt="{:,.0f}", nan="-"):
    return nan if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def plabel(p):
    return "1 (non-partitioned)" if p == 0 else str(p)


def cores_of(metas):
    for m in metas:
        if m.get("cores"):
            return int(m["cores"])
    return os.cpu_count() or 1


def load(results):
    samples, bad, metas = [], [], []
    for path in sorted(glob.glob(os.path.join(results, "e2e-*.tsv"))):
        if path.endswith(".timing.tsv"):
            continue  # the runner's time budget: load_timing
        meta = {}
        mpath = path[: -len(".tsv")] + ".meta"
        if os.path.exists(mpath):
            with open(mpath) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.rstrip("\n").split("=", 1)
                        meta[k] = v
        meta["file"] = os.path.basename(path)
        metas.append(meta)
        with open(path, newline="") as f:
            last = None
            for r in csv.DictReader(f, delimiter="\t"):
                if r["size"].startswith("#"):
                    if last is not None:
                        last["table"] = r["wall_s"]
                        if last["outcome"] in OK:
                            last["outcome"] = "wrong-rows"
                            bad.append(last)
                    continue
                s = {
                    "file": meta["file"],
                    "shape": r.get("shape") or meta.get("shape", "seed"),
                    "partitions": int(r.get("partitions") or meta.get("partitions", 0) or 0),
                    "size": int(r["size"]),
                    "round": r["round"],
                    "contender": r["contender"],
                    "wall": float(r["wall_s"]),
                    "rows": int(r["rows"] or 0),
                    "cpu": float(r["client_user_s"] or "nan") + float(r["client_sys_s"] or "nan"),
                    "rss": int(r["max_rss_kib"] or 0) / 1024,
                    "server": float(r["server_cpu_s"] or "nan"),
                    "broker": float(r.get("broker_cpu_s") or "nan"),
                    "outcome": r["outcome"],
                    "first_row": float(r["first_row_s"]) if r.get("first_row_s") else float("nan"),
                    "load1": float(r["load1"]) if r.get("load1") else float("nan"),
                    "machine": float(r["machine_cpu_s"]) if r.get("machine_cpu_s") else float("nan"),
                    "iowait": float(r["iowait_s"]) if r.get("iowait_s") else float("nan"),
                    "retries": float(r["retries"]) if r.get("retries") else float("nan"),
                    # the server's threads runnable but waiting for a core (schedstat)
                    "server_runq": float(r["server_runq_s"]) if r.get("server_runq_s") else float("nan"),
                    "table": "",
                }
                samples.append(s)
                last = s
                if s["outcome"] not in OK:
                    bad.append(s)
    return samples, bad, metas


class Agg:
    """Medians of the ok samples of one (shape, partitions, size, contender)."""

    def __init__(self, ss):
        self.all = ss
        ok = [s for s in ss if s["outcome"] in OK]
        self.ok = ok
        self.rates = [s["rows"] / s["wall"] for s in ok if s["wall"] > 0]
        self.rate = med(self.rates)
        self.wall = med([s["wall"] for s in ok])
        self.cpu = med([s["cpu"] for s in ok])
        self.server = med([s["server"] for s in ok])
        self.broker = med([s["broker"] for s in ok])
        self.rss = med([s["rss"] for s in ok])
        self.first_row = med([s["first_row"] for s in ok])
        self.load1 = med([s["load1"] for s in ok])
        self.machine = med([s["machine"] for s in ok])
        self.iowait = med([s["iowait"] for s in ok])
        self.server_runq = med([s["server_runq"] for s in ok])
        self.retries = [int(s["retries"]) for s in ok if not math.isnan(s["retries"])]
        # CPU of every other process on the machine (other people's work, the sidecar)
        self.others = med([s["machine"] - s["cpu"] - s["server"] - s["broker"] for s in ok])
        # A Flink sample ended by its timeout: the rate of the rows it had committed by then.
        part = [s["rows"] / s["wall"] for s in ss if s["outcome"] == "failed(rc=124)" and s["rows"] > 0]
        self.partial = med(part) if part else float("nan")
        self.partial_n = len(part)

    @property
    def best_rate(self):
        """(rate, timed_out): the median of finished samples, else the timed-out rate."""
        if not math.isnan(self.rate):
            return self.rate, False
        return self.partial, not math.isnan(self.partial)


TIMING_FIELDS = ["pulsar_setup_ms", "mysql_setup_ms", "first_record_ms", "first_write_ms",
                 "reading_done_ms", "tail_ms", "load_input_wait_ms", "commits", "commit_ms",
                 "total_ms", "entries_read", "lockstep_held_ms"]


def load_timing(results):
    """The runner's own time budget per run (the summary's `timing`, kept by e2e.sh in
    `e2e-<stamp>-<shape>-p<partitions>.timing.tsv`), seed shape only:
    {(partitions, size, contender): {field: [values over rounds]}}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(results, "e2e-*.timing.tsv"))):
        m = re.match(r"e2e-[0-9TZ]+-(.+)-p\d+\.timing\.tsv$", os.path.basename(path))
        if not m or m.group(1) != "seed":
            continue  # other shapes' budgets would mix with the seed's of the same size
        with open(path, newline="") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                key = (int(r["partitions"] or 0), int(r["size"]), r["contender"])
                fields = out.setdefault(key, {k: [] for k in TIMING_FIELDS})
                for k in TIMING_FIELDS:
                    if r.get(k):
                        fields[k].append(float(r[k]))
    return out


def timing_section(timing, w, aggs=None, cores=2):
    """The time budget per partition count: where a run's time goes, medians over the rounds."""
    runs = sorted(k for k in timing if k[2].startswith("run"))
    if not runs:
        return
    w("## Time budget of a run")
    w("")
    w("From each run's own summary (`timing`, ms since the run started; medians over the rounds). "
      "Setup: the Pulsar and MySQL sides, side by side; tail: from the last record read to the "
      "end (the last batch's load and COMMIT); input wait: LOAD DATA statements open on the "
      "server waiting for rows, summed over batches; held in step: wall time the readers of a "
      "partitioned topic, holding rows, waited for a partition the broker had not served yet "
      "(the lockstep's hold, summed over write streams; `-`: not measured by that build).")
    w("")
    w("| partitions | records | contender | Pulsar setup | MySQL setup | first record | first "
      "write | reading done | tail | input wait | held in step | COMMITs (ms, count) | total |")
    w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in runs:
        f = timing[key]
        m = {k: med(v) for k, v in f.items()}
        cell = lambda k: fnum(m[k], "{:,.0f}")
        w(f"| {plabel(key[0])} | {key[1]:,} | `{key[2]}` | {cell('pulsar_setup_ms')} | "
          f"{cell('mysql_setup_ms')} | {cell('first_record_ms')} | {cell('first_write_ms')} | "
          f"{cell('reading_done_ms')} | {cell('tail_ms')} | {cell('load_input_wait_ms')} | "
          f"{cell('lockstep_held_ms')} | {cell('commit_ms')} ({fnum(m['commits'], '{:.0f}')}) | {cell('total_ms')} |")
    w("")
    if aggs is None:
        return
    rows = []
    for (p, n, c) in runs:
        run, ld, dry = (aggs.get(("seed", p, n, x)) for x in ("run", "load-data", "dry-run"))
        if c != "run" or not (run and ld) or math.isnan(run.wall) or math.isnan(ld.wall):
            continue
        m = {k: med(v) for k, v in timing[(p, n, c)].items()}
        gap = run.wall - ld.wall
        server_extra = run.server - ld.server
        dry_read = dry.wall if dry else float("nan")
        target = ld.wall / LOAD_DATA_RATIO
        floor = (run.cpu + run.server + run.broker) / cores
        entries = m["entries_read"]
        # The broker's work is per entry: records per entry (the producer's batching) and
        # the broker's CPU per entry say why it costs what it does.
        per_entry = ("-" if math.isnan(entries) or entries <= 0 else
                     f"{n / entries:,.0f} rec, {run.broker / entries * 1e6:,.0f} µs")
        if floor > target:
            bound = f"the cores: {floor:.2f} s of CPU per core > {target:.2f}"
        elif run.server > target:
            bound = f"the server's CPU: {run.server:.2f} s > {target:.2f}"
        elif not math.isnan(run.server_runq) and run.server + run.server_runq > target:
            bound = (f"the server's CPU {run.server:.2f} s + its wait for a core "
                     f"{run.server_runq:.2f} s > {target:.2f}")
        else:
            bound = f"waits (CPU fits in {max(floor, run.server):.2f} s)"
        rows.append(
            f"| {plabel(p)} | {n:,} | {ratio(run.rate, ld.rate):.2f} | {run.wall:.2f} | {ld.wall:.2f} | {bound} | "
            f"**{gap:+.2f}** | {m['first_write_ms'] / 1000:.2f} | {m['load_input_wait_ms'] / 1000:.2f} "
            f"({fnum(m['lockstep_held_ms'] / 1000, '{:.2f}')}) | "
            f"{m['commit_ms'] / 1000:.2f} | {server_extra:+.2f} ({ld.server:.2f} -> {run.server:.2f}) | "
            f"{fnum(run.server_runq, '{:.2f}')} ({fnum(ld.server_runq, '{:.2f}')}) | "
            f"{run.broker:.2f} + {run.cpu:.2f} | {per_entry} | "
            f"{m['reading_done_ms'] / 1000:.2f} / {fnum(dry_read, '{:.2f}')} | "
            f"{m['tail_ms'] / 1000:.2f} |")
    if not rows:
        return
    w("**Where the difference to LOAD DATA goes** (seconds, medians; the runner's wall time includes "
      "its start-up like LOAD DATA's). The server is the one core that LOAD DATA keeps busy; the "
      "runner's time beyond it is: the start before the first byte reaches the server (first write), "
      "the server waiting inside an open statement for rows (input wait; in brackets, the wall "
      "time the readers, holding rows, were held back in step by a partition the broker had not "
      "served yet: the lockstep's share of it), COMMITs, and the server "
      "doing more work than for its own LOAD DATA (server CPU beyond LOAD DATA's, the same rows), "
      "and the server waiting for a core while it has work (server run-queue wait, from the "
      "kernel's schedstat of its threads; LOAD DATA's in brackets): on cores shared with the "
      "broker and the runner, a server woken by new rows may find both cores busy (the broker and "
      "the runner at nice 19 did not remove it; benches/NOTES.md). "
      "What the broker and the runner spend is taken from the same two cores: when reading with "
      "them takes longer than the server's own load (reading done, against the dry run's read "
      "alone), the run is read-bound, and the server waits for rows in between statements. "
      "The broker's work is per entry (per entry: the records in one, from the producer's "
      "batching, and the broker's CPU for one; `entries_read` in the summary). "
      f"What bounds 0.9 x: the run's wall time cannot go below the CPU the runner, the server and "
      f"the broker spend divided by the machine's {cores} cores, nor below the server's own CPU "
      "(one statement at a time); where either exceeds LOAD DATA's wall / 0.9, the target is out "
      "of reach on this machine until that CPU shrinks.")
    w("")
    w("| partitions | records | run / LOAD DATA | run s | LOAD DATA s | what bounds 0.9 x | difference | first write | "
      "input wait | COMMITs | server CPU beyond LOAD DATA's | server run-queue wait | broker + runner CPU | per entry | "
      "reading done / dry run | tail |")
    w("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        w(r)
    w("")


def aggregate(samples):
    groups = defaultdict(list)
    for s in samples:
        groups[(s["shape"], s["partitions"], s["size"], s["contender"])].append(s)
    return {k: Agg(v) for k, v in groups.items()}


def corder(c):
    base = c.split(" ")[0]
    return (CONTENDER_ORDER.index(base) if base in CONTENDER_ORDER else 99, c)


def keys(aggs, shape=None, partitions=None):
    return sorted(
        (k for k in aggs if (shape is None or k[0] == shape) and (partitions is None or k[1] == partitions)),
        key=lambda k: (k[0], k[1], k[2], corder(k[3])),
    )


def ratio(a, b):
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return float("nan")
    return a / b


def fr(x):
    if math.isnan(x):
        return "-"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.4f}"


# ---- the limit of a contender, from its CPU figures -----------------------------------------
def limit_of(a, base, cores):
    """What limits `a` (an Agg of run): the CPU it, the services and the rest of the machine used
    over its wall time, against `base` (LOAD DATA of the same rows, the server's limit)."""
    if math.isnan(a.wall):
        return "no finished sample"
    own = sum(x for x in (a.cpu, a.server, a.broker) if not math.isnan(x))
    parts = (
        f"over its {a.wall:.3f} s: client {a.cpu:.2f} + MariaDB server {a.server:.2f} + "
        f"broker {a.broker:.2f} = {own:.2f} CPU s"
    )
    if not math.isnan(a.machine):
        util = a.machine / (a.wall * cores)
        parts += (f"; the whole machine {a.machine:.2f} CPU s = {util:.0%} of the {cores} cores, "
                  f"{max(a.others, 0):.2f} of them other processes; I/O wait {a.iowait:.2f} s")
        if not math.isnan(a.server_runq):
            parts += f"; the server's threads waited {a.server_runq:.2f} s for a core while runnable"
    else:  # older raw results: only this run's processes, and the load average
        util = own / (a.wall * cores)
        parts += f", {util:.0%} of the {cores} cores"
        if not math.isnan(a.load1):
            parts += f"; 1-min load average {a.load1:.1f} at its start"
    extra = ""
    if base is not None and not math.isnan(base.server):
        extra = (
            f"; LOAD DATA of the same rows: {base.wall:.3f} s wall, server {base.server:.2f} CPU s"
            f" (run's server CPU {ratio(a.server, base.server):.2f} x of it)"
        )
    top = max((("client", a.cpu), ("server", a.server), ("broker", a.broker)), key=lambda t: t[1])
    others = a.others if not math.isnan(a.others) else float("nan")
    if util >= 0.85:
        who = f"largest: {top[0]} CPU"
        if not math.isnan(others) and others > top[1]:
            who = "largest: other processes on the machine, i.e. other people's work"
        verdict = f"**machine CPU**: the {cores} cores were saturated ({who})"
    elif not math.isnan(a.iowait) and a.iowait > 0.25 * a.wall * cores:
        verdict = "**disk**: the cores waited on I/O for a large part of the run"
    elif (not math.isnan(a.server_runq) and a.server_runq >= 0.1 * a.wall
          and (a.server + a.server_runq) / a.wall >= 0.8):
        verdict = (f"**server CPU, shared**: the server's threads ran {a.server:.2f} s and waited "
                   f"{a.server_runq:.2f} s for a core, busy with the broker, the runner or other work "
                   f"(summed over its threads), of a {a.wall:.2f} s run")
    elif top[1] / a.wall >= 0.75:
        verdict = f"**{top[0]} CPU**: it keeps about one core busy ({top[1] / a.wall:.0%} of one core over the run)"
    elif base is not None and not math.isnan(base.server) and a.server > 1.15 * base.server:
        verdict = "**server CPU**: the server spends more CPU on the same rows than under LOAD DATA"
    elif math.isnan(a.machine) and not math.isnan(a.load1) and a.load1 > cores:
        verdict = ("**undetermined**: this run's processes left the cores partly idle, but the machine's "
                   "load average exceeded its cores (other work, not recorded per sample in these raw results)")
    else:
        verdict = ("**not CPU** (the cores are not saturated, no process near one core): waits, i.e. "
                   "start-up, round trips, lock waits and commits")
    if sum(a.retries) > 0:
        extra += (f"; batches retried after a transient error (the summary's `retries`), per round: "
                  f"{', '.join(map(str, a.retries))}")
    return f"{verdict} ({parts}{extra})"


# ---- plots ---------------------------------------------------------------------------------
def plots(aggs, outdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    # 1. rows/s against records, seed, non-partitioned, every contender, log axes.
    fig, ax = plt.subplots(figsize=(8, 5))
    contenders = sorted({k[3] for k in keys(aggs, "seed", 0)}, key=corder)
    for c in contenders:
        xs, ys, xt, yt = [], [], [], []
        for k in keys(aggs, "seed", 0):
            if k[3] != c:
                continue
            rate, timed_out = aggs[k].best_rate
            if math.isnan(rate):
                continue
            (xt if timed_out else xs).append(k[2])
            (yt if timed_out else ys).append(rate)
        color = COLORS.get(c.split(" ")[0])
        if xs or xt:
            ax.plot(sorted(xs + xt), [y for _, y in sorted(zip(xs + xt, ys + yt))], "-", color=color, alpha=0.6)
        if xs:
            ax.plot(xs, ys, "o", color=color, label=c)
        if xt:
            ax.plot(xt, yt, "o", mfc="none", color=color, label=f"{c} (timed out: committed rows / wall)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records")
    ax.set_ylabel("rows/s (wall time incl. start-up; median)")
    ax.set_title("Seed records (i|msg-i), non-partitioned topic")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "rows_per_s.png"), dpi=110)
    plt.close(fig)
    made.append(("rows_per_s.png", "rows/s against records, every contender (seed, non-partitioned)"))

    # 2. run / LOAD DATA per partition count.
    fig, ax = plt.subplots(figsize=(8, 5))
    parts = sorted({k[1] for k in keys(aggs, "seed")})
    for p in parts:
        xs, ys = [], []
        for size in sorted({k[2] for k in keys(aggs, "seed", p)}):
            r = ratio(
                getattr(aggs.get(("seed", p, size, "run")), "rate", float("nan")),
                getattr(aggs.get(("seed", p, size, "load-data")), "rate", float("nan")),
            )
            if not math.isnan(r):
                xs.append(size)
                ys.append(r)
        if xs:
            ax.plot(xs, ys, "o-", label=f"{plabel(p)} partition(s)")
    ax.axhline(LOAD_DATA_RATIO, color="grey", ls="--", lw=1, label=f"target {LOAD_DATA_RATIO} x at 1e6")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("records")
    ax.set_ylabel("run rows/s / LOAD DATA rows/s (medians, same run)")
    ax.set_title("pulsar2mysql run against LOAD DATA LOCAL INFILE, per partition count")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)  # the target line always has a label
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "ratio_load_data.png"), dpi=110)
    plt.close(fig)
    made.append(("ratio_load_data.png", "run / LOAD DATA against records, per partition count (seed)"))

    # 3. peak RSS against records.
    fig, ax = plt.subplots(figsize=(8, 5))
    series = OrderedDict()
    for k in keys(aggs):
        shape, p, size, c = k
        if not (c.startswith("run") or c == "dry-run" or c.startswith("flink")):
            continue
        if c.startswith("flink") or c == "dry-run":
            if (shape, p) != ("seed", 0):
                continue
            name = c
        else:
            name = f"{c} ({shape}, {plabel(p)} partition(s))" if (shape, p) != ("seed", 0) else c
        rss = aggs[k].rss
        if not math.isnan(rss):
            series.setdefault(name, []).append((size, rss))
    for name, pts in series.items():
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", label=name,
                color=COLORS.get(name) if name in COLORS else None)
    ax.axhline(RSS_MIB, color="grey", ls="--", lw=1, label=f"target < {RSS_MIB:.0f} MiB (pulsar2mysql)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records")
    ax.set_ylabel("peak RSS, MiB (median)")
    ax.set_title("Peak resident memory")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "peak_rss.png"), dpi=110)
    plt.close(fig)
    made.append(("peak_rss.png", "peak RSS against records"))

    # 4. shapes: MB/s of run and the baselines.
    shapes = [s for s in ("seed", "payload-1k", "payload-10k", "wide") if keys(aggs, s, 0)]
    if len(shapes) > 1:
        fig, ax = plt.subplots(figsize=(8, 5))
        for c in ("run", "dry-run", "load-data", "insert-dump"):
            for shape, marker in zip(shapes, "osD^"):
                pts = []
                for k in keys(aggs, shape, 0):
                    if k[3] == c and not math.isnan(aggs[k].rate):
                        pts.append((k[2], aggs[k].rate))
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker + "-", color=COLORS[c],
                            label=f"{c}, {shape}", alpha=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records")
        ax.set_ylabel("rows/s (median)")
        ax.set_title("Record shapes (non-partitioned)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "shapes.png"), dpi=110)
        plt.close(fig)
        made.append(("shapes.png", "rows/s against records per record shape"))
    return made


# ---- the report ----------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--notes")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    samples, bad, metas = load(args.results)
    if not samples:
        sys.exit(f"no samples in {args.results}/e2e-*.tsv")
    aggs = aggregate(samples)
    cores = cores_of(metas)
    outdir = os.path.dirname(os.path.abspath(args.out))
    rel = os.path.relpath(os.path.abspath(args.results), outdir)
    notes_rel = None
    if args.notes and os.path.exists(args.notes):
        notes_rel = os.path.relpath(os.path.abspath(args.notes), outdir)
    made = [] if args.no_plots else plots(aggs, args.results)

    o = []
    w = o.append
    elapsed = None
    ep = os.path.join(args.results, "elapsed_s")
    if os.path.exists(ep):
        elapsed = int(open(ep).read().strip() or 0)
    failed_blocks = []
    fb = os.path.join(args.results, "blocks.failed")
    if os.path.exists(fb):
        failed_blocks = [x.strip() for x in open(fb) if x.strip()]
    stamps = sorted(m.get("stamp", "") for m in metas if m.get("stamp"))
    m0 = next((m for m in metas if m.get("stamp")), {})

    w("# Benchmarks")
    w("")
    w(f"<!-- Generated by benches/report.py from {rel}/; do not edit: regenerate with "
      f"`benches/report.sh {rel}`. -->")
    w("")
    w("pulsar2mysql against the job it replaces (the Flink peer, two configurations) and against "
      "MariaDB's own limits, all **side by side in one run** (`make bench-full`). Every figure and "
      "plot below is generated by `benches/report.py` from the raw results in "
      f"[`{rel}/`]({rel}/); every sample, per block, with its CPU figures and ratios: "
      f"[`{rel}/{TABLES}`]({rel}/{TABLES}) (generated with this file).")
    if notes_rel:
        w("")
        w("**The history** (hand-written: the method notes, the timeline of a run, what each change "
          "bought, the tuning sweeps, the first Flink comparison, partitioned topics since): "
          f"[`benches/NOTES.md`]({notes_rel}).")
    w("")
    w("## Reproduce")
    w("")
    w("    make services      # Pulsar standalone, MariaDB, once")
    w("    make bench-full    # = scripts/bench.sh full = benches/full.sh: every block below, then this file")
    w("")
    runtime = f"{elapsed // 60} min {elapsed % 60} s" if elapsed else "not recorded"
    w(f"This run: blocks started {stamps[0] if stamps else '?'} to {stamps[-1] if stamps else '?'} UTC; "
      f"`benches/full.sh` took {runtime} from its start to the last measurement (`elapsed_s`; its "
      "set-up included: an incremental release build, the cached Flink jar and plotting venv; a clean "
      "clone adds the first release build and the Maven and pip downloads). "
      "`benches/report.sh DIR` regenerates this file from any results directory; "
      "`scripts/bench-smoke.sh` (CI) runs the seed size with every contender and the generator.")
    if failed_blocks:
        w("")
        w(f"**Blocks that failed in this run** (their samples are missing or partial): {', '.join(failed_blocks)}.")
    w("")

    # ---- targets
    w("## Targets (issues 13 and 25, reported, not asserted)")
    w("")
    w("| target | measured (medians, this run) | met? |")
    w("|---|---|---|")
    misses = []

    # Flink
    sizes0 = sorted({k[2] for k in keys(aggs, "seed", 0)})
    cells_i, cells_t, ok_i, ok_t, seen_i, seen_t = [], [], True, True, False, False
    for n in sizes0:
        run = aggs.get(("seed", 0, n, "run"))
        if not run:
            continue
        for cfg, cells in (("flink-inlong", cells_i), ("flink-tuned", cells_t)):
            f = aggs.get(("seed", 0, n, cfg))
            if not f:
                continue
            rate, timed_out = f.best_rate
            r = ratio(run.rate, rate)
            if math.isnan(r):
                cells.append(f"{n:,}: no sample")
                if cfg == "flink-inlong":
                    ok_i = False
                else:
                    ok_t = False
                continue
            cells.append(f"{n:,}: {'~' if timed_out else ''}{r:,.1f} x" + (" (timed out)" if timed_out else ""))
            if cfg == "flink-inlong":
                seen_i = True
                ok_i &= r >= FLINK_X_INLONG
            else:
                seen_t = True
                ok_t &= r > 1
    if seen_i:
        w(f"| >= {FLINK_X_INLONG:.0f} x `flink-inlong` at every size (seed, rows/s) | {'; '.join(cells_i)} | "
          f"{'**yes**' if ok_i else '**no**'} |")
    if seen_t:
        w(f"| ahead of `flink-tuned` at every size | {'; '.join(cells_t)} | {'**yes**' if ok_t else '**no**'} |")
    # LOAD DATA at 1e6 and 1e7 per partition count
    for n, label in ((1_000_000, "1e6"), (10_000_000, "1e7")):
        cells, all_ok, seen = [], True, []
        for p in sorted({k[1] for k in keys(aggs, "seed")}):
            run = aggs.get(("seed", p, n, "run"))
            ld = aggs.get(("seed", p, n, "load-data"))
            if not (run and ld):
                continue
            seen.append(plabel(p).split(" ")[0])
            r = ratio(run.rate, ld.rate)
            cells.append(f"{plabel(p)}: {fr(r)} x")
            if math.isnan(r) or r < LOAD_DATA_RATIO:
                all_ok = False
                misses.append((f"{LOAD_DATA_RATIO} x LOAD DATA at {label} on {plabel(p)} partition(s): {fr(r)} x",
                               limit_of(run, ld, cores)))
        if seen:
            w(f"| >= {LOAD_DATA_RATIO} x LOAD DATA at {label} on {', '.join(seen)} partitions | {'; '.join(cells)} | "
              f"{'**yes**' if all_ok else '**no**'} |")
    # RSS
    seedrss = [(k[2], aggs[k].rss) for k in keys(aggs, "seed", 0) if k[3] == "run" and not math.isnan(aggs[k].rss)]
    if seedrss:
        vmax = max(v for _, v in seedrss)
        grow = seedrss[-1][1] - seedrss[0][1]
        ok = vmax < RSS_MIB
        w(f"| peak RSS < {RSS_MIB:.0f} MiB and flat to 1e7 (seed, non-partitioned, `run`) | "
          + " / ".join(f"{v:.1f}" for _, v in seedrss) + " MiB at "
          + " / ".join(f"{n:,}" for n, _ in seedrss)
          + (f" ({grow:+.1f} MiB over {seedrss[-1][0] // seedrss[0][0]:,} x the records)" if len(seedrss) > 1 else "")
          + f" | {'**yes**' if ok else '**no**'} |")
        if not ok:
            misses.append((f"peak RSS {vmax:.1f} MiB on seed records", "memory (see the RSS plot and tables)"))
    rs = [(k, aggs[k].rss) for k in keys(aggs) if k[3].startswith("run") and not math.isnan(aggs[k].rss)]
    if rs and len({(k[0], k[1]) for k, _ in rs}) > 1:
        over = [(k, v) for k, v in rs if v >= RSS_MIB]
        kmax, vmax = max(rs, key=lambda t: t[1])
        w(f"| the same bound in every block (partitions, shapes) | largest median {vmax:.1f} MiB ({kmax[0]}, "
          f"{plabel(kmax[1])} partition(s), {kmax[2]:,})"
          + ("; at or above it: " + ", ".join(f"{k[0]} {plabel(k[1])} p. {k[2]:,}: {v:.1f} MiB" for k, v in over) if over else "")
          + f" | {'**yes**' if not over else '**no**'} |")
        for k, v in over:
            a = aggs[k]
            d = aggs.get((k[0], k[1], k[2], "dry-run"))
            misses.append((
                f"peak RSS {v:.1f} MiB ({k[0]}, {plabel(k[1])} partition(s), {k[2]:,} records)",
                "memory held per record size, not per record count: the dry run over the same topic (reading "
                "and converting only) peaks at " + (f"{d.rss:.1f} MiB" if d and not math.isnan(d.rss) else "?")
                + "; the batch bound is in rows and bytes (`--batch-rows`, `--batch-bytes`), the reader's "
                "receive queue in messages"))
    # seed wall
    seed = aggs.get(("seed", 0, 10_000, "run"))
    if seed:
        ok = seed.wall < SEED_WALL_S
        fr_ = f", first row committed at {seed.first_row:.3f} s" if not math.isnan(seed.first_row) else ""
        w(f"| the seed's 10,000 records in < {SEED_WALL_S} s wall (`run`, incl. start-up) | {seed.wall:.3f} s{fr_} | "
          f"{'**yes**' if ok else '**no**'} |")
        if not ok:
            misses.append((f"seed 10,000 in {seed.wall:.3f} s", limit_of(seed, aggs.get(("seed", 0, 10_000, "load-data")), cores)))
    w("")
    if misses:
        w("**Where a target is missed, what limits it** (from the same samples' CPU figures: client = the "
          "contender's process, server = `mariadbd`, broker = the Pulsar standalone JVM, each read over the "
          "contender's wall time; ~10 ms resolution):")
        w("")
        for what, why in misses:
            w(f"- {what}: {why}.")
        w("")

    # ---- the headline figures
    w("## Results at a glance")
    w("")
    sizes = sorted({k[2] for k in keys(aggs, "seed", 0)})
    cs = sorted({k[3] for k in keys(aggs, "seed", 0)}, key=corder)
    if sizes:
        w("Seed records (`i|msg-i`), non-partitioned topic: median rows/s over the rounds (wall time "
          "of the whole process, start-up included; `~`: the Flink sample was ended by its time limit, "
          "the rate of the rows it had committed by then):")
        w("")
        w("| records | " + " | ".join(f"`{c}`" for c in cs) + " |")
        w("|---:|" + "---:|" * len(cs))
        for n in sizes:
            cells = []
            for c in cs:
                a = aggs.get(("seed", 0, n, c))
                rate, timed_out = a.best_rate if a else (float("nan"), False)
                cells.append("-" if math.isnan(rate) else ("~" if timed_out else "") + f"{rate:,.0f}")
            w(f"| {n:,} | " + " | ".join(cells) + " |")
        w("")
    ks = [k for k in keys(aggs, "seed", 0) if k[2] == 10_000]
    if ks:
        w("### The seed's 10,000 records end to end, and the first row committed")
        w("")
        w("| contender | median wall s (incl. start-up) | median first row committed s | "
          "first row at 1e6 s | first row at 1e7 s | peak RSS MiB |")
        w("|---|---:|---:|---:|---:|---:|")
        for k in ks:
            a = aggs[k]
            f6 = aggs.get(("seed", 0, 1_000_000, k[3]))
            f7 = aggs.get(("seed", 0, 10_000_000, k[3]))
            dr = k[3] == "dry-run"

            def fcell(x):
                if dr or x is None:
                    return "-"
                if not math.isnan(x.first_row):
                    return f"{x.first_row:.3f}"
                fr_ = med([s["first_row"] for s in x.all])
                return f"{fr_:.3f} (timed out)" if not math.isnan(fr_) else "-"

            rss = fnum(a.rss, "{:.1f}") if (k[3].startswith(("run", "flink")) or dr) else "-"
            w(f"| `{k[3]}` | {fnum(a.wall, '{:.3f}')} | {fcell(a)} | {fcell(f6)} | {fcell(f7)} | {rss} |")
        w("")

    w(f"Partitioned topics, the record shapes and every sample (rows/s per round, wall time, first "
      f"row, client, server, broker and whole-machine CPU, peak RSS, the ratios, what limits each "
      f"shape): [`{rel}/{TABLES}`]({rel}/{TABLES})"
      + (f"; **{len(bad)} sample(s) not ok**, left out of the medians, listed there." if bad else "."))
    w("")

    timing_section(load_timing(args.results), w, aggs, cores)

    # ---- plots
    if made:
        w("## Plots")
        w("")
        for fn, title in made:
            w(f"![{title}]({rel}/{fn})")
            w("")

    # ---- method
    w("## Method")
    w("")
    w("Each block is one `benches/e2e.sh` run: N records of one shape are produced once to a fresh "
      "topic, then every contender runs once per round, rounds interleaved and the order rotated each "
      "round, so drift hits all alike. Contenders:")
    w("")
    w("- `run`: `pulsar2mysql run` (release build, defaults) into a freshly created table, fresh job id;")
    w("- `dry-run`: `run --dry-run` over the same topic: read, convert, write nothing (**the read limit**);")
    w("- `load-data`: the `mariadb` client's `LOAD DATA LOCAL INFILE` of the same records from a local "
      "file (**the server's limit**, no Pulsar);")
    w("- `insert-dump`: the same records as multi-row INSERTs (10,000 rows or ~4 MiB each, autocommit) "
      "piped into `mariadb`;")
    w("- `flink-inlong`, `flink-tuned`: the Flink peer (`benches/flink/`, Flink 1.18.1 MiniCluster, "
      "Pulsar connector 4.1.0-1.18, JDBC connector 3.1.2-1.18, mysql-connector-j 8.0.33; its set-up "
      "in `benches/NOTES.md`, \"Side by side with the Flink peer\"): InLong's shipped configuration "
      "(flush at 100 rows or 1 s, one INSERT and commit per row, parallelism 1) and a tuned one "
      "(5,000-row batches, `rewriteBatchedStatements`, two writers).")
    w("")
    w("Rows/s = N / wall time of the whole process (start-up, connect, JVM and job submission "
      "included), timed with bash's microsecond clock; client CPU and peak RSS from GNU time; MariaDB "
      "server and Pulsar broker CPU from `/proc` over the same interval, and the whole machine's busy CPU "
      "seconds and I/O wait from `/proc/stat` (\"others\" = the machine's CPU minus client, server and "
      "broker: other people's work on this shared VM, and the first-row sidecar); the server's run-queue "
      "wait (its threads runnable but waiting for a core) from `/proc/<pid>/task/*/schedstat`. Medians over the rounds; "
      "ratios are of medians from the same block. After every writing contender the table must hold "
      "exactly the N records (count, distinct ids, min/max id; the seed's names; for the other shapes "
      "a CRC32 checksum of every column equal to the first contender's): anything else is a failed "
      f"sample, left out of the medians and listed in `{TABLES}`. A sample during which MariaDB or the "
      "broker restarted is left out too. One unrecorded dry run per size warms the broker first.")
    w("")
    ssl = sorted({m.get("mysql_ssl", "?") for m in metas})
    w(f"**TLS**: MariaDB here offers TLS and both `run` (`--mysql-ssl-mode preferred`) and the "
      f"`mariadb` client 10.11.19 use it by default; for a like-for-like comparison every contender "
      f"talked to MariaDB **without TLS** in this run (P2M_BENCH_MYSQL_SSL={'/'.join(ssl)}: "
      "`run --mysql-ssl-mode disabled`, `mariadb --skip-ssl`; the Flink peer's JDBC URL has "
      "`useSSL=false`). Pulsar: plain `pulsar://` for all.")
    w("")
    w("**Time to the first row committed**: on non-partitioned topics a sidecar "
      "(`benches/first_row.py`) keeps one `mariadb` connection open and asks every 5 ms whether "
      "record 0 is visible (`SELECT EXISTS(... WHERE id = 0)`, a primary-key lookup, so it costs the "
      "same during a large open transaction); the time is from the contender's start to the first poll "
      "that saw it (resolution ~5 ms). It runs during every contender of those blocks, the dry run "
      "included (which never commits), so all carry its load. Record 0 is in the first transaction of "
      "every contender on a non-partitioned topic; on partitioned topics it need not be, so the sidecar "
      "is off there. `run` commits its first batch (100,000 rows) or the whole range if smaller; LOAD "
      "DATA commits once at the end; the INSERT dump after each statement; `flink-inlong` after every "
      "row; `flink-tuned` after each 5,000-row batch.")
    w("")
    w("**Shapes**: `seed` = `i|msg-i` into the seed's `sink_table` (`seed_producer`); `payload-1k` / "
      "`payload-10k` = `i|<text>` of 1,024 / 10,240 bytes into `benches/sql/payload_table.sql` (`name "
      "TEXT`); `wide` = 20 fields (TINYINT, SMALLINT, INT, BIGINT, INT UNSIGNED, two DECIMALs, DOUBLE, "
      "DATE, DATETIME, DATETIME(3), CHAR, four VARCHARs, a flag, INT; six nullable, `\\N` on some records, "
      "`run --null-literal '\\N'`) of ~260 bytes into `benches/sql/wide_table.sql`; records from "
      "`examples/shape_producer.rs`, which also prints them for the baselines. **Partitions**: "
      "`1 (non-partitioned)` is the seed's kind of topic; 4 and 16 are partitioned topics the "
      "producer spreads records over. The Flink peer runs on the seed shape only (its sink writes "
      "`(id, name)`), non-partitioned.")
    w("")
    fm = [m for m in metas if m.get("flink")]
    if fm:
        def t(m, k):
            v = m.get(k, "default")
            return f"{v} s" if v.isdigit() else "120 s + 1 s per 20,000 records"
        w("**The Flink peer's rounds and time limits** (per block: rounds of the Flink contenders; "
          "`flink-inlong` / `flink-tuned` limit): "
          + "; ".join(f"{m.get('sizes')} records: {m.get('flink_rounds')} round(s), "
                      f"{t(m, 'flink_inlong_timeout')} / {t(m, 'flink_tuned_timeout')}" for m in fm)
          + ". `flink-inlong` commits every row, so a full 1e6 or 1e7 range would take minutes to an "
          "hour; where a limit ends a Flink sample, its rate is the rows it had committed divided by its "
          "wall time (start-up included), marked `~ ... (timed out)`; start-up weighs less in a longer "
          "run, so that rate is slightly pessimistic for Flink.")
        w("")

    # ---- machine
    w("## Machine and versions")
    w("")
    w(f"- {m0.get('cores', '?')} cores ({m0.get('cpu', '?')}), {m0.get('mem_gib', '?')} GiB, kernel "
      f"{m0.get('kernel', '?')}; one shared VM: other engineers' builds and tests may run at the same "
      "time, so absolute numbers are indicative, the ratios from the same block are the result. The "
      "1-minute load average at the start of every sample is in the raw TSV (`load1`).")
    w(f"- {m0.get('p2m_version', '?')} (commit {m0.get('commit', '?')}), MariaDB {m0.get('server', '?')} "
      f"(`innodb_autoinc_lock_mode={m0.get('innodb_autoinc_lock_mode', '?')}`, "
      f"`innodb_flush_log_at_trx_commit={m0.get('innodb_flush_log_at_trx_commit', '?')}`, buffer pool "
      f"{m0.get('innodb_buffer_pool_mib', '?')} MiB, redo log {m0.get('innodb_log_file_mib', '?')} MiB, "
      f"binlog {'on' if m0.get('log_bin') in ('1', 'ON') else 'off'}), Apache Pulsar {m0.get('pulsar', '?')} "
      f"standalone, {m0.get('java', '?')}.")
    w("")
    w("| block (raw file) | shape | partitions | sizes | rounds (Flink) | contenders | load avg start -> end |")
    w("|---|---|---:|---|---|---|---|")
    for m in metas:
        cs = "run, " + m.get("baselines", "") + (", " + m["flink"] if m.get("flink") else "")
        w(f"| [`{m['file']}`]({rel}/{m['file']}) | {m.get('shape', 'seed')} | {plabel(int(m.get('partitions', 0) or 0))} | "
          f"{m.get('sizes', '?')} | {m.get('rounds', '?')} ({m.get('flink_rounds', '-') if m.get('flink') else '-'}) | "
          f"{cs} | {m.get('load_start', '?')} -> {m.get('load_end', '?')} |")
    w("")

    # ---- every table: DIR/tables.md
    t = []
    wt = t.append
    out_rel = os.path.relpath(os.path.abspath(args.out), os.path.abspath(args.results))

    def full_table(shape, p, title):
        ks = keys(aggs, shape, p)
        if not ks:
            return
        wt(f"### {title}")
        wt("")
        wt("| records | contender | ok | rows/s per round | median rows/s | wall s | first row s | client CPU s | server CPU s | broker CPU s | machine CPU s (others) | peak RSS MiB |")
        wt("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in ks:
            a = aggs[k]
            c = k[3]
            rate, timed_out = a.best_rate
            per = ", ".join(f"{x:,.0f}" for x in a.rates) or "-"
            rate_cell = f"**{rate:,.0f}**" if not timed_out else f"~{rate:,.0f} (timed out, {a.partial_n} sample(s))"
            if math.isnan(rate):
                rate_cell = "-"
            rss = fnum(a.rss, "{:.1f}") if (c.startswith(("run", "flink")) or c == "dry-run") else "-"
            first = fnum(a.first_row, "{:.3f}") if c != "dry-run" else "-"
            wt(f"| {k[2]:,} | `{c}` | {len(a.ok)}/{len(a.all)} | {per} | {rate_cell} | {fnum(a.wall, '{:.3f}')} | "
               f"{first} | {fnum(a.cpu, '{:.2f}')} | {fnum(a.server, '{:.2f}')} | {fnum(a.broker, '{:.2f}')} | "
               f"{fnum(a.machine, '{:.2f}')}{' (' + fnum(max(a.others, 0), '{:.2f}') + ')' if not math.isnan(a.others) else ''} | {rss} |")
        wt("")
        # ratios
        wt("| records | contender | / load-data | / insert-dump | / dry-run | x flink-inlong | x flink-tuned |")
        wt("|---:|---|---:|---:|---:|---:|---:|")
        for k in ks:
            c = k[3]
            if not c.startswith(("run", "flink")):
                continue
            a = aggs[k]
            rate, _ = a.best_rate

            def rr(base):
                b = aggs.get((k[0], k[1], k[2], base))
                if not b:
                    return "-"
                br, bt = b.best_rate
                x = ratio(rate, br)
                if math.isnan(x):
                    return "-"
                if base.startswith("flink"):
                    return ("~" if bt else "") + f"{x:,.1f}" + (" (timed out)" if bt else "")
                return fr(x)

            fl = (rr("flink-inlong"), rr("flink-tuned")) if c.startswith("run") else ("-", "-")
            wt(f"| {k[2]:,} | `{c}` | {rr('load-data')} | {rr('insert-dump')} | {rr('dry-run')} | {fl[0]} | {fl[1]} |")
        wt("")

    wt("# Benchmark tables: every sample")
    wt("")
    wt(f"<!-- Generated by benches/report.py from the raw results in this directory, with "
       f"{out_rel}; do not edit: regenerate with `benches/report.sh {rel}`. -->")
    wt("")
    wt(f"The tables behind [{os.path.basename(args.out)}]({out_rel}) (the targets, the plots, the "
       "method and the machine are there), from the raw `e2e-*.tsv` files beside this one, one per "
       "block. Medians over the ok samples of each block; ratios are of medians from the same block. "
       "CPU seconds over the contender's wall time: client = its process, server = `mariadbd`, "
       "broker = the Pulsar standalone JVM, machine = every process (others: the machine minus "
       "those three).")
    wt("")
    full_table("seed", 0, "Seed records, non-partitioned: scaling and the Flink peer")

    parts = sorted({k[1] for k in keys(aggs, "seed") if k[1] > 0})
    if parts:
        wt("### Partitioned topics (seed records)")
        wt("")
        wt("`run` against LOAD DATA of the same rows from a file (one stream: the server's limit) and "
           "the dry run over the same partitioned topic, per partition count, with the CPU each used:")
        wt("")
        wt("| partitions | records | run rows/s | load-data rows/s | dry-run rows/s | run / load-data | "
           "run / dry-run | run client / server / broker CPU s | load-data server CPU s | run: batches retried per round | run peak RSS MiB |")
        wt("|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|")
        for p in sorted({k[1] for k in keys(aggs, "seed")}):
            for n in sorted({k[2] for k in keys(aggs, "seed", p)}):
                run = aggs.get(("seed", p, n, "run"))
                ld = aggs.get(("seed", p, n, "load-data"))
                dr = aggs.get(("seed", p, n, "dry-run"))
                if not run:
                    continue
                g = lambda a, f: getattr(a, f) if a else float("nan")  # noqa: E731
                wt(f"| {plabel(p)} | {n:,} | {fnum(run.rate)} | {fnum(g(ld, 'rate'))} | {fnum(g(dr, 'rate'))} | "
                   f"{fr(ratio(run.rate, g(ld, 'rate')))} | {fr(ratio(run.rate, g(dr, 'rate')))} | "
                   f"{fnum(run.cpu, '{:.2f}')} / {fnum(run.server, '{:.2f}')} / {fnum(run.broker, '{:.2f}')} | "
                   f"{fnum(g(ld, 'server'), '{:.2f}')} | {', '.join(map(str, run.retries)) or '-'} | {fnum(run.rss, '{:.1f}')} |")
        wt("")
        for p in parts:
            full_table("seed", p, f"Seed records, {p} partitions: every sample")

    for shape, title in (("payload-1k", "1 KiB records"), ("payload-10k", "10 KiB records"),
                         ("wide", "The wide table (20 mixed-type columns)")):
        if not keys(aggs, shape):
            continue
        full_table(shape, 0, f"{title}, non-partitioned")
        # MB/s of run and LOAD DATA
        rows = []
        for n in sorted({k[2] for k in keys(aggs, shape, 0)}):
            run = aggs.get((shape, 0, n, "run"))
            ld = aggs.get((shape, 0, n, "load-data"))
            if run and ld:
                rows.append((n, run, ld))
        if rows:
            wt(f"{title}: `run` / LOAD DATA " + ", ".join(f"{fr(ratio(r.rate, l.rate))} x at {n:,}" for n, r, l in rows)
               + "; the limit at the largest size: " + limit_of(rows[-1][1], rows[-1][2], cores) + ".")
            wt("")

    # ---- bad samples
    if bad:
        wt("## Samples not ok (left out of the medians)")
        wt("")
        wt("The table afterwards as rows, distinct ids, min id, max id, wrong names (seed) or checksum:")
        wt("")
        for s in bad:
            landed = ""
            if s["contender"].startswith("flink") and s["wall"] > 0:
                landed = f", {s['rows']:,} rows committed ({s['rows'] / s['wall']:,.0f} rows/s)"
            wt(f"- {s['shape']}, {plabel(s['partitions'])} partition(s), {s['size']:,} `{s['contender']}` "
               f"round {s['round']}: {s['outcome']}, wall {s['wall']:.1f} s{landed}"
               + (f"; table: {s['table']}" if s["table"] else ""))
        wt("")

    with open(args.out, "w") as f:
        f.write("\n".join(o) + "\n")
    with open(os.path.join(args.results, TABLES), "w") as f:
        f.write("\n".join(t) + "\n")
    print(f"wrote {args.out} ({len(o)} lines), {os.path.join(args.results, TABLES)}"
          + (f" and {len(made)} plots in {args.results}" if made else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
