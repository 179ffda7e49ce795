"""The relaxvm command line: each subcommand on small inputs, and its error messages."""

from __future__ import annotations

import json
import re

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


# -- ONNX models: concrete inputs, static plans, reports, errors -----------------------------
def _save_zoo(tmp_path, name: str):
    """A tiny zoo model saved as ``<name>.onnx``; returns (path, ModelProto)."""
    import onnx

    from relaxvm.models import build_model
    model = build_model(name, "tiny")
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path, model


def _onnxruntime(path, feeds: dict) -> list:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_outputs_match(folder, expected: list) -> None:
    for i, want in enumerate(expected):
        got = np.load(folder / f"output_{i}.npy")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_run_onnx_generates_the_seeded_example_inputs_and_matches_onnxruntime(
        tmp_path, capsys, dev):
    from relaxvm.models import example_inputs
    path, model = _save_zoo(tmp_path, "bert")
    out_dir = tmp_path / "out"
    assert main(["run", str(path), "--device", str(dev), "--repeat", "1",
                 "--save-outputs", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "last_hidden_state: float32[1, 8, 32]" in out and "pooler_output" in out
    _assert_outputs_match(out_dir, _onnxruntime(path, example_inputs(model, seed=0)))


def test_run_onnx_with_input_files_compiles_for_their_shapes_and_matches_onnxruntime(
        tmp_path, capsys):
    path, _ = _save_zoo(tmp_path, "resnet18")
    pixels = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype("float32")
    np.save(tmp_path / "pixels.npy", pixels)
    out_dir = tmp_path / "out"
    assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--input",
                 f"pixel_values={tmp_path / 'pixels.npy'}", "--save-outputs", str(out_dir),
                 "--json", str(tmp_path / "run.json"), "--memory-report"]) == 0
    assert "logits: float32[2, 10]" in capsys.readouterr().out
    _assert_outputs_match(out_dir, _onnxruntime(path, {"pixel_values": pixels}))
    plan = json.loads((tmp_path / "run.json").read_text())["memory_report"]["plan"]
    assert plan["symbolic_sizes"] == [] and plan["planned_tensors"] > 0


def test_run_onnx_sizes_generated_inputs_from_an_input_file_sharing_a_dimension(tmp_path,
                                                                                 capsys):
    path, _ = _save_zoo(tmp_path, "bert")
    np.save(tmp_path / "ids.npy", np.arange(5, dtype=np.int64).reshape(1, 5))
    assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--input",
                 f"input_ids={tmp_path / 'ids.npy'}"]) == 0
    assert "last_hidden_state: float32[1, 5, 32]" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["resnet18", "bert"])
def test_run_memory_report_shows_planned_peak_at_most_the_unplanned_peak(tmp_path, capsys,
                                                                          name):
    path, _ = _save_zoo(tmp_path, name)
    report_path = tmp_path / "report.json"
    assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--memory-report",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    for heading in ("Measured in one run", "cpu:0/pooled peak pool bytes",
                    "unplanned (opt_level=0)", "allocations in the run", "Static memory plan",
                    "lower bound (most bytes live)", "arenas/lower bound", "weights and constants"):
        assert heading in out
    assert re.search(r"\d+ arrays", out) and not re.search(r"\d+ B arrays", out)
    report = json.loads(report_path.read_text())["memory_report"]
    for device_peaks in report["peak_pool_bytes"].values():
        assert 0 < device_peaks["planned"]["peak"] <= device_peaks["unplanned"]["peak"]
    plan = report["plan"]
    assert 0 < plan["lower_bound_bytes"] <= plan["planned_peak_bytes"]
    assert plan["planned_peak_bytes"] <= 1.05 * plan["lower_bound_bytes"]
    assert report["constants"] > 0 and report["constant_bytes"] > 0


def test_run_dynamic_keeps_symbolic_dims_and_accepts_two_batch_sizes(tmp_path, capsys):
    from relaxvm.cli import onnx_inputs
    path, model = _save_zoo(tmp_path, "mlp")
    for batch in (1, 3):
        out_dir = tmp_path / f"out{batch}"
        assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--dynamic",
                     "--shape", f"batch={batch}", "--memory-report", "--save-outputs",
                     str(out_dir)]) == 0
        out = capsys.readouterr().out
        assert f"logits: float32[{batch}, 4]" in out and "symbolic sizes batch" in out
        feeds = onnx_inputs(model, {}, {"batch": batch})
        _assert_outputs_match(out_dir, _onnxruntime(path, feeds))


def test_profile_onnx_writes_a_chrome_trace(tmp_path, capsys):
    path, _ = _save_zoo(tmp_path, "mlp")
    trace = tmp_path / "t.json"
    assert main(["profile", str(path), "--device", "cpu", "--trace", str(trace)]) == 0
    assert "Duration (us)" in capsys.readouterr().out
    events = json.loads(trace.read_text())["traceEvents"]
    assert any("gemm" in str(e.get("name")) for e in events)


def test_compile_then_inspect_and_run_the_executable(tmp_path, capsys):
    path, model = _save_zoo(tmp_path, "mlp")
    rvx = tmp_path / "mlp.rvx"
    assert main(["compile", str(path), "-o", str(rvx), "--shape", "batch=2"]) == 0
    assert f"wrote {rvx}" in capsys.readouterr().out
    assert main(["inspect", str(rvx)]) == 0
    assert "@main:" in capsys.readouterr().out
    x = np.random.default_rng(1).standard_normal((2, 32)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(rvx), "--device", "cpu", "--repeat", "1", "--input",
                 f"input={tmp_path / 'x.npy'}", "--save-outputs", str(tmp_path / "out")]) == 0
    _assert_outputs_match(tmp_path / "out", _onnxruntime(path, {"input": x}))


