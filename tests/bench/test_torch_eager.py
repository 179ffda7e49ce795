"""The PyTorch eager peer's interpreter: every op it implements against ``onnx.reference``
on a one-node model, and the errors it raises for forms it does not implement."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from peers.torch_eager import TorchProgram  # noqa: E402

from relaxvm.errors import UnsupportedOpError  # noqa: E402

RNG = np.random.default_rng(0)


def one_node_model(op_type: str, feeds: dict[str, np.ndarray],
                   consts: dict[str, np.ndarray] | None = None, outputs: int = 1,
                   **attrs: object) -> onnx.ModelProto:
    """A model of a single node: ``feeds`` are graph inputs, ``consts`` initializers."""
    consts = consts or {}
    names = [*feeds, *consts]
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in feeds.items()]
    outs = [helper.make_tensor_value_info(f"y{i}", TensorProto.UNDEFINED, None)
            for i in range(outputs)]
    node = helper.make_node(op_type, names, [o.name for o in outs], **attrs)
    inits = [numpy_helper.from_array(a, n) for n, a in consts.items()]
    graph = helper.make_graph([node], "one", ins, outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]
             ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(torch eager outputs, onnx.reference outputs) for the same model and feeds."""
    program = TorchProgram(model, "cpu")
    got = [t.numpy() for t in program({k: torch.from_numpy(v) for k, v in feeds.items()})]
    return got, ReferenceEvaluator(model).run(None, feeds)


def assert_node_matches_reference(op_type: str, feeds: dict[str, np.ndarray],
                                  consts: dict[str, np.ndarray] | None = None,
                                  outputs: int = 1, **attrs: object) -> None:
    got, want = run_both(one_node_model(op_type, feeds, consts, outputs, **attrs), feeds)
    assert len(got) == len(want) == outputs
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def i64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


