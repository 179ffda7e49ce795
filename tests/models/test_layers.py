"""The building blocks against NumPy float64, run through onnxruntime and onnx.reference."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from zoo_numpy import attend, gelu_erf, gelu_tanh
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import layers
from relaxvm.models.graph_builder import GraphBuilder


def _block_model(shape, block, inputs=1, elem_type=TensorProto.FLOAT):
    """A graph with ``inputs`` inputs named x0.. of ``shape`` whose output is block(b, *xs)."""
    b = GraphBuilder("block", seed=0)
    xs = [b.add_input(f"x{i}", elem_type, list(shape)) for i in range(inputs)]
    b.add_output(block(b, *xs), "y", [])
    model = b.to_model("one block")
    model.graph.output[0].type.tensor_type.ClearField("shape")   # rank left to inference
    return model


def _run_both(model, feeds, expected):
    for run in (run_ort, run_reference):
        assert_agree(run(model, feeds)["y"], expected.astype(np.float32))


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32) * 2


def test_gelu_erf_matches_exact_gelu(x):
    model = _block_model(x.shape, layers.gelu_erf)
    _run_both(model, {"x0": x}, gelu_erf(x.astype(np.float64)))


def test_gelu_tanh_matches_tanh_approximation(x):
    model = _block_model(x.shape, layers.gelu_tanh)
    _run_both(model, {"x0": x}, gelu_tanh(x.astype(np.float64)))


def test_linear_is_matmul_by_stored_weight_plus_bias(x):
    model = _block_model(x.shape, lambda b, t: layers.linear(b, t, "proj", 8, 3))
    w = initializers(model)
    assert w["proj.weight"].shape == (8, 3)
    expected = x.astype(np.float64) @ w["proj.weight"] + w["proj.bias"]
    _run_both(model, {"x0": x}, expected)


def test_gemm_stores_weight_out_by_in_with_trans_b(x):
    flat = x.reshape(10, 8)
    model = _block_model(flat.shape, lambda b, t: layers.gemm(b, t, "fc", 8, 4))
    w = initializers(model)
    assert w["fc.weight"].shape == (4, 8)
    _run_both(model, {"x0": flat}, flat.astype(np.float64) @ w["fc.weight"].T + w["fc.bias"])


def test_layer_norm_normalises_last_axis_then_scales(x):
    model = _block_model(x.shape, lambda b, t: layers.layer_norm(b, t, "ln", 8, 1e-5))
    w = initializers(model)
    x64 = x.astype(np.float64)
    norm = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    _run_both(model, {"x0": x}, norm * w["ln.weight"] + w["ln.bias"])


def test_layer_norm_scale_is_near_one_and_shift_near_zero():
    model = _block_model((1, 256), lambda b, t: layers.layer_norm(b, t, "ln", 256, 1e-5))
    w = initializers(model)
    assert abs(w["ln.weight"].mean() - 1) < 0.02 and abs(w["ln.bias"].mean()) < 0.01


def test_split_then_merge_heads_is_identity(x):
    model = _block_model(x.shape, lambda b, t: layers.merge_heads(
        b, layers.split_heads(b, t, 2, 4), 8))
    _run_both(model, {"x0": x}, x.astype(np.float64))


def test_split_heads_moves_head_axis_before_sequence(x):
    model = _block_model(x.shape, lambda b, t: layers.split_heads(b, t, 2, 4))
    _run_both(model, {"x0": x}, x.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3))


@pytest.mark.parametrize("scale_query", [False, True])
def test_attention_matches_softmax_of_scaled_scores(scale_query):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)).astype(np.float32) for _ in range(3))
    model = _block_model(q.shape, lambda b, *t: layers.attention(
        b, *t, head_dim=4, scale_query=scale_query), inputs=3)
    expected = attend(*(a.astype(np.float64) for a in (q, k, v)))
    _run_both(model, {"x0": q, "x1": k, "x2": v}, expected)


def test_attention_mask_callback_rewrites_scores():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 2, 4, 4)).astype(np.float32) for _ in range(3))
    bias = np.where(np.tril(np.ones((4, 4))) > 0, 0.0, -10000.0)
    model = _block_model(q.shape, lambda b, *t: layers.attention(
        b, *t, head_dim=4, mask=lambda s: b.op("Add", s, b.const(bias.astype(np.float32)))),
        inputs=3)
    expected = attend(*(a.astype(np.float64) for a in (q, k, v)), bias)
    _run_both(model, {"x0": q, "x1": k, "x2": v}, expected)


def test_positions_count_from_start_over_length():
    def block(b, t):
        start = layers.dim_of(b, t, 0)
        return b.op("Cast", layers.positions(b, start, layers.dim_of(b, t, 1)),
                    to=TensorProto.FLOAT)
    model = _block_model((3, 4), block)
    _run_both(model, {"x0": np.zeros((3, 4), np.float32)}, np.arange(3, 7, dtype=np.float64))
