"""Optimizer kernels of ONNX's ``ai.onnx.preview.training`` domain: adagrad, adam and
momentum (standard and Nesterov).

Each takes the ONNX node's variadic layout as one tuple ``xs``: the learning rate ``R``
and the update count ``T`` (scalars), then the optimized tensors ``X1..Xn``, their
gradients ``G1..Gn`` and their state tensors (``H1..Hn`` for adagrad, ``V1..Vn`` and
``H1..Hn`` for adam, ``V1..Vn`` for momentum), and writes ``outs`` in the ONNX output
order: ``X1_new..Xn_new`` then the new state tensors group by group. The update
formulas are the ONNX spec's, elementwise with NumPy broadcasting. The scalar factors
(the decayed or bias-corrected learning rate, the adjusted beta) are computed in float64
from ``R`` and ``T`` on the device, without a host round trip, then cast to X's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_template

MOMENTUM_MODES = ("standard", "nesterov")


def _groups(name: str, xs: Sequence[Any], outs: Sequence[Any], groups: Sequence[str]
            ) -> list[list[Any]]:
    """The arrays of ``xs[2:]`` split into ``len(groups)`` groups of n (X, G, ...);
    ArgumentError when the counts do not fit ``R, T`` + n of each, or the outputs are not
    n per group but G."""
    k = len(groups)
    n, extra = divmod(len(xs) - 2, k)
    if len(xs) < 2 + k or extra:
        raise ArgumentError(f"{name}: xs must be R, T and n tensors of each of "
                            f"{', '.join(groups)} (2 + {k} * n inputs, n >= 1), got "
                            f"{len(xs)} inputs")
    if len(outs) != (k - 1) * n:
        raise ArgumentError(f"{name}: outs must hold {(k - 1) * n} tensors (the new X and "
                            f"state of {n} variables), got {len(outs)}")
    arrays = [t.array for t in xs[2:]]
    return [arrays[g * n:(g + 1) * n] for g in range(k)]


def _scalars(xp: Any, xs: Sequence[Any]) -> tuple[Any, Any]:
    """R and T as float64 0-d device arrays."""
    return (xs[0].array.reshape(()).astype(xp.float64),
            xs[1].array.reshape(()).astype(xp.float64))


def _write(xp: Any, out: Any, value: Any) -> None:
    xp.copyto(out.array, xp.broadcast_to(value, out.array.shape), casting="unsafe")


@register_template("adagrad")
def adagrad(xp: Any, xs: Sequence[Any], outs: Sequence[Any], norm_coefficient: float = 0.0,
            decay_factor: float = 0.0, epsilon: float = 1e-6) -> None:
    """ONNX Adagrad: ``r = R / (1 + T * decay_factor)``, ``g = norm_coefficient * X + G``,
    ``H_new = H + g * g``, ``X_new = X - r * g / (sqrt(H_new) + epsilon)``;
    xs = (R, T, X..., G..., H...), outs = (X_new..., H_new...)."""
    xs_, gs, hs = _groups("adagrad", xs, outs, ("X", "G", "H"))
    rate, count = _scalars(xp, xs)
    r = rate / (1.0 + count * float(decay_factor))
    n = len(xs_)
    for i, (x, g, h) in enumerate(zip(xs_, gs, hs, strict=True)):
        g_reg = float(norm_coefficient) * x + g
        h_new = h + g_reg * g_reg
        _write(xp, outs[i], x - r.astype(x.dtype) * g_reg / (xp.sqrt(h_new) + float(epsilon)))
        _write(xp, outs[n + i], h_new)


@register_template("adam")
def adam(xp: Any, xs: Sequence[Any], outs: Sequence[Any], alpha: float = 0.9,
         beta: float = 0.999, epsilon: float = 1e-6, norm_coefficient: float = 0.0,
         norm_coefficient_post: float = 0.0) -> None:
    """ONNX Adam: ``g = norm_coefficient * X + G``, ``V_new = alpha * V + (1 - alpha) * g``,
    ``H_new = beta * H + (1 - beta) * g * g``, ``r = R * sqrt(1 - beta**T) / (1 - alpha**T)``
    when T > 0 else R, ``X_new = (1 - norm_coefficient_post) * (X - r * V_new /
    (sqrt(H_new) + epsilon))``; xs = (R, T, X..., G..., V..., H...), outs = (X_new...,
    V_new..., H_new...)."""
    xs_, gs, vs, hs = _groups("adam", xs, outs, ("X", "G", "V", "H"))
    rate, count = _scalars(xp, xs)
    t = xp.maximum(count, 1.0)  # the T > 0 branch, evaluated where it is defined
    corrected = rate * xp.sqrt(1.0 - float(beta) ** t) / (1.0 - float(alpha) ** t)
    r = xp.where(count > 0, corrected, rate)
    a, b, n = float(alpha), float(beta), len(xs_)
    for i, (x, g, v, h) in enumerate(zip(xs_, gs, vs, hs, strict=True)):
        g_reg = float(norm_coefficient) * x + g
        v_new = a * v + (1.0 - a) * g_reg
        h_new = b * h + (1.0 - b) * g_reg * g_reg
        x_new = x - r.astype(x.dtype) * v_new / (xp.sqrt(h_new) + float(epsilon))
        _write(xp, outs[i], (1.0 - float(norm_coefficient_post)) * x_new)
        _write(xp, outs[n + i], v_new)
        _write(xp, outs[2 * n + i], h_new)


@register_template("momentum")
def momentum(xp: Any, xs: Sequence[Any], outs: Sequence[Any], alpha: float, beta: float,
             norm_coefficient: float, mode: str = "standard") -> None:
    """ONNX Momentum: ``g = norm_coefficient * X + G``, ``b = beta`` when T > 0 else 1,
    ``V_new = alpha * V + b * g``; ``X_new = X - R * V_new`` (standard) or
    ``X - R * (g + alpha * V_new)`` (nesterov); xs = (R, T, X..., G..., V...), outs =
    (X_new..., V_new...)."""
    if mode not in MOMENTUM_MODES:
        raise ArgumentError(f"momentum: mode must be one of {', '.join(MOMENTUM_MODES)}, "
                            f"got {mode!r}")
    xs_, gs, vs = _groups("momentum", xs, outs, ("X", "G", "V"))
    rate, count = _scalars(xp, xs)
    beta_adjusted = xp.where(count > 0, float(beta), 1.0)
    a, n = float(alpha), len(xs_)
    for i, (x, g, v) in enumerate(zip(xs_, gs, vs, strict=True)):
        r, b = rate.astype(x.dtype), beta_adjusted.astype(x.dtype)
        g_reg = float(norm_coefficient) * x + g
        v_new = a * v + b * g_reg
        step = v_new if mode == "standard" else g_reg + a * v_new
        _write(xp, outs[i], x - r * step)
        _write(xp, outs[n + i], v_new)
