"""Run a kernel on a device the way the VM does, and compare with a float64 reference.

``run_kernel("add", dev, [a, b], out_shape, out_dtype)`` puts NumPy inputs on ``dev``,
allocates ``out``, calls the kernel positionally and returns ``out`` as a host array.
``check`` compares it with a reference at the documented tolerance of the kernel and
dtype (:mod:`relaxvm.kernels.coverage`), so the tests and ``docs/kernels.md`` agree.

bfloat16 on CUDA depends on CuPy (CuPy 14 supports it minimally, through ml_dtypes):
:func:`cuda_dtype_problem` probes it once per run, :func:`skip_unsupported` skips the case
with the probe's reason where it fails, and :func:`run_kernel` turns a kernel that raises
for bfloat16 on CUDA into an xfail naming the kernel and CuPy's error.

The ``cuda-emulated`` case of the ``dev`` fixture (:data:`emulated_cupy.EMULATED_CUDA`) runs
a kernel's CUDA code path on the CPU: :func:`run_kernel` and :func:`run_multi` call the
kernel's template (:func:`relaxvm.kernels.registry.template_of`) with the fake CuPy of
:mod:`emulated_cupy` on host tensors. They skip a kernel whose CUDA implementation is not a
template (a dedicated CUDA kernel, or none), and the dtypes the real CUDA path cannot
run here (:func:`emulated_dtype_problem`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from emulated_cupy import EmulatedCuda, installed, on_device

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import get_kernel
from relaxvm.kernels.coverage import CUDA_PROBED_DTYPES, dtypes_tested, tolerance
from relaxvm.kernels.registry import template_of
from relaxvm.objects import is_ml_dtype, numpy_dtype


def dtype_params(kernel: str) -> list[Any]:
    """pytest params over the dtypes ``kernel`` is documented as tested with."""
    return [pytest.param(d, id=d) for d in dtypes_tested(kernel)]


@functools.cache
def cuda_dtype_problem(dtype: str) -> str | None:
    """Why CuPy here cannot hold and add ``dtype`` arrays on cuda:0; None when it can.

    The probe: a 3-element array of ``dtype`` copied to the GPU, added to itself and
    copied back must equal the host result.
    """
    try:
        import cupy
    except Exception as exc:  # no CuPy: the cuda marker skips these tests before this
        return f"CuPy is not importable ({type(exc).__name__}: {exc})"
    version = getattr(cupy, "__version__", "?")
    try:
        host = np.array([1.0, 2.0, -3.5], dtype=numpy_dtype(dtype))
        device = cupy.asarray(host)
        got = cupy.asnumpy(device + device)
    except Exception as exc:
        return (f"CuPy {version} does not support {dtype} here ({type(exc).__name__}: "
                f"{exc}); CuPy 14 with ml_dtypes installed does")
    if got.dtype != host.dtype or not np.array_equal(got.astype(np.float64),
                                                     (host + host).astype(np.float64)):
        return f"CuPy {version} computes {dtype} 1 + 1 wrongly ({got!r})"
    return None


def emulated_dtype_problem(dtype: str) -> str | None:
    """Why the ``cuda-emulated`` case cannot stand for CUDA with ``dtype``; None if it can.

    bfloat16 works on a GPU only where :func:`cuda_dtype_problem`'s probe passes, and then
    only in the CuPy routines that have bfloat16 loops, which NumPy (through ml_dtypes)
    cannot tell; the other ml_dtypes types (float8, int4, ...) CuPy cannot hold at all.
    """
    if dtype in CUDA_PROBED_DTYPES:
        return (f"cuda-emulated: CuPy's {dtype} support (probed on a GPU) cannot be "
                f"emulated with NumPy")
    if is_ml_dtype(dtype):
        return f"cuda-emulated: CuPy has no {dtype} type"
    return None


def skip_unsupported(dev: relaxvm.Device, dtype: str) -> None:
    """On CUDA, skip dtypes CuPy cannot handle here (the probe's reason says why)."""
    if isinstance(dev, EmulatedCuda):
        problem = emulated_dtype_problem(numpy_dtype(dtype).name)
        if problem is not None:
            pytest.skip(problem)
        return
    if dev.device_type != 1 and dtype in CUDA_PROBED_DTYPES:
        problem = cuda_dtype_problem(dtype)
        if problem is not None:
            pytest.skip(problem)


def _dtype_names(values: Sequence[Any], out_dtypes: Sequence[Any]) -> list[str]:
    """The dtype names of the outputs and of the array inputs (tuples of arrays too)."""
    names = [numpy_dtype(d).name for d in out_dtypes]
    for v in values:
        for item in (v if isinstance(v, (tuple, list)) else (v,)):
            if isinstance(item, np.ndarray):
                names.append(item.dtype.name)
    return names


def _probed_dtype_of(values: Sequence[Any], out_dtype: Any) -> str | None:
    """The first CUDA-probed dtype among the inputs and the output, or None."""
    return next((n for n in _dtype_names(values, [out_dtype]) if n in CUDA_PROBED_DTYPES),
                None)


def _emulated(name: str, inputs: Sequence[Any], out_dtypes: Sequence[Any]) -> Callable[..., Any]:
    """The template to run kernel ``name``'s CUDA path with, or a pytest.skip saying why
    the ``cuda-emulated`` case cannot run it."""
    template = template_of(name, "cuda")
    if template is None:
        pytest.skip(f"cuda-emulated: {name} has no CUDA template (a dedicated CUDA kernel, "
                    f"or CPU only)")
    for dtype in _dtype_names(inputs, out_dtypes):
        problem = emulated_dtype_problem(dtype)
        if problem is not None:
            pytest.skip(problem)
    return template


def _host_tensor(value: Any) -> Any:
    """Like :func:`to_device` on the CPU, with the arrays viewed as fake CuPy arrays."""
    if isinstance(value, np.ndarray):
        t = relaxvm.tensor(value, relaxvm.cpu(0))
        t.array = on_device(t.array)
        return t
    if isinstance(value, tuple):
        return tuple(_host_tensor(v) for v in value)
    return value


def _emulated_run(name: str, inputs: Sequence[Any], outs: Sequence[tuple[Sequence[int], Any]],
                  attrs: Sequence[Any], multi: bool) -> list[np.ndarray]:
    """Call kernel ``name``'s template with the fake CuPy on host tensors; the outputs."""
    template = _emulated(name, inputs, [d for _, d in outs])
    tensors = tuple(_host_tensor(np.empty(tuple(s), numpy_dtype(d))) for s, d in outs)
    with installed() as xp:
        result = template(xp, *[_host_tensor(v) for v in inputs],
                          tensors if multi else tensors[0], *attrs)
    if not multi:
        assert result is None, f"{name} must return None (destination passing), got {result!r}"
    return [np.array(t.array.view(np.ndarray)) for t in tensors]


def _unsupported_errors() -> tuple[type[BaseException], ...]:
    """What CuPy raises for a dtype a routine has no loop or template for."""
    errors: list[type[BaseException]] = [TypeError, NotImplementedError]
    try:
        from cupy.cuda.compiler import CompileException
        errors.append(CompileException)
    except Exception:
        pass
    return tuple(errors)


def _guarded(name: str, dev: relaxvm.Device, inputs: Sequence[Any], out_dtype: Any,
             call: Callable[[], Any]) -> Any:
    """``call()``; on CUDA, a case in a probed dtype skips where the probe fails and
    becomes an xfail (naming the kernel and the error) where the kernel cannot run it."""
    probed = _probed_dtype_of(inputs, out_dtype) if dev.device_type != 1 else None
    if probed is None:
        return call()
    skip_unsupported(dev, probed)
    try:
        return call()
    except _unsupported_errors() as exc:
        # Our own ArgumentError (a TypeError too) counts only when it names the dtype, as
        # in "no CUDA C type for bfloat16"; any other is a real failure.
        if isinstance(exc, ArgumentError) and probed not in str(exc):
            raise
        pytest.xfail(f"{name} does not support {probed} on CUDA yet "
                     f"({type(exc).__name__}: {exc})")


def random_array(rng: np.random.Generator, shape: Sequence[int], dtype: str,
                 low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """Uniform values in [low, high) rounded to ``dtype`` (ints: integers in that range)."""
    np_dtype = numpy_dtype(dtype)
    if np_dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np_dtype.kind in "iu":
        return rng.integers(int(low), int(high), size=shape).astype(np_dtype)
    return rng.uniform(low, high, size=shape).astype(np_dtype)


def to_device(value: Any, dev: relaxvm.Device) -> Any:
    """NumPy arrays become Tensors on ``dev``; tuples recurse; anything else passes."""
    if isinstance(value, np.ndarray):
        return relaxvm.tensor(value, dev)
    if isinstance(value, tuple):
        return tuple(to_device(v, dev) for v in value)
    return value


def run_kernel(name: str, dev: relaxvm.Device, inputs: Sequence[Any],
               out_shape: Sequence[int], out_dtype: Any, attrs: Sequence[Any] = ()
               ) -> np.ndarray:
    """Call kernel ``name`` on ``dev`` as ``kernel(*inputs, out, *attrs)``; return out."""
    if isinstance(dev, EmulatedCuda):
        return _emulated_run(name, inputs, [(out_shape, out_dtype)], attrs, False)[0]

    def call() -> np.ndarray:
        out = relaxvm.empty(tuple(out_shape), numpy_dtype(out_dtype), dev)
        result = get_kernel(name, dev.device_type)(*[to_device(v, dev) for v in inputs], out,
                                                    *attrs)
        assert result is None, f"{name} must return None (destination passing), got {result!r}"
        return out.numpy()

    return _guarded(name, dev, inputs, out_dtype, call)


def run_multi(name: str, dev: relaxvm.Device, inputs: Sequence[Any],
              outs: Sequence[tuple[Sequence[int], Any]], attrs: Sequence[Any] = ()
              ) -> list[np.ndarray]:
    """Like :func:`run_kernel` for kernels with a tuple of outputs (``outs``)."""
    if isinstance(dev, EmulatedCuda):
        return _emulated_run(name, inputs, outs, attrs, True)

    def call() -> list[np.ndarray]:
        tensors = tuple(relaxvm.empty(tuple(s), numpy_dtype(d), dev) for s, d in outs)
        get_kernel(name, dev.device_type)(*[to_device(v, dev) for v in inputs], tensors, *attrs)
        return [t.numpy() for t in tensors]

    out_dtype = next((d for _, d in outs if numpy_dtype(d).name in CUDA_PROBED_DTYPES),
                     outs[0][1] if outs else "float32")
    return _guarded(name, dev, inputs, out_dtype, call)


def wide(array: np.ndarray) -> np.ndarray:
    """float64 copy for references (bfloat16 and float16 included); ints/bools unchanged."""
    array = np.asarray(array)
    if array.dtype.kind in "biu":
        return array
    return array.astype(np.float64)


def check(kernel: str, got: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    """``got`` equals ``expected`` within the documented tolerance of (kernel, dtype)."""
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{kernel}: shape {got.shape} != {expected.shape}"
    rtol, atol = tolerance(kernel, dtype)
    if got.dtype.kind in "biu" or (rtol == 0 and atol == 0):
        exp = expected.astype(got.dtype) if expected.dtype.kind in "biu" else expected
        np.testing.assert_array_equal(wide(got), wide(exp), err_msg=f"{kernel} {dtype}")
        return
    np.testing.assert_allclose(wide(got), wide(expected), rtol=rtol, atol=atol,
                               err_msg=f"{kernel} {dtype}")


class ArrayModuleProxy:
    """NumPy under another name. Kernels that special-case ``xp is numpy`` (the CPU path)
    take the path they take with CuPy, so a CPU test runs the CUDA code on NumPy.
    (:data:`emulated_cupy.FAKE_CUPY` goes further: CuPy's name, ``.get()``, ``cupyx``.)"""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


#: The smallest power of two at which the dtype's spacing is 2: adding 1 to it rounds back.
_STUCK_AT = {"float16": 2048.0, "bfloat16": 256.0}


def stuck_taps(dtype: str, taps: int = 64) -> np.ndarray:
    """A (1, 1, 1, taps) row: one big value, then ones that a running sum kept in ``dtype``
    drops every time (big + 1 rounds back to big), but a float32 sum keeps."""
    row = np.ones((1, 1, 1, taps), np.float32)
    row[..., 0] = _STUCK_AT[dtype]
    return row.astype(numpy_dtype(dtype))


def onnx_node_reference(op: str, inputs: Sequence[tuple[str, Any]], opset: int,
                        n_outputs: int = 1, domain: str = "", **attrs: Any) -> list[np.ndarray]:
    """Run one ONNX node with onnx.reference (the independent oracle of the kernel tests):
    ``inputs`` are (name, value) pairs in the node's input order, a None value is an
    omitted optional input (an empty name); ``opset`` is the version of the node's
    ``domain`` (another domain also imports default opset 19). Returns every output."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    names = [name if value is not None else "" for name, value in inputs]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outs, domain=domain or None, **attrs)
    infos = [helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype), np.shape(value))
        for name, value in inputs if value is not None]
    graph = helper.make_graph([node], "g", infos,
                              [helper.make_empty_tensor_value_info(o) for o in outs])
    imports = [helper.make_opsetid(domain, opset)]
    if domain:
        imports.append(helper.make_opsetid("", 19))
    model = helper.make_model(graph, opset_imports=imports)
    feeds = {name: np.asarray(value) for name, value in inputs if value is not None}
    return [np.asarray(r) for r in ReferenceEvaluator(model).run(None, feeds)]
