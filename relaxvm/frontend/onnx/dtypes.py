"""ONNX element types <-> relaxvm dtype names.

The low-bit types (float8, float4, float6, int4/uint4, int2/uint2) map to ml_dtypes'
NumPy dtypes, which hold one element per byte; ``onnx.numpy_helper.to_array`` unpacks
ONNX's packed 4-bit and 2-bit initializers into those already. Their ONNX codes are only
accepted when ml_dtypes is installed (else the type is reported as unsupported).
"""

from __future__ import annotations

from onnx import TensorProto

from relaxvm.errors import UnsupportedOpError
from relaxvm.objects import LOW_BIT_DTYPES, low_bit_available

ONNX_DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64", TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.INT8: "int8", TensorProto.INT16: "int16",
    TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64",
    TensorProto.BOOL: "bool",
    TensorProto.FLOAT8E4M3FN: "float8_e4m3fn", TensorProto.FLOAT8E4M3FNUZ: "float8_e4m3fnuz",
    TensorProto.FLOAT8E5M2: "float8_e5m2", TensorProto.FLOAT8E5M2FNUZ: "float8_e5m2fnuz",
    TensorProto.FLOAT8E8M0: "float8_e8m0fnu", TensorProto.FLOAT4E2M1: "float4_e2m1fn",
    TensorProto.INT4: "int4", TensorProto.UINT4: "uint4", TensorProto.INT2: "int2",
    TensorProto.UINT2: "uint2",
}
for _code, _name in (("FLOAT6E2M3", "float6_e2m3fn"), ("FLOAT6E3M2", "float6_e3m2fn")):
    if hasattr(TensorProto, _code):  # onnx >= 1.20
        ONNX_DTYPES[getattr(TensorProto, _code)] = _name


def dtype_of(code: int, where: str) -> str:
    """The dtype name for an ONNX element type code; UnsupportedOpError for the others
    (strings, complex), and for low-bit types when ml_dtypes is not installed."""
    name = ONNX_DTYPES.get(code)
    label = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() \
        else str(code)
    if name is None:
        raise UnsupportedOpError(f"from_onnx: {where}: element type {label} is not supported")
    if name in LOW_BIT_DTYPES and not low_bit_available(name):
        raise UnsupportedOpError(f"from_onnx: {where}: element type {label} needs the "
                                 f"ml_dtypes package (dtype {name})")
    return name
