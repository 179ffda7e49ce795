"""Executables that use the newer kernel families (transposed conv, linear resize, LSTM,
TopK/GatherND, quantization, data-dependent sizes, DFT, GridSample) are saved, then
loaded and run in a fresh process that never imports the compiler, against onnxruntime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from relaxvm.compiler import build

F, I64 = TensorProto.FLOAT, TensorProto.INT64
rng = np.random.default_rng(0)


def _model(nodes: list, inputs: list, outputs: list, inits: tuple = (),
           opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _vi(name: str, dtype: int, shape: list | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def families() -> dict[str, tuple[onnx.ModelProto, dict[str, np.ndarray]]]:
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return {
        "conv_transpose_resize": (_model(
            [helper.make_node("ConvTranspose", ["x", "w"], ["c"], strides=[2, 2]),
             helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="linear")],
            [_vi("x", F, [1, 4, 5, 5])], [_vi("y", F)],
            (_const("w", f32(4, 2, 3, 3)), _const("sc", np.array([1, 1, 2, 2], np.float32)))),
            {"x": f32(1, 4, 5, 5)}),
        "lstm": (_model(
            [helper.make_node("LSTM", ["x", "W", "R"], ["y", "yh"], hidden_size=3)],
            [_vi("x", F, [5, 2, 4])], [_vi("y", F), _vi("yh", F)],
            (_const("W", f32(1, 12, 4)), _const("R", f32(1, 12, 3)))), {"x": f32(5, 2, 4)}),
        "topk_gather_nd": (_model(
            [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1),
             helper.make_node("GatherND", ["x", "idx"], ["g"])],
            [_vi("x", F, [4, 6]), _vi("idx", I64, [2, 2])], [_vi("v", F), _vi("i", I64),
                                                               _vi("g", F)],
            (_const("k", np.array([3], np.int64)),)),
            {"x": f32(4, 6), "idx": np.array([[0, 1], [3, 5]], np.int64)}),
        "quantize_dequantize": (_model(
            [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
            [_vi("x", F, [3, 4])], [_vi("y", F)],
            (_const("s", np.array(0.05, np.float32)), _const("z", np.array(3, np.uint8)))),
            {"x": f32(3, 4)}),
        "nonzero": (_model(
            [helper.make_node("NonZero", ["x"], ["nz"]),
             helper.make_node("Transpose", ["nz"], ["y"])],
            [_vi("x", F, [3, 4])], [_vi("y", I64)]),
            {"x": (rng.random((3, 4)) > 0.5).astype(np.float32)}),
        "dft": (_model([helper.make_node("DFT", ["x"], ["y"], axis=1)],
                       [_vi("x", F, [1, 8, 1])], [_vi("y", F)], opset=17), {"x": f32(1, 8, 1)}),
        "grid_sample": (_model([helper.make_node("GridSample", ["x", "g"], ["y"])],
                               [_vi("x", F, [1, 2, 4, 4]), _vi("g", F, [1, 3, 3, 2])],
                               [_vi("y", F)], opset=16),
                        {"x": f32(1, 2, 4, 4),
                         "g": rng.uniform(-1, 1, (1, 3, 3, 2)).astype(np.float32)}),
    }


RUNNER = """
import sys, numpy as np, relaxvm
from relaxvm.vm import VirtualMachine
for name in sys.argv[1:]:
    feeds = dict(np.load(name + '_in.npz'))
    vm = VirtualMachine(relaxvm.load_executable(name + '.rvx'), relaxvm.cpu())
    outs = vm['main'](**feeds)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    np.savez(name + '_out.npz', *[o.numpy() for o in outs])
assert 'relaxvm.compiler' not in sys.modules, 'running an executable imported the compiler'
"""


def test_saved_executables_of_every_newer_family_run_in_a_fresh_process(tmp_path: Path) -> None:
    cases = families()
    expected = {}
    for name, (model, feeds) in cases.items():
        exe = build(model, shape_dict={k: v.shape for k, v in feeds.items()})
        exe.save(str(tmp_path / f"{name}.rvx"))
        np.savez(tmp_path / f"{name}_in.npz", **feeds)
        expected[name] = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    subprocess.run([sys.executable, "-c", RUNNER, *cases], check=True, cwd=tmp_path)
    for name, want in expected.items():
        got = np.load(tmp_path / f"{name}_out.npz")
        assert len(got.files) == len(want), name
        for i, ref in enumerate(want):
            np.testing.assert_allclose(got[f"arr_{i}"], ref, rtol=1e-5, atol=1e-5,
                                       err_msg=name)
