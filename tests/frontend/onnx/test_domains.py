"""Ops of the non-default ONNX domains (ai.onnx.ml, ai.onnx.preview.training) through the
frontend, against onnx.reference; the registry's domain keys; domain error messages."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import relaxvm
from relaxvm.compiler import build, evaluate
from relaxvm.errors import ArgumentError, BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx, supported_ops
from relaxvm.frontend.onnx import registry
from relaxvm.vm import VirtualMachine

ML, TRAINING = "ai.onnx.ml", "ai.onnx.preview.training"
VERSIONS = {ML: 5, TRAINING: 1}


def domain_model(op: str, domain: str, inputs: dict[str, np.ndarray], n_outputs: int = 1,
                 version: int | None = None, default_opset: int | None = None,
                 **attrs: Any) -> onnx.ModelProto:
    """A one-node model of ``domain.op`` (outputs typed by onnx.reference's results)."""
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, list(inputs), outs, domain=domain, name="n", **attrs)
    infos = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                           v.shape) for k, v in inputs.items()]
    opsets = [helper.make_opsetid(domain, version or VERSIONS[domain])]
    if default_opset:
        opsets.append(helper.make_opsetid("", default_opset))
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_empty_tensor_value_info(o) for o in outs])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    results = ReferenceEvaluator(model).run(None, inputs)
    del model.graph.output[:]
    for o, r in zip(outs, results, strict=True):
        model.graph.output.append(helper.make_tensor_value_info(
            o, helper.np_dtype_to_tensor_dtype(np.asarray(r).dtype), None))
    return model


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[list, list]:
    """(graph evaluator, VM) outputs of the converted model."""
    evaluated = evaluate(from_onnx(model), feeds)
    got = VirtualMachine(build(model), relaxvm.cpu())["main"](**feeds)
    got = got if isinstance(got, tuple) else (got,)
    return list(evaluated), [g.numpy() for g in got]


def check_domain(op: str, domain: str, inputs: dict[str, np.ndarray], n_outputs: int = 1,
                 expected: list[np.ndarray] | None = None, rtol: float = 1e-5, **attrs: Any
                 ) -> None:
    """onnx.reference (or ``expected``) against the evaluator and the VM."""
    model = domain_model(op, domain, inputs, n_outputs, **attrs)
    want = expected if expected is not None else ReferenceEvaluator(model).run(None, inputs)
    for got in run_both(model, inputs):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            g, w = np.asarray(g), np.asarray(w)
            assert g.shape == w.shape
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                       atol=1e-6)


# -- the registry --------------------------------------------------------------------------
def test_converters_are_keyed_by_domain() -> None:
    assert registry.get_converter("Relu", "") is registry.get_converter("Relu", "ai.onnx")
    assert registry.get_converter("Adam", TRAINING) is not None
    assert registry.get_converter("Adam") is None
    assert registry.get_converter("Binarizer", "com.example") is None
    assert {"ai.onnx.ml.TreeEnsemble", "ai.onnx.preview.training.Momentum",
            "Relu"} <= set(supported_ops())


def test_a_second_converter_for_a_domain_op_is_refused() -> None:
    with pytest.raises(ValueError, match="ONNX op 'ai.onnx.ml.Binarizer' already has a "
                                         "converter"):
        registry.converter("Binarizer", domain=ML)(lambda ctx, node: None)  # type: ignore


def test_unknown_domain_ops_are_listed_with_their_domain() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Imputer", ["x"], ["t"], domain=ML, name="imp"),
             helper.make_node("Frob", ["t"], ["y"], domain="com.example", name="frob")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[
        helper.make_opsetid(ML, 3), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedOpError, match=r"2 node\(s\) with unsupported ops: "
                                                 r"ai.onnx.ml.Imputer \(node 'imp'\); "
                                                 r"com.example.Frob \(node 'frob'\)"):
        from_onnx(model)


def test_a_node_of_a_domain_the_model_does_not_import_is_rejected() -> None:
    x = np.ones((2, 2), np.float32)
    model = domain_model("Binarizer", ML, {"x": x}, default_opset=19, version=1)
    model.opset_import[0].domain = "ai.onnx.other"
    with pytest.raises(ArgumentError, match="the model imports no opset for domain "
                                            "'ai.onnx.ml'"):
        from_onnx(model)


