"""ONNX op coverage: run the ONNX backend node tests and count pass/fail/unsupported/error.

Cases come from ``relaxvm.testing.onnx_node_suite`` (generated into the cache on first
use). The default runner is relaxvm (frontend + compiler + VM on the CPU); ``--runner
reference`` runs onnx's ReferenceEvaluator instead, which validates the harness itself.

    python bench/onnx_coverage.py [--runner relaxvm|reference] [--target cpu|cuda]
        [-k REGEX] [--cases DIR] [--failures N] [--csv cases.csv] [--json coverage.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]  # bench/common.py, and relaxvm from this checkout
from common import add_output_args, print_table, write_outputs  # noqa: E402

from relaxvm.progress import Progress  # noqa: E402
from relaxvm.testing import onnx_node_suite as suite  # noqa: E402


def pick_runner(name: str, target: str) -> suite.Runner:
    if name == "reference":
        return suite.reference_runner
    return suite.make_relaxvm_runner(target)


def run_with_progress(cases: list[suite.NodeCase], runner: suite.Runner,
                      quiet: bool) -> list[suite.CaseResult]:
    """Run every case, showing the case name and running counts as it goes."""
    counts = dict.fromkeys(suite.STATUSES, 0)
    # On a terminal the status line redraws per case; in a log, one line per ~2%.
    every = 1 if sys.stderr.isatty() else max(1, len(cases) // 50)
    with Progress("onnx", total=len(cases), enabled=not quiet) as progress:
        def on_result(result: suite.CaseResult) -> None:
            counts[result.status] += 1
            done = sum(counts.values())
            if done % every == 0 or done == len(cases):
                tally = " ".join(f"{k}={v}" for k, v in counts.items())
                progress.step(f"{tally}  {result.name}", advance=done - progress.done)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return suite.run_cases(cases, runner, on_result)


def overall_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    total = sum(summary["overall"].values())
    return [{"status": s, "cases": n, "share %": round(100.0 * n / total, 1) if total else 0.0}
            for s, n in summary["overall"].items()] + [{"status": "total", "cases": total}]


def per_op_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for op, counts in summary["per_op"].items():
        rows.append({"op": op, "cases": sum(counts.values()), **counts})
    return rows


def failure_rows(results: list[suite.CaseResult], limit: int) -> list[dict[str, Any]]:
    bad = [r for r in results if r.status in ("fail", "error")]
    return [{"case": r.name, "status": r.status, "message": first_line(r.message, 100)}
            for r in bad[:limit]]


def first_line(text: str, width: int) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=["relaxvm", "reference"], default="relaxvm")
    parser.add_argument("--target", default="cpu", help="relaxvm build target (cpu or cuda)")
    parser.add_argument("-k", "--pattern", help="only cases whose name matches this regex")
    parser.add_argument("--cases", help=f"case folder (default: ${suite.ENV_VAR} or the cache)")
    parser.add_argument("--failures", type=int, default=20, help="fail/error cases to list")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_output_args(parser)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cases = suite.list_cases(args.cases, pattern=args.pattern)
    print(f"{len(cases)} cases ready in {time.perf_counter() - start:.1f} s "
          f"({args.cases or suite.default_cache_dir()})", file=sys.stderr)
    results = run_with_progress(cases, pick_runner(args.runner, args.target), args.quiet)
    summary = suite.summarize(results)
    print_table(per_op_rows(summary), title=f"ONNX node tests per op ({args.runner})")
    if args.failures:
        print_table(failure_rows(results, args.failures), title="First fail/error cases")
    print_table(overall_rows(summary), title=f"ONNX node tests overall ({args.runner})")
    case_rows = [{"case": r.name, "op": r.op, "status": r.status, "seconds": r.seconds,
                  "message": r.message} for r in results]
    write_outputs(case_rows, args.csv, args.json,
                  meta={"benchmark": "onnx_coverage", "runner": args.runner,
                        "target": args.target, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
