"""The host erf: the float32 tanh-polynomial form and the float64 NumPy fallback against
``math.erf``, and which implementation erf_into picks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from relaxvm.kernels import erf as erf_module
from relaxvm.kernels.erf import erf32_into, erf_float64, erf_into
from relaxvm.objects import numpy_dtype

# (rtol, atol) per input dtype. float32: the fit's 1e-7 plus ~2 ulp of float32 rounding;
# float16's atol covers its subnormals (spacing 6e-8), where relative error is large.
TOL = {"float64": (1e-13, 0.0), "float32": (4e-7, 0.0), "float16": (1e-3, 6e-8),
       "bfloat16": (8e-3, 0.0)}
POINTS = np.concatenate([np.linspace(-7, 7, 20001), [1e-30, -1e-20, 1e-6, 0.7999, 0.8, 3.99,
                                                     4.0, 4.01]])


def _reference(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in x.astype(np.float64).tolist()])


@pytest.mark.parametrize("dtype", sorted(TOL))
def test_erf_into_matches_math_erf_over_the_whole_line(dtype: str) -> None:
    x = POINTS.astype(numpy_dtype(dtype))
    out = np.empty_like(x)
    erf_into(x, out)
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(out.astype(np.float64), _reference(x), rtol=rtol, atol=atol)


def test_float64_fallback_without_scipy_matches_math_erf() -> None:
    out = np.empty_like(POINTS)
    erf_float64(POINTS, out)
    np.testing.assert_allclose(out, _reference(POINTS), rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_of_zero_infinities_and_nan(dtype: str) -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype)
    out = np.empty_like(x)
    erf_into(x, out)
    np.testing.assert_array_equal(out[:2], [0.0, -0.0])
    assert np.signbit(out[1]) and np.isnan(out[4])
    # NumPy's float32 tanh saturates to 1.0 only from 10 on: +-1 within an ulp.
    np.testing.assert_allclose(out[2:4], [1.0, -1.0], rtol=np.finfo(dtype).eps, atol=0)


def test_erf32_applies_scale_and_keeps_input_intact() -> None:
    x = np.linspace(-3, 3, 101).astype(np.float32)
    before = x.copy()
    out = np.empty_like(x)
    assert erf32_into(x, out, 0.5) is out
    np.testing.assert_allclose(out, _reference(x * 0.5), rtol=4e-7)
    np.testing.assert_array_equal(x, before)


def test_erf32_returns_scratch_for_narrow_output() -> None:
    x = np.linspace(-3, 3, 11).astype(np.float16)
    out = np.empty_like(x)
    result = erf32_into(x, out)
    assert result is not out and result.dtype == np.float32


def test_float64_uses_fallback_when_scipy_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    real_import = builtins.__import__

    def no_scipy(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    monkeypatch.setattr(erf_module, "_WIDE", [])
    assert erf_module._float64_impl() is erf_float64