NODE_CASES = {
    "integer Div truncates toward zero": ("Div", {"a": i64([-7, 7, -8]), "b": i64([2, 2, 3])},
                                          None, 1, {}),
    "Pow broadcasts a scalar": ("Pow", {"a": np.abs(f32(2, 3))},
                                {"b": np.float32(3.0)}, 1, {}),
    "Where selects": ("Where", {"c": RNG.random((2, 3)) > 0.5, "x": f32(2, 3), "y": f32(1, 3)},
                      None, 1, {}),
    "Cast int to float": ("Cast", {"x": i64([[1, -2]])}, None, 1, {"to": TensorProto.FLOAT}),
    "Gemm with scales and transA": ("Gemm", {"a": f32(4, 3), "b": f32(4, 5), "c": f32(1, 5)},
                                    None, 1, {"alpha": 0.5, "beta": 2.0, "transA": 1}),
    "Gemm as nn.Linear": ("Gemm", {"a": f32(2, 3), "w": f32(5, 3), "c": f32(5)}, None, 1,
                          {"transB": 1}),
    "MatMul batched": ("MatMul", {"a": f32(2, 3, 4, 5), "b": f32(2, 3, 5, 2)}, None, 1, {}),
    "Conv grouped with bias": ("Conv", {"x": f32(1, 4, 7, 7), "w": f32(6, 2, 3, 3),
                                        "b": f32(6)}, None, 1,
                               {"group": 2, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "BatchNormalization inference": ("BatchNormalization",
                                     {"x": f32(2, 3, 4, 4), "s": f32(3), "b": f32(3),
                                      "m": f32(3), "v": np.abs(f32(3)) + 0.5}, None, 1,
                                     {"epsilon": 1e-3}),
    "MaxPool padded and strided": ("MaxPool", {"x": f32(1, 2, 9, 9)}, None, 1,
                                   {"kernel_shape": [3, 3], "strides": [2, 2],
                                    "pads": [1, 1, 1, 1]}),
    "GlobalAveragePool": ("GlobalAveragePool", {"x": f32(2, 3, 5, 4)}, None, 1, {}),
    "LayerNormalization over two axes": ("LayerNormalization",
                                         {"x": f32(2, 3, 4), "s": f32(3, 4), "b": f32(3, 4)},
                                         None, 1, {"axis": -2, "epsilon": 1e-5}),
    "Softmax on a middle axis": ("Softmax", {"x": f32(2, 3, 4)}, None, 1, {"axis": 1}),
    "Erf": ("Erf", {"x": f32(3, 4)}, None, 1, {}),
    "Tanh": ("Tanh", {"x": f32(3, 4)}, None, 1, {}),
    "Shape with start and end": ("Shape", {"x": f32(2, 3, 4, 5)}, None, 1,
                                 {"start": 1, "end": -1}),
    "Reshape copies 0 and infers -1": ("Reshape", {"x": f32(2, 3, 4)},
                                       {"s": i64([0, -1, 2])}, 1, {}),
    "Flatten at axis 2": ("Flatten", {"x": f32(2, 3, 4, 5)}, None, 1, {"axis": 2}),
    "Transpose default reverses": ("Transpose", {"x": f32(2, 3, 4)}, None, 1, {}),
    "Gather host indices, negative, axis 1": ("Gather", {"x": f32(3, 5, 2)},
                                              {"i": i64([[-1, 0], [2, -5]])}, 1, {"axis": 1}),
    "Gather device indices (embedding)": ("Gather", {"x": f32(10, 4), "i": i64([[1, 9, 3]])},
                                          None, 1, {}),
    "Gather scalar index": ("Gather", {"x": f32(2, 5, 3)}, {"i": i64(2)}, 1, {"axis": 1}),
    "Unsqueeze negative axes": ("Unsqueeze", {"x": f32(2, 3)}, {"a": i64([-1, 0])}, 1, {}),
    "Squeeze given axes": ("Squeeze", {"x": f32(1, 3, 1, 2)}, {"a": i64([2])}, 1, {}),
    "Concat": ("Concat", {"a": f32(2, 1, 3), "b": f32(2, 4, 3)}, None, 1, {"axis": 1}),
    "Split by sizes": ("Split", {"x": f32(2, 6)}, {"s": i64([1, 2, 3])}, 3, {"axis": 1}),
    "Slice with axes and steps": ("Slice", {"x": f32(4, 10, 3)},
                                  {"st": i64([1, -8]), "en": i64([100, 9]), "ax": i64([-2, 0]),
                                   "sp": i64([3, 2])}, 1, {}),
    "Expand is bidirectional": ("Expand", {"x": f32(3, 1)}, {"s": i64([2, 1, 4])}, 1, {}),
    "Range of floats": ("Range", {}, {"a": np.float32(1.0), "b": np.float32(3.0),
                                      "d": np.float32(0.5)}, 1, {}),
    "ConstantOfShape with value": ("ConstantOfShape", {}, {"s": i64([2, 3])}, 1,
                                   {"value": numpy_helper.from_array(np.array([7], np.int64))}),
}


@pytest.mark.parametrize("case", list(NODE_CASES))
def test_torch_eager_op_matches_onnx_reference(case):
    op_type, feeds, consts, outputs, attrs = NODE_CASES[case]
    assert_node_matches_reference(op_type, feeds, consts, outputs, **attrs)


@pytest.mark.parametrize("attr,value", [("value_ints", [3, 4]), ("value_float", 2.5)])
def test_torch_eager_constant_node_forms_match_reference(attr, value):
    const = helper.make_node("Constant", [], ["c"], **{attr: value})
    add = helper.make_node("Add", ["c", "c"], ["y"])
    graph = helper.make_graph([const, add], "g", [], [helper.make_tensor_value_info(
        "y", TensorProto.UNDEFINED, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    got, want = run_both(model, {})
    np.testing.assert_array_equal(got[0], want[0])


# -- error messages ------------------------------------------------------------------------
def test_torch_program_names_every_unsupported_op():
    model = one_node_model("Einsum", {"a": f32(2, 2), "b": f32(2, 2)}, equation="ij,jk->ik")
    with pytest.raises(UnsupportedOpError, match=r"TorchProgram: every op must have a torch "
                                                 r"eager implementation, got unsupported "
                                                 r"\['Einsum'\]"):
        TorchProgram(model, "cpu")


@pytest.mark.parametrize("op_type,feeds,consts,attrs,message", [
    ("Conv", {"x": f32(1, 1, 5, 5), "w": f32(1, 1, 3, 3)}, None, {"pads": [0, 0, 1, 1]},
     r"torch_eager Conv: attribute pads must be symmetric \(begin == end\), got \[0, 0, 1, 1\]"),
    ("Conv", {"x": f32(1, 1, 5, 5), "w": f32(1, 1, 3, 3)}, None, {"auto_pad": "SAME_UPPER"},
     r"torch_eager Conv: attribute auto_pad must be NOTSET, got 'SAME_UPPER'"),
    ("Conv", {"x": f32(1, 1, 5), "w": f32(1, 1, 3)}, None, {},
     r"torch_eager Conv: weight must be 4-D \(2-D conv\), got 3-D"),
    ("Slice", {"x": f32(4)}, {"s": i64([3]), "e": i64([0]), "a": i64([0]), "p": i64([-1])}, {},
     r"torch_eager Slice: steps must be positive, got \[-1\]"),
    ("Cast", {"x": f32(2)}, None, {"to": TensorProto.STRING},
     r"torch_eager Cast: attribute to must be one of \[.*\], got 8"),
])
def test_torch_eager_unsupported_forms_raise_naming_the_attribute(op_type, feeds, consts,
                                                                   attrs, message):
    program = TorchProgram(one_node_model(op_type, feeds, consts, **attrs), "cpu")
    with pytest.raises(UnsupportedOpError, match=message):
        program({k: torch.from_numpy(v) for k, v in feeds.items()})


def test_torch_eager_split_without_sizes_raises():
    model = one_node_model("Split", {"x": f32(4)}, outputs=2, axis=0)
    with pytest.raises(UnsupportedOpError, match=r"torch_eager Split: input split must be "
                                                 r"given \(sizes\), got none"):
        TorchProgram(model, "cpu")({"x": torch.zeros(4)})


def test_torch_eager_constant_without_a_value_raises():
    const = helper.make_node("Constant", [], ["c"], value_string="text")
    graph = helper.make_graph([const], "g", [], [helper.make_tensor_value_info(
        "c", TensorProto.UNDEFINED, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match=r"torch_eager Constant '': attribute must be "
                                                 r"one of value, value_float\(s\), "
                                                 r"value_int\(s\), got \['value_string'\]"):
        TorchProgram(model, "cpu")
