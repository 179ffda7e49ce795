"""build(): ONNX models end to end through the VM (relaxvm/compiler/build.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import relaxvm
from relaxvm.compiler import build, memory_report
from relaxvm.errors import ArgumentError
from relaxvm.frontend import from_onnx
from relaxvm.models.zoo import ZOO, build_model
from relaxvm.vm import VirtualMachine, load_executable
from tests.compiler.graphs import mlp_graph

SIZES = {"batch": 2, "sequence": 5, "past_sequence": 3}


def feeds_for(model: onnx.ModelProto, seed: int = 0, **sizes: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    env = {**SIZES, **sizes}
    out = {}
    for v in from_onnx(model).inputs:
        shape = [d if isinstance(d, int) else env[str(d)] for d in v.shape]
        out[v.name] = (rng.integers(0, 2, shape).astype(v.dtype) if v.dtype.startswith("int")
                       else rng.standard_normal(shape).astype(v.dtype))
    return out


def run_vm(exe: relaxvm.Executable, feeds: dict[str, np.ndarray], device: relaxvm.Device
           ) -> list[np.ndarray]:
    out = VirtualMachine(exe, device)["main"](**feeds)
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def expected(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_matches_onnxruntime(name: str, dev: relaxvm.Device) -> None:
    model = build_model(name)
    exe = build(model, target="cuda" if dev.device_type == 2 else "cpu")
    feeds = feeds_for(model)
    for want, got in zip(expected(model, feeds), run_vm(exe, feeds, dev)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_one_executable_serves_several_sequence_lengths() -> None:
    model = build_model("gpt2")
    vm = VirtualMachine(build(model), relaxvm.cpu())
    for seq in (1, 4, 9):
        feeds = feeds_for(model, seed=seq, sequence=seq)
        got = vm["main"](**feeds)
        for want, g in zip(expected(model, feeds), got):
            np.testing.assert_allclose(g.numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opt_level", [0, 1, 2])
def test_every_opt_level_gives_the_same_numbers(opt_level: int) -> None:
    model = build_model("bert")
    feeds = feeds_for(model)
    got = run_vm(build(model, opt_level=opt_level, shape_dict={"batch": 2, "sequence": 5}),
                 feeds, relaxvm.cpu())
    for want, g in zip(expected(model, feeds), got):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_saved_executable_with_fused_kernels_runs_after_loading(tmp_path: Path) -> None:
    model = build_model("vit")
    exe = build(model)
    assert "fused_elementwise" in exe.as_text()
    path = tmp_path / "vit.rvx"
    exe.save(path)
    feeds = feeds_for(model)
    got = run_vm(load_executable(path), feeds, relaxvm.cpu())
    for want, g in zip(expected(model, feeds), got):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_saved_executable_runs_in_a_process_that_never_imports_the_compiler(
        tmp_path: Path) -> None:
    model = build_model("gpt2")
    path = tmp_path / "gpt2.rvx"
    build(model).save(path)
    feeds = feeds_for(model)
    np.savez(tmp_path / "feeds.npz", **feeds)
    script = (
        "import sys, numpy as np, relaxvm\n"
        "from relaxvm.vm import VirtualMachine\n"
        f"feeds = dict(np.load({str(tmp_path / 'feeds.npz')!r}))\n"
        f"vm = VirtualMachine(relaxvm.load_executable({str(path)!r}), relaxvm.cpu())\n"
        "out = vm['main'](**feeds)\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, *[o.numpy() for o in out])\n"
        "assert 'relaxvm.compiler' not in sys.modules, 'the VM imported the compiler'\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    got = np.load(tmp_path / "out.npz")
    for i, want in enumerate(expected(model, feeds)):
        np.testing.assert_allclose(got[f"arr_{i}"], want, rtol=1e-4, atol=1e-5)


def test_build_accepts_a_model_path(tmp_path: Path) -> None:
    model = build_model("mlp")
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    feeds = feeds_for(model)
    got = run_vm(build(str(path), shape_dict={"batch": 2}), feeds, relaxvm.cpu())
    np.testing.assert_allclose(got[0], expected(model, feeds)[0], rtol=1e-5, atol=1e-5)


def test_memory_report_compares_plan_with_lower_bound() -> None:
    report = memory_report(build_model("resnet18"), shape_dict={"batch": 1})
    assert report["planned_peak_bytes"] <= 1.05 * report["lower_bound_bytes"]
    assert report["unplanned_bytes"] > report["planned_peak_bytes"]
    assert report["arenas"] == 1 and report["symbolic_sizes"] == []
    exe = build(build_model("resnet18"), shape_dict={"batch": 1})
    assert exe.memory_plan == report
    assert exe.input_specs == {"pixel_values": ((1, 3, 32, 32), "float32")}


def test_bad_arguments_are_rejected() -> None:
    graph, _ = mlp_graph()
    with pytest.raises(ArgumentError, match=r"build: opt_level must be one of \(0, 1, 2\), got 7"):
        build(graph, opt_level=7)
    with pytest.raises(ArgumentError, match=r"build: target must be 'cpu', 'cuda', a device such "
                                            r"as 'cuda:0', or a list of devices, got 'tpu'"):
        build(graph, target="tpu")
    with pytest.raises(ArgumentError, match="build: shape_dict applies to ONNX models"):
        build(graph, shape_dict={"batch": 1})
    with pytest.raises(ArgumentError, match="target must name at least one device"):
        build(graph, target=[])


def test_build_does_not_modify_the_graph_it_is_given() -> None:
    graph, _ = mlp_graph()
    before = str(graph)
    build(graph)
    assert str(graph) == before
