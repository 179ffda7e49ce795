"""ONNX sequences and optionals resolved while importing
(relaxvm/frontend/onnx/sequence.py), run end to end through the node-suite runner and
checked against onnx.reference (and onnxruntime where it takes the inputs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from relaxvm.errors import ArgumentError, BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx
from relaxvm.testing import onnx_node_suite as suite

rng = np.random.default_rng(5)
F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def tensor(name: str, elem: int = F, shape: Any = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def seq(name: str, elem: int = F, shape: Any = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_sequence_value_info(name, elem, shape)


def opt(name: str, inner: onnx.TypeProto) -> onnx.ValueInfoProto:
    return helper.make_value_info(name, helper.make_optional_type_proto(inner))


def const(name: str, value: Any) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name],
                            value=numpy_helper.from_array(np.asarray(value), name))


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
          outputs: list[onnx.ValueInfoProto], inits: dict[str, np.ndarray] | None = None,
          opset: int = 18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def check(m: onnx.ModelProto, inputs: list[Any], with_ort: bool = True,
          with_reference: bool = True) -> list[Any]:
    """relaxvm's outputs, compared with onnx.reference's and onnxruntime's."""
    got = suite.relaxvm_runner(m, inputs)
    if with_reference:
        suite.compare_outputs(suite.reference_runner(m, inputs), got, 1e-6, 1e-6)
    if with_ort:
        names = [i.name for i in m.graph.input]
        session = ort.InferenceSession(m.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        suite.compare_outputs(session.run(None, dict(zip(names, inputs))), got, 1e-6, 1e-6)
    return got


# -- building and reading sequences --------------------------------------------------------------
def test_construct_at_and_length():
    m = model([helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
               const("neg", np.array(-1, np.int64)),
               helper.make_node("SequenceAt", ["s", "neg"], ["last"]),
               helper.make_node("SequenceLength", ["s"], ["n"])],
              [tensor("a", F, [2]), tensor("b", F, [3]), tensor("c", F, [1, 4])],
              [tensor("last", F, None), tensor("n", I64, [])])
    last, n = check(m, [f32(2), f32(3), f32(1, 4)])
    assert last.shape == (1, 4) and int(n) == 3


def test_insert_erase_and_concat_from_a_sequence_input():
    m = model([const("one", np.array(1, np.int64)),
               helper.make_node("SequenceInsert", ["xs", "t", "one"], ["ins"]),
               helper.make_node("SequenceErase", ["ins"], ["erased"]),
               helper.make_node("SequenceErase", ["erased", "one"], ["kept"]),
               helper.make_node("ConcatFromSequence", ["ins"], ["cat"], axis=-1),
               helper.make_node("ConcatFromSequence", ["kept"], ["stacked"], axis=0,
                                new_axis=1)],
              [seq("xs", F, [2, "k"]), tensor("t", F, [2, 3])],
              [tensor("cat", F, None), tensor("stacked", F, None)])
    xs = [f32(2, 3), f32(2, 3), f32(2, 3)]
    cat, stacked = check(m, [xs, f32(2, 3)])
    assert cat.shape == (2, 12) and stacked.shape == (2, 2, 3)


def test_empty_then_insert_and_identity_return_a_sequence_output():
    m = model([helper.make_node("SequenceEmpty", [], ["e"], dtype=TensorProto.INT64),
               helper.make_node("SequenceInsert", ["e", "x"], ["one"]),
               helper.make_node("SequenceInsert", ["one", "x"], ["two"]),
               helper.make_node("Identity", ["two"], ["y"])],
              [tensor("x", I64, [3])], [seq("y", I64, None)])
    (ys,) = check(m, [np.arange(3, dtype=np.int64)])
    assert len(ys) == 2
    graph = from_onnx(m)
    assert graph.metadata["output_layout"] == [{"sequence": 2}]
    assert graph.metadata["output_names"] == ["y[0]", "y[1]"]


@pytest.mark.parametrize("split, keepdims, attrs", [
    (None, 1, {"axis": 1}),
    (None, 0, {"axis": 0}),
    (np.array(3, np.int64), 1, {"axis": 1}),       # 7 = 3 + 3 + 1
    (np.array([2, 0, 5], np.int64), 1, {"axis": -1}),
])
def test_split_to_sequence(split, keepdims, attrs):
    inits = {} if split is None else {"split": split}
    inputs = ["x"] if split is None else ["x", "split"]
    m = model([helper.make_node("SplitToSequence", inputs, ["s"], keepdims=keepdims, **attrs),
               helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0, new_axis=1)
               if split is None else helper.make_node("Identity", ["s"], ["y"])],
              [tensor("x", F, [3, 7])], [tensor("y", F, None) if split is None else
                                         seq("y", F, None)], inits)
    check(m, [f32(3, 7)])


