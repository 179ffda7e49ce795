"""The op table and its inference errors (relaxvm/compiler/ops/registry.py)."""

from __future__ import annotations

import pytest

from relaxvm.compiler.ir import Value
from relaxvm.compiler.ops import get_op, infer_types, op_names, register_op
from relaxvm.errors import BuildError, UnsupportedOpError
from relaxvm.kernels import kernel_names


def test_every_op_with_a_kernel_names_a_registered_kernel() -> None:
    import relaxvm.compiler  # noqa: F401  (registers the compiler's runtime kernels)
    kernels = set(kernel_names())
    for name in op_names():
        kernel = get_op(name).kernel_name
        assert kernel is None or kernel in kernels, name


def test_unknown_op_is_unsupported() -> None:
    with pytest.raises(UnsupportedOpError, match="get_op: the compiler has no op named 'nope'"):
        get_op("nope")


def test_registering_an_op_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="register_op: op 'add' is already registered"):
        register_op("add")(lambda inputs, attrs: [])


def test_inference_failures_name_the_node_and_types() -> None:
    a = Value("a", (2, 3))
    with pytest.raises(BuildError, match=r"infer_types: node7: cannot infer the output of "
                                         r"transpose\(float32\[2, 3\]\)"):
        infer_types("transpose", [a], {"perm": ("x",)}, "node7")


def test_broadcast_mismatch_is_reported_with_both_shapes() -> None:
    with pytest.raises(BuildError, match=r"add: shapes \[\['2', '3'\], \['4'\]\] do not "
                                         r"broadcast \(3 vs 4\)"):
        infer_types("add", [Value("a", (2, 3)), Value("b", (4,))], {})
