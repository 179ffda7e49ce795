"""Loading and import rules of from_onnx (relaxvm/frontend/onnx/importer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from relaxvm.compiler import evaluate
from relaxvm.compiler.symbolic import Expr
from relaxvm.errors import ArgumentError, BuildError, UnsupportedOpError
from relaxvm.frontend import from_onnx, supported_ops
from tests.frontend.onnx.onnx_case import make_model

rng = np.random.default_rng(6)


def _matmul_model() -> onnx.ModelProto:
    w = rng.standard_normal((4, 3)).astype(np.float32)
    return make_model("MatMul", {"x": rng.standard_normal((2, 4)).astype(np.float32)},
                      initializers={"w": w}, dynamic={"x": ["batch", 4]})


def test_model_loads_from_proto_bytes_and_path(tmp_path: Path) -> None:
    model = _matmul_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = numpy_helper.to_array(model.graph.initializer[0])
    for source in (model, model.SerializeToString(), path, str(path)):
        graph = from_onnx(source)
        np.testing.assert_allclose(evaluate(graph, [x])[0], x @ w, rtol=1e-5)


def test_symbolic_dims_become_symbols_and_shape_dict_fixes_them() -> None:
    model = _matmul_model()
    assert from_onnx(model).inputs[0].shape == (Expr.symbol("batch"), 4)
    assert from_onnx(model, {"batch": 5}).inputs[0].shape == (5, 4)
    assert from_onnx(model, {"x": (7, 4)}).inputs[0].shape == (7, 4)


def test_unknown_shape_dict_key_is_rejected() -> None:
    with pytest.raises(ArgumentError, match=r"shape_dict keys \['nope'\] are neither input "
                                            r"names \(\['x'\]\) nor symbolic dimension names "
                                            r"\(\['batch'\]\)"):
        from_onnx(_matmul_model(), {"nope": 3})


def test_malformed_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf \xff\xfe\x00")
    with pytest.raises(ArgumentError, match=r"from_onnx: .*bad.onnx' is not a valid ONNX "
                                            r"model"):
        from_onnx(path)


def test_empty_file_has_no_graph(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ArgumentError, match="is not a valid ONNX model: it contains no graph"):
        from_onnx(path)


def test_missing_file_and_wrong_type_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"model_or_path '.*missing.onnx' is not a file"):
        from_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ArgumentError, match="must be an onnx.ModelProto, bytes or a path, "
                                            "got int"):
        from_onnx(42)


def _external_model(location: str) -> onnx.ModelProto:
    model = _matmul_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return model


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    onnx.save(_external_model(location), str(path))
    with pytest.raises(ArgumentError, match=r"tensor 'w' stores its data at .*, outside the "
                                            r"model's folder"):
        from_onnx(path)


def test_external_data_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    onnx.save(_external_model("link.bin"), str(folder / "m.onnx"))
    with pytest.raises(ArgumentError, match="outside the model's folder"):
        from_onnx(folder / "m.onnx")


def test_external_data_beside_the_model_loads(tmp_path: Path) -> None:
    model = _matmul_model()
    w = numpy_helper.to_array(model.graph.initializer[0]).copy()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(evaluate(from_onnx(path), [x])[0], x @ w, rtol=1e-5)


def test_proto_with_unloaded_external_data_asks_for_path() -> None:
    with pytest.raises(ArgumentError, match=r"tensors \['w'\] keep their data in external "
                                            r"files; pass the model's path"):
        from_onnx(_external_model("weights.bin"))


def test_every_unsupported_op_is_listed_once() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"),
             helper.make_node("ImageDecoder", ["a"], ["b"], name="dec"),
             helper.make_node("FancyOp", ["b"], ["c"], name="fancy", domain="com.example"),
             helper.make_node("TfIdfVectorizer", ["c"], ["y"], name="tfidf")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError,
                       match=r"3 node\(s\) with unsupported ops: ImageDecoder \(node 'dec'\); "
                             r"com.example.FancyOp \(node 'fancy'\); "
                             r"TfIdfVectorizer \(node 'tfidf'\)"):
        from_onnx(model)


def test_undefined_tensor_reference_is_reported() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(BuildError, match=r"node add reads tensor 'ghost', which no input, "
                                         r"initializer or earlier node defines"):
        from_onnx(model)


def test_sequence_input_needs_its_length() -> None:
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["s"], ["y"])], "g", [seq], [y]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedOpError, match="input 's' is a sequence; its length must "
                                                 "be known while compiling"):
        from_onnx(model)


def test_model_without_default_opset_is_rejected() -> None:
    model = _matmul_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ArgumentError, match="imports no default-domain"):
        from_onnx(model)


def test_supported_ops_cover_the_common_export_ops() -> None:
    needed = {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool", "Flatten",
              "Gemm", "Add", "MatMul", "Reshape", "Transpose", "Softmax", "Div", "Mul", "Sub",
              "Pow", "Sqrt", "Erf", "Tanh", "Gather", "LayerNormalization", "ReduceMean",
              "Concat", "Slice", "Unsqueeze", "Squeeze", "Shape", "ConstantOfShape",
              "Constant", "Cast", "Where", "Equal", "Expand", "Split", "Identity", "Range"}
    assert needed <= set(supported_ops())
