"""bench/bench_kernels.py: the quick CPU run prints its tables, profile overhead included."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import relaxvm

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench_kernels  # noqa: E402


def test_quick_cpu_run_prints_kernel_and_profile_overhead_rows(capsys, tmp_path):
    out_json = tmp_path / "kernels.json"
    rc = bench_kernels.main(["--device", "cpu", "--quick", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert "kernels on cpu:0 (speedup = plain NumPy time / kernel time)" in printed
    assert "profile() host overhead per op (target <= 5 us)" in printed

    rows = json.loads(out_json.read_text())["rows"]
    kernels = [r for r in rows if not r["case"].startswith("profile")]
    assert [r["case"] for r in kernels] == [c.name for c in bench_kernels.cpu_cases(True)]
    assert all(r["device"] == "cpu" and r["kernel_us"] > 0 for r in kernels)
    for r in kernels[:3]:                             # the 32x32 overhead rows
        assert r["status"] == ("PASS" if r["overhead_ns"] < 1000 else "FAIL")

    [profile] = [r for r in rows if r["case"].startswith("profile")]
    assert profile["case"] == "profile: 32 x add 32x32" and profile["device"] == "cpu"
    assert 0 < profile["plain_us/op"] < profile["profiled_us/op"]
    assert profile["overhead_us"] == pytest.approx(
        profile["profiled_us/op"] - profile["plain_us/op"])
    assert profile["status"] == ("PASS" if profile["overhead_us"] <= 5.0 else "MISS")
    line = next(x for x in printed.splitlines() if x.startswith("cpu     profile:"))
    assert line.rstrip().endswith(profile["status"])
    assert rc == (1 if any(r.get("status") in ("FAIL", "MISS") for r in rows) else 0)


def test_filter_can_select_only_the_profile_row(capsys):
    bench_kernels.main(["--device", "cpu", "--quick", "--filter", "profile"])
    printed = capsys.readouterr().out
    assert "kernels on cpu:0" not in printed
    assert sum(x.startswith("cpu ") for x in printed.splitlines()) == 1


def test_chain_program_adds_x_once_per_op():
    vm = relaxvm.vm.VirtualMachine(bench_kernels.chain_program(5, (2, 3)), relaxvm.cpu())
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(vm["main"](x).numpy(), 6 * x)   # x + x, then + x four times
    report = vm.profile("main", x)
    assert len(report.calls) == 3 + 5


@pytest.mark.cuda
def test_profile_overhead_row_on_the_gpu():
    row = bench_kernels.profile_overhead_row(relaxvm.cuda(0), quick=True)
    assert row["device"] == "cuda" and row["plain_us/op"] > 0
    assert row["status"] in ("PASS", "MISS")
