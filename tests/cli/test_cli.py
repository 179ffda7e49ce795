"""The relaxvm command line: each subcommand on small inputs, and its error messages."""

from __future__ import annotations

import numpy as np
import pytest

import relaxvm
from relaxvm.cli import main, parse_memory_cfg_arg
from relaxvm.demo import handwritten_mlp


def test_devices_lists_the_cpu_and_explains_missing_gpu(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cpu:0")
    if not relaxvm.cuda(0).exist:
        assert "pip install 'relaxvm[cuda12]'" in out


def test_inspect_prints_stats_and_listing(tmp_path, capsys):
    exe, _ = handwritten_mlp()
    path = tmp_path / "mlp.rvx"
    exe.save(str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "@main:" in out and "call  gemm" in out and "Constant pool" in out


def test_run_and_profile_an_executable_with_inputs(tmp_path, capsys):
    exe, inputs = handwritten_mlp()
    path = tmp_path / "mlp.rvx"
    exe.save(str(path))
    np.save(tmp_path / "x.npy", inputs["x"])
    assert main(["run", str(path), "--device", "cpu", "--input", f"x={tmp_path / 'x.npy'}",
                 "--repeat", "2", "--save-outputs", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "output: float32[1, 10]" in out and "peak pool bytes" in out
    saved = np.load(tmp_path / "out" / "output_0.npy")
    vm = relaxvm.VirtualMachine(exe, relaxvm.cpu())
    np.testing.assert_allclose(saved, vm["main"](inputs["x"]).numpy(), rtol=1e-6)
    trace = tmp_path / "trace.json"
    assert main(["profile", str(path), "--device", "cpu", "--input",
                 f"x={tmp_path / 'x.npy'}", "--trace", str(trace)]) == 0
    assert "gemm" in capsys.readouterr().out and trace.exists()


def test_run_reports_missing_file_and_bad_input_names(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.rvx"), "--device", "cpu"]) == 1
    assert "no such model file" in capsys.readouterr().err
    exe, inputs = handwritten_mlp()
    path = tmp_path / "mlp.rvx"
    exe.save(str(path))
    np.save(tmp_path / "x.npy", inputs["x"])
    assert main(["run", str(path), "--device", "cpu", "--input",
                 f"y={tmp_path / 'x.npy'}"]) == 1
    assert "not parameters of main" in capsys.readouterr().err


def test_run_rejects_a_corrupt_executable(tmp_path, capsys):
    path = tmp_path / "bad.rvx"
    path.write_bytes(b"not an executable at all")
    assert main(["run", str(path), "--device", "cpu"]) == 1
    assert "ExecutableFormatError" in capsys.readouterr().err


def test_memory_cfg_argument_parsing():
    assert parse_memory_cfg_arg("naive") == "naive"
    assert parse_memory_cfg_arg("cuda:0=pooled,cpu=naive") == {
        relaxvm.cuda(0): "pooled", relaxvm.cpu(0): "naive"}
    with pytest.raises(SystemExit, match="must look like cpu=naive"):
        parse_memory_cfg_arg("cpu=naive,oops")


def test_demo_runs_and_prints_profile_and_pools(capsys):
    assert main(["demo", "--device", "cpu", "--model", "mlp"]) == 0
    out = capsys.readouterr().out
    assert "relaxvm demo:" in out and "Duration (us)" in out and "Memory pools" in out
