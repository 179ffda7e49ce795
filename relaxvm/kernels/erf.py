"""The error function on the CPU, for the ``erf`` and ``gelu`` kernels.

NumPy has no ``erf``, and SciPy's ufunc is both optional and slow (measured ~15 ns per
float32 element here, 40x a NumPy ``tanh``). Two NumPy-only evaluations instead:

* float32 and narrower: ``erf(x) = tanh(x * P(x^2))`` on ``|x| <= 4`` (clamped beyond,
  where erf rounds to +-1). ``atanh(erf(x)) / x`` is smooth, and tanh's flattening
  damps the polynomial's error where erf nears 1, so a degree-6 ``P`` reaches 1e-7
  relative error; float32 evaluation adds about 2 ulp. 20 in-place ufunc passes over
  two reused scratch vectors, no temporaries.
* float64: SciPy's ufunc when installed, else :func:`erf_float64`: ``x * A(x^2)``
  below 0.8 and ``1 - exp(-x^2) * B(1 / (1 + x))`` above, about 4e-14 relative.

All coefficients were least-squares fitted for this project (Chebyshev nodes, against
``math.erf`` / mpmath), the tanh form with Lawson reweighting towards minimax.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.kernels.common import scratch

# Highest power first (Horner order); P is a polynomial in x^2.
_TANH_POLY = (1.418421297916908e-07, -5.66827640729016e-06, 8.76359544376625e-05,
              -0.0006197805632861912, -0.0001918361096469094, 0.10276905839406697,
              1.128379273990841)
_TANH_CLIP = 4.0

_SPLIT = 0.8
_A64 = (-1.2311085334758417e-07, 1.5943567625927217e-06, -1.4888077025859151e-05,
        0.0001205367637198918, -0.0008548281813671453, 0.0052239768780214385,
        -0.026866170574968352, 0.11283791670628905, -0.37612638903178314, 1.1283791670955123)
_B64 = (11.02385650198524, -47.49587175802157, 85.23586041438098, -76.3264767590947,
        25.03699356898212, 13.808005348525292, -14.140360600881609, -0.24575232245668605,
        4.9657524010289835, -1.5764215843480072, -0.33789311719091264, -0.3446483219521331,
        0.2892971383191916, 0.5636475252031512, 0.5642137465676413, -4.848181620848653e-07)
_CLIP64 = 6.0  # erfc(6) = 2e-17: beyond, erf is +-1 in float64


def erf_tanh_poly(z: np.ndarray, acc: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """``acc = erf(z)`` for float32 ``z`` (clamped in place); ``sq`` is scratch."""
    np.clip(z, -_TANH_CLIP, _TANH_CLIP, out=z)
    np.square(z, out=sq)
    np.multiply(sq, _TANH_POLY[0], out=acc)
    np.add(acc, _TANH_POLY[1], out=acc)
    for c in _TANH_POLY[2:]:
        np.multiply(acc, sq, out=acc)
        np.add(acc, c, out=acc)
    np.multiply(acc, z, out=acc)
    np.tanh(acc, out=acc)
    return acc


def erf32_into(x: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``erf(x * scale)`` computed in float32; written to ``out`` when it is float32
    (and returned), else returned in a scratch vector for the caller to convert."""
    z, spare, sq = (v.reshape(x.shape) for v in scratch(3, x.size))
    np.multiply(x, scale, out=z, casting="unsafe")
    acc = out if out.dtype == np.float32 else spare
    return erf_tanh_poly(z, acc, sq)


def _horner(coeffs: tuple[float, ...], t: np.ndarray) -> np.ndarray:
    acc = np.full_like(t, coeffs[0])
    for c in coeffs[1:]:
        np.multiply(acc, t, out=acc)
        np.add(acc, c, out=acc)
    return acc


def erf_float64(x: np.ndarray, out: np.ndarray) -> None:
    """Write ``erf(x)`` into ``out``, computed in float64 with NumPy ufuncs only."""
    work = np.asarray(x, dtype=np.float64)
    ax = np.minimum(np.abs(work), _CLIP64)
    sq = np.square(ax)
    small = _horner(_A64, sq)
    np.multiply(small, ax, out=small)
    t = np.add(ax, 1.0)
    np.reciprocal(t, out=t)
    big = _horner(_B64, t)
    np.negative(sq, out=sq)
    np.exp(sq, out=sq)
    np.multiply(big, sq, out=big)
    np.subtract(1.0, big, out=big)
    result = np.where(ax < _SPLIT, small, big)
    np.copysign(result, work, out=result)
    np.copyto(out, result, casting="unsafe")


_WIDE: list[Callable[[np.ndarray, np.ndarray], Any]] = []


def _float64_impl() -> Callable[[np.ndarray, np.ndarray], Any]:
    if not _WIDE:
        try:
            from scipy.special import erf as scipy_erf
            _WIDE.append(lambda x, out: scipy_erf(x, out=out))
        except Exception:  # not installed, or a broken install
            _WIDE.append(erf_float64)
    return _WIDE[0]


def erf_into(x: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = erf(x)`` on the host, in float64 when either side is float64."""
    if x.dtype == np.float64 or out.dtype == np.float64:
        if x.dtype == out.dtype == np.float64:
            _float64_impl()(x, out)
        else:
            wide = np.empty(out.shape, np.float64)
            _float64_impl()(x.astype(np.float64), wide)
            np.copyto(out, wide, casting="unsafe")
        return
    result = erf32_into(x, out)
    if result is not out:
        np.copyto(out, result, casting="unsafe")
