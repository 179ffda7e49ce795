"""bench/bench_models.py: targets from the brief, the output check, rows and a tiny run."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import bench_models  # noqa: E402
from bench_models import Case, Measured, check, chosen_models, make_row, target_for  # noqa: E402

from relaxvm.errors import ArgumentError  # noqa: E402


@pytest.mark.parametrize("model,device,expected", [
    ("bert", "cpu", ("ort", 1.2)), ("gpt2_decode", "cpu", ("ort", 1.2)),
    ("vit", "cpu", ("ort", 1.2)), ("mlp", "cpu", ("ort", 1.5)),
    ("resnet50", "cpu", ("ort", 2.0)), ("resnet18", "cuda", ("torch", 1.0)),
])
def test_targets_follow_the_design_brief(model, device, expected):
    assert target_for(model, device) == expected


def test_check_accepts_float32_noise_and_rejects_a_wrong_output():
    ref = [np.linspace(-3, 3, 50, dtype=np.float32), np.ones((2, 2), np.float32)]
    noisy = [r + np.float32(1e-6) for r in ref]
    assert check(noisy, ref, 1e-3)[1] is None
    wrong = [ref[0], ref[1] * 2]
    error, complaint = check(wrong, ref, 1e-3)
    assert error == pytest.approx(1.0)
    assert complaint == "outputs differ (max rel err 1)"
    assert check(ref[:1], ref, 1e-3)[1] == "1 outputs, reference has 2"


def case(name: str = "bert", device: str = "cpu") -> Case:
    return Case(name, "tiny", device, budget_s=0.1, tol=1e-3)


def test_row_ratios_and_status_pass_within_target():
    peers = {"ort": Measured(ms=10.0, error=2e-6), "torch": Measured(ms=20.0, error=5e-7)}
    row = make_row(case(), Measured(ms=11.0, peak_bytes=3 * 2**20), peers)
    assert row["max err"] == pytest.approx(2e-6)
    assert row["rvm/ort"] == pytest.approx(1.1)
    assert row["rvm/torch"] == pytest.approx(0.55)
    assert (row["target"], row["status"]) == ("<=1.2x ort", "PASS")
    assert row["peak MiB"] == pytest.approx(3.0)


def test_row_status_miss_beyond_target_and_na_without_the_target_peer():
    slow = make_row(case("mlp"), Measured(ms=16.0), {"ort": Measured(ms=10.0)})
    assert (slow["target"], slow["status"]) == ("<=1.5x ort", "MISS")
    gpu = make_row(case("mlp", "cuda"), Measured(ms=1.0),
                   {"torch": Measured(note="torch: not available (no GPU)")})
    assert (gpu["target"], gpu["status"], gpu["rvm/torch"]) == ("<=1x torch", "n/a", None)
    assert gpu["notes"] == "torch: not available (no GPU)"


def test_blas_columns_scale_relaxvms_blas_share_by_the_target_peer():
    row = make_row(case(), Measured(ms=20.0, blas_share=0.75), {"ort": Measured(ms=10.0)})
    assert row["blas %"] == pytest.approx(75.0)
    assert row["blas/ort"] == pytest.approx(1.5)     # 15 ms of BLAS against ort's 10 ms
    unknown = make_row(case(), Measured(ms=20.0), {"ort": Measured(ms=10.0)})
    assert unknown["blas %"] is None and unknown["blas/ort"] is None


def test_relaxvm_runner_measures_the_blas_share_of_a_real_model():
    from peers.relaxvm_subject import RelaxvmRunner

    from relaxvm.models import build_model, example_inputs
    model = build_model("mlp", "tiny")
    runner = RelaxvmRunner(model, example_inputs(model), "cpu")
    share = runner.blas_share()
    assert 0.0 < share < 1.0     # gemms, plus the relus and bias adds that are not BLAS


def test_unknown_model_name_is_an_argument_error_with_a_suggestion():
    assert chosen_models("mlp, vit") == ["mlp", "vit"]
    with pytest.raises(ArgumentError, match=r"build_model: name must be one of .*got 'bret' "
                                            r"\(did you mean 'bert'\?\)"):
        chosen_models("mlp,bret")


def run_main(tmp_path, *args: str) -> list[dict]:
    out = tmp_path / "rows.json"
    assert bench_models.main([*args, "--budget", "0.05", "--json", str(out)]) == 0
    return json.loads(out.read_text())["rows"]


def test_tiny_run_times_every_available_peer_and_writes_json(tmp_path, capsys):
    rows = run_main(tmp_path, "--size", "tiny", "--models", "mlp,gpt2_decode")
    assert [(r["model"], r["size"]) for r in rows] == [("mlp", "tiny"), ("gpt2_decode", "tiny")]
    for row in rows:
        assert row["ort ms"] > 0
        assert row["torch ms"] is not None or "torch: not available" in row["notes"]
        assert row["tvm ms"] is not None or "tvm: not available" in row["notes"]
        if row["relaxvm ms"] is None:
            assert "relaxvm: " in row["notes"]
        else:
            assert row["status"] in ("PASS", "MISS") and row["peak MiB"] > 0
            assert 0 < row["blas %"] <= 100 and row["blas/ort"] > 0
    assert "zoo models, batch 1, median latency (ms) on cpu" in capsys.readouterr().out


def test_skip_tvm_leaves_the_tvm_columns_out(tmp_path):
    rows = run_main(tmp_path, "--size", "tiny", "--models", "mlp", "--skip-tvm")
    assert "tvm ms" not in rows[0] and "rvm/tvm" not in rows[0]


@pytest.mark.parametrize("flags, core, forced, expect", [
    ({"avx2", "avx512f"}, "Haswell", "Haswell", "because OPENBLAS_CORETYPE=Haswell"),
    ({"avx2", "avx512f"}, "Haswell", None, "runs Haswell (AVX2) kernels on a CPU"),
    ({"avx2", "avx512f"}, "SkylakeX", None, None),
    ({"avx2"}, "Haswell", None, None),
])
def test_blas_note_warns_when_numpy_runs_narrower_kernels_than_the_cpu(
        monkeypatch, flags, core, forced, expect):
    import common
    monkeypatch.setattr(common, "cpu_flags", lambda: flags)
    monkeypatch.setattr(common, "blas_core", lambda: core)
    if forced is None:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_CORETYPE", forced)
    note = common.blas_note()
    assert (note is None) if expect is None else (expect in note)
