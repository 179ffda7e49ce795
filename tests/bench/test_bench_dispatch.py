"""bench/bench_dispatch.py: the --quick smoke run, its table rows, and the ratio logic."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench_dispatch  # noqa: E402

import relaxvm  # noqa: E402
from relaxvm.vm import ExecBuilder  # noqa: E402

LABELS = [label for label, _, _ in bench_dispatch.ROWS] + [
    "(d) profile() host overhead per op, us", "NumPy alone: the 3 ops with out=, us"]


def test_quick_run_prints_every_row_and_writes_json(tmp_path, capsys):
    out = tmp_path / "dispatch.json"
    start = time.perf_counter()
    assert bench_dispatch.main(["--quick", "--no-tvm", "--json", str(out)]) == 0
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"--quick took {elapsed:.1f} s"   # ~0.3 s here (full run: ~2 s)
    rows = json.loads(out.read_text())["rows"]
    assert [r["benchmark"] for r in rows] == LABELS
    for row in rows:
        assert row["relaxvm"] > 0 and row["tvm"] is None and row["ratio"] is None
    assert [r["status"] for r in rows[:4]] == ["n/a"] * 4
    assert rows[4]["status"] in ("PASS", "MISS")
    printed = capsys.readouterr().out
    assert "relaxvm VM dispatch vs TVM (same process)" in printed
    for label in LABELS:
        assert label in printed


def test_quick_is_a_documented_option():
    parser_help = bench_dispatch.__doc__
    assert "--quick" in parser_help
    assert bench_dispatch.QUICK.min_time < bench_dispatch.FULL.min_time / 10


def test_rows_compare_with_the_peer_against_each_target(monkeypatch, tmp_path):
    ours = {"three_op_us": 5.0, "chain_py_ns": 300.0, "chain_builtin_ns": 50.0,
            "empty_us": 0.2, "profile_overhead_us": 6.0, "numpy_three_op_us": 3.0}
    theirs = {"three_op_us": 14.0, "chain_py_ns": 250.0, "chain_builtin_ns": 40.0,
              "empty_us": 0.5}
    monkeypatch.setattr(bench_dispatch, "relaxvm_numbers", lambda budget: ours)
    monkeypatch.setattr(bench_dispatch, "tvm_numbers", lambda budget: theirs)
    out = tmp_path / "rows.json"
    bench_dispatch.main(["--quick", "--json", str(out)])
    rows = {r["benchmark"]: r for r in json.loads(out.read_text())["rows"]}
    three = rows["(a) 3-op program, us/call"]
    assert three["ratio"] == pytest.approx(5 / 14, abs=1e-3) and three["status"] == "PASS"
    assert rows["(b) 1000 calls of a Python function, ns/instr"]["status"] == "MISS"   # 1.2 > 1
    assert rows["(b) 1000 calls of shape_of builtin, ns/instr"]["status"] == "PASS"    # 1.25 <= 2
    assert rows["(d) profile() host overhead per op, us"]["status"] == "MISS"          # 6 > 5


def test_three_op_program_checks_each_input_like_tvms_compiled_program():
    ib = ExecBuilder()
    bench_dispatch.ours_three_op(ib, relaxvm.DataType("float32"))
    text = ib.get().as_text()
    assert text.count("call  vm.builtin.check_tensor_info in: %0") == 1
    assert text.count("vm.builtin.check_tensor_info in:") == 3
    assert text.count("vm.builtin.match_shape in:") == 3
    assert "match_shape in: %2, %void, i2, i0, i32, i0, i32" in text