def test_split_to_sequence_with_a_run_time_split_vector():
    m = model([helper.make_node("SplitToSequence", ["x", "split"], ["s"], axis=0)],
              [tensor("x", F, [5, 2]), tensor("split", I64, [2])], [seq("s", F, None)])
    (pieces,) = check(m, [f32(5, 2), np.array([2, 3], np.int64)])
    assert [p.shape for p in pieces] == [(2, 2), (3, 2)]


# -- SequenceMap ---------------------------------------------------------------------------------
def test_sequence_map_with_a_tensor_and_two_outputs():
    body = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Shape", ["a"], ["sh"])],
        "body", [tensor("a", F, ["n"]), tensor("b", F, [1])],
        [tensor("s", F, ["n"]), tensor("sh", I64, [1])])
    m = model([helper.make_node("SequenceMap", ["xs", "b"], ["sums", "shapes"], body=body)],
              [seq("xs", F, ["n"]), tensor("b", F, [1])],
              [seq("sums", F, None), seq("shapes", I64, None)])
    sums, shapes = check(m, [[f32(4), f32(1), f32(6)], f32(1)])
    assert [s.shape for s in sums] == [(4,), (1,), (6,)]
    assert [int(s[0]) for s in shapes] == [4, 1, 6]


def test_sequence_map_refuses_sequences_of_different_lengths():
    body = helper.make_graph([helper.make_node("Add", ["a", "b"], ["s"])], "body",
                             [tensor("a", F, [2]), tensor("b", F, [2])], [tensor("s", F, [2])])
    m = model([helper.make_node("SequenceMap", ["xs", "ys"], ["out"], body=body)],
              [seq("xs", F, [2]), seq("ys", F, [2])], [seq("out", F, None)])
    with pytest.raises(BuildError, match=r"SequenceMap node .*differ in length: \[1, 2\]"):
        from_onnx(m, sequence_lengths={"xs": 2, "ys": 1})


# -- optionals -----------------------------------------------------------------------------------
def test_optional_wrap_check_and_unwrap():
    float_type = helper.make_tensor_type_proto(F, [3])
    m = model([helper.make_node("Optional", ["x"], ["o"]),
               helper.make_node("OptionalHasElement", ["o"], ["has"]),
               helper.make_node("OptionalGetElement", ["o"], ["got"]),
               helper.make_node("Optional", [], ["none"], type=float_type),
               helper.make_node("OptionalHasElement", ["none"], ["has_none"])],
              [tensor("x", F, [3])],
              [tensor("has", B, []), tensor("got", F, [3]), tensor("has_none", B, [])])
    x = f32(3)
    # onnx.reference wraps OptionalGetElement's tensor in a list and says the empty
    # Optional has an element; onnxruntime follows the spec.
    has, got, has_none = check(m, [x], with_reference=False)
    assert bool(has) and not bool(has_none)
    np.testing.assert_array_equal(got, x)


@pytest.mark.parametrize("value", [None, np.arange(4, dtype=np.float32)])
def test_optional_graph_input_present_or_empty(value):
    m = model([helper.make_node("OptionalHasElement", ["o"], ["has"]),
               helper.make_node("Identity", ["o"], ["same"])],
              [opt("o", helper.make_tensor_type_proto(F, [4]))],
              [tensor("has", B, []), opt("same", helper.make_tensor_type_proto(F, [4]))])
    has, same = suite.relaxvm_runner(m, [value])
    assert bool(has) is (value is not None)
    if value is None:
        assert same is None
    else:
        np.testing.assert_array_equal(same, value)


def test_optional_sequence_input_unwraps_to_its_elements():
    inner = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.INT32,
                                                                          [2]))
    m = model([helper.make_node("OptionalGetElement", ["o"], ["s"])], [opt("o", inner)],
              [seq("s", TensorProto.INT32, None)])
    xs = [np.array([1, 2], np.int32), np.array([3, 4], np.int32)]
    (got,) = check(m, [xs], with_ort=False)
    assert len(got) == 2


