"""bench/gpu_validation.py: the step runner, its summary parsing and the table."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import gpu_validation  # noqa: E402


def test_pytest_summary_is_read_from_the_last_line() -> None:
    text = "....\n=== 12 passed, 3 skipped, 1 failed in 4.2s ==="
    assert gpu_validation.summarize_pytest(text) == "12 passed, 3 skipped, 1 failed"
    assert gpu_validation.summarize_pytest("nothing") == "no summary"


def test_a_cut_off_run_is_summarized_from_its_per_test_lines() -> None:
    text = ("tests/a.py::test_one[cuda] PASSED [ 1%]\n"
            "tests/a.py::test_two[cuda] FAILED [ 2%]\n"
            "tests/b.py::test_three[cuda] PASSED [ 3%]\n"
            "tests/b.py::test_four[cuda] SKIPPED (needs bfloat16) [ 4%]\n")
    assert gpu_validation.summarize_pytest(text) == (
        "cut off after 4 tests: 2 passed, 1 failed, 1 skipped; "
        "first failures: tests/a.py::test_two[cuda]")


def test_a_step_that_fails_or_times_out_is_reported_and_logged(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_validation, "STEPS", [
        ("ok step", ["-c", "print('fine')"], 20, ""),
        ("bad step", ["-c", "import sys; print('broken'); sys.exit(3)"], 20, ""),
        ("slow step", ["-c", "import time; time.sleep(5)"], 1, "")])
    rc = gpu_validation.main(["--out", str(tmp_path)])
    assert rc == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    statuses = {s["step"]: s["status"] for s in summary["steps"]}
    assert statuses == {"ok step": "ok", "bad step": "exit 3", "slow step": "timeout after 1 s"}
    assert "broken" in (tmp_path / "bad_step.log").read_text()
    assert set(summary) >= {"date", "gpu", "commit", "versions"}
    table = (tmp_path / "summary.txt").read_text()
    assert "step" in table and "bad step" in table and "exit 3" in table
