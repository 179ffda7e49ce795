"""Converters for the ops of ONNX's non-default domains.

``ai.onnx.ml``: Binarizer, ArrayFeatureExtractor, TreeEnsemble (opset 5; its node and
leaf attributes become constant tables, see :mod:`relaxvm.kernels.ml`) and LabelEncoder
(numeric keys and values; relaxvm has no string tensors, so string keys, values or
inputs are unsupported). ``ai.onnx.preview.training``: Adagrad, Adam and Momentum, one
variadic kernel call per node (:mod:`relaxvm.kernels.training`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.compiler.ir import Value
from relaxvm.frontend.onnx.context import Context, OnnxNode
from relaxvm.frontend.onnx.registry import converter
from relaxvm.kernels.ml import POST_TRANSFORMS

ML = "ai.onnx.ml"
TRAINING = "ai.onnx.preview.training"
_NO_STRINGS = "relaxvm has no string tensors"


# -- ai.onnx.ml: elementwise and indexing ------------------------------------------------
@converter("Binarizer", domain=ML)
def _binarizer(ctx: Context, node: OnnxNode) -> Value:
    return ctx.emit("binarizer", [node.require(0)],
                    {"threshold": float(node.attr("threshold", 0.0))})


@converter("ArrayFeatureExtractor", domain=ML)
def _array_feature_extractor(ctx: Context, node: OnnxNode) -> Value:
    x, idx = node.require(0, "X"), node.require(1, "Y")
    if idx.dtype != "int64":
        raise node.fail(f"input Y (indices) must be int64, got {idx.dtype}")
    return ctx.emit("array_feature_extractor", [x, idx])


# -- ai.onnx.ml: TreeEnsemble ---------------------------------------------------------------
def _ints(node: OnnxNode, name: str, default: Any = None) -> np.ndarray:
    value = node.attr(name, default)
    return np.asarray([] if value is None else value, dtype=np.int64).reshape(-1)


def _targets(node: OnnxNode, side: str, n_nodes: int, n_leaves: int) -> np.ndarray:
    """The ``side`` ("true"/"false") branch of every node: k >= 0 for interior node k,
    ~j for leaf j (the kernel's encoding)."""
    ids, leafs = _ints(node, f"nodes_{side}nodeids"), _ints(node, f"nodes_{side}leafs")
    if len(ids) != n_nodes or len(leafs) != n_nodes:
        raise node.fail(f"nodes_{side}nodeids and nodes_{side}leafs must have one entry per "
                        f"node ({n_nodes}), got {len(ids)} and {len(leafs)}")
    bound = np.where(leafs != 0, n_leaves, n_nodes)
    if np.any((ids < 0) | (ids >= bound)):
        raise node.fail(f"nodes_{side}nodeids point outside the {n_nodes} nodes / "
                        f"{n_leaves} leaves")
    return np.where(leafs != 0, ~ids, ids)


def _depth(node: OnnxNode, roots: np.ndarray, true_t: np.ndarray, false_t: np.ndarray
           ) -> int:
    """The most interior nodes on a root-to-leaf path; BuildError on a cycle."""
    depth, level = 0, {int(r) for r in roots}
    while level:
        depth += 1
        if depth > len(true_t):
            raise node.fail("the nodes_* branches form a cycle")
        nxt = np.concatenate([true_t[sorted(level)], false_t[sorted(level)]])
        level = {int(k) for k in nxt if k >= 0}
    return depth


def _members(node: OnnxNode, modes: np.ndarray) -> np.ndarray:
    """(n_nodes, m) float64: each MEMBER node's set (in node order), padded with NaN."""
    raw = node.attr("membership_values", None)
    values = np.asarray([] if raw is None else raw, dtype=np.float64).reshape(-1)
    sets = np.split(values, np.flatnonzero(np.isnan(values)))
    sets = [s[~np.isnan(s)] for s in sets][:-1] if len(values) else []
    member_nodes = np.flatnonzero(modes == 6)
    if len(sets) != len(member_nodes):
        raise node.fail(f"membership_values holds {len(sets)} NaN-terminated sets for "
                        f"{len(member_nodes)} BRANCH_MEMBER nodes")
    table = np.full((len(modes), max([1, *(len(s) for s in sets)])), np.nan)
    for k, s in zip(member_nodes, sets, strict=True):
        table[k, :len(s)] = s
    return table


@converter("TreeEnsemble", domain=ML)
def _tree_ensemble(ctx: Context, node: OnnxNode) -> Value:
    """TreeEnsemble: validated node/leaf attributes become the kernel's constant tables."""
    x = node.require(0, "X")
    if x.ndim != 2:
        raise node.fail(f"X must be 2-D (samples, features), got {x.type_text()}")
    post = int(node.attr("post_transform", 0))
    if post not in POST_TRANSFORMS:
        raise node.unsupported(f"post_transform {post} (PROBIT is 4) is not supported; "
                               f"NONE, SOFTMAX, LOGISTIC and SOFTMAX_ZERO are")
    modes = np.asarray(node.attr("nodes_modes"), dtype=np.int64).reshape(-1)
    features = _ints(node, "nodes_featureids")
    splits = np.asarray(node.attr("nodes_splits"), dtype=np.float64).reshape(-1)
    weights = np.asarray(node.attr("leaf_weights")).reshape(-1)
    leaf_targets = _ints(node, "leaf_targetids")
    n_nodes, n_leaves = len(modes), len(weights)
    missing = _ints(node, "nodes_missing_value_tracks_true", [0] * n_nodes)
    if not (len(features) == len(splits) == len(missing) == n_nodes) or \
            len(leaf_targets) != n_leaves:
        raise node.fail("the nodes_* attributes and the leaf_* attributes must each have "
                        "equal lengths")
    if np.any((modes < 0) | (modes > 6)):
        raise node.fail(f"nodes_modes must be in 0..6, got {sorted(set(modes.tolist()))}")
    n_targets = int(node.attr("n_targets", int(leaf_targets.max(initial=-1)) + 1))
    if np.any((leaf_targets < 0) | (leaf_targets >= n_targets)):
        raise node.fail(f"leaf_targetids must be in [0, {n_targets}) (n_targets)")
    roots = _ints(node, "tree_roots")
    if len(roots) == 0 or np.any((roots < 0) | (roots >= n_nodes)):
        raise node.fail(f"tree_roots must name nodes in [0, {n_nodes}), got {roots.tolist()}")
    true_t = _targets(node, "true", n_nodes, n_leaves)
    false_t = _targets(node, "false", n_nodes, n_leaves)
    table = np.stack([features, modes, true_t, false_t, missing], axis=1)
    consts = [ctx.const(table), ctx.const(splits), ctx.const(_members(node, modes)),
              ctx.const(leaf_targets), ctx.const(weights.astype(x.dtype)), ctx.const(roots)]
    attrs = {"depth": _depth(node, roots, true_t, false_t), "n_targets": n_targets,
             "aggregate_function": int(node.attr("aggregate_function", 1)),
             "post_transform": post}
    return ctx.emit("tree_ensemble", [x, *consts], attrs)


# -- ai.onnx.ml: LabelEncoder ----------------------------------------------------------------
def _encoder_list(node: OnnxNode, kind: str) -> np.ndarray:
    """The keys or values (``kind``) of a LabelEncoder from whichever attribute is set."""
    given = [a for a in (f"{kind}_tensor", f"{kind}_int64s", f"{kind}_floats",
                         f"{kind}_strings") if a in node.attrs]
    if len(given) != 1:
        raise node.fail(f"exactly one {kind}_* attribute must be set, got {given}")
    name = given[0]
    if name.endswith("strings") or (name.endswith("tensor") and
                                    np.asarray(node.attrs[name]).dtype.kind in "OSU"):
        raise node.unsupported(f"string {kind} ({name}): {_NO_STRINGS}")
    dtype = {"int64s": np.int64, "floats": np.float32}.get(name.split("_")[1])
    return np.asarray(node.attrs[name], dtype=dtype).reshape(-1)


def _encoder_default(node: OnnxNode, values: np.ndarray) -> np.ndarray:
    """The default output value, in the values' dtype."""
    if "default_tensor" in node.attrs:
        default = np.asarray(node.attrs["default_tensor"]).reshape(-1)
        if default.dtype.kind in "OSU" or default.size != 1:
            raise node.unsupported(f"default_tensor must be one number ({_NO_STRINGS}), got "
                                   f"{default.dtype} of {default.size} elements")
        return default.astype(values.dtype)
    key = "default_float" if values.dtype.kind == "f" else "default_int64"
    fallback = -0.0 if values.dtype.kind == "f" else -1
    return np.asarray([node.attr(key, fallback)], dtype=values.dtype)


@converter("LabelEncoder", domain=ML)
def _label_encoder(ctx: Context, node: OnnxNode) -> Value:
    """LabelEncoder on numbers: keys deduplicated (the last one wins) and sorted for the
    kernel's binary search."""
    x = node.require(0, "X")
    if node.opset < 2:
        raise node.unsupported(f"ai.onnx.ml opset {node.opset} LabelEncoder maps strings "
                               f"only: {_NO_STRINGS}")
    keys, values = _encoder_list(node, "keys"), _encoder_list(node, "values")
    if len(keys) != len(values):
        raise node.fail(f"keys and values must have equal lengths, got {len(keys)} and "
                        f"{len(values)}")
    default = _encoder_default(node, values)
    keys = keys.astype(x.dtype)
    unique, last = np.unique(keys[::-1], return_index=True)
    chosen = values[::-1][last]
    return ctx.emit("label_encoder", [x, ctx.const(unique), ctx.const(chosen),
                                      ctx.const(default)])


# -- ai.onnx.preview.training -------------------------------------------------------------------
def _optimizer(ctx: Context, node: OnnxNode, op: str, groups: int, attrs: dict[str, Any]
               ) -> list[Value]:
    """One variadic ``op`` call: inputs R, T and ``groups`` groups of n tensors."""
    inputs = [node.require(i) for i in range(len(node.inputs))]
    n, extra = divmod(len(inputs) - 2, groups)
    if n == 0 or extra:
        raise node.fail(f"expects R, T and {groups} groups of n >= 1 tensors, got "
                        f"{len(inputs)} inputs")
    if len(node.outputs) != (groups - 1) * n:
        raise node.fail(f"expects {(groups - 1) * n} outputs for {n} variables, got "
                        f"{len(node.outputs)}")
    return ctx.emit_multi(op, inputs, attrs)


@converter("Adagrad", domain=TRAINING)
def _adagrad(ctx: Context, node: OnnxNode) -> list[Value]:
    return _optimizer(ctx, node, "adagrad", 3, {
        "norm_coefficient": float(node.attr("norm_coefficient", 0.0)),
        "decay_factor": float(node.attr("decay_factor", 0.0)),
        "epsilon": float(node.attr("epsilon", 1e-6))})


@converter("Adam", domain=TRAINING)
def _adam(ctx: Context, node: OnnxNode) -> list[Value]:
    return _optimizer(ctx, node, "adam", 4, {
        "alpha": float(node.attr("alpha", 0.9)), "beta": float(node.attr("beta", 0.999)),
        "epsilon": float(node.attr("epsilon", 1e-6)),
        "norm_coefficient": float(node.attr("norm_coefficient", 0.0)),
        "norm_coefficient_post": float(node.attr("norm_coefficient_post", 0.0))})


@converter("Momentum", domain=TRAINING)
def _momentum(ctx: Context, node: OnnxNode) -> list[Value]:
    mode = node.attr("mode")
    if mode not in ("standard", "nesterov"):
        raise node.fail(f"mode must be 'standard' or 'nesterov', got {mode!r}")
    return _optimizer(ctx, node, "momentum", 3, {
        "alpha": float(node.attr("alpha")), "beta": float(node.attr("beta")),
        "norm_coefficient": float(node.attr("norm_coefficient")), "mode": mode})
