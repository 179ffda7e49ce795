"""The ONNX backend node tests: the harness itself, validated with onnx's reference
evaluator, and relaxvm run over every generated case it supports.

Cases are generated once into the cache (``RELAXVM_ONNX_CASES`` or
``~/.cache/relaxvm/onnx-node-tests/<onnx version>``; about 6 s) and reused afterwards.
"""

from __future__ import annotations

import os
import re
import sys

import ml_dtypes
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import relaxvm  # noqa: E402
from relaxvm.errors import UnsupportedOpError  # noqa: E402
from relaxvm.testing import onnx_node_suite as suite  # noqa: E402

CASES = suite.list_cases()
BY_NAME = {case.name: case for case in CASES}


# -- relaxvm over every case ------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_relaxvm_matches_onnx_expected_outputs(case):
    if case.op in suite.RANDOM_OPS or suite.RANDOM_OPS & set(case.ops):
        pytest.skip("random outputs: no implementation can reproduce onnx's draws")
    loaded = suite.load_case(case)
    try:
        outputs = suite.relaxvm_runner(loaded.model, loaded.inputs)
    except UnsupportedOpError as exc:
        pytest.skip(f"unsupported: {str(exc).splitlines()[0]}")
    suite.compare_outputs(loaded.expected, outputs, case.rtol, case.atol)


# -- the generated cache ------------------------------------------------------------------------
def test_cache_holds_every_case_with_model_and_data():
    assert len(CASES) > 1500 and len(BY_NAME) == len(CASES)
    for case in CASES[::50]:
        assert (case.path / "model.onnx").is_file()
        assert list((case.path / "test_data_set_0").glob("output_*.pb"))
    assert BY_NAME["test_abs"].op == "Abs" and BY_NAME["test_abs"].ops == ("Abs",)
    expanded = BY_NAME["test_softmax_axis_0_expanded"]
    assert expanded.expanded and expanded.op == "Softmax" and "Softmax" not in expanded.ops
    assert (BY_NAME["test_abs"].rtol, BY_NAME["test_abs"].atol) == (1e-3, 1e-7)


def test_generate_reuses_a_cache_made_by_the_same_onnx_version():
    root = suite.default_cache_dir()
    manifest = root / suite.MANIFEST
    before = manifest.stat().st_mtime_ns
    assert suite.generate_cases(root) == root
    assert manifest.stat().st_mtime_ns == before


def test_cache_folder_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(suite.ENV_VAR, str(tmp_path / "cases"))
    assert suite.default_cache_dir() == tmp_path / "cases"
    monkeypatch.delenv(suite.ENV_VAR)
    assert suite.default_cache_dir().parts[-3:] == ("relaxvm", "onnx-node-tests",
                                                    onnx.__version__)


def test_list_cases_filters_by_name_pattern():
    names = [c.name for c in suite.list_cases(pattern=r"^test_relu$|^test_tanh")]
    assert names == sorted(names) and "test_relu" in names and "test_tanh" in names
    assert all(n == "test_relu" or n.startswith("test_tanh") for n in names)


def test_list_cases_without_a_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"list_cases: no manifest.json in {tmp_path}; run generate_cases() first")):
        suite.list_cases(tmp_path, generate=False)


def test_load_case_reads_inputs_and_expected_outputs():
    add = suite.load_case(BY_NAME["test_add"])
    assert [i.name for i in add.model.graph.input] == ["x", "y"]
    x, y = add.inputs
    np.testing.assert_array_equal(add.expected[0], x + y)
    abs_case = suite.load_case(BY_NAME["test_abs"])
    np.testing.assert_array_equal(abs_case.expected[0], np.abs(abs_case.inputs[0]))


def test_load_case_reads_sequences_and_optionals():
    seq = suite.load_case(BY_NAME["test_sequence_insert_at_back"])
    assert isinstance(seq.inputs[0], list) and isinstance(seq.expected[0], list)
    assert len(seq.expected[0]) == len(seq.inputs[0]) + 1
    empty = suite.load_case(BY_NAME["test_optional_get_element_optional_sequence"])
    assert isinstance(empty.expected[0], list)


# -- comparing outputs --------------------------------------------------------------------------
def test_compare_accepts_differences_within_tolerance():
    want = np.array([1.0, 100.0, 0.0], "float32")
    suite.compare_outputs([want], [want * np.float32(1 + 5e-4)], rtol=1e-3, atol=1e-7)
    suite.compare_outputs([np.array([np.nan, 1.0])], [np.array([np.nan, 1.0])])


def test_compare_rejects_differences_beyond_tolerance():
    want = np.array([1.0, 2.0], "float32")
    with pytest.raises(AssertionError, match=r"(?s)output 0: Not equal to tolerance rtol=0.001, "
                                             r"atol=1e-07.*Mismatched elements: 1 / 2"):
        suite.compare_outputs([want], [np.array([1.0, 2.01], "float32")])


