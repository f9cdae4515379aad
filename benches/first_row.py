#!/usr/bin/env python3
"""The first-row sidecar of benches/e2e.sh: polls MariaDB until a query answers 1.

Usage: first_row.py --interval-ms 5 --query "SELECT EXISTS(...)" -- <mariadb client args>

Keeps one `mariadb` client open (unbuffered batch mode) and sends the query every interval.
Prints `ready` once the first answer came back (connected, polling), then the epoch time (s,
microseconds) at which the first query that answered 1 was sent, and exits. The committed row
was made visible between the previous poll and that one: the resolution is the interval plus
one round trip. e2e.sh polls a primary-key lookup of record 0 (O(1) even while a large
transaction is open; a scan would walk every uncommitted row).
"""
import subprocess
import sys
import time


def main(argv):
    interval = 0.005
    query = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--interval-ms":
            interval = float(argv[i + 1]) / 1000
            i += 2
        elif argv[i] == "--query":
            query = argv[i + 1]
            i += 2
        else:
            sys.exit(f"unknown argument {argv[i]}")
    if query is None:
        sys.exit("--query is required")
    client = argv[i + 1 :]
    p = subprocess.Popen(
        ["mariadb", "-n", "-N", "-B", *client],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    line = query.rstrip(";") + ";\n"
    ready = False
    try:
        while True:
            sent = time.time()
            p.stdin.write(line)
            p.stdin.flush()
            answer = p.stdout.readline()
            if not answer:
                sys.exit("the mariadb client ended")
            if not ready:
                print("ready", flush=True)
                ready = True
            if answer.strip() == "1":
                print(f"{sent:.6f}", flush=True)
                return
            left = interval - (time.time() - sent)
            if left > 0:
                time.sleep(left)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        p.terminate()


if __name__ == "__main__":
    main(sys.argv[1:])
