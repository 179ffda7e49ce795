"""ONNX element types <-> relaxvm dtype names."""

from __future__ import annotations

from onnx import TensorProto

from relaxvm.errors import UnsupportedOpError

ONNX_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.INT8: "int8", TensorProto.INT16: "int16",
    TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64",
    TensorProto.BOOL: "bool",
}


def dtype_of(code: int, where: str) -> str:
    """The dtype name for an ONNX element type code; UnsupportedOpError for the others
    (strings, complex, float8, int4)."""
    name = ONNX_DTYPES.get(code)
    if name is None:
        label = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() \
            else str(code)
        raise UnsupportedOpError(f"from_onnx: {where}: element type {label} is not supported")
    return name
