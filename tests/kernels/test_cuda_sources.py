"""Every CUDA C source relaxvm hands CuPy, compiled with nvcc (no GPU, no CuPy needed).

The kernels in :mod:`relaxvm.kernels.cuda_fused` (found by walking its ``LazyKernel``
objects with a recording stand-in for CuPy) for each float dtype they run with, and
fused-elementwise programs from :func:`relaxvm.kernels.fused.cuda_source` covering
every op of ``C_TEMPLATES`` plus gelu and clip over every dtype mix ``cuda_supports``
admits, plus the real programs the compiler fuses in the zoo models. Each is wrapped
as CuPy 14 wraps it (:mod:`cuda_wrap`) and batched per header set into a few ``nvcc
-ptx`` runs. Skipped when nvcc is not on PATH.
"""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cuda_wrap
import pytest

from relaxvm.kernels import cuda_fused
from relaxvm.kernels.fused import C_TEMPLATES, cuda_source, cuda_supports, literal, statement

needs_nvcc = pytest.mark.skipif(cuda_wrap.nvcc() is None, reason="nvcc is not on PATH")

FLOATS = ("float16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8")
DTYPES = FLOATS + INTS + ("bool",)
PREDICATES = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
              "logical_and", "logical_or", "logical_xor", "logical_not"}
ATTRS: dict[str, list[dict[str, Any]]] = {
    "leaky_relu": [{"alpha": 0.01}], "elu": [{"alpha": 1.0}],
    "hard_sigmoid": [{"alpha": 0.2, "beta": 0.5}], "gelu": [{"approximate": "none"}],
    "clip": [{"min": -1.0, "max": 6.0}, {"min": 0.0, "max": None}, {"min": None, "max": 1},
             {"min": None, "max": None}],
}


# -- cuda_fused: record what each LazyKernel would build ------------------------------------
class RecordingCupy:
    """Stands in for the ``cupy`` module: kernel constructors return their arguments."""

    @staticmethod
    def ElementwiseKernel(in_params: str, out_params: str, operation: str, name: str,
                          preamble: str = "", **_: Any) -> tuple[str, ...]:  # noqa: N802
        return ("elementwise", in_params, out_params, operation, name, preamble)

    @staticmethod
    def RawKernel(code: str, name: str, **_: Any) -> tuple[str, ...]:  # noqa: N802
        return ("raw", code, name)


def lazy_kernels() -> dict[str, tuple[str, ...]]:
    """Every LazyKernel of cuda_fused (module level or in a module-level dict), built."""
    found: dict[str, tuple[str, ...]] = {}
    for attr, value in vars(cuda_fused).items():
        items = value.items() if isinstance(value, dict) else [(attr, value)]
        for name, obj in items:
            if isinstance(obj, cuda_fused.LazyKernel):
                found[f"{attr}[{name}]" if name != attr else attr] = obj.make(RecordingCupy)
    return found


def _placeholders(in_params: str, out_params: str) -> set[str]:
    return {p.type for p in cuda_wrap.parse_params(f"{in_params}, {out_params}")
            if len(p.type) == 1}


def cuda_fused_kernels() -> list[cuda_wrap.Kernel]:
    """Each cuda_fused kernel for each dtype its wrapper launches it with."""
    kernels = []
    raw_seen = set()
    for label, spec in lazy_kernels().items():
        if spec[0] == "raw":
            if spec[1] not in raw_seen:  # softmax and layer_norm share one source
                raw_seen.add(spec[1])
                kernels.append(cuda_wrap.raw(label, spec[1]))
            continue
        _, in_params, out_params, operation, _name, preamble = spec
        holders = _placeholders(in_params, out_params)
        for dtype in FLOATS:  # the wrappers launch these for float16/32/64 only
            # batch_norm's coefficients (A) are float64 for float64 data, else float32
            acc = "float64" if dtype == "float64" else "float32"
            types = {t: dtype if t == "T" else acc for t in holders}
            scalars = [p.name for p in cuda_wrap.parse_params(in_params)
                       if len(p.type) > 1 and not p.raw]
            kernels.append(cuda_wrap.elementwise(f"{label} {dtype}", in_params, out_params,
                                                 operation, types, preamble, scalars))
    return kernels


# -- fused programs ----------------------------------------------------------------------------
def arity(op: str) -> int:
    """Number of operands of an op (its C template's highest placeholder + 1)."""
    if op in ("gelu", "clip"):
        return 1
    return 1 + max(int(m) for m in re.findall(r"\{(\d)\}", C_TEMPLATES[op]))


def operand_mixes(op: str) -> list[tuple[list[str], str]]:
    """(operand dtypes, result dtype) pairs for one op that cuda_supports admits."""
    mixes = []
    for d in DTYPES:
        result = "bool" if op in PREDICATES else d
        if op == "where":
            mixes.append((["bool", d, d], d))
        else:
            mixes.append(([d] * arity(op), result))
    for a, b in (("float16", "float32"), ("int32", "float32"), ("bool", "int64")):
        if arity(op) == 2:  # mixed operand dtypes, result in the wider one
            mixes.append(([a, b], "bool" if op in PREDICATES else b))
    return [(ins, out) for ins, out in mixes
            if cuda_supports(op, ins + [out], (ATTRS.get(op) or [{}])[0])]