@pytest.mark.parametrize("got, message", [
    (np.zeros((2, 1), "float32"), "output 0: expected float32[2], got float32[2, 1]"),
    (np.zeros(2, "float64"), "output 0: expected float32[2], got float64[2]"),
    (None, "output 0: expected float32[2], got None"),
])
def test_compare_requires_same_shape_and_dtype(got, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        suite.compare_outputs([np.zeros(2, "float32")], [got])


def test_compare_counts_outputs():
    with pytest.raises(AssertionError, match="expected 2 outputs, got 1"):
        suite.compare_outputs([np.zeros(1), np.zeros(1)], [np.zeros(1)])


def test_compare_walks_sequences_and_strings():
    suite.compare_outputs([[np.ones(2), np.zeros(3)]], [(np.ones(2), np.zeros(3))])
    with pytest.raises(AssertionError, match=re.escape("output 0[1]: expected float64[3]")):
        suite.compare_outputs([[np.ones(2), np.zeros(3)]], [[np.ones(2), np.zeros(4)]])
    suite.compare_outputs([np.array(["a", "bc"], dtype=object)], [np.array(["a", "bc"])])
    with pytest.raises(AssertionError):
        suite.compare_outputs([np.array(["a"], dtype=object)], [np.array(["b"])])


def test_compare_allows_two_bfloat16_steps():
    want = np.array([1.0, 2.0], ml_dtypes.bfloat16)
    near = np.array([1.0 + 2 ** -7, 2.0], ml_dtypes.bfloat16)
    suite.compare_outputs([want], [near])
    far = np.array([1.0625, 2.0], ml_dtypes.bfloat16)
    with pytest.raises(AssertionError, match="output 0"):
        suite.compare_outputs([want], [far])


def test_compare_allows_two_float16_steps_but_not_three():
    want = np.array([1.0, 2.0], np.float16)  # a step at 1.0 is 2 ** -10
    two = want.copy()
    two[0] = np.nextafter(np.nextafter(want[0], np.float16(2)), np.float16(2))
    suite.compare_outputs([want], [two])
    three = two.copy()
    three[0] = np.nextafter(two[0], np.float16(2))
    with pytest.raises(AssertionError, match="output 0"):
        suite.compare_outputs([want], [three])


def test_compare_reads_relaxvm_tensors():
    want = np.arange(4, dtype="int32")
    suite.compare_outputs([want], [relaxvm.tensor(want)])


# -- running and classifying ----------------------------------------------------------------
def test_run_case_classifies_pass_fail_unsupported_and_error():
    case = BY_NAME["test_relu"]

    def right(model, inputs):
        return [np.maximum(inputs[0], 0)]

    def wrong(model, inputs):
        return [np.maximum(inputs[0], 0) + 1]

    def unsupported(model, inputs):
        raise UnsupportedOpError("from_onnx: unsupported ops: Relu (node 'y')")

    def broken(model, inputs):
        raise ZeroDivisionError("oops")

    results = [suite.run_case(case, runner) for runner in (right, wrong, unsupported, broken)]
    assert [r.status for r in results] == ["pass", "fail", "unsupported", "error"]
    assert all(r.name == "test_relu" and r.op == "Relu" and r.seconds >= 0 for r in results)
    assert "Mismatched elements" in results[1].message
    assert results[2].message == "from_onnx: unsupported ops: Relu (node 'y')"
    assert results[3].message == "ZeroDivisionError: oops"


def test_summarize_counts_overall_and_per_op():
    results = [suite.CaseResult("a", "Add", "pass"), suite.CaseResult("b", "Add", "fail"),
               suite.CaseResult("c", "Abs", "unsupported")]
    summary = suite.summarize(results)
    assert summary["overall"] == {"pass": 1, "fail": 1, "unsupported": 1, "error": 0}
    assert summary["per_op"] == {"Abs": {"pass": 0, "fail": 0, "unsupported": 1, "error": 0},
                                 "Add": {"pass": 1, "fail": 1, "unsupported": 0, "error": 0}}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_reference_evaluator_passes_nearly_every_case():
    """The harness, run with onnx's own evaluator, must agree with onnx's stored outputs."""
    results = suite.run_cases(CASES, suite.reference_runner)
    summary = suite.summarize(results)["overall"]
    assert summary["pass"] >= 1850, summary
    known = re.compile(r"bernoulli|image_decoder|scatter_with|scatter_without|scan_sum|"
                       r"range_.*_expanded|if_opt")
    unexpected = [(r.name, r.message[:200]) for r in results
                  if r.status != "pass" and not known.search(r.name)]
    assert unexpected == []


def test_relaxvm_runner_reports_unsupported_while_the_pipeline_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "relaxvm.compiler", None)
    loaded = suite.load_case(BY_NAME["test_relu"])
    with pytest.raises(UnsupportedOpError, match=r"relaxvm_runner: the ONNX pipeline "
                                                 r"\(relaxvm.frontend.from_onnx, "
                                                 r"relaxvm.compiler.build, relaxvm.vm."
                                                 r"VirtualMachine\) is not available yet"):
        suite.relaxvm_runner(loaded.model, loaded.inputs)
    result = suite.run_case(loaded, suite.relaxvm_runner)
    assert result.status == "unsupported"


