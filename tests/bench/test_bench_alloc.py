"""bench/bench_alloc.py: a quick run on the CPU prints the table it promises."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench_alloc  # noqa: E402

COLUMNS = ["device", "size", "np.empty ns", "naive ns", "pooled ns", "pooled / np.empty",
           "naive / pooled", "target", "status"]


def test_quick_cpu_run_prints_one_row_per_size_with_ratios(capsys, tmp_path):
    out_json = tmp_path / "alloc.json"
    rc = bench_alloc.main(["--device", "cpu", "--budget", "0.002", "--json", str(out_json)])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "CPU: ns per alloc+free pair (best of 5)"
    assert lines[2].split("  ")[0] == "device" and all(c in lines[2] for c in COLUMNS)
    rows = [line for line in lines if line.startswith("cpu ")]
    assert [re.split(r"\s{2,}", r)[1] for r in rows] == ["4 KiB", "1 MiB", "64 MiB"]
    for row in rows:
        assert re.search(r"pooled <= 1000 ns\s+(PASS|FAIL)$", row), row

    data = json.loads(out_json.read_text())["rows"]
    assert [r["size"] for r in data] == ["4 KiB", "1 MiB", "64 MiB"]
    for r in data:
        assert r["pooled ns"] > 0 and r["naive ns"] > 0 and r["np.empty ns"] > 0
        assert r["pooled / np.empty"] == pytest.approx(r["pooled ns"] / r["np.empty ns"])
        assert r["naive / pooled"] == pytest.approx(r["naive ns"] / r["pooled ns"])
        assert r["status"] == ("PASS" if r["pooled ns"] <= 1000 else "FAIL")
    assert rc == (0 if all(r["status"] == "PASS" for r in data) else 1)


@pytest.mark.parametrize("budget", ["0", "-1", "soon"])
def test_budget_must_be_positive_seconds(capsys, budget):
    with pytest.raises(SystemExit):
        bench_alloc.main(["--device", "cpu", "--budget", budget])
    assert f"--budget must be a number of seconds > 0, got {budget!r}" in capsys.readouterr().err
