"""A minimal stand-in for how CuPy 14 turns kernel definitions into CUDA C, for nvcc.

relaxvm hands CuPy C fragments at run time (``ElementwiseKernel`` in/out params and
operation bodies, ``RawKernel`` sources). Without a GPU or CuPy, this module wraps them
the way CuPy 14 does, closely enough for ``nvcc -ptx`` to type-check our code:

* ``ElementwiseKernel``: CuPy (``cupy/_core/_kernel.pyx``) emits one typedef per type
  placeholder (``typedef float T;``), the preamble, then
  ``extern "C" __global__ void name(params)`` whose params are ``const CArray<ctype, ndim,
  c_contiguous, index_32_bits> _raw_x`` per input array (outputs lose the ``const``),
  ``CArray<...> x`` for ``raw`` arrays, ``const ctype x`` for scalars and a trailing
  ``CIndexer<ndim, index_32_bits> _ind``; the loop is ``CUPY_FOR(i, _ind.size()) {
  _ind.set(i); <decls> <operation>; }`` with ``const T &x = _raw_x[_ind.get()];`` per
  input and ``T &y = _raw_y[_ind.get()];`` per output.
* Type names follow ``cupy/_core/_scalar.pyx``: float16 -> ``float16``, int8 -> ``signed
  char``, int64 -> ``long long``, bool -> ``bool``... In CuPy 14 the ``float16`` class
  comes from ``cupy/float16.cuh``, which CuPy includes only into kernels that have a
  float16 parameter (``get_typename`` collects per-type headers); the always-included
  headers are complex.cuh, carray.cuh, atomics.cuh and math_constants.h. (Whether one
  of those pulls float16.cuh in anyway could not be checked without CuPy; declaring
  float16 only where a parameter needs it is the strict reading, so we use it.)
* ``float16`` (``cupy/float16.cuh``) wraps ``half``: implicit from float and to float,
  explicit from bool/double/int/long long, no arithmetic operators of its own (so
  ``a + b`` is float arithmetic), ``min``/``max``/``fmin``/``fmax``/``isnan`` overloads.

Everything below is written here (not copied from CuPy); it declares only what our
sources use. Several kernels are batched into one translation unit, each wrapped in
its own namespace (CuPy compiles each separately, so typedefs must not clash); the
``extern "C"`` linkage is dropped for the same reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

NVCC_ARCH = "sm_90"

#: numpy dtype name -> CuPy's C type name (cupy/_core/_scalar.pyx ``_typenames_base``).
CTYPES = {"float16": "float16", "float32": "float", "float64": "double",
          "int8": "signed char", "int16": "short", "int32": "int", "int64": "long long",
          "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
          "uint64": "unsigned long long", "bool": "bool"}

#: Stand-in for the part of cupy/carray.cuh our kernels touch: CUPY_FOR, CArray (element
#: access by flat index or by an index array) and CIndexer (size / set / get).
CARRAY = r"""
#include <cuda_runtime.h>
#include <cstddef>
#define CUPY_FOR(i, n) \
    for (ptrdiff_t i = static_cast<ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
         i < (n); i += static_cast<ptrdiff_t>(blockDim.x) * gridDim.x)
template <typename T, int ndim, bool c_contiguous = false, bool index_32 = false>
class CArray {
  T* data_;
  ptrdiff_t size_;
  ptrdiff_t shape_[ndim];
  ptrdiff_t strides_[ndim];
public:
  __device__ ptrdiff_t size() const { return size_; }
  __device__ const T& operator[](ptrdiff_t i) const { return data_[i]; }
  __device__ T& operator[](ptrdiff_t i) { return data_[i]; }
  __device__ const T& operator[](const ptrdiff_t (&idx)[ndim]) const {
    const char* p = reinterpret_cast<const char*>(data_);
    for (int d = 0; d < ndim; ++d) p += strides_[d] * idx[d];
    return *reinterpret_cast<const T*>(p);
  }
  __device__ T& operator[](const ptrdiff_t (&idx)[ndim]) {
    return const_cast<T&>(static_cast<const CArray&>(*this)[idx]);
  }
};
template <int ndim, bool index_32 = false>
class CIndexer {
  ptrdiff_t size_;
  ptrdiff_t shape_[ndim];
  ptrdiff_t index_[ndim];
public:
  __device__ ptrdiff_t size() const { return size_; }
  __device__ void set(ptrdiff_t i) {
    for (int d = ndim; --d > 0; ) { index_[d] = i % shape_[d]; i /= shape_[d]; }
    index_[0] = i;
  }
  __device__ const ptrdiff_t (&get() const)[ndim] { return index_; }
};
"""

#: Stand-in for cupy/float16.cuh (CuPy 14): only what CuPy's class offers.
FLOAT16 = r"""
#include <cuda_fp16.h>
class float16 {
  __half data_;
public:
  __device__ float16() {}
  __device__ float16(float v) : data_(__float2half_rn(v)) {}
  explicit __device__ float16(bool v) : data_(__float2half_rn(float(v))) {}
  explicit __device__ float16(double v) : data_(__double2half(v)) {}
  explicit __device__ float16(int v) : data_(__float2half_rn(float(v))) {}
  explicit __device__ float16(unsigned int v) : data_(__float2half_rn(float(v))) {}
  explicit __device__ float16(long long v) : data_(__float2half_rn(float(v))) {}
  explicit __device__ float16(unsigned long long v) : data_(__float2half_rn(float(v))) {}
  explicit __device__ float16(const __half& v) : data_(v) {}
  __device__ operator float() const { return __half2float(data_); }
  float16& operator=(const float16&) = default;
  template <typename T> __device__ float16& operator=(const T& rhs) {
    *this = static_cast<float16>(rhs);
    return *this;
  }
  __device__ int isnan() const { return __hisnan(data_); }
};
__device__ float16 min(float16 x, float16 y) { return float16(fminf(float(x), float(y))); }
__device__ float16 max(float16 x, float16 y) { return float16(fmaxf(float(x), float(y))); }
__device__ float16 fmin(float16 x, float16 y) { return float16(fminf(float(x), float(y))); }
__device__ float16 fmax(float16 x, float16 y) { return float16(fmaxf(float(x), float(y))); }
__device__ int isnan(float16 x) { return x.isnan(); }
"""


def ctype(dtype: str) -> str:
    """CuPy's C type name for a NumPy dtype name."""
    return CTYPES[np.dtype(dtype).name]


