"""binarizer, array_feature_extractor, tree_ensemble and label_encoder (ai.onnx.ml)
against onnx.reference and, for tree_ensemble's tables, a per-sample tree walk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, onnx_node_reference, run_kernel, skip_unsupported

from relaxvm.errors import ArgumentError

ML = "ai.onnx.ml"


@pytest.mark.parametrize("dtype", dtype_params("binarizer"))
def test_binarizer_matches_onnx_reference(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    x = (np.arange(-6, 18).reshape(2, 3, 4) / 2).astype(dtype)
    expected = onnx_node_reference("Binarizer", [("x", x)], 1, domain=ML, threshold=1.0)[0]
    got = run_kernel("binarizer", dev, [x], x.shape, dtype, [1.0])
    check("binarizer", got, expected, dtype)


@pytest.mark.parametrize("shapes", [((3, 5), (2,)), ((2, 3, 4), (1, 3)), ((6,), (4,)),
                                    ((2, 5), (2, 2))])
@pytest.mark.parametrize("dtype", dtype_params("array_feature_extractor"))
def test_array_feature_extractor_matches_onnx_reference(dev: Any, dtype: str,
                                                        shapes: tuple) -> None:
    skip_unsupported(dev, dtype)
    x_shape, idx_shape = shapes
    x = np.arange(int(np.prod(x_shape))).reshape(x_shape).astype(dtype)
    idx = (np.arange(int(np.prod(idx_shape))) * 7 % x_shape[-1]).reshape(idx_shape)
    idx = idx.astype(np.int64)
    expected = onnx_node_reference("ArrayFeatureExtractor", [("x", x), ("y", idx)], 1, domain=ML)[0]
    got = run_kernel("array_feature_extractor", dev, [x, idx], expected.shape, dtype)
    check("array_feature_extractor", got, expected, dtype)


def test_array_feature_extractor_rejects_indices_out_of_range(dev: Any) -> None:
    if dev.device_type != 1:
        pytest.skip("the range check runs on the CPU only (no device sync on CUDA)")
    x, idx = np.zeros((2, 3), np.float32), np.array([0, 3], np.int64)
    with pytest.raises(ArgumentError, match=r"array_feature_extractor: indices must be in "
                                            r"\[-3, 3\) for the last axis, got values from 0 "
                                            r"to 3"):
        run_kernel("array_feature_extractor", dev, [x, idx], (2, 2), "float32")


# -- tree_ensemble ------------------------------------------------------------------------------
#: Two trees over 3 features. Tree 0 (root 0): node 0 LEQ f0 <= 0.5 (NaN goes true) ->
#: node 1 MEMBER f1 in {1, 3} -> leaf 0 / leaf 1; else node 2 GT f2 > 0 -> leaf 2 / node 3;
#: node 3 NEQ f0 != 2 -> leaf 3 / leaf 4. Tree 1 (root 4): node 4 EQ f1 == 2 -> leaf 5 /
#: node 5 LT f2 < -1 -> leaf 6 / node 6 GTE f0 >= 1 -> leaf 7 / leaf 8.
NODES = np.array([  # feature, mode, true target, false target, missing tracks true
    [0, 0, 1, 2, 1], [1, 6, ~0, ~1, 0], [2, 3, ~2, 3, 0], [0, 5, ~3, ~4, 0],
    [1, 4, ~5, 5, 0], [2, 1, ~6, 6, 0], [0, 2, ~7, ~8, 0]], np.int64)
SPLITS = np.array([0.5, 0.0, 0.0, 2.0, 2.0, -1.0, 1.0])
MEMBERS = np.full((7, 2), np.nan)
MEMBERS[1] = [1.0, 3.0]
LEAF_TARGETS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2], np.int64)
LEAF_WEIGHTS = np.array([1.0, -2.0, 3.0, 0.5, 4.0, -1.5, 2.5, 0.25, -3.0])
ROOTS = np.array([0, 4], np.int64)
COMPARE = [np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal]


def _walk(sample: np.ndarray, root: int) -> int:
    """The leaf a sample reaches from ``root``: one node at a time, as written."""
    target = root
    while target >= 0:
        feature, mode, true_t, false_t, missing = NODES[target]
        value = sample[feature]
        if mode == 6:
            hit = value in MEMBERS[target][~np.isnan(MEMBERS[target])]
        else:
            hit = bool(COMPARE[mode](value, SPLITS[target]))
        target = true_t if hit or (missing and np.isnan(value)) else false_t
    return int(~target)


def _tree_reference(x: np.ndarray, aggregate: int, post: int) -> np.ndarray:
    leaves = np.array([[_walk(s, r) for r in ROOTS] for s in x.astype(np.float64)])
    fill = {0: 0.0, 1: 0.0, 2: np.finfo(x.dtype).max, 3: np.finfo(x.dtype).min}[aggregate]
    out = np.full((len(x), 3), fill)
    for n, row in enumerate(leaves):
        for leaf in row:
            t, w = LEAF_TARGETS[leaf], LEAF_WEIGHTS[leaf]
            out[n, t] = {0: out[n, t] + w / len(ROOTS), 1: out[n, t] + w,
                         2: min(out[n, t], w), 3: max(out[n, t], w)}[aggregate]
    if post == 2:
        return 1 / (1 + np.exp(-out))
    if post in (1, 3):
        keep = out != 0 if post == 3 else np.ones(out.shape, bool)
        e = np.where(keep, np.exp(out - np.where(keep, out, -np.inf).max(1, keepdims=True)), 0)
        return e / e.sum(1, keepdims=True)
    return out


def _tree_inputs(dtype: str) -> list[np.ndarray]:
    x = np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 5.0], [1.0, 2.0, 0.5], [2.0, 0.0, -2.0],
                  [3.0, 7.0, -0.5], [np.nan, 3.0, 1.0], [0.5, np.nan, np.nan],
                  [-4.0, 1.0, -1.0]], dtype)
    return [x, NODES, SPLITS, MEMBERS, LEAF_TARGETS, LEAF_WEIGHTS.astype(dtype), ROOTS]


@pytest.mark.parametrize("post", [0, 1, 2, 3])
@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", dtype_params("tree_ensemble"))
def test_tree_ensemble_matches_a_per_sample_walk(dev: Any, dtype: str, aggregate: int,
                                                 post: int) -> None:
    skip_unsupported(dev, dtype)
    if post and aggregate in (2, 3):
        pytest.skip("MIN/MAX leave unreached targets at the dtype's extremes; transforming "
                    "those is meaningless")
    inputs = _tree_inputs(dtype)
    expected = _tree_reference(inputs[0], aggregate, post)
    got = run_kernel("tree_ensemble", dev, inputs, (len(inputs[0]), 3), dtype,
                     [3, aggregate, post])
    check("tree_ensemble", got, expected, dtype)


@pytest.mark.parametrize(("attrs", "message"), [
    ([3, 5, 0], r"tree_ensemble: aggregate_function must be one of \(0, 1, 2, 3\) "
                r"\(AVERAGE, SUM, MIN, MAX\), got 5"),
    ([3, 1, 4], r"tree_ensemble: post_transform must be one of \(0, 1, 2, 3\) \(NONE, "
                r"SOFTMAX, LOGISTIC, SOFTMAX_ZERO\), got 4"),
    ([-1, 1, 0], "tree_ensemble: depth must be >= 0, got -1")])
def test_tree_ensemble_rejects_bad_attributes(dev: Any, attrs: list, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        run_kernel("tree_ensemble", dev, _tree_inputs("float32"), (8, 3), "float32", attrs)


def test_tree_ensemble_rejects_a_1d_x(dev: Any) -> None:
    inputs = _tree_inputs("float32")
    inputs[0] = inputs[0][0]
    with pytest.raises(ArgumentError, match=r"tree_ensemble: x must be 2-D \(samples, "
                                            r"features\), got shape \(3,\)"):
        run_kernel("tree_ensemble", dev, inputs, (1, 3), "float32", [3])


# -- label_encoder ------------------------------------------------------------------------------
def _sorted_table(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys sorted and unique, the last duplicate winning (what the frontend passes)."""
    table: dict[Any, Any] = {}
    for k, v in zip(keys.tolist(), values.tolist(), strict=True):
        table["nan" if k != k else k] = v
    numeric = sorted(k for k in table if k != "nan")
    order = numeric + (["nan"] if "nan" in table else [])
    return (np.array([np.nan if k == "nan" else k for k in order], keys.dtype),
            np.array([table[k] for k in order], values.dtype))