def test_default_domain_nodes_still_need_a_default_opset() -> None:
    x = np.ones(3, np.float32)
    model = domain_model("Binarizer", ML, {"x": x}, version=1)
    model.graph.node.append(helper.make_node("Relu", ["y0"], ["r"]))
    with pytest.raises(ArgumentError, match="imports no default-domain"):
        from_onnx(model)


# -- ai.onnx.ml ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32"])
def test_binarizer(dtype: str) -> None:
    x = (np.arange(-8, 16).reshape(2, 3, 4) // 3).astype(dtype)
    check_domain("Binarizer", ML, {"x": x}, version=1, threshold=1.0)


@pytest.mark.parametrize("shapes", [((3, 5), (2,)), ((2, 3, 4), (1, 3)), ((5,), (2,))])
def test_array_feature_extractor(shapes: tuple) -> None:
    x = np.random.default_rng(0).normal(size=shapes[0]).astype(np.float32)
    idx = (np.arange(int(np.prod(shapes[1]))) % shapes[0][-1]).reshape(shapes[1])
    check_domain("ArrayFeatureExtractor", ML, {"x": x, "y": idx.astype(np.int64)}, version=1)


def test_array_feature_extractor_needs_int64_indices() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    idx = helper.make_tensor_value_info("i", TensorProto.INT32, [1])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 1])
    node = helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["z"], domain=ML, name="afe")
    model = helper.make_model(helper.make_graph([node], "g", [x, idx], [z]),
                              opset_imports=[helper.make_opsetid(ML, 1)])
    with pytest.raises(BuildError, match=r"input Y \(indices\) must be int64, got int32"):
        from_onnx(model)


def random_forest(rng: np.random.Generator, n_trees: int, n_features: int, n_targets: int,
                  depth: int) -> dict[str, Any]:
    """TreeEnsemble attributes for random trees (every mode, membership sets, NaN rules)."""
    nodes: list[list[Any]] = []  # mode, feature, split, members, missing, true, false
    leaves: list[tuple[int, float]] = []

    def grow(level: int) -> tuple[int, int]:
        """(is_leaf, index) of a new subtree."""
        if level == depth or (level and rng.random() < 0.25):
            leaves.append((int(rng.integers(n_targets)), float(rng.normal())))
            return 1, len(leaves) - 1
        k = len(nodes)
        mode = int(rng.integers(7))
        # No 0.0 members: onnx.reference stops reading a set at a zero.
        members = sorted(set(rng.choice([-2.0, -1.0, 1.0, 2.0], size=2).tolist()))
        nodes.append([mode, int(rng.integers(n_features)), float(rng.integers(-2, 3)) / 2,
                      members, int(rng.integers(2)), None, None])
        nodes[k][5], nodes[k][6] = grow(level + 1), grow(level + 1)
        return 0, k

    roots = [grow(0)[1] for _ in range(n_trees)]
    membership = [v for n in nodes if n[0] == 6 for v in [*n[3], np.nan]]
    attrs: dict[str, Any] = {
        "nodes_modes": numpy_helper.from_array(np.array([n[0] for n in nodes], np.uint8)),
        "nodes_featureids": [n[1] for n in nodes],
        "nodes_splits": numpy_helper.from_array(np.array([n[2] for n in nodes], np.float32)),
        "nodes_missing_value_tracks_true": [n[4] for n in nodes],
        "nodes_trueleafs": [n[5][0] for n in nodes], "nodes_truenodeids": [n[5][1] for n in nodes],
        "nodes_falseleafs": [n[6][0] for n in nodes],
        "nodes_falsenodeids": [n[6][1] for n in nodes],
        "leaf_targetids": [t for t, _ in leaves],
        "leaf_weights": numpy_helper.from_array(np.array([w for _, w in leaves], np.float32)),
        "tree_roots": roots, "n_targets": n_targets}
    if membership:
        attrs["membership_values"] = numpy_helper.from_array(np.array(membership, np.float32))
    return attrs


def forest_input(rng: np.random.Generator, n: int, features: int, dtype: str) -> np.ndarray:
    x = (rng.integers(-3, 4, size=(n, features)) / 2).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tree_ensemble_matches_onnx_reference(seed: int, aggregate: int) -> None:
    rng = np.random.default_rng(seed)
    attrs = random_forest(rng, n_trees=4, n_features=3, n_targets=3, depth=4)
    if aggregate in (2, 3):
        attrs["leaf_targetids"] = [0] * len(attrs["leaf_targetids"])  # every target reached
        attrs["n_targets"] = 1
    x = forest_input(rng, 40, 3, "float64" if seed == 1 else "float32")
    check_domain("TreeEnsemble", ML, {"x": x}, aggregate_function=aggregate, **attrs)


