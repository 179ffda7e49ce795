"""Cast/CastLike into and out of the low-bit types, QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, BitShift, and the quantized compute converters (MatMulInteger,
QLinearMatMul, ConvInteger, QLinearConv).

onnxruntime is the oracle where it runs the op (8-bit quantization, BitShift);
onnx.reference otherwise (float8/float4/int4/int2), with the graph evaluator and the
VM both compared. A built executable holding int4/float8 constants saves and loads back
exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.objects import numpy_dtype
from relaxvm.vm import VirtualMachine
from relaxvm.vm.executable import load_executable
from tests.frontend.onnx.onnx_case import check_node

ml_dtypes = pytest.importorskip("ml_dtypes")
rng = np.random.default_rng(0)


def code(dtype: str) -> int:
    return helper.np_dtype_to_tensor_dtype(numpy_dtype(dtype))


def model_of(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None,
             initializers: dict[str, np.ndarray] | None = None, n_out: int = 1,
             opset: int = 25, names: list[str] | None = None) -> onnx.ModelProto:
    """A one-node model whose output types come from onnx.reference."""
    initializers = initializers or {}
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names if names is not None else [*inputs, *initializers],
                            outs, name=f"{op.lower()}_node", **(attrs or {}))
    infos = [helper.make_tensor_value_info(k, code(v.dtype.name), v.shape)
             for k, v in inputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    graph = helper.make_graph([node], "case", infos,
                              [helper.make_empty_tensor_value_info(o) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    results = ReferenceEvaluator(model).run(None, inputs)
    del model.graph.output[:]
    for o, r in zip(outs, results, strict=True):
        model.graph.output.append(helper.make_tensor_value_info(o, code(np.asarray(r).dtype
                                                                        .name), None))
    return model


def same(got: np.ndarray, want: np.ndarray, rtol: float = 0.0) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol)


def check_reference(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None,
                    initializers: dict[str, np.ndarray] | None = None, n_out: int = 1,
                    rtol: float = 0.0, **kwargs: Any) -> None:
    """onnx.reference vs the graph evaluator and the VM, for types onnxruntime lacks."""
    model = model_of(op, inputs, attrs, initializers, n_out, **kwargs)
    want = ReferenceEvaluator(model).run(None, inputs)
    evaluated = evaluate(from_onnx(model), inputs)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**inputs)
    got = got if isinstance(got, tuple) else (got,)
    for w, e, g in zip(want, evaluated, got, strict=True):
        same(e, w, rtol)
        same(g.numpy(), w, rtol)


F8 = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz"]
VALUES = np.array([0.0, -0.0, 0.47, -3.3, 100.0, 465.0, 1e6, -1e6, 1e-7, np.inf, -np.inf,
                   np.nan], np.float32)


@pytest.mark.parametrize("dst", F8)
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_into_float8_follows_saturate(dst: str, saturate: int) -> None:
    check_reference("Cast", {"x": VALUES}, {"to": code(dst), "saturate": saturate})


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
def test_cast_into_float8e8m0_uses_round_mode(round_mode: str) -> None:
    x = np.array([0.124, 0.25, 0.3, 0.75, 1.1, 1.6, 3.0, 1e30], np.float32)
    check_reference("Cast", {"x": x}, {"to": TensorProto.FLOAT8E8M0,
                                       "round_mode": round_mode})


@pytest.mark.parametrize("dtype", ["float4_e2m1fn", "int4", "uint4", "int2", "uint2",
                                   "float8_e4m3fn", "float8_e8m0fnu"])
def test_castlike_round_trips_through_low_bit_types(dtype: str) -> None:
    x = np.array([0.5, 1.0, 2.0, 3.0, 0.25, 1.5], np.float32)
    if "int" in dtype:
        x = np.clip(x, *_range(dtype))
    like = np.zeros(2, numpy_dtype(dtype))
    check_reference("CastLike", {"x": x, "like": like})
    check_reference("Cast", {"q": x.astype(numpy_dtype(dtype))}, {"to": TensorProto.FLOAT})


def test_cast_rejects_bad_saturate_and_round_mode() -> None:
    x = VALUES[:3]
    for attrs in ({"saturate": 3}, {"round_mode": "odd"}):
        model = helper.make_model(helper.make_graph(
            [helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT8E4M3FN,
                              **attrs)], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, x.shape)]),
            opset_imports=[helper.make_opsetid("", 25)])
        with pytest.raises(BuildError, match="Cast node c: (saturate must be 0 or 1, got 3|"
                                             "round_mode must be one of up, down, nearest, "
                                             "got 'odd')"):
            from_onnx(model)


def test_quantize_and_dequantize_uint8_match_onnxruntime() -> None:
    x = (rng.standard_normal((2, 3, 4)) * 10).astype(np.float32)
    check_node("QuantizeLinear", {"x": x},
               initializers={"s": np.float32(0.2), "z": np.uint8(128)}, opset=19)
    check_node("QuantizeLinear", {"x": x}, {"axis": 1},
               initializers={"s": np.array([0.1, 0.2, 0.3], np.float32),
                             "z": np.array([0, 5, -5], np.int8)}, opset=19)
    q = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    check_node("DequantizeLinear", {"q": q},
               initializers={"s": np.float32(0.2), "z": np.uint8(128)}, opset=19)
    check_node("DequantizeLinear", {"q": q, "s": np.array([0.1, 0.2, 0.3], np.float32)},
               {"axis": 1}, opset=19)


def test_dynamic_quantize_linear_matches_onnxruntime() -> None:
    check_node("DynamicQuantizeLinear", {"x": rng.standard_normal((3, 4)).astype(np.float32)},
               n_outputs=3, opset=13)


def test_quantize_blocked_with_run_time_scale_and_precision() -> None:
    x = (rng.standard_normal((3, 8)) * 4).astype(np.float32)
    scale = (rng.random((3, 3)) + 0.5).astype(np.float32)
    check_reference("QuantizeLinear", {"x": x, "s": scale},
                    {"axis": 1, "block_size": 3, "output_dtype": TensorProto.INT4,
                     "precision": TensorProto.FLOAT})


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2", "int16", "uint16",
                                   "float4_e2m1fn", *F8])
def test_quantize_then_dequantize_low_bit_types(dtype: str) -> None:
    x = (rng.standard_normal((2, 6)) * 3).astype(np.float32)
    zp = {"z": np.zeros((), numpy_dtype(dtype))}
    check_reference("QuantizeLinear", {"x": x}, initializers={"s": np.float32(0.5), **zp})
    q = x.astype(numpy_dtype(dtype)) if dtype.startswith("float") else \
        np.clip(np.rint(x), *_range(dtype)).astype(numpy_dtype(dtype))
    check_reference("DequantizeLinear", {"q": q}, initializers={"s": np.float32(0.5), **zp})
    check_reference("DequantizeLinear", {"q": q}, {"output_dtype": TensorProto.FLOAT16},
                    initializers={"s": np.float32(0.5)})


def _range(dtype: str) -> tuple[int, int]:
    info = ml_dtypes.iinfo(numpy_dtype(dtype))
    return int(info.min), int(info.max)


def test_quantize_output_dtype_must_match_the_zero_point() -> None:
    x = np.ones((2, 2), np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q",
                          output_dtype=TensorProto.INT8)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT8, x.shape)],
        [numpy_helper.from_array(np.float32(1), "s"), numpy_helper.from_array(np.uint8(0),
                                                                             "z")]),
        opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(BuildError, match="QuantizeLinear node q: output_dtype int8 differs "
                                         "from the zero point's type uint8"):
        from_onnx(model)


def test_dequantize_into_an_integer_type_is_unsupported() -> None:
    model = helper.make_model(helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="d",
                          output_dtype=TensorProto.INT32)], "g",
        [helper.make_tensor_value_info("q", TensorProto.INT8, [2])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [2])],
        [numpy_helper.from_array(np.float32(1), "s")]),
        opset_imports=[helper.make_opsetid("", 23)])
    with pytest.raises(UnsupportedOpError, match="DequantizeLinear node d: the result type "
                                                 "must be one of"):
        from_onnx(model)


def test_saved_executable_keeps_int4_and_float8_constants_exactly() -> None:
    q4 = np.array([[-8, -1, 0, 7], [1, 2, 3, -3]], ml_dtypes.int4)
    q8 = np.array([[0.5, -448, 3.5, 0.0], [1e-3, 2, -2, 240]], ml_dtypes.float8_e4m3fn)
    scale = np.float32(0.25)
    for q in (q4, q8):
        model = model_of("DequantizeLinear", {"s": np.asarray(scale)}, initializers={"q": q},
                         names=["q", "s"])
        exe = build(model)
        back = load_executable(exe.save_to_bytes())
        kept = [c for c in back.constants if isinstance(c, np.ndarray) and c.dtype == q.dtype]
        assert len(kept) == 1 and kept[0].tobytes() == q.tobytes()
        got = VirtualMachine(back, relaxvm.cpu())["main"](np.asarray(scale)).numpy()
        np.testing.assert_array_equal(got, q.astype(np.float32) * scale)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_broadcasts_like_onnxruntime(direction: str) -> None:
    x = rng.integers(0, 255, (3, 4)).astype(np.uint8)
    check_node("BitShift", {"x": x, "s": np.array([0, 1, 3, 7], np.uint8)},
               {"direction": direction}, opset=11)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_signed_out_of_range_amounts(direction: str) -> None:
    x = np.array([-128, -5, 5, 127], np.int8)
    check_reference("BitShift", {"x": x, "s": np.array([1, -1, 8, 9], np.int8)},
                    {"direction": direction})


def test_bitshift_rejects_an_unknown_direction() -> None:
    model = helper.make_model(helper.make_graph(
        [helper.make_node("BitShift", ["x", "x"], ["y"], name="b", direction="UP")], "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [2])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [2])]),
        opset_imports=[helper.make_opsetid("", 11)])
    with pytest.raises(BuildError, match="BitShift node b: direction must be 'LEFT' or "
                                         "'RIGHT', got 'UP'"):
        from_onnx(model)


def test_saturating_cast_keeps_its_rules_in_a_fused_chain() -> None:
    # Cast -> float8 (saturating) -> Cast -> float -> Mul: the saturating cast must not be
    # fused into a plain conversion (1e6 would then become NaN instead of 448).
    x = np.array([1e6, -1e6, np.inf, 0.3, 17.0], np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["q"], to=TensorProto.FLOAT8E4M3FN),
             helper.make_node("Cast", ["q"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "two"], ["y"])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
        [numpy_helper.from_array(np.float32(2), "two")]),
        opset_imports=[helper.make_opsetid("", 21)])
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](x).numpy()
    np.testing.assert_array_equal(got, want)
    assert got[:3].tolist() == [896.0, -896.0, 896.0]


def test_a_nonzero_float8_zero_point_is_rejected() -> None:
    zp = np.array(1.0, ml_dtypes.float8_e4m3fn)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="d")], "g",
        [helper.make_tensor_value_info("q", TensorProto.FLOAT8E4M3FN, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.float32(1), "s"), numpy_helper.from_array(zp, "z")]),
        opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(BuildError, match="DequantizeLinear node d: a float8_e4m3fn zero "
                                         "point must be 0"):
        from_onnx(model)


# -- quantized compute: MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv -------------
def _ints(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


@pytest.mark.parametrize("b_type", ["uint8", "int8"])
def test_matmul_integer_matches_onnxruntime(b_type: str) -> None:
    a, b = _ints((2, 3, 5), "uint8"), _ints((5, 4), b_type)
    check_node("MatMulInteger", {"a": a, "b": b},
               initializers={"az": np.array(17, np.uint8), "bz": _ints((4,), b_type)})
    check_node("MatMulInteger", {"a": a, "b": b, "az": np.array([200], np.uint8)},
               input_names=["a", "b", "az"])
    check_node("MatMulInteger", {"a": a, "b": b}, input_names=["a", "b"])
    check_node("MatMulInteger", {"a": a, "b": b}, input_names=["a", "b"],
               dynamic={"a": ["n", 3, 5]})


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul_matches_onnxruntime(dtype: str, opset: int) -> None:
    a, b = _ints((2, 3, 6), dtype), _ints((2, 6, 4), dtype)
    inits = {"sa": np.array(0.011, np.float32), "za": np.array(3, dtype),
             "b": b, "sb": np.array(0.007, np.float32), "zb": np.array(-2 % 128, dtype),
             "sy": np.array(0.03, np.float32), "zy": np.array(100, dtype)}
    check_node("QLinearMatMul", {"a": a}, initializers=inits, opset=opset,
               input_names=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])
    feeds = {"a": a, "sa": np.array([0.02], np.float32), "za": np.array([1], dtype), "b": b}
    check_node("QLinearMatMul", feeds, initializers={k: inits[k] for k in ("sb", "zb", "sy",
                                                                            "zy")},
               opset=opset, input_names=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])


def test_qlinear_matmul_per_column_b_matches_onnxruntime() -> None:
    a, b = _ints((3, 6), "uint8"), _ints((6, 4), "int8")
    inits = {"sa": np.array(0.011, np.float32), "za": np.array(3, np.uint8),
             "sb": np.array([0.007, 0.01, 0.002, 0.02], np.float32),
             "zb": np.array([0, 0, 0, 0], np.int8), "sy": np.array(0.03, np.float32),
             "zy": np.array(100, np.uint8)}
    check_node("QLinearMatMul", {"a": a, "b": b}, initializers=inits, opset=21,
               input_names=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])


@pytest.mark.parametrize("attrs", [{}, {"pads": [1, 0, 2, 1], "strides": [2, 1],
                                        "dilations": [1, 2], "group": 2},
                                   {"auto_pad": "SAME_UPPER", "strides": [2, 2]}])
def test_conv_integer_matches_onnxruntime(attrs: dict[str, Any]) -> None:
    x, w = _ints((2, 4, 7, 8), "uint8"), _ints((6, 4 // attrs.get("group", 1), 3, 2), "uint8")
    check_node("ConvInteger", {"x": x}, attrs,
               initializers={"w": w, "xz": np.array(128, np.uint8), "wz": np.array(7, np.uint8)})
    check_node("ConvInteger", {"x": x, "w": w}, attrs, input_names=["x", "w"])


def test_conv_integer_1d_matches_onnxruntime() -> None:
    x, w = _ints((2, 3, 9), "uint8"), _ints((4, 3, 3), "uint8")
    check_node("ConvInteger", {"x": x}, {"pads": [2, 1], "strides": [2]},
               initializers={"w": w, "xz": np.array(3, np.uint8)})


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_conv_matches_onnxruntime(dtype: str) -> None:
    x, w = _ints((1, 4, 6, 6), dtype), _ints((4, 2, 3, 3), "int8")
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(5, dtype), "w": w,
             "ws": np.array([0.01, 0.002, 0.03, 0.004], np.float32),
             "wz": np.zeros(4, np.int8), "ys": np.array(0.05, np.float32),
             "yz": np.array(9, dtype), "bias": rng.integers(-900, 900, 4).astype(np.int32)}
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"]
    check_node("QLinearConv", {"x": x}, {"pads": [1, 1, 1, 1], "group": 2},
               initializers=inits, input_names=names)
    check_node("QLinearConv", {"x": x}, {"strides": [2, 2]},
               initializers={**inits, "w": _ints((4, 4, 3, 3), "int8")},
               input_names=names[:-1])


def _one_node(op: str, inputs: list[tuple[str, int, list[int]]], out_type: int,
              **attrs: Any) -> onnx.ModelProto:
    node = helper.make_node(op, [name for name, _, _ in inputs], ["y"], name="n", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, s)
                                            for n, t, s in inputs],
                              [helper.make_tensor_value_info("y", out_type, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_quantized_compute_rejects_what_it_cannot_run() -> None:
    u8, f32 = TensorProto.UINT8, TensorProto.FLOAT
    conv3d = _one_node("ConvInteger", [("x", u8, [1, 1, 3, 3, 3]), ("w", u8, [1, 1, 2, 2, 2])],
                       TensorProto.INT32)
    with pytest.raises(UnsupportedOpError, match="ConvInteger node n: only 1-d and 2-d "
                                                 "convolutions are supported"):
        from_onnx(conv3d)
    mixed = _one_node("MatMulInteger", [("a", u8, [2, 3]), ("b", u8, [3, 2]),
                                        ("az", TensorProto.INT8, [])], TensorProto.INT32)
    with pytest.raises(BuildError, match="MatMulInteger node n: A's zero point has type int8, "
                                         "A has uint8"):
        from_onnx(mixed)
    names = [("x", u8, [1, 1, 3, 3]), ("xs", f32, []), ("xz", u8, []),
             ("w", u8, [1, 1, 2, 2]), ("ws", f32, []), ("wz", u8, []), ("ys", f32, []),
             ("yz", u8, []), ("bias", f32, [1])]
    with pytest.raises(BuildError, match="QLinearConv node n: the bias must be int32, got "
                                         "float32"):
        from_onnx(_one_node("QLinearConv", names, u8))
