"""``fused_elementwise(xs, out, program)``: one kernel for a chain of elementwise ops.

The compiler's fusion pass replaces a chain such as ``add -> relu -> multiply`` by one
node whose ``program`` attribute describes the chain in the safe expression language
of :mod:`relaxvm.kernels.exprlang`, stored as a constant string in the executable::

    t0:float32 = add(x0, x1); t1:float32 = relu(t0); t2:float32 = multiply(t1, float32(0.5))

``x<i>`` are the inputs (``xs``), ``t<j>`` the intermediates with their dtype, and
``float32(0.5)`` a typed literal. The last statement's value is written to ``out``.

* CPU: the program is compiled once into steps that call NumPy ufuncs with ``out=``
  (or, for ops that are not one ufunc, the registered CPU kernel), writing each step
  into ``out`` itself whenever that is safe, so a same-dtype chain needs no temporary.
* CUDA: the program becomes one ``cupy.ElementwiseKernel`` per combination of input
  dtypes, built on first use and cached (one launch for the whole chain).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.exprlang import Node, format_number, parse_program
from relaxvm.kernels.registry import REQUIRED, get_kernel, kernel_signature, register_kernel
from relaxvm.objects import numpy_dtype

_INPUT = re.compile(r"x(\d+)$")
_TEMP = re.compile(r"t(\d+)$")

#: Ops that are one NumPy ufunc of their operands: alias-safe (out may be an operand).
UFUNCS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "power": "power",
    "maximum": "maximum", "minimum": "minimum", "equal": "equal", "not_equal": "not_equal",
    "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "logical_and": "logical_and", "logical_or": "logical_or",
    "logical_xor": "logical_xor", "logical_not": "logical_not", "neg": "negative",
    "abs": "absolute", "exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin", "cos": "cos",
    "tan": "tan", "tanh": "tanh", "floor": "floor", "ceil": "ceil", "round": "rint",
    "sign": "sign", "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor", "bitwise_not": "invert", "isnan": "isnan",
}
#: Float-only ufuncs (integer inputs go through the kernel, which knows ONNX's rules).
FLOAT_UFUNCS = {"divide": "true_divide", "reciprocal": "reciprocal"}


# -- program building (used by the compiler) ----------------------------------------------
def literal(value: Any, dtype: str) -> str:
    """A typed literal such as ``float32(0.5)``."""
    return f"{dtype}({format_number(value)})"


def statement(index: int, dtype: str, op: str, args: list[str],
              attrs: dict[str, Any] | None = None) -> str:
    """One statement ``t<index>:<dtype> = op(args..., key=value...)``."""
    parts = list(args)
    for key, value in (attrs or {}).items():
        parts.append(f"{key}={_attr_text(value)}")
    return f"t{index}:{dtype}={op}({','.join(parts)})"


def _attr_text(value: Any) -> str:
    if value is None:
        return "none()"
    if isinstance(value, str):
        return f'"{value}"'
    return format_number(value)


# -- parsing and checking -------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One statement, resolved: op, argument specs, attributes, dtype, target buffer."""

    op: str
    args: tuple[tuple[str, Any], ...]  # ("in", i) | ("tmp", j) | ("lit", numpy scalar)
    attrs: tuple[tuple[str, Any], ...]
    dtype: np.dtype
    target: str


@functools.lru_cache(maxsize=512)
def parse_fused(program: str) -> tuple[Step, ...]:
    """Parse and check a fused program; ArgumentError says what is wrong."""
    try:
        statements = parse_program(program)
    except ValueError as exc:
        raise ArgumentError(f"fused_elementwise: program is malformed: {exc}") from None
    defined: set[str] = set()
    steps = []
    for target, dtype, node in statements:
        steps.append(_step(target, dtype, node, defined))
        defined.add(target)
    return tuple(steps)


