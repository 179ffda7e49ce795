"""Shared output helpers for the benchmarks: an aligned table, CSV and JSON files.

Every benchmark builds a list of row dicts (one key per column, ``None`` for an empty
cell) and hands it to :func:`print_table` and :func:`write_outputs`::

    rows = [{"benchmark": "alloc 4 KiB", "relaxvm": 412.0, "peer": 180.0, "status": "PASS"}]
    print_table(rows, title="allocator, ns per alloc+free")
    write_outputs(rows, args.csv, args.json)

Columns appear in the order keys are first seen. Numbers are right-aligned and rounded
for reading; the CSV and JSON files keep full precision. Kept small and stable: other
benchmarks import it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

Row = dict[str, Any]


def columns_of(rows: Iterable[Row]) -> list[str]:
    """Every key of every row, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def format_cell(value: Any) -> str:
    """A short readable text for one value (numbers rounded, None blank)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def format_table(rows: Sequence[Row], title: str | None = None,
                 columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table: numbers right-aligned, text left-aligned."""
    cols = list(columns) if columns is not None else columns_of(rows)
    cells = [[format_cell(row.get(c)) for c in cols] for row in rows]
    numeric = [all(isinstance(row.get(c), (int, float)) or row.get(c) is None for row in rows)
               for c in cols]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(cols)]

    def render(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w)
                 for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    header = render(cols)
    lines = [title, "=" * len(title)] if title else []
    lines += [header, "-" * len(header)] + [render(line) for line in cells]
    return "\n".join(lines)


def print_table(rows: Sequence[Row], title: str | None = None,
                columns: Sequence[str] | None = None, stream: IO[str] | None = None) -> None:
    """Print :func:`format_table` followed by a blank line."""
    out = stream if stream is not None else sys.stdout
    out.write(format_table(rows, title, columns) + "\n\n")
    out.flush()


def environment() -> dict[str, Any]:
    """Where the numbers were taken: machine, Python, NumPy, its BLAS, time."""
    import numpy as np
    return {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "blas_core": blas_core(),
            "cpu_avx512": "avx512f" in cpu_flags(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blas_core() -> str:
    """The kernel family NumPy's OpenBLAS runs (``Haswell``, ``SkylakeX``, ...), or
    "unknown" for another BLAS."""
    import ctypes
    import glob

    import numpy as np
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                  "libscipy_openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn.restype = ctypes.c_char_p
                    return fn().decode()
        except OSError:
            continue
    return "unknown"


def blas_note() -> str | None:
    """A warning when NumPy's BLAS runs narrower kernels than the CPU has (AVX2 kernels
    on an AVX-512 CPU, e.g. forced by OPENBLAS_CORETYPE), which halves matmul speed
    against peers that pick their own kernels (onnxruntime's MLAS); else None."""
    core = blas_core()
    if "avx512f" in cpu_flags() and core in ("Haswell", "Zen", "Sandybridge"):
        forced = os.environ.get("OPENBLAS_CORETYPE")
        why = f" because OPENBLAS_CORETYPE={forced}" if forced else ""
        return (f"note: NumPy's OpenBLAS runs {core} (AVX2) kernels{why} on a CPU with "
                f"AVX-512; onnxruntime uses AVX-512. OPENBLAS_CORETYPE=SkylakeX lets NumPy "
                f"use them too (about 1.6x faster matmul here).")
    return None


def write_csv(rows: Sequence[Row], path: str) -> None:
    """Rows as CSV with a header of every column; None becomes an empty cell."""
    cols = columns_of(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def write_json(rows: Sequence[Row], path: str, meta: dict[str, Any] | None = None) -> None:
    """``{"meta": {...environment, ...meta}, "rows": [...]}``, indented."""
    payload = {"meta": {**environment(), **(meta or {})}, "rows": list(rows)}
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")


def write_outputs(rows: Sequence[Row], csv_path: str | None = None,
                  json_path: str | None = None, meta: dict[str, Any] | None = None) -> None:
    """Write the CSV and/or JSON files that were asked for (paths may be None)."""
    if csv_path:
        write_csv(rows, csv_path)
        print(f"wrote {csv_path}", file=sys.stderr)
    if json_path:
        write_json(rows, json_path, meta)
        print(f"wrote {json_path}", file=sys.stderr)


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """Add the ``--csv PATH`` and ``--json PATH`` options every benchmark takes."""
    parser.add_argument("--csv", metavar="PATH", help="also write the results as CSV")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
