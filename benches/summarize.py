#!/usr/bin/env python3
"""Medians and ratios of one benches/e2e.sh run (its raw TSV) as a Markdown report.

Usage: benches/summarize.py target/bench/e2e-<stamp>.tsv
"""
import csv
import statistics
import sys
from collections import OrderedDict, defaultdict


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main(path):
    rows = []
    bad = []  # samples not ok, each with what the table held after it (a '#' line follows it)
    with open(path, newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            if r["size"].startswith("#"):
                # "#  N  count-mismatch  <rows distinct min max wrong-names>  <contender>"
                table = r["wall_s"]
                if bad and rows and bad[-1][0] is rows[-1]:
                    bad[-1][1] = table
                elif rows:
                    bad.append([rows[-1], table])
                continue
            rows.append(r)
            if r["outcome"] not in ("ok", "success"):
                bad.append([r, ""])
    by = defaultdict(list)
    order = OrderedDict()
    for r in rows:
        key = (int(r["size"]), r["contender"])
        by[key].append(r)
        order.setdefault(int(r["size"]), OrderedDict())[r["contender"]] = None

    out = []
    out.append(f"Raw results: `{path}`\n")
    out.append(
        "| records | contender | rounds ok | rows/s per round | median rows/s | "
        "median wall s | median client CPU s | median server CPU s | median broker CPU s | "
        "median peak RSS MiB |"
    )
    out.append("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")
    medians = {}
    for size, contenders in order.items():
        for c in contenders:
            rs = by[(size, c)]
            ok = [r for r in rs if r["outcome"] in ("ok", "success")]
            rates = [int(r["rows"]) / float(r["wall_s"]) for r in ok if float(r["wall_s"]) > 0]
            med = median(rates)
            medians[(size, c)] = med
            wall = median([float(r["wall_s"]) for r in ok])
            cpu = median([float(r["client_user_s"]) + float(r["client_sys_s"]) for r in ok])
            srv = median([float(r["server_cpu_s"]) for r in ok])
            brk = median([float(r.get("broker_cpu_s") or "nan") for r in ok])
            rss = median([int(r["max_rss_kib"]) / 1024 for r in ok])
            per = ", ".join(f"{x:,.0f}" for x in rates) or "-"
            rss_cell = f"{rss:.1f}" if c.startswith(("run", "flink")) or c == "dry-run" else "-"
            out.append(
                f"| {size:,} | `{c}` | {len(ok)}/{len(rs)} | {per} | **{med:,.0f}** | "
                f"{wall:.3f} | {cpu:.2f} | {srv:.2f} | {brk:.2f} | {rss_cell} |"
            )
    out.append("")
    out.append("| records | contender | / load-data | / insert-dump | / dry-run |")
    out.append("|---:|---|---:|---:|---:|")
    for size, contenders in order.items():
        for c in contenders:
            if not c.startswith(("run", "flink")):
                continue
            m = medians[(size, c)]

            def ratio(base):
                b = medians.get((size, base))
                if not (b and b == b and m == m):
                    return "-"
                return f"{m / b:.2f}" if m / b >= 0.1 else f"{m / b:.4f}"

            out.append(
                f"| {size:,} | `{c}` | {ratio('load-data')} | {ratio('insert-dump')} | {ratio('dry-run')} |"
            )
    # pulsar2mysql against the Flink peer (benches/flink), when it ran: speed-up = median rows/s
    # of the run contender / median rows/s of the Flink configuration (= its wall time / ours).
    flinks = list(OrderedDict.fromkeys(c for cs in order.values() for c in cs if c.startswith("flink")))
    if flinks:
        out.append("")
        out.append("| records | contender | " + " | ".join(f"x `{f}`" for f in flinks) + " |")
        out.append("|---:|---|" + "---:|" * len(flinks))
        for size, contenders in order.items():
            for c in contenders:
                if not c.startswith("run"):
                    continue
                m = medians[(size, c)]
                cells = []
                for f in flinks:
                    b = medians.get((size, f))
                    if b and b == b and m == m:
                        cells.append(f"{m / b:.1f}")
                        continue
                    # No sample finished: the rate of the rows committed when the timeout ended it
                    # (wall time includes its start-up, so ~ the rate a finished run would show).
                    partial = [
                        int(r["rows"]) / float(r["wall_s"])
                        for r in by[(size, f)]
                        if r["outcome"] == "failed(rc=124)" and int(r["rows"] or 0) > 0
                    ]
                    cells.append(f"~{m / median(partial):.0f} (timed out)" if partial and m == m else "-")
                out.append(f"| {size:,} | `{c}` | " + " | ".join(cells) + " |")
    if bad:
        out.append("")
        out.append("Samples not ok (left out of the medians); the table afterwards as rows, distinct")
        out.append("ids, min id, max id, rows whose name is not `msg-<id>`:")
        out.append("")
        for r, table in bad:
            landed = ""
            if r["contender"].startswith("flink") and float(r["wall_s"]) > 0:
                n = int(r["rows"] or 0)
                landed = f", {n:,} rows committed ({n / float(r['wall_s']):,.0f} rows/s)"
            out.append(
                f"- {int(r['size']):,} `{r['contender']}` round {r['round']}: {r['outcome']}, "
                f"wall {float(r['wall_s']):.1f} s{landed}" + (f"; table: {table}" if table else "")
            )
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
