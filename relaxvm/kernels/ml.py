"""Kernels of ONNX's ``ai.onnx.ml`` domain: binarizer, array_feature_extractor,
tree_ensemble and label_encoder (numeric keys and values).

``tree_ensemble`` walks every tree for every sample at once: the state is an (N, trees)
array of node indices, and each of ``depth`` steps evaluates one tree level for all
pairs with index arrays (no loop over samples). Branch targets are encoded in one
integer: ``k >= 0`` is interior node k, ``~j < 0`` is leaf j, so pairs that reached a
leaf simply stay there. ``label_encoder`` looks values up by binary search in the sorted
keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_template

#: TreeEnsemble's aggregate_function codes: AVERAGE, SUM, MIN, MAX.
AGGREGATES = (0, 1, 2, 3)
#: TreeEnsemble's post_transform codes this kernel runs: NONE, SOFTMAX, LOGISTIC,
#: SOFTMAX_ZERO (PROBIT, 4, needs an inverse erf the array modules lack).
POST_TRANSFORMS = (0, 1, 2, 3)
#: TreeEnsemble's node modes: LEQ, LT, GTE, GT, EQ, NEQ, MEMBER.
NODE_MODES = 7
#: The columns of tree_ensemble's ``nodes`` table.
NODE_COLUMNS = ("feature", "mode", "true_target", "false_target", "missing_tracks_true")


@register_template("binarizer")
def binarizer(xp: Any, x: Any, out: Any, threshold: float = 0.0) -> None:
    """out = 1 where x > threshold, else 0, in x's dtype (ONNX ml Binarizer; NaN gives 0)."""
    xp.copyto(out.array, x.array > threshold, casting="unsafe")


@register_template("array_feature_extractor")
def array_feature_extractor(xp: Any, x: Any, indices: Any, out: Any) -> None:
    """out = x[..., indices.ravel()] shaped x.shape[:-1] + (indices.size,) (or (1, size)
    for a 1-D x): ONNX ml ArrayFeatureExtractor; negative indices count from the end."""
    a, idx = x.array, indices.array.reshape(-1)
    n = a.shape[-1]
    if xp is np and idx.size and (idx.min() < -n or idx.max() >= n):
        raise ArgumentError(f"array_feature_extractor: indices must be in [{-n}, {n}) for "
                            f"the last axis, got values from {idx.min()} to {idx.max()}")
    xp.copyto(out.array, xp.take(a, idx, axis=-1).reshape(out.array.shape))


def _conditions(xp: Any, value: Any, split: Any, mode: Any, members: Any) -> Any:
    """The branch test of each (sample, tree) pair: ``value`` against its node's
    ``split`` in the node's ``mode`` (MEMBER: against the row of ``members``)."""
    less, equal = value < split, value == split
    greater = value > split
    member = (members == value[..., None]).any(axis=-1)
    tests = xp.stack([less | equal, less, greater | equal, greater, equal, ~equal, member],
                     axis=-1)
    return xp.take_along_axis(tests, mode[..., None], axis=-1)[..., 0]


def _check_tree_attrs(depth: int, aggregate_function: int, post_transform: int) -> None:
    if int(depth) < 0:
        raise ArgumentError(f"tree_ensemble: depth must be >= 0, got {depth}")
    if int(aggregate_function) not in AGGREGATES:
        raise ArgumentError(f"tree_ensemble: aggregate_function must be one of "
                            f"{AGGREGATES} (AVERAGE, SUM, MIN, MAX), got {aggregate_function}")
    if int(post_transform) not in POST_TRANSFORMS:
        raise ArgumentError(f"tree_ensemble: post_transform must be one of "
                            f"{POST_TRANSFORMS} (NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO), got "
                            f"{post_transform}")


def _leaves(xp: Any, a: Any, nodes: Any, splits: Any, members: Any, roots: Any,
            depth: int) -> Any:
    """The leaf index each (sample, tree) pair ends in, shape (N, trees)."""
    state = xp.broadcast_to(roots.astype(xp.int64), (a.shape[0], roots.shape[0])).copy()
    for _ in range(int(depth)):
        active = state >= 0
        node = xp.where(active, state, 0)
        row = nodes[node]  # (N, trees, columns)
        value = xp.take_along_axis(a, row[..., 0], axis=1)
        cond = _conditions(xp, value, splits[node], row[..., 1], members[node])
        cond = cond | ((row[..., 4] != 0) & xp.isnan(value))
        state = xp.where(active, xp.where(cond, row[..., 2], row[..., 3]), state)
    return ~state