@pytest.mark.parametrize("dtype", dtype_params("label_encoder"))
def test_label_encoder_matches_onnx_reference(dev: Any, dtype: str) -> None:
    skip_unsupported(dev, dtype)
    if dtype == "int64":
        keys, attrs = np.array([7, -2, 3, 7, 11]), {"keys_int64s": [7, -2, 3, 7, 11]}
        x = np.array([[3, 4, 7], [-2, 11, 0]], np.int64)
    else:
        raw = [1.5, -2.0, np.nan, 0.0, 1.5]
        keys = np.array(raw, dtype)
        attrs = {"keys_tensor": __import__("onnx").numpy_helper.from_array(keys)}
        x = np.array([[1.5, np.nan, 2.0], [-2.0, 0.0, -0.0]], dtype)
    values = np.array([10.0, 20.0, 30.0, 40.0, 50.0], np.float32)
    expected = onnx_node_reference("LabelEncoder", [("x", x)], 4, domain=ML,
                                   values_floats=values.tolist(), default_float=-1.0,
                                   **attrs)[0]
    if dtype != "int64":  # the spec: a NaN key matches every NaN (onnx.reference misses it)
        expected = np.where(np.isnan(x), np.float32(30.0), expected)
    k, v = _sorted_table(keys, values)
    got = run_kernel("label_encoder", dev, [x, k, v, np.array([-1.0], np.float32)], x.shape,
                     "float32")
    check("label_encoder", got, expected, "float32")


def test_label_encoder_with_no_keys_gives_the_default(dev: Any) -> None:
    x = np.array([1, 2], np.int64)
    got = run_kernel("label_encoder", dev, [x, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                            np.array([9], np.int64)], x.shape, "int64")
    assert got.tolist() == [9, 9]


def test_label_encoder_rejects_mismatched_tables(dev: Any) -> None:
    x = np.array([1, 2], np.int64)
    with pytest.raises(ArgumentError, match=r"label_encoder: keys and values must be 1-D of "
                                            r"equal length, got shapes \(2,\) and \(3,\)"):
        run_kernel("label_encoder", dev, [x, np.array([1, 2]), np.array([1, 2, 3]),
                                          np.array([0])], x.shape, "int64")