def programs_for(op: str) -> list[tuple[str, tuple[str, ...], str]]:
    """Programs (text, input dtypes, output dtype) exercising ``op``: all-input operands,
    a typed literal in the last operand slot, and a cast of the result to another type."""
    found = []
    for attrs in ATTRS.get(op, [{}]):
        for ins, out in operand_mixes(op):
            args = [f"x{i}" for i in range(len(ins))]
            found.append((statement(0, out, op, args, attrs), tuple(ins), out))
            if len(ins) > 1:
                lit = literal(-2.5 if ins[-1].startswith("float") else
                              (1 if ins[-1] == "bool" else 3), ins[-1])
                prog = statement(0, out, op, args[:-1] + [lit], attrs)
                found.append((prog, tuple(ins[:-1]), out))
            other = "float32" if out != "float32" else "int32"
            chain = ";".join([statement(0, out, op, args, attrs),
                              statement(1, other, "cast", ["t0"])])
            found.append((chain, tuple(ins), other))
    return found


def special_programs() -> list[tuple[str, tuple[str, ...], str]]:
    """Literals C spells specially (inf, nan, negatives) and half-precision chains."""
    return [
        ("t0:float32=maximum(x0,float32(inf));t1:float32=minimum(t0,float32(-inf))",
         ("float32",), "float32"),
        ("t0:float16=add(x0,float16(nan));t1:float16=multiply(t0,float16(-0.5))",
         ("float16",), "float16"),
        ("t0:float32=cast(x0);t1:float32=add(t0,x1);t2:float16=cast(t1)",
         ("float16", "float32"), "float16"),
        ("t0:bool=greater(x0,int64(-3));t1:int64=where(t0,x0,int64(0))",
         ("int64",), "int64"),
    ]


def zoo_programs() -> list[tuple[str, tuple[str, ...], str]]:
    """The fused_elementwise programs the compiler builds for the zoo models on CUDA."""
    from relaxvm.compiler.build import lower
    from relaxvm.models import ZOO, build_model

    found = []
    for name in sorted(ZOO):
        graph = lower(build_model(name), "cuda", None, 2, None).graph
        for node in graph.nodes:
            if node.op == "fused_elementwise":
                found.append((node.attrs["program"], tuple(v.dtype for v in node.inputs if v),
                              node.outputs[0].dtype))
    return found


def fused_kernels(programs: list[tuple[str, tuple[str, ...], str]]) -> list[cuda_wrap.Kernel]:
    """ElementwiseKernel wrappings of fused programs, as fused.cuda_kernel builds them."""
    kernels = []
    for program, ins, out in dict.fromkeys(programs):
        in_params, out_params, body = cuda_source(program, ins, out)
        label = f"fused {program!r} inputs={list(ins)} out={out}"
        kernels.append(cuda_wrap.elementwise(label, in_params, out_params, body, {}))
    return kernels


def all_ops() -> list[str]:
    return sorted(set(C_TEMPLATES) | {"gelu", "clip"})


# -- tests -----------------------------------------------------------------------------------
def compile_all(kernels: list[cuda_wrap.Kernel]) -> list[cuda_wrap.CompileError]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(cuda_wrap.compile_batch, cuda_wrap.batches(kernels)))
    return [r for r in results if r is not None]


def test_every_lazy_kernel_is_found() -> None:
    found = lazy_kernels()
    assert {f"_UNARY[{op}]" for op in cuda_fused.UNARY_OPS} <= set(found)
    assert {"_BATCH_NORM", "_SOFTMAX_ROWS", "_LAYER_NORM_ROWS"} <= set(found)


def test_every_op_has_programs() -> None:
    for op in all_ops():
        assert programs_for(op), f"{op}: no dtype mix admitted by cuda_supports"


@needs_nvcc
def test_cuda_fused_kernels_compile() -> None:
    errors = compile_all(cuda_fused_kernels())
    assert not errors, "\n\n".join(map(str, errors))


@needs_nvcc
def test_fused_programs_compile() -> None:
    programs = list(itertools.chain.from_iterable(programs_for(op) for op in all_ops()))
    zoo = zoo_programs()
    assert zoo, "the zoo models produced no fused_elementwise program on CUDA"
    programs += special_programs() + zoo
    errors = compile_all(fused_kernels(programs))
    assert not errors, "\n\n".join(map(str, errors))


@needs_nvcc
def test_the_stand_in_catches_type_errors() -> None:
    """The harness itself: a body that uses an undeclared name must be rejected."""
    bad = cuda_wrap.elementwise("bad", "T x", "T y", "y = undeclared(x);", {"T": "float32"})
    error = cuda_wrap.compile_batch([bad])
    assert error is not None and error.labels == ["bad"] and "undeclared" in error.log


def test_cuda_supports_keeps_non_float_operands_out_of_float_functions() -> None:
    """exp(bool), erf(int) and friends have no CUDA device overload (nvcc: "calling a
    constexpr __host__ function"), so such steps are not fused on CUDA."""
    assert not cuda_supports("exp", ["bool", "bool"], {})
    assert not cuda_supports("gelu", ["int32", "int32"], {"approximate": "none"})
    assert cuda_supports("maximum", ["int32", "float32", "float32"], {})
