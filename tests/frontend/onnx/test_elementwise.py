"""Elementwise converters against onnxruntime (relaxvm/frontend/onnx/elementwise.py)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from tests.frontend.onnx.onnx_case import check_node

rng = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def positive(*shape: int) -> np.ndarray:
    return (rng.random(shape) + 0.5).astype(np.float32)


BINARY = ["Add", "Sub", "Mul", "Div", "Equal", "Less", "LessOrEqual", "Greater",
          "GreaterOrEqual"]


@pytest.mark.parametrize("op", BINARY)
def test_binary_op_broadcasts_like_onnxruntime(op: str) -> None:
    check_node(op, {"a": f32(2, 3, 4), "b": f32(3, 1)})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical_op_matches_onnxruntime(op: str) -> None:
    check_node(op, {"a": rng.random((3, 4)) > 0.5, "b": rng.random((4,)) > 0.5})


def test_integer_division_truncates_toward_zero() -> None:
    a = np.array([7, -7, 7, -7, 0], np.int64)
    b = np.array([2, 2, -2, -2, 3], np.int64)
    check_node("Div", {"a": a, "b": b})


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_follows_fmod_attribute(fmod: int) -> None:
    a = np.array([5, -5, 5, -5], np.int64) if fmod == 0 else f32(4) * 5
    b = np.array([3, 3, -3, -3], np.int64) if fmod == 0 else f32(4) + 3
    check_node("Mod", {"a": a, "b": b}, {"fmod": fmod})


def test_pow_casts_integer_exponent_to_base_type() -> None:
    check_node("Pow", {"a": positive(3, 4)}, initializers={"e": np.array(3, np.int64)})


UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Floor", "Ceil", "Round", "Sin",
         "Cos", "Atan", "Sinh", "Sign", "Erf", "Softplus", "Asinh"]


@pytest.mark.parametrize("op", UNARY)
def test_unary_op_matches_onnxruntime(op: str) -> None:
    check_node(op, {"x": f32(3, 5)}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal", "Acosh"])
def test_unary_op_on_positive_inputs_matches_onnxruntime(op: str) -> None:
    check_node(op, {"x": positive(4, 3) + (1.0 if op == "Acosh" else 0.0)})


@pytest.mark.parametrize("op,attrs", [
    ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}), ("Selu", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("Softsign", {}),
    ("Mish", {}), ("ThresholdedRelu", {"alpha": 0.3}), ("Celu", {"alpha": 0.5}),
])
def test_activation_matches_onnxruntime(op: str, attrs: dict) -> None:
    check_node(op, {"x": f32(2, 6)}, attrs, rtol=1e-5, atol=1e-5, opset=18)


def test_gelu_opset20_matches_onnxruntime() -> None:
    check_node("Gelu", {"x": f32(2, 6)}, {"approximate": "tanh"}, opset=20, atol=1e-5)


def test_prelu_uses_slope_for_negatives() -> None:
    check_node("PRelu", {"x": f32(2, 3, 4)}, initializers={"slope": positive(3, 1)})


@pytest.mark.parametrize("op", ["Max", "Min", "Sum", "Mean"])
def test_variadic_op_combines_three_inputs(op: str) -> None:
    check_node(op, {"a": f32(2, 3), "b": f32(3), "c": f32(2, 1)})


def test_where_selects_between_branches() -> None:
    check_node("Where", {"c": rng.random((3, 4)) > 0.5, "a": f32(3, 4), "b": f32(4)})


@pytest.mark.parametrize("to,dtype", [(TensorProto.INT32, np.int32),
                                      (TensorProto.FLOAT16, np.float16),
                                      (TensorProto.BOOL, np.bool_)])
def test_cast_converts_element_type(to: int, dtype: type) -> None:
    check_node("Cast", {"x": f32(3, 4) * 3}, {"to": to})


def test_castlike_takes_type_of_second_input() -> None:
    check_node("CastLike", {"x": f32(5) * 4, "like": np.zeros(1, np.int64)})


def test_clip_with_constant_bounds_before_and_after_opset_11() -> None:
    check_node("Clip", {"x": f32(4, 4)}, initializers={"lo": np.float32(-0.5),
                                                       "hi": np.float32(0.5)})
    check_node("Clip", {"x": f32(4, 4)}, {"min": -0.2, "max": 0.3}, opset=10)


def test_clip_with_runtime_bounds_uses_maximum_and_minimum() -> None:
    check_node("Clip", {"x": f32(4, 4), "lo": np.array(-0.5, np.float32),
                        "hi": np.array(0.4, np.float32)})


def test_isinf_and_isnan_flag_special_values() -> None:
    x = np.array([1.0, np.inf, -np.inf, np.nan, 0.0], np.float32)
    check_node("IsInf", {"x": x})
    check_node("IsInf", {"x": x}, {"detect_negative": 0})
    check_node("IsNaN", {"x": x})


def test_identity_and_dropout_pass_input_through() -> None:
    check_node("Identity", {"x": f32(2, 2)})
    check_node("Dropout", {"x": f32(2, 2)})


def test_training_dropout_with_a_constant_zero_ratio_drops_nothing() -> None:
    check_node("Dropout", {"x": f32(2, 3)}, initializers={
        "ratio": np.array(0.0, np.float32), "training_mode": np.array(True)}, n_outputs=2)


def test_training_dropout_with_a_random_mask_is_refused_with_the_reason() -> None:
    from relaxvm.errors import UnsupportedOpError
    from relaxvm.frontend import from_onnx
    from tests.frontend.onnx.onnx_case import make_model
    model = make_model("Dropout", {"x": f32(2, 3)}, initializers={
        "ratio": np.array(0.5, np.float32), "training_mode": np.array(True)})
    with pytest.raises(UnsupportedOpError, match="non-zero ratio draws a random mask"):
        from_onnx(model)