@pytest.mark.parametrize("post", [1, 2, 3])
def test_tree_ensemble_post_transforms(post: int) -> None:
    """onnx.reference ignores post_transform: compare with its raw scores transformed."""
    rng = np.random.default_rng(5)
    attrs = random_forest(rng, n_trees=3, n_features=2, n_targets=4, depth=3)
    x = forest_input(rng, 16, 2, "float32")
    raw = ReferenceEvaluator(domain_model("TreeEnsemble", ML, {"x": x}, **attrs)).run(
        None, {"x": x})[0].astype(np.float64)
    if post == 2:
        want = 1 / (1 + np.exp(-raw))
    else:
        keep = raw != 0 if post == 3 else np.ones(raw.shape, bool)
        e = np.where(keep, np.exp(raw - np.where(keep, raw, -np.inf).max(1, keepdims=True)), 0)
        want = e / np.where(e.sum(1, keepdims=True) == 0, 1, e.sum(1, keepdims=True))
    check_domain("TreeEnsemble", ML, {"x": x}, expected=[want.astype(np.float32)],
                 post_transform=post, **attrs)


def test_tree_ensemble_probit_is_unsupported() -> None:
    rng = np.random.default_rng(0)
    attrs = random_forest(rng, 1, 2, 1, 2)
    model = domain_model("TreeEnsemble", ML, {"x": np.zeros((2, 2), np.float32)},
                         post_transform=4, **attrs)
    with pytest.raises(UnsupportedOpError, match="post_transform 4 .PROBIT is 4. is not "
                                                 "supported"):
        from_onnx(model)


def _small_tree(**over: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "nodes_modes": numpy_helper.from_array(np.array([0, 6], np.uint8)),
        "nodes_featureids": [0, 1], "nodes_splits": numpy_helper.from_array(
            np.array([0.0, 0.0], np.float32)),
        "nodes_trueleafs": [0, 1], "nodes_truenodeids": [1, 0],
        "nodes_falseleafs": [1, 1], "nodes_falsenodeids": [1, 2],
        "leaf_targetids": [0, 0, 0], "leaf_weights": numpy_helper.from_array(
            np.array([1.0, 2.0, 3.0], np.float32)),
        "tree_roots": [0], "n_targets": 1,
        "membership_values": numpy_helper.from_array(np.array([1.0, np.nan], np.float32))}
    attrs.update(over)
    return attrs


def _tree_model(attrs: dict[str, Any]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1])
    node = helper.make_node("TreeEnsemble", ["x"], ["y"], domain=ML, name="te", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y]),
                             opset_imports=[helper.make_opsetid(ML, 5)])


def test_tree_ensemble_small_tree_converts() -> None:
    x = np.array([[-1.0, 1.0], [-1.0, 2.0]], np.float32)
    assert evaluate(from_onnx(_tree_model(_small_tree())), {"x": x})[0].tolist() == [[1.0],
                                                                                    [3.0]]


@pytest.mark.parametrize(("over", "message"), [
    ({"membership_values": numpy_helper.from_array(np.array([1.0], np.float32))},
     "membership_values holds 0 NaN-terminated sets for 1 BRANCH_MEMBER nodes"),
    ({"nodes_trueleafs": [0, 0], "nodes_truenodeids": [1, 0]},
     "the nodes_\\* branches form a cycle"),
    ({"nodes_falsenodeids": [1, 5]}, "nodes_falsenodeids point outside the 2 nodes / 3 "
                                     "leaves"),
    ({"leaf_targetids": [0, 1, 0]}, r"leaf_targetids must be in \[0, 1\) \(n_targets\)"),
    ({"tree_roots": [2]}, r"tree_roots must name nodes in \[0, 2\), got \[2\]"),
    ({"nodes_featureids": [0]}, "the nodes_\\* attributes and the leaf_\\* attributes must "
                                "each have equal lengths")])
