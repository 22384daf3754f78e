"""Every benchmark in one command, and a table of the targets beside the results.

`.venv/bin/python -m bench.all [--quick] [--runs N] [--json PATH]`

Runs bench.webhook_ingest, bench.payment_to_role at 200 purchases/s (the issue's load),
bench.ratelimited_drain, bench.memory, bench.license_validate, bench.reconcile and
bench.scale_out (1, 2, 4 processes on PostgreSQL) one after
another (each its own process, each writing JSON), then prints one table: measure, result,
target, met. `--quick` runs every smoke version (CI: fails only when a benchmark itself
fails, i.e. the path breaks); the full run takes about 25 minutes (scale_out ~15 of
them). Exit status 1 if a benchmark failed; a missed target is reported in the table, not
as a failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import machine

Check = tuple[str, Callable[[dict[str, Any]], str], str, Callable[[dict[str, Any]], bool | None]]


def _f(value: Any, unit: str = "") -> str:
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


BENCHES: list[tuple[str, list[str], list[Check]]] = [
    (
        "webhook_ingest",
        [],
        [
            (
                "durable ingest, 32 senders, roles delivered: ratio to bare aiohttp",
                lambda r: (
                    f"{r['bot ratio (median)']:.2f} ({r['bot acks_per_s (median)']:.0f}"
                    f" vs {r['bare acks_per_s (median)']:.0f} acks/s)"
                ),
                ">= 0.40",
                lambda r: r["bot ratio (median)"] >= 0.40,
            ),
            (
                "acked events missing after SIGKILL",
                lambda r: _f(r["acked events missing after SIGKILL (all runs)"]),
                "0",
                lambda r: r["acked events missing after SIGKILL (all runs)"] == 0,
            ),
            (
                "ack latency at 200 events/s, deliveries running: p99",
                lambda r: _f(r["bot_paced p99_ms (median)"], " ms"),
                "<= 20 ms",
                lambda r: r["bot_paced p99_ms (median)"] <= 20.0,
            ),
        ],
    ),
    (
        "payment_to_role",
        ["--rate", "200"],
        [
            (
                "payment -> role PUT at 200 events/s: p50 / p99",
                lambda r: f"{r['p50_ms (median)']:.1f} / {r['p99_ms (median)']:.1f} ms",
                "<= 30 / <= 100 ms",
                lambda r: r["p50_ms (median)"] <= 30.0 and r["p99_ms (median)"] <= 100.0,
            ),
        ],
    ),
    (
        "ratelimited_drain",
        [],
        [
            (
                "10 guilds x N grants, bucket 10/s each: total / one guild's minimum",
                lambda r: _f(r["10 guilds: drain / minimum"], "x"),
                "<= 1.05x",
                lambda r: r["10 guilds: drain / minimum"] <= 1.05,
            ),
            (
                "N grants, one guild: drain / bucket minimum, 429s",
                lambda r: (
                    f"{r['1 guild: drain / minimum']:.2f}x,"
                    f" {r['1 guild: 429s % of role requests']:.1f} % 429"
                ),
                "<= 1.05x, <= 1 %",
                lambda r: (
                    r["1 guild: drain / minimum"] <= 1.05
                    and r["1 guild: 429s % of role requests"] <= 1.0
                ),
            ),
        ],
    ),
    (
        "memory",
        [],
        [
            (
                "idle RSS after READY (1k members)",
                lambda r: _f(r["idle RSS MB (1k members, empty shop)"], " MB"),
                "report",
                lambda r: None,
            ),
            (
                "RSS growth 1k -> largest member count",
                lambda r: next(_f(v, " MB") + f" ({k})" for k, v in r.items() if "members MB" in k),
                "<= 10 MB",
                lambda r: r["members growth <= 10 MB met"],
            ),
        ],
    ),
    (
        "license_validate",
        [],
        [
            (
                "license validate, 32 clients: per second, p99 (ratio to bare aiohttp)",
                lambda r: (
                    f"{r['validate per_s (median)']:.0f}/s, p99"
                    f" {r['validate p99_ms (median)']:.1f} ms"
                    f" ({r['validate ratio to bare (median)']:.2f} of bare)"
                ),
                "report",
                lambda r: None,
            ),
        ],
    ),
    (
        "reconcile",
        [],
        [
            (
                "reconcile: list calls, time, exact fixes",
                lambda r: (
                    f"{r['members (median)']:.0f} members: {r['member list calls (median)']:.0f}"
                    f" calls, all fixed {r['first list call -> all fixed s (median)']:.1f} s"
                    " after the first"
                ),
                "~ members/1000 calls; report time",
                lambda r: (
                    r["exact fixes in every run"]
                    and r["member list calls (median)"] <= r["members (median)"] / 1000 + 2
                ),
            ),
        ],
    ),
    (
        "scale_out",
        ["--orders", "5000"],  # the 30,000 default takes ~25 min per process count here
        [
            (
                "scale-out on PostgreSQL: deliveries/s and start-up per process count",
                lambda r: "; ".join(v for k, v in r.items() if k.endswith(": summary")),
                "report",
                lambda r: None,
            ),
            (
                "scale-out: each job once, one role PUT each, owner only, in order, no 429",
                lambda r: "all met" if r["every check met"] else "see bench.scale_out output",
                "all met",
                lambda r: r["every check met"],
            ),
        ],
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every smoke version (CI)")
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark")
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument("--only", nargs="*", default=None, help="only these benchmarks")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shopbot-bench-all-") as tmp:
        for name, extra, _ in BENCHES:
            if args.only and name not in args.only:
                continue
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, "-m", f"bench.{name}", *extra, "--json", str(out)]
            command += ["--quick"] if args.quick else []
            if args.runs and name in ("webhook_ingest", "payment_to_role", "memory", "reconcile"):
                command += ["--runs", str(args.runs)]
            print(f"== {' '.join(command[1:])}", flush=True)
            done = subprocess.run(command, check=False)  # noqa: S603
            if done.returncode or not out.exists():
                failed.append(name)
                continue
            results[name] = json.loads(out.read_text())
    rows = []
    for name, _, checks in BENCHES:
        for label, show, target, met in checks:
            if name not in results:
                rows.append((label, "FAILED" if name in failed else "not run", target, "-"))
                continue
            verdict = met(results[name])
            rows.append((label, show(results[name]), target, "-" if verdict is None else
                         ("yes" if verdict else "NO")))  # fmt: skip
    print(f"\n== bench.all {'--quick ' if args.quick else ''}{machine()}")
    widths = [max(len(row[i]) for row in [*rows, ("measure", "result", "target", "met")])
              for i in range(4)]  # fmt: skip
    for row in [("measure", "result", "target", "met"), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), **results}, indent=2))
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