def test_optional_get_element_of_an_empty_optional_fails():
    m = model([helper.make_node("Optional", [], ["none"],
                                type=helper.make_tensor_type_proto(F, [3])),
               helper.make_node("OptionalGetElement", ["none"], ["y"])], [],
              [tensor("y", F, [3])])
    with pytest.raises(BuildError, match="OptionalGetElement node .* optional input is empty"):
        from_onnx(m)


# -- control flow ------------------------------------------------------------------------------
def _branch(name: str, value: np.ndarray, wrap: str) -> onnx.GraphProto:
    nodes = [const(f"{name}_x", value),
             helper.make_node("SequenceConstruct", [f"{name}_x"], [f"{name}_s"])]
    out = f"{name}_s"
    if wrap == "optional":
        nodes.append(helper.make_node("Optional", [out], [f"{name}_o"]))
        out = f"{name}_o"
    return helper.make_graph(nodes, name, [], [helper.ValueInfoProto(name=out)])


def test_if_with_a_run_time_condition_selects_sequences_element_by_element():
    m = model([helper.make_node("If", ["c"], ["s"],
                                then_branch=_branch("t", np.arange(3, dtype=np.float32), "seq"),
                                else_branch=_branch("e", -np.ones(3, np.float32), "seq"))],
              [tensor("c", B, [])], [seq("s", F, None)])
    for flag in (True, False):
        check(m, [np.array(flag)], with_ort=False)


def test_if_with_a_run_time_condition_refuses_optionals_of_differing_emptiness():
    empty = helper.make_graph(
        [helper.make_node("Optional", [], ["none"], type=helper.make_sequence_type_proto(
            helper.make_tensor_type_proto(F, [3])))], "t", [], [helper.ValueInfoProto(name="none")])
    m = model([helper.make_node("If", ["c"], ["o"], then_branch=empty,
                                else_branch=_branch("e", np.ones(3, np.float32), "optional"))],
              [tensor("c", B, [])],
              [opt("o", helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, [3])))])
    with pytest.raises(UnsupportedOpError, match=r"If node .*condition is computed at run time"
                                                 r".*optional's emptiness"):
        from_onnx(m)


def _growing_loop(state: onnx.ValueInfoProto, start_empty_optional: bool) -> onnx.GraphProto:
    """A Loop body that appends x[:i+1] to its carried sequence (from an optional state
    that starts empty when ``start_empty_optional``)."""
    nodes = [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
             const("x", np.arange(1, 6, dtype=np.float32)),
             const("one", np.array([1], np.int64)), const("zero", np.array([0], np.int64)),
             helper.make_node("Add", ["i", "one"], ["end"]),
             helper.make_node("Slice", ["x", "zero", "end"], ["piece"])]
    current = "state_in"
    if start_empty_optional:
        nodes += [helper.make_node("OptionalHasElement", ["state_in"], ["has"]),
                  helper.make_node("If", ["has"], ["cur"],
                                   then_branch=helper.make_graph(
                                       [helper.make_node("OptionalGetElement", ["state_in"],
                                                         ["got"])], "then", [],
                                       [helper.ValueInfoProto(name="got")]),
                                   else_branch=helper.make_graph(
                                       [helper.make_node("SequenceEmpty", [], ["fresh"])],
                                       "else", [], [helper.ValueInfoProto(name="fresh")]))]
        current = "cur"
    nodes.append(helper.make_node("SequenceInsert", [current, "piece"], ["state_out"]))
    return helper.make_graph(nodes, "body", [tensor("i", I64, []), tensor("cond_in", B, []),
                                             state],
                             [tensor("cond_out", B, []), seq("state_out", F, None)])


@pytest.mark.parametrize("start_empty_optional", [False, True])
def test_loop_carries_a_growing_sequence(start_empty_optional):
    seq_type = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, None))
    state = opt("state_in", seq_type) if start_empty_optional else seq("state_in", F, None)
    init = [helper.make_node("Optional", [], ["s0"], type=seq_type)] if start_empty_optional \
        else [helper.make_node("SequenceEmpty", [], ["s0"])]
    m = model([*init, const("m", np.array(4, np.int64)), const("go", np.array(True)),
               helper.make_node("Loop", ["m", "go", "s0"], ["res"],
                                body=_growing_loop(state, start_empty_optional))],
              [], [seq("res", F, None)])
    # onnxruntime as the oracle: onnx.reference reads the empty optional as [None]
    (res,) = check(m, [], with_reference=not start_empty_optional)
    assert [r.shape for r in res] == [(1,), (2,), (3,), (4,)]