def test_tree_ensemble_rejects_malformed_attributes(over: dict, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        from_onnx(_tree_model(_small_tree(**over)))


@pytest.mark.parametrize(("x", "attrs"), [
    (np.array([[3, 1], [7, 0]], np.int64),
     {"keys_int64s": [1, 3, 7, 3], "values_floats": [0.5, 1.5, 2.5, 9.0],
      "default_float": -4.0}),
    (np.array([1.5, -1.0, 2.0], np.float32),
     {"keys_floats": [1.5, 2.0], "values_int64s": [10, 20], "default_int64": 7}),
    (np.array([1, 4, 5], np.int32),
     {"keys_tensor": numpy_helper.from_array(np.array([4, 1], np.int32)),
      "values_tensor": numpy_helper.from_array(np.array([2.0, 3.0], np.float64)),
      "default_tensor": numpy_helper.from_array(np.array([-9.0], np.float64))}),
    (np.array([2, 9], np.int64), {"keys_int64s": [2], "values_int64s": [5]})])
def test_label_encoder_numeric(x: np.ndarray, attrs: dict[str, Any]) -> None:
    check_domain("LabelEncoder", ML, {"x": x}, version=4, **attrs)


def _encoder_model(version: int, **attrs: Any) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2])
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain=ML, name="le", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y]),
                             opset_imports=[helper.make_opsetid(ML, version)])


@pytest.mark.parametrize(("version", "attrs", "message"), [
    (4, {"keys_int64s": [1], "values_strings": ["a"]},
     "string values .values_strings.: relaxvm has no string tensors"),
    (4, {"keys_strings": ["a"], "values_int64s": [1]},
     "string keys .keys_strings.: relaxvm has no string tensors"),
    (1, {"classes_strings": ["a"]}, "ai.onnx.ml opset 1 LabelEncoder maps strings only")])
def test_label_encoder_strings_are_unsupported(version: int, attrs: dict, message: str
                                               ) -> None:
    with pytest.raises(UnsupportedOpError, match=message):
        from_onnx(_encoder_model(version, **attrs))


def test_label_encoder_needs_one_keys_attribute() -> None:
    with pytest.raises(BuildError, match=r"exactly one keys_\* attribute must be set, got "
                                         r"\['keys_int64s', 'keys_floats'\]"):
        from_onnx(_encoder_model(4, keys_int64s=[1], keys_floats=[1.0], values_int64s=[1]))


# -- ai.onnx.preview.training --------------------------------------------------------------------
def _optimizer_inputs(groups: list[str], shapes: list[tuple], dtype: str = "float32"
                      ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    feeds = {"R": np.array(0.1, dtype), "T": np.array(2, np.int64)}
    for g in groups:
        for i, shape in enumerate(shapes):
            feeds[f"{g}{i}"] = rng.uniform(0 if g == "H" else -1, 1, shape).astype(dtype)
    return feeds


@pytest.mark.parametrize("shapes", [[(3,)], [(2,), (2, 3)]])
@pytest.mark.parametrize(("op", "groups", "attrs"), [
    ("Adagrad", ["X", "G", "H"], {"decay_factor": 0.1, "norm_coefficient": 0.01}),
    ("Adam", ["X", "G", "V", "H"], {"alpha": 0.8, "norm_coefficient_post": 0.01}),
    ("Momentum", ["X", "G", "V"], {"alpha": 0.9, "beta": 0.5, "norm_coefficient": 0.0,
                                   "mode": "standard"}),
    ("Momentum", ["X", "G", "V"], {"alpha": 0.9, "beta": 0.5, "norm_coefficient": 0.1,
                                   "mode": "nesterov"})])
def test_optimizers(op: str, groups: list[str], attrs: dict, shapes: list[tuple]) -> None:
    feeds = _optimizer_inputs(groups, shapes)
    check_domain(op, TRAINING, feeds, n_outputs=(len(groups) - 1) * len(shapes), **attrs)


def test_optimizer_needs_a_whole_layout() -> None:
    feeds = _optimizer_inputs(["X", "G"], [(2,)])
    model = domain_model("Momentum", TRAINING, {**feeds, "V0": feeds["X0"]}, n_outputs=2,
                         alpha=0.9, beta=0.5, norm_coefficient=0.0, mode="standard")
    model.graph.node[0].input.pop()
    with pytest.raises(BuildError, match=r"expects R, T and 3 groups of n >= 1 tensors, got "
                                         r"4 inputs"):
        from_onnx(model)


def test_momentum_needs_a_known_mode() -> None:
    feeds = _optimizer_inputs(["X", "G", "V"], [(2,)])
    model = domain_model("Momentum", TRAINING, feeds, n_outputs=2, alpha=0.9, beta=0.5,
                         norm_coefficient=0.0, mode="standard")
    next(a for a in model.graph.node[0].attribute if a.name == "mode").s = b"heavy"
    with pytest.raises(BuildError, match="mode must be 'standard' or 'nesterov', got 'heavy'"):
        from_onnx(model)
