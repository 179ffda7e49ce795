"""The compiler's op table (see :mod:`relaxvm.compiler.ops.registry`).

Importing this package registers every op's inference rule.
"""

from relaxvm.compiler.ops import (  # noqa: F401
    data_dependent,
    elementwise,
    image,
    ml,
    nn,
    quantize,
    recurrent,
    scatter,
    shape,
    signal,
)
from relaxvm.compiler.ops.registry import OpDef, get_op, has_op, infer_types, op_names, register_op

__all__ = ["OpDef", "get_op", "has_op", "infer_types", "op_names", "register_op"]
