"""ViT against a NumPy float64 forward pass, and the ViT-Ti/16 layout."""

from __future__ import annotations

import numpy as np
import pytest
from zoo_numpy import Weights, attend, conv2d, gelu_erf, unheads
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.models import ZOO, build_model, count_params, example_inputs, model_ops

EPS = 1e-6


def _tokens(w: Weights, x: np.ndarray, patch: int) -> np.ndarray:
    y = conv2d(x, w("patch_embed.proj.weight"), patch, 0)
    y = y + w("patch_embed.proj.bias")[:, None, None]
    y = y.reshape(y.shape[0], y.shape[1], -1).transpose(0, 2, 1)
    cls = np.broadcast_to(w("cls_token"), (y.shape[0], 1, y.shape[2]))
    return np.concatenate([cls, y], axis=1) + w("pos_embed")


def vit_reference(w: Weights, x: np.ndarray, cfg) -> np.ndarray:
    t = _tokens(w, x, cfg.patch)
    b, n, _ = t.shape
    for i in range(cfg.layers):
        pre = f"blocks.{i}."
        qkv = w.linear(w.layer_norm(t, pre + "norm1", EPS), pre + "attn.qkv")
        q, k, v = qkv.reshape(b, n, 3, cfg.heads, -1).transpose(2, 0, 3, 1, 4)
        t = t + w.linear(unheads(attend(q, k, v)), pre + "attn.proj")
        h = gelu_erf(w.linear(w.layer_norm(t, pre + "norm2", EPS), pre + "mlp.fc1"))
        t = t + w.linear(h, pre + "mlp.fc2")
    return w.dense(w.layer_norm(t, "norm", EPS)[:, 0], "head")


def test_tiny_vit_matches_numpy_forward_pass():
    model = build_model("vit", "tiny", seed=7)
    feeds = example_inputs(model, seed=7, batch=2)
    expected = vit_reference(Weights(initializers(model)),
                             feeds["pixel_values"].astype(np.float64), ZOO["vit"].config("tiny"))
    for run in (run_ort, run_reference):
        assert_agree(run(model, feeds)["logits"], expected)


def test_swapping_two_patches_changes_logits():
    model = build_model("vit", "tiny")
    image = example_inputs(model)["pixel_values"]
    swapped = image.copy()
    swapped[..., :8, :8], swapped[..., :8, 8:16] = image[..., :8, 8:16], image[..., :8, :8]
    before = run_ort(model, {"pixel_values": image})["logits"]
    after = run_ort(model, {"pixel_values": swapped})["logits"]
    assert np.abs(after - before).max() > 1e-3   # position embeddings make order matter


def test_vit_uses_patch_conv_class_token_and_erf_gelu():
    assert {"Conv", "Reshape", "Transpose", "Expand", "Concat", "Gather", "LayerNormalization",
            "Softmax", "Erf", "Gemm"} <= set(model_ops(build_model("vit")))


def test_ti16_size_has_vit_tiny_layout_and_parameter_count():
    model = build_model("vit", "ti16")
    assert count_params(model) == pytest.approx(5_700_000, rel=0.05)
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    assert weights["pos_embed"] == (1, 197, 192)
    assert weights["patch_embed.proj.weight"] == (192, 3, 16, 16)
    assert [n.op_type for n in model.graph.node].count("Softmax") == 12
    assert weights["blocks.0.mlp.fc1.weight"] == (192, 768)