def test_run_rejects_a_malformed_onnx_file(tmp_path, capsys):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 definitely not protobuf \xff\xff")
    assert main(["run", str(path), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "broken.onnx" in err and "is not a valid ONNX model" in err
    assert "Traceback" not in err


def test_run_lists_every_unsupported_op_with_its_node_name(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], name="frob_1", domain="example"),
         helper.make_node("Relu", ["y"], ["z"], name="relu_1"),
         helper.make_node("Twiddle", ["z"], ["w"], name="twiddle_1", domain="example")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("example", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    assert main(["run", str(path), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "UnsupportedOpError" in err and "2 node(s)" in err
    assert "example.Frobnicate (node 'frob_1')" in err
    assert "example.Twiddle (node 'twiddle_1')" in err


@pytest.mark.parametrize(("array", "flags", "message"), [
    (np.zeros((1, 31), np.float32), [],
     r"--input input: expected float32\[batch, 32\], got float32\[1, 31\]"),
    (np.zeros((1, 32), np.float64), [],
     r"--input input: expected float32\[batch, 32\], got float64\[1, 32\]"),
    (np.zeros((32,), np.float32), [],
     r"--input input: expected float32\[batch, 32\] \(2 dimensions\), got float32\[32\]"),
    (np.zeros((2, 32), np.float32), ["--shape", "batch=3"],
     r"--input input: expected float32\[batch, 32\] with batch=3 .*got float32\[2, 32\]"),
    (np.zeros((1, 31), np.float32), ["--dynamic"],
     r"--input input: expected float32\[batch, 32\], got float32\[1, 31\]"),
])
def test_run_rejects_an_input_of_the_wrong_shape_or_dtype(tmp_path, capsys, array, flags,
                                                           message):
    path, _ = _save_zoo(tmp_path, "mlp")
    np.save(tmp_path / "x.npy", array)
    assert main(["run", str(path), "--device", "cpu", "--input", f"input={tmp_path / 'x.npy'}",
                 *flags]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert "first run" not in err   # rejected before anything ran


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "pixels={npy}"], r"--input names \['pixels'\] are not inputs of mlp.onnx "
                                  r"\(inputs: input\)"),
    (["--shape", "seq=4"], r"--shape names \['seq'\] are not symbolic dimensions of mlp.onnx "
                           r"\(symbolic: batch\)"),
    (["--shape", "batch=0"], r"--shape 'batch=0' must look like batch=1"),
    (["--input", "input={missing}"], r"--input input: cannot read .*missing.npy"),
])
def test_run_rejects_unknown_input_and_dimension_names(tmp_path, capsys, args, message):
    path, _ = _save_zoo(tmp_path, "mlp")
    np.save(tmp_path / "x.npy", np.zeros((1, 32), np.float32))
    args = [a.format(npy=tmp_path / "x.npy", missing=tmp_path / "missing.npy") for a in args]
    assert main(["run", str(path), "--device", "cpu", *args]) == 1
    assert re.search(message, capsys.readouterr().err)


def test_run_rejects_shape_options_for_a_compiled_executable(tmp_path, capsys):
    exe, _ = handwritten_mlp()
    exe.save(str(tmp_path / "mlp.rvx"))
    assert main(["run", str(tmp_path / "mlp.rvx"), "--device", "cpu", "--dynamic"]) == 1
    assert "--shape and --dynamic apply to .onnx models" in capsys.readouterr().err


def test_run_memory_report_on_a_compiled_executable_measures_the_planned_peak(tmp_path,
                                                                              capsys):
    exe, inputs = handwritten_mlp()
    exe.save(str(tmp_path / "mlp.rvx"))
    np.save(tmp_path / "x.npy", inputs["x"])
    assert main(["run", str(tmp_path / "mlp.rvx"), "--device", "cpu", "--repeat", "1",
                 "--input", f"x={tmp_path / 'x.npy'}", "--memory-report"]) == 0
    out = capsys.readouterr().out
    assert "cpu:0/pooled peak pool bytes" in out and "keeps neither its plan nor its source" in out


def _model_with_free_dims(tmp_path):
    """x: float32[n, ?, 3] -> Relu, a model from outside the zoo (no metadata)."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", None, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "free.onnx"
    onnx.save(model, str(path))
    return path, model


def test_onnx_inputs_size_free_dims_from_shape_args_else_one(tmp_path):
    from relaxvm.cli import onnx_inputs
    _, model = _model_with_free_dims(tmp_path)
    assert onnx_inputs(model, {}, {})["x"].shape == (1, 1, 3)
    assert onnx_inputs(model, {}, {"n": 4})["x"].shape == (4, 1, 3)
    first = onnx_inputs(model, {}, {"n": 4}, seed=0)["x"]
    np.testing.assert_array_equal(onnx_inputs(model, {}, {"n": 4}, seed=0)["x"], first)


def test_run_a_model_from_outside_the_zoo_with_free_dims(tmp_path, capsys):
    path, _ = _model_with_free_dims(tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--input",
                 f"x={tmp_path / 'x.npy'}", "--save-outputs", str(tmp_path / "out")]) == 0
    assert "y: float32[2, 5, 3]" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "output_0.npy"), np.maximum(x, 0))
    assert main(["run", str(path), "--device", "cpu", "--repeat", "1", "--shape", "n=3"]) == 0
    assert "y: float32[3, 1, 3]" in capsys.readouterr().out