def _step(target: str, dtype: str | None, node: Node, defined: set[str]) -> Step:
    where = f"fused_elementwise: statement {target}"
    if _TEMP.match(target) is None or dtype is None:
        raise ArgumentError(f"{where}: target must be t<k>:<dtype>, got {target}:{dtype}")
    if node[0] != "call":
        raise ArgumentError(f"{where}: expected op(args), got {node!r}")
    _, op, args, kwargs = node
    specs = tuple(_arg_spec(a, defined, where) for a in args)
    attrs = tuple((k, _attr_value(v, where)) for k, v in kwargs)
    return Step(op, specs, attrs, _dtype(dtype, where), target)


def _dtype(name: str, where: str) -> np.dtype:
    try:
        return numpy_dtype(name)
    except TypeError:
        raise ArgumentError(f"{where}: unknown dtype {name!r}") from None


def _arg_spec(node: Node, defined: set[str], where: str) -> tuple[str, Any]:
    if node[0] == "ref":
        m = _INPUT.match(node[1])
        if m is not None:
            return ("in", int(m.group(1)))
        if node[1] in defined:
            return ("tmp", node[1])
        raise ArgumentError(f"{where}: {node[1]!r} is neither an input x<i> nor an earlier "
                            f"statement")
    if node[0] == "call" and len(node[2]) == 1 and not node[3]:
        return ("lit", _dtype(node[1], where).type(_number(node[2][0], where)))
    raise ArgumentError(f"{where}: arguments must be x<i>, t<k> or typed literals, got "
                        f"{node!r}")


def _number(node: Node, where: str) -> Any:
    if node[0] == "num":
        return node[1]
    if node[0] == "neg":
        return -_number(node[1], where)
    raise ArgumentError(f"{where}: expected a number, got {node!r}")


def _attr_value(node: Node, where: str) -> Any:
    if node[0] == "str":
        return node[1]
    if node[0] == "call" and node[1] == "none" and not node[2]:
        return None
    return _number(node, where)


# -- CPU -----------------------------------------------------------------------------------
def _alias_safe(step: Step) -> bool:
    if step.op in UFUNCS or step.op in ("relu", "cast", "identity"):
        return True
    return step.op in FLOAT_UFUNCS and step.dtype.kind == "f"