def _aggregate(xp: Any, weights: Any, targets: Any, n_targets: int, how: int) -> Any:
    """(N, n_targets) scores from the leaves' (N, trees) weights and target ids."""
    hit = targets[..., None] == xp.arange(n_targets)  # (N, trees, n_targets)
    w = weights[..., None]
    if how in (0, 1):
        total = xp.where(hit, w, 0).sum(axis=1)
        return total / weights.shape[1] if how == 0 else total
    info = np.finfo(weights.dtype)
    if how == 2:
        return xp.where(hit, w, info.max).min(axis=1)
    return xp.where(hit, w, info.min).max(axis=1)


def _post_transform(xp: Any, scores: Any, how: int) -> Any:
    """NONE, SOFTMAX, LOGISTIC or SOFTMAX_ZERO (a softmax over the non-zero scores,
    zeros staying zero) over each row."""
    if how == 0:
        return scores
    if how == 2:
        return 1.0 / (1.0 + xp.exp(-scores))
    keep = scores != 0 if how == 3 else xp.ones(scores.shape, dtype=bool)
    top = xp.where(keep, scores, -xp.inf).max(axis=1, keepdims=True)
    e = xp.where(keep, xp.exp(scores - xp.where(xp.isfinite(top), top, 0)), 0)
    total = e.sum(axis=1, keepdims=True)
    return e / xp.where(total == 0, 1, total)


@register_template("tree_ensemble")
def tree_ensemble(xp: Any, x: Any, nodes: Any, splits: Any, members: Any, leaf_targets: Any,
                  leaf_weights: Any, roots: Any, out: Any, depth: int,
                  aggregate_function: int = 1, post_transform: int = 0) -> None:
    """ONNX ml TreeEnsemble on x of shape (N, features) into out (N, n_targets).

    ``nodes`` is an int64 (n_nodes, 5) table (:data:`NODE_COLUMNS`; branch targets
    encoded as in the module docstring), ``splits`` the (n_nodes,) thresholds,
    ``members`` an (n_nodes, m) table of each MEMBER node's set padded with NaN,
    ``leaf_targets``/``leaf_weights`` the leaves, ``roots`` each tree's root node and
    ``depth`` the most interior nodes on any root-to-leaf path. A MIN/MAX target no leaf
    reached gets the dtype's largest/smallest value, as in onnx's reference.
    """
    _check_tree_attrs(depth, aggregate_function, post_transform)
    a, o = x.array, out.array
    if a.ndim != 2:
        raise ArgumentError(f"tree_ensemble: x must be 2-D (samples, features), got shape "
                            f"{a.shape}")
    table = nodes.array
    if table.ndim != 2 or table.shape[1] != len(NODE_COLUMNS):
        raise ArgumentError(f"tree_ensemble: nodes must have shape (n_nodes, "
                            f"{len(NODE_COLUMNS)}), got {table.shape}")
    leaf = _leaves(xp, a, table, splits.array, members.array, roots.array, depth)
    weights, targets = leaf_weights.array[leaf], leaf_targets.array[leaf]
    scores = _aggregate(xp, weights, targets, o.shape[1], int(aggregate_function))
    xp.copyto(o, _post_transform(xp, scores, int(post_transform)), casting="unsafe")


@register_template("label_encoder")
def label_encoder(xp: Any, x: Any, keys: Any, values: Any, default: Any, out: Any) -> None:
    """out[i] = values[j] where keys[j] == x[i], else the one-element ``default`` (ONNX ml
    LabelEncoder for numeric keys). ``keys`` must be sorted ascending and unique (NaN, at
    most one, last), which the frontend ensures; a NaN key matches every NaN input."""
    a, k = x.array, keys.array
    if k.ndim != 1 or values.array.shape != k.shape:
        raise ArgumentError(f"label_encoder: keys and values must be 1-D of equal length, "
                            f"got shapes {k.shape} and {values.array.shape}")
    fill = default.array.reshape(-1)[:1].reshape(())
    if k.size == 0:
        xp.copyto(out.array, xp.broadcast_to(fill, a.shape), casting="unsafe")
        return
    pos = xp.minimum(xp.searchsorted(k, a), k.size - 1)
    found = k[pos] == a
    if k.dtype.kind == "f":
        found = found | (xp.isnan(a) & xp.isnan(k[pos]))
    xp.copyto(out.array, xp.where(found, values.array[pos], fill), casting="unsafe")
