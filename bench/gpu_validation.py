"""One prepared run of every GPU check, for a lent GPU machine with little time.

Runs, each under its own time limit and in this order (cheapest and most important
first): the ``cuda``-marked test suite, ``bench_alloc.py --device cuda``,
``bench_kernels.py --device cuda``, and ``bench_models.py --device cuda``. It prints one
compact table at the end and writes everything (the table, each step's tail of output,
the JSON of each benchmark) to ``--out`` (default ``$OUT`` or ``./gpu-validation``),
ready to paste into ``docs/gpu-validation.md``::

    RELAXVM_COMMIT=$(git rev-parse --short HEAD) PYTHONPATH=. python bench/gpu_validation.py

A step that fails or runs out of time is reported as such; the script goes on with the
next one and exits non-zero when any step failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (name, command after ``python``, seconds allowed, JSON file the step writes or "").
STEPS: list[tuple[str, list[str], int, str]] = [
    # -v: one line per test as it ends, so a run cut off by its limit still says which
    # tests passed and failed (CuPy compiles each new kernel on first use: a cold run of
    # the ~1,000 cuda tests is slow).
    ("cuda tests", ["-m", "pytest", "-v", "-m", "cuda", "-p", "no:cacheprovider",
                    "-o", "addopts=", "-rfE", "tests"], 330, ""),
    ("bench_alloc", [str(HERE / "bench_alloc.py"), "--device", "cuda", "--quick",
                     "--json", "{out}/bench_alloc.json"], 45, "bench_alloc.json"),
    ("bench_kernels", [str(HERE / "bench_kernels.py"), "--device", "cuda", "--quick",
                       "--json", "{out}/bench_kernels.json"], 90, "bench_kernels.json"),
    ("bench_models", [str(HERE / "bench_models.py"), "--device", "cuda", "--budget", "1",
                      "--json", "{out}/bench_models.json"], 150, "bench_models.json"),
]


def gpu_name() -> str:
    """The GPU's name through NVML, or "unknown"."""
    try:
        import pynvml
        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for module in ("numpy", "cupy", "onnx", "onnxruntime", "torch"):
        try:
            out[module] = __import__(module).__version__
        except Exception:
            out[module] = "missing"
    return out


def summarize_pytest(text: str) -> str:
    """``"N passed, M failed, K skipped"`` from pytest's last line; for a run cut off
    before it, counted from ``-v``'s per-test lines (with the first failures named)."""
    lines = text.strip().splitlines()
    last = lines[-1] if lines else ""
    found = re.findall(r"(\d+) (passed|failed|skipped|error|errors|xfailed|xpassed)", last)
    if found:
        return ", ".join(f"{n} {what}" for n, what in found)
    outcomes = re.findall(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", text, re.M)
    if not outcomes:
        return "no summary"
    counts: dict[str, int] = {}
    for _, outcome in outcomes:
        counts[outcome.lower()] = counts.get(outcome.lower(), 0) + 1
    failed = [test for test, outcome in outcomes if outcome in ("FAILED", "ERROR")]
    text_counts = ", ".join(f"{n} {what}" for what, n in counts.items())
    named = f"; first failures: {', '.join(failed[:3])}" if failed else ""
    return f"cut off after {len(outcomes)} tests: {text_counts}{named}"


def run_step(name: str, args: list[str], limit: int, out: Path) -> dict[str, Any]:
    command = [sys.executable, *[a.format(out=out) for a in args]]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    print(f"[gpu-validation] {name}: {' '.join(command[1:])} (limit {limit} s)", flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=limit)
        text, status = proc.stdout + proc.stderr, "ok" if proc.returncode == 0 else \
            f"exit {proc.returncode}"
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        status = f"timeout after {limit} s"
    seconds = time.perf_counter() - start
    (out / f"{name.replace(' ', '_')}.log").write_text(text)
    detail = summarize_pytest(text) if name == "cuda tests" else _last_lines(text, 1)
    print(f"[gpu-validation] {name}: {status} in {seconds:.0f} s; {detail}", flush=True)
    return {"step": name, "status": status, "seconds": round(seconds, 1), "detail": detail,
            "tail": _last_lines(text, 60)}


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def table(results: list[dict[str, Any]]) -> str:
    rows = [("step", "status", "seconds", "result")]
    rows += [(r["step"], r["status"], f"{r['seconds']:.0f}", r["detail"][:90]) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-validation"))
    parser.add_argument("--steps", default=",".join(s[0] for s in STEPS),
                        help="comma-separated subset of: " + ", ".join(s[0] for s in STEPS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {s.strip() for s in args.steps.split(",")}
    header = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "gpu": gpu_name(), "commit": os.environ.get("RELAXVM_COMMIT", "unknown"),
              "versions": versions()}
    print(f"[gpu-validation] {header}", flush=True)
    results = [run_step(name, cmd, limit, out) for name, cmd, limit, _ in STEPS
               if name in wanted]
    report = table(results)
    print("\n" + report)
    (out / "summary.json").write_text(json.dumps({**header, "steps": results}, indent=2))
    (out / "summary.txt").write_text(f"{header}\n\n{report}\n")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