@functools.lru_cache(maxsize=512)
def plan_buffers(program: str, out_dtype: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """For each step, the buffer it writes (0 = out, k > 0 = scratch k), and each
    scratch buffer's dtype. A buffer is reused once its value is dead; ``out`` hosts
    intermediates of its dtype unless that would clobber a value still needed."""
    steps = parse_fused(program)
    last_use = {s.target: i for i, s in enumerate(steps)}
    for i, s in enumerate(steps):
        for kind, ref in s.args:
            if kind == "tmp":
                last_use[ref] = i
    final = len(steps) - 1
    final_safe = _alias_safe(steps[final])
    occupant: dict[int, str | None] = {0: None}
    buf_of: dict[str, int] = {}
    dtypes: list[str] = [out_dtype]
    targets = []
    for i, s in enumerate(steps):
        for b, name in occupant.items():
            if name is not None and (last_use[name] < i or (last_use[name] == i and
                                                             _alias_safe(s))):
                occupant[b] = None
        b = 0 if i == final else _pick(s, i, final, final_safe, last_use, occupant, dtypes)
        occupant[b] = s.target
        buf_of[s.target] = b
        targets.append(b)
    return tuple(targets), tuple(dtypes[1:])


def _pick(s: Step, i: int, final: int, final_safe: bool, last_use: dict[str, int],
          occupant: dict[int, str | None], dtypes: list[str]) -> int:
    name = s.dtype.name
    ends = last_use[s.target]
    if occupant[0] is None and dtypes[0] == name and (ends < final or (ends == final and
                                                                       final_safe)):
        return 0
    for b in range(1, len(dtypes)):
        if occupant[b] is None and dtypes[b] == name:
            return b
    dtypes.append(name)
    occupant[len(dtypes) - 1] = None
    return len(dtypes) - 1


class _Wrap:
    """The ``.array`` holder kernels expect, around a plain array."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array


def _ufunc_of(step: Step) -> Any:
    """The NumPy callable ``f(*args, out=...)`` for an alias-safe step, else None."""
    if step.op == "relu":
        zero = step.dtype.type(0)
        return lambda a, out: np.maximum(a, zero, out=out)
    if step.op in ("cast", "identity"):
        return lambda a, out: np.copyto(out, a, casting="unsafe")
    name = UFUNCS.get(step.op)
    if name is None and step.op in FLOAT_UFUNCS and step.dtype.kind == "f":
        name = FLOAT_UFUNCS[step.op]
    return None if name is None else getattr(np, name)


def _kernel_step(step: Step) -> Any:
    """A step that calls the registered CPU kernel (for ops that are not one ufunc)."""
    kernel = get_kernel(step.op, "cpu")
    given = dict(step.attrs)
    attrs = [given.get(k, None if d is REQUIRED else d)
             for k, d in kernel_signature(step.op).attrs.items()]

    def call(*args: Any, out: Any) -> None:
        kernel(*[_Wrap(np.asarray(a)) for a in args], _Wrap(out), *attrs)
    return call


def _bind(fn: Any, slots: tuple[int, ...], dst: int, buf: int) -> Any:
    """A closure running one step over the value list ``vals`` and buffers ``bufs``."""
    if len(slots) == 1:
        a, = slots

        def unary(vals: list[Any], bufs: list[Any]) -> None:
            fn(vals[a], out=bufs[buf])
            vals[dst] = bufs[buf]
        return unary
    if len(slots) == 2:
        a, b = slots

        def binary(vals: list[Any], bufs: list[Any]) -> None:
            fn(vals[a], vals[b], out=bufs[buf])
            vals[dst] = bufs[buf]
        return binary

    def nary(vals: list[Any], bufs: list[Any]) -> None:
        fn(*[vals[i] for i in slots], out=bufs[buf])
        vals[dst] = bufs[buf]
    return nary


class CpuProgram:
    """A fused program compiled for NumPy: one closure per step over a value list whose
    slots hold the inputs, the literals and the intermediates."""

    def __init__(self, program: str, out_dtype: str) -> None:
        steps = parse_fused(program)
        targets, self.scratch = plan_buffers(program, out_dtype)
        n_in = 1 + max((v for s in steps for k, v in s.args if k == "in"), default=-1)
        self.template: list[Any] = [None] * n_in
        slot_of: dict[str, int] = {}
        self.steps = []
        for step, buf in zip(steps, targets):
            slots = []
            for kind, v in step.args:
                if kind == "in":
                    slots.append(v)
                elif kind == "tmp":
                    slots.append(slot_of[v])
                else:
                    self.template.append(v)
                    slots.append(len(self.template) - 1)
            self.template.append(None)
            slot_of[step.target] = len(self.template) - 1
            fn = _ufunc_of(step) or _kernel_step(step)
            self.steps.append(_bind(fn, tuple(slots), slot_of[step.target], buf))
        self.n_in = n_in

    def __call__(self, inputs: list[Any], out: Any) -> None:
        vals = list(self.template)
        vals[:self.n_in] = inputs[:self.n_in]
        bufs = [out]
        for dtype in self.scratch:
            bufs.append(np.empty(out.shape, dtype))
        for step in self.steps:
            step(vals, bufs)


_CPU_PROGRAMS: dict[tuple[str, np.dtype], CpuProgram] = {}


def run_fused_cpu(xs: Any, out: Any, program: str) -> None:
    """Run ``program`` over NumPy arrays, writing the result into ``out``."""
    o = out.array
    key = (program, o.dtype)  # (the dtype object: reading .name costs a microsecond)
    compiled = _CPU_PROGRAMS.get(key)
    if compiled is None:
        if len(_CPU_PROGRAMS) > 4096:
            _CPU_PROGRAMS.clear()
        compiled = _CPU_PROGRAMS[key] = CpuProgram(program, o.dtype.name)
    compiled([x.array for x in xs], o)


# -- CUDA ------------------------------------------------------------------------------------
#: C expression per op over operand names {0}, {1}, {2}; attrs as {alpha}, {min}, ...
C_TEMPLATES = {
    "add": "({0} + {1})", "subtract": "({0} - {1})", "multiply": "({0} * {1})",
    "divide": "({0} / {1})", "power": "pow({0}, {1})", "maximum": "max(({T}){0}, ({T}){1})",
    "minimum": "min(({T}){0}, ({T}){1})", "equal": "({0} == {1})", "not_equal": "({0} != {1})",
    "less": "({0} < {1})", "less_equal": "({0} <= {1})", "greater": "({0} > {1})",
    "greater_equal": "({0} >= {1})", "logical_and": "({0} && {1})",
    "logical_or": "({0} || {1})", "logical_xor": "(bool({0}) != bool({1}))",
    "logical_not": "(!{0})", "neg": "(-{0})", "abs": "{ABS}({0})", "exp": "exp({0})",
    "log": "log({0})", "sqrt": "sqrt({0})", "rsqrt": "rsqrt({0})", "sin": "sin({0})",
    "cos": "cos({0})", "tan": "tan({0})", "tanh": "tanh({0})", "erf": "erf({0})",
    "floor": "floor({0})", "ceil": "ceil({0})", "round": "rint({0})",
    "sign": "(({0} > 0) - ({0} < 0))", "reciprocal": "(1 / {0})",
    "sigmoid": "(1 / (1 + exp(-{0})))", "silu": "({0} / (1 + exp(-{0})))",
    "relu": "max({0}, ({T})0)", "identity": "({0})", "cast": "({0})",
    "where": "({0} ? {1} : {2})", "softplus": "(log1p(exp(-fabs({0}))) + max({0}, ({T})0))",
    "leaky_relu": "({0} >= 0 ? {0} : ({T}){alpha} * {0})",
    "elu": "({0} > 0 ? {0} : ({T}){alpha} * (exp({0}) - 1))",
    "hard_sigmoid": "min(max(({T}){alpha} * {0} + ({T}){beta}, ({T})0), ({T})1)",
}
#: Ops whose CUDA template needs float operands.
C_FLOAT_ONLY = {"power", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "tanh", "erf",
                "floor", "ceil", "round", "sigmoid", "silu", "softplus", "elu", "hard_sigmoid",
                "reciprocal"}
_C_TYPES = {"float16": "float16", "float32": "float", "float64": "double", "int8": "signed char",
            "int16": "short", "int32": "int", "int64": "long long", "uint8": "unsigned char",
            "bool": "bool"}


def c_type(dtype: Any) -> str:
    """The CUDA C type CuPy uses for a dtype; ArgumentError for others (bfloat16)."""
    name = np.dtype(dtype).name
    if name not in _C_TYPES:
        raise ArgumentError(f"fused_elementwise: dtype {name} has no CUDA C type")
    return _C_TYPES[name]


def _compute_type(dtype: np.dtype) -> str:
    return "float" if dtype.name == "float16" else c_type(dtype)


def cuda_supports(op: str, dtypes: list[str], attrs: dict[str, Any]) -> bool:
    """Whether an op can join a fused CUDA kernel for these operand/result dtypes."""
    if op == "gelu":
        return attrs.get("approximate", "none") == "none" and all(d.startswith("float") and
                                                                 d in _C_TYPES for d in dtypes)
    if op == "clip":
        return all(d in _C_TYPES for d in dtypes)
    if op not in C_TEMPLATES or not all(d in _C_TYPES for d in dtypes):
        return False
    # (exp(bool) and friends have no device overload: float operands only)
    return op not in C_FLOAT_ONLY or all(d.startswith("float") for d in dtypes)


def _c_literal(value: Any) -> str:
    v = float(value)
    if v != v:
        return "(0.0 / 0.0)"
    if v in (float("inf"), float("-inf")):
        return "(1.0 / 0.0)" if v > 0 else "(-1.0 / 0.0)"
    if isinstance(value, (np.integer, int, np.bool_, bool)):
        return f"({int(value)})"
    return f"({v!r})"


def _c_expr(step: Step, operands: list[str]) -> str:
    ctype = _compute_type(step.dtype)
    attrs = dict(step.attrs)
    if step.op == "gelu":
        return f"(({ctype})0.5 * {operands[0]} * (1 + erf({operands[0]} * " \
               f"({ctype})0.7071067811865476)))"
    if step.op == "clip":
        x = operands[0]
        if attrs.get("min") is not None:
            x = f"max({x}, ({ctype}){_c_literal(attrs['min'])})"
        if attrs.get("max") is not None:
            x = f"min({x}, ({ctype}){_c_literal(attrs['max'])})"
        return x
    template = C_TEMPLATES.get(step.op)
    if template is None:
        raise ArgumentError(f"fused_elementwise: op {step.op!r} has no CUDA form")
    values = {k: _c_literal(v) for k, v in attrs.items() if v is not None}
    absolute = "fabs" if step.dtype.kind == "f" else "abs"
    return template.format(*operands, T=ctype, ABS=absolute, **values)


def cuda_source(program: str, in_dtypes: tuple[str, ...], out_dtype: str
                ) -> tuple[str, str, str]:
    """(in_params, out_params, operation) of the ElementwiseKernel for ``program``."""
    steps = parse_fused(program)
    in_params = ", ".join(f"{np.dtype(d).name} x{i}" for i, d in enumerate(in_dtypes))
    lines = []
    for step in steps:
        operands = []
        for kind, v in step.args:
            if kind == "in":
                operands.append(f"(({_compute_type(np.dtype(in_dtypes[v]))})x{v})")
            elif kind == "tmp":
                operands.append(v)
            else:
                operands.append(f"(({_compute_type(np.dtype(v.dtype))}){_c_literal(v)})")
        lines.append(f"{_compute_type(step.dtype)} {step.target} = "
                     f"({_compute_type(step.dtype)}){_c_expr(step, operands)};")
    lines.append(f"y = ({c_type(out_dtype)}){steps[-1].target};")
    return in_params, f"{np.dtype(out_dtype).name} y", "\n".join(lines)


_CUDA_KERNELS: dict[tuple[str, tuple[str, ...], str], Any] = {}


def cuda_kernel(program: str, in_dtypes: tuple[str, ...], out_dtype: str) -> Any:
    """The cached ``cupy.ElementwiseKernel`` for a program and dtypes (CuPy imported here)."""
    key = (program, in_dtypes, out_dtype)
    kernel = _CUDA_KERNELS.get(key)
    if kernel is None:
        from relaxvm.devices.backend import get_backend
        cupy = get_backend(2).xp
        in_params, out_params, body = cuda_source(program, in_dtypes, out_dtype)
        name = f"relaxvm_fused_{len(_CUDA_KERNELS)}"
        kernel = _CUDA_KERNELS[key] = cupy.ElementwiseKernel(in_params, out_params, body, name)
    return kernel


# -- registration ------------------------------------------------------------------------------
@register_kernel("fused_elementwise", "cpu")
def fused_elementwise(xs: Any, out: Any, program: str) -> None:
    """out = the elementwise program applied to the tensors ``xs`` (NumPy, ``out=``)."""
    run_fused_cpu(xs, out, program)


@register_kernel("fused_elementwise", "cuda")
def fused_elementwise_cuda(xs: Any, out: Any, program: str) -> None:
    """out = the elementwise program applied to ``xs``, as one CUDA kernel launch."""
    o = out.array
    arrays = [x.array for x in xs]
    kernel = cuda_kernel(program, tuple(a.dtype.name for a in arrays), o.dtype.name)
    kernel(*arrays, o)