def test_relaxvm_runner_drives_frontend_build_and_vm(monkeypatch):
    """With stand-ins for the pipeline: the runner's wiring and output flattening."""
    calls = []

    class FakeVM:
        def __init__(self, exe, device):
            calls.append(("vm", exe, device))

        def __getitem__(self, name):
            calls.append(("fn", name))
            return lambda x: (relaxvm.tensor(np.maximum(x, 0)), relaxvm.tensor(x))

    def build(graph, target):
        calls.append(("build", graph, target))
        return "exe"

    monkeypatch.setattr(suite, "_relaxvm_pipeline",
                        lambda: (lambda m, **kw: "graph", build, FakeVM))
    loaded = suite.load_case(BY_NAME["test_relu"])
    outputs = suite.relaxvm_runner(loaded.model, loaded.inputs)
    assert calls == [("build", "graph", "cpu"), ("vm", "exe", relaxvm.cpu(0)), ("fn", "main")]
    assert isinstance(outputs[0], np.ndarray)
    np.testing.assert_array_equal(outputs[0], np.maximum(loaded.inputs[0], 0))
    with pytest.raises(UnsupportedOpError, match="map inputs are not supported"):
        suite.relaxvm_runner(loaded.model, [{1: np.zeros(1)}])


def test_generating_into_a_new_folder_writes_a_complete_cache(tmp_path):
    root = suite.generate_cases(tmp_path / "fresh")
    cases = suite.list_cases(root, generate=False)
    assert [c.name for c in cases] == [c.name for c in CASES]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "staging left behind"


def test_relaxvm_runner_compiles_for_concrete_shapes_when_a_size_decides_a_rank():
    # ReduceSum with a run-time axes input of symbolic length: its output rank depends
    # on that length, so the declared-size build is unsupported; the runner then builds
    # for the inputs' shapes (what `relaxvm run` does) and matches onnx.reference.
    from onnx import TensorProto, helper

    from relaxvm.compiler import build
    from relaxvm.frontend import from_onnx
    model = helper.make_model(helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
         helper.make_tensor_value_info("axes", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    axes = np.array([0, 2], np.int64)
    with pytest.raises(UnsupportedOpError, match="axes is read at run time"):
        build(from_onnx(model))
    got = suite.relaxvm_runner(model, [x, axes])
    np.testing.assert_allclose(got[0], suite.reference_runner(model, [x, axes])[0])


def test_relaxvm_runner_passes_sequences_as_elements_and_regroups_outputs():
    # A sequence input goes in as its elements (its length given to the frontend), a
    # sequence output comes back as a list, an empty optional output as None.
    from onnx import TensorProto, helper
    body = helper.make_graph([helper.make_node("Add", ["a", "b"], ["s"])], "body",
                             [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]),
                              helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])],
                             [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n"])])
    opt_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT,
                                                                             [1]))
    model = helper.make_model(helper.make_graph(
        [helper.make_node("SequenceMap", ["xs", "b"], ["ys"], body=body),
         helper.make_node("SequenceLength", ["xs"], ["n"]),
         helper.make_node("Identity", ["o"], ["o_out"])], "g",
        [helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1]),
         helper.make_value_info("o", opt_type)],
        [helper.make_tensor_sequence_value_info("ys", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_value_info("o_out", opt_type)]),
        opset_imports=[helper.make_opsetid("", 18)])
    xs = [np.arange(3, dtype=np.float32), np.ones(5, np.float32)]
    b = np.array([2.0], np.float32)
    ys, n, o_out = suite.relaxvm_runner(model, [xs, b, None])
    assert isinstance(ys, list) and [y.shape for y in ys] == [(3,), (5,)]
    np.testing.assert_array_equal(ys[1], xs[1] + 2)
    assert int(n) == 2 and o_out is None
    ys, n, o_out = suite.relaxvm_runner(model, [xs[:1], b, b])
    assert len(ys) == 1 and int(n) == 1
    np.testing.assert_array_equal(o_out, b)


def test_relaxvm_runner_gives_element_shapes_when_declared_sizes_are_not_enough():
    # Elements that declare no shape: the first build is unsupported, the runner then
    # builds with shape_dict holding the list of element shapes.
    from onnx import TensorProto, helper
    model = helper.make_model(helper.make_graph(
        [helper.make_node("ConcatFromSequence", ["xs"], ["y"], axis=0)], "g",
        [helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 18)])
    xs = [np.ones((2, 3), np.float32), np.zeros((1, 3), np.float32)]
    got = suite.relaxvm_runner(model, [xs])
    suite.compare_outputs(suite.reference_runner(model, [xs]), got)


def test_nest_outputs_follows_the_layout():
    from relaxvm.frontend.onnx.sequence import nest_outputs
    layout = ["tensor", {"sequence": 2}, {"optional": None}, {"optional": {"sequence": 0}},
              {"optional": "tensor"}]
    assert nest_outputs(layout, [1, 2, 3, 4]) == [1, [2, 3], None, [], 4]
    assert nest_outputs(None, (1, 2)) == [1, 2]
    with pytest.raises(ValueError, match="1 outputs left over"):
        nest_outputs(["tensor"], [1, 2])