@dataclass
class Param:
    """One parsed ElementwiseKernel parameter: ``[raw] type name``."""

    type: str
    name: str
    raw: bool


def parse_params(text: str) -> list[Param]:
    """Split CuPy's ``"T x, raw A k, int64 n"`` parameter list."""
    params = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        words = part.split()
        params.append(Param(words[-2], words[-1], "raw" in words[:-2]))
    return params


@dataclass
class Kernel:
    """One CUDA source to compile: a label for messages and the C code."""

    label: str
    code: str
    headers: frozenset[str] = field(default_factory=frozenset)  # "float16", ...


def elementwise(label: str, in_params: str, out_params: str, operation: str,
                types: dict[str, str], preamble: str = "",
                scalars: Iterable[str] = ()) -> Kernel:
    """CuPy's ElementwiseKernel wrapping of one kernel for concrete dtypes.

    ``types`` maps each one-letter type placeholder (``T``, ``A``) to the dtype CuPy
    would infer from the arguments; ``scalars`` names the parameters passed as scalars
    rather than arrays (CuPy decides that from the call's arguments too).
    """
    scalar_set = set(scalars)
    used: set[str] = set()

    def c_of(t: str) -> str:
        dtype = types[t] if len(t) == 1 else t
        used.add(np.dtype(dtype).name)
        return ctype(dtype)

    typedefs = [f"typedef {c_of(t)} {t};" for t in sorted(types)]
    args, decls = [], []
    for params, const in ((parse_params(in_params), True), (parse_params(out_params), False)):
        for p in params:
            c = c_of(p.type)
            q = "const " if const else ""
            if p.name in scalar_set:
                args.append(f"{q}{c} {p.name}")
            elif p.raw:
                args.append(f"{q}CArray<{c}, 1, true, true> {p.name}")
            else:
                args.append(f"{q}CArray<{c}, 1, true, true> _raw_{p.name}")
                decls.append(f"{q}{c} &{p.name} = _raw_{p.name}[_ind.get()];")
    args.append("CIndexer<1, true> _ind")
    code = "\n".join([
        *typedefs, preamble,
        f"__global__ void kernel({', '.join(args)}) {{",
        "  CUPY_FOR(i, _ind.size()) {", "    _ind.set(i);",
        *("    " + d for d in decls), "    " + operation + ";", "  }", "}"])
    headers = frozenset(h for h in ("float16",) if h in used)
    return Kernel(label, code, headers)


def raw(label: str, code: str) -> Kernel:
    """A RawKernel source: CuPy compiles it as written (no headers prepended)."""
    return Kernel(label, code, frozenset({"raw"}))


@dataclass
class CompileError:
    """A batch that nvcc rejected: the kernels its errors point into and the log."""

    labels: list[str]
    log: str
    sources: list[str]

    def __str__(self) -> str:
        parts = [f"nvcc rejected {', '.join(self.labels) or 'the batch'}:", self.log]
        for label, source in zip(self.labels, self.sources):
            parts.append(f"--- source of {label} ---\n{source}")
        return "\n".join(parts)


def translation_unit(kernels: list[Kernel]) -> tuple[str, list[tuple[int, int]]]:
    """One .cu for a batch (same headers), and each kernel's (first, last) line."""
    headers = kernels[0].headers
    lines = [] if "raw" in headers else CARRAY.splitlines()
    if "float16" in headers:
        lines += FLOAT16.splitlines()
    spans = []
    for k, kernel in enumerate(kernels):
        lines.append(f"// ---- {kernel.label}")
        lines.append(f"namespace rvm_k{k} {{")
        start = len(lines) + 1
        lines += kernel.code.replace('extern "C" ', "").splitlines()
        spans.append((start, len(lines)))
        lines.append("}")
    return "\n".join(lines) + "\n", spans


def nvcc() -> str | None:
    """The nvcc executable, or None."""
    return shutil.which("nvcc")


def compile_batch(kernels: list[Kernel]) -> CompileError | None:
    """Compile one batch to PTX; None when nvcc accepts it."""
    source, spans = translation_unit(kernels)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batch.cu")
        with open(path, "w") as f:
            f.write(source)
        cmd = [nvcc() or "nvcc", "-ptx", f"-arch={NVCC_ARCH}", "-std=c++17", path,
               "-o", os.path.join(tmp, "batch.ptx")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode == 0:
        return None
    log = done.stderr + done.stdout
    bad = sorted({int(m) for m in re.findall(r"batch\.cu\((\d+)\)", log)})
    hit = [i for i, (a, b) in enumerate(spans) if any(a <= n <= b for n in bad)]
    return CompileError([kernels[i].label for i in hit], log.replace(path, "batch.cu"),
                        [kernels[i].code for i in hit])


def batches(kernels: list[Kernel]) -> list[list[Kernel]]:
    """Group kernels by the headers they need (one translation unit per group)."""
    groups: dict[frozenset[str], list[Kernel]] = {}
    for kernel in kernels:
        groups.setdefault(kernel.headers, []).append(kernel)
    return list(groups.values())
