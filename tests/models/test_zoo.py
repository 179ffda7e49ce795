"""Every zoo model at "tiny": valid ONNX, two runtimes agree, outputs meaningful, seeded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from zoo_oracle import assert_agree, initializers, run_ort, run_reference

from relaxvm.errors import ArgumentError
from relaxvm.models import ZOO, build_model, example_inputs, get_spec, list_models

NAMES = list(ZOO)


@pytest.fixture(scope="module", params=NAMES)
def tiny(request: pytest.FixtureRequest) -> tuple[str, onnx.ModelProto]:
    return request.param, build_model(request.param, "tiny", seed=0)


def test_tiny_model_passes_full_onnx_check(tiny):
    onnx.checker.check_model(tiny[1], full_check=True)


def test_tiny_model_declares_opset_17_and_ir_version_ort_accepts(tiny):
    model = tiny[1]
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8


def test_strict_shape_inference_types_every_node_output(tiny):
    inferred = onnx.shape_inference.infer_shapes(tiny[1], check_type=True, strict_mode=True)
    graph = inferred.graph
    typed = {v.name for v in [*graph.value_info, *graph.output]}
    untyped = [o for node in graph.node for o in node.output if o not in typed]
    assert untyped == []


def test_inferred_output_ranks_match_declared_outputs(tiny):
    graph = onnx.shape_inference.infer_shapes(tiny[1], strict_mode=True).graph
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        run = run_ort(tiny[1], example_inputs(tiny[1]))[out.name]
        assert len(dims) == run.ndim
        fixed = [(i, d.dim_value) for i, d in enumerate(dims) if d.HasField("dim_value")]
        assert all(run.shape[i] == size for i, size in fixed)


def test_onnxruntime_and_reference_evaluator_agree(tiny):
    feeds = example_inputs(tiny[1], seed=1)
    fast, slow = run_ort(tiny[1], feeds), run_reference(tiny[1], feeds)
    assert fast.keys() == slow.keys()
    for name in fast:
        assert_agree(fast[name], slow[name])


def test_outputs_are_finite_and_not_degenerate(tiny):
    for name, value in run_ort(tiny[1], example_inputs(tiny[1])).items():
        assert np.isfinite(value).all(), name
        assert value.std() > 1e-3, name
        assert np.abs(value).max() < 1e3, name   # activations stay O(1), not exploding


def test_batch_of_two_matches_two_single_runs(tiny):
    model = tiny[1]
    feeds = example_inputs(model, seed=3, batch=2)
    both = run_ort(model, feeds)
    for row in range(2):
        single = run_ort(model, {k: v[row:row + 1] for k, v in feeds.items()})
        for name, value in single.items():
            assert_agree(both[name][row:row + 1], value)


def test_different_inputs_give_different_outputs(tiny):
    model = tiny[1]
    first = run_ort(model, example_inputs(model, seed=0))
    second = run_ort(model, example_inputs(model, seed=5))
    name = model.graph.output[0].name
    assert not np.allclose(first[name], second[name])


def test_same_seed_builds_byte_identical_model(tiny):
    name, model = tiny
    assert build_model(name, "tiny", seed=0).SerializeToString() == model.SerializeToString()


def test_different_seed_changes_every_weight_but_not_the_graph(tiny):
    name, model = tiny
    other = build_model(name, "tiny", seed=1)
    assert [n.op_type for n in other.graph.node] == [n.op_type for n in model.graph.node]
    mine, theirs = initializers(model), initializers(other)
    assert mine.keys() == theirs.keys()
    assert all(not np.array_equal(mine[k], theirs[k]) for k in mine)


def test_metadata_records_model_size_and_seed(tiny):
    name, model = tiny
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["relaxvm.model"], meta["relaxvm.size"], meta["relaxvm.seed"]) == \
        (name, "tiny", "0")


def test_list_models_names_every_model_with_tiny_first():
    listed = dict(list_models())
    assert set(listed) == {"mlp", "resnet18", "resnet50", "bert", "gpt2", "gpt2_decode", "vit"}
    for name, sizes in listed.items():
        assert sizes[0] == "tiny" and len(sizes) >= 2
        assert ZOO[name].full_size == sizes[-1]


def test_unknown_model_name_suggests_close_match():
    with pytest.raises(ArgumentError, match=r"build_model: name must be one of .*got 'resnet5'"
                                            r" \(did you mean 'resnet50'\?\)"):
        build_model("resnet5")


def test_non_string_model_name_is_rejected():
    with pytest.raises(ArgumentError, match=r"build_model: name must be one of .*got 3$"):
        get_spec(3)


def test_unknown_size_lists_valid_sizes():
    with pytest.raises(ArgumentError,
                       match=r"build_model: size for 'bert' must be one of \['tiny', 'base'\], "
                             r"got 'large'"):
        build_model("bert", "large")


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_invalid_seed_is_rejected(seed):
    with pytest.raises(ArgumentError, match=r"build_model: seed must be a non-negative int, "
                                            r"got " + repr(seed)):
        build_model("mlp", seed=seed)