# -- refusals ------------------------------------------------------------------------------------
def _at_model(position_input: bool) -> onnx.ModelProto:
    inputs = [seq("xs", F, [2])] + ([tensor("p", I64, [])] if position_input else [])
    inits = {} if position_input else {"p": np.array(5, np.int64)}
    return model([helper.make_node("SequenceAt", ["xs", "p"], ["y"], name="at")], inputs,
                 [tensor("y", F, [2])], inits)


def test_sequence_input_needs_its_length():
    with pytest.raises(UnsupportedOpError, match=r"input 'xs' is a sequence; .*"
                                                 r"sequence_lengths=\{'xs': n\}"):
        from_onnx(_at_model(True))


def test_sequence_elements_without_a_shape_need_shape_dict():
    m = model([helper.make_node("Identity", ["xs"], ["ys"])], [seq("xs", F, None)],
              [seq("ys", F, None)])
    with pytest.raises(UnsupportedOpError, match=r"declare no shape; pass shape_dict\['xs'\]"):
        from_onnx(m, sequence_lengths={"xs": 2})
    graph = from_onnx(m, shape_dict={"xs": [(2, 3), (4,)]})
    assert [tuple(v.shape) for v in graph.inputs] == [(2, 3), (4,)]
    assert [v.name for v in graph.inputs] == ["xs[0]", "xs[1]"]


def test_run_time_position_is_refused_naming_the_node():
    with pytest.raises(UnsupportedOpError, match=r"SequenceAt node at: position \(p\) is "
                                                 r"computed at run time"):
        from_onnx(_at_model(True), sequence_lengths={"xs": 2})


def test_position_out_of_range_fails():
    with pytest.raises(BuildError, match="SequenceAt node at: position 5 is out of range for "
                                         "a sequence of 2"):
        from_onnx(_at_model(False), sequence_lengths={"xs": 2})


def test_run_time_scalar_split_is_refused():
    m = model([helper.make_node("SplitToSequence", ["x", "k"], ["s"], name="sts")],
              [tensor("x", F, [6]), tensor("k", I64, [])], [seq("s", F, None)])
    with pytest.raises(UnsupportedOpError, match=r"SplitToSequence node sts: split \(k\) is a "
                                                 r"scalar computed at run time"):
        from_onnx(m)


def test_tensor_ops_refuse_sequences():
    m = model([helper.make_node("Add", ["xs", "xs"], ["y"], name="add")],
              [seq("xs", F, [2])], [tensor("y", F, [2])])
    with pytest.raises(UnsupportedOpError, match=r"Add node add: input 'xs' is a "
                                                 r"seq<float32>\[1\], but Add is converted for "
                                                 r"tensor inputs only"):
        from_onnx(m, sequence_lengths={"xs": 1})


def test_insert_checks_the_dtype_and_concat_needs_elements():
    m = model([helper.make_node("SequenceInsert", ["xs", "t"], ["ys"], name="ins")],
              [seq("xs", F, [2]), tensor("t", I64, [2])], [seq("ys", F, None)])
    with pytest.raises(BuildError, match="SequenceInsert node ins: the tensor is int64, but "
                                         "the sequence holds float32"):
        from_onnx(m, sequence_lengths={"xs": 1})
    m = model([helper.make_node("SequenceEmpty", [], ["e"]),
               helper.make_node("ConcatFromSequence", ["e"], ["y"], axis=0, name="cat")],
              [], [tensor("y", F, None)])
    with pytest.raises(UnsupportedOpError, match="ConcatFromSequence node cat: its sequence "
                                                 "is empty"):
        from_onnx(m)


def test_a_graph_returning_only_an_empty_sequence_is_refused():
    m = model([helper.make_node("SequenceEmpty", [], ["e"])], [], [seq("e", F, None)])
    with pytest.raises(UnsupportedOpError, match="returns no tensors"):
        from_onnx(m)


def test_lengths_and_empties_must_name_matching_inputs():
    m = _at_model(True)
    with pytest.raises(ArgumentError, match="sequence_lengths names 'p', which is not a "
                                            "sequence input"):
        from_onnx(m, sequence_lengths={"xs": 1, "p": 2})
    with pytest.raises(ArgumentError, match="empty_optionals names 'xs', which is not an "
                                            "optional input"):
        from_onnx(m, sequence_lengths={"xs": 1}, empty_optionals=["xs"])
