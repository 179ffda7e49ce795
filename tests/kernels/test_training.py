"""adagrad, adam and momentum (ai.onnx.preview.training) against the spec's formulas in
float64 and onnx.reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kernel_harness import check, dtype_params, onnx_node_reference, run_multi, skip_unsupported

from relaxvm.errors import ArgumentError

TRAINING = "ai.onnx.preview.training"
SHAPES = [(3,), (2, 4)]
#: ONNX op, kernel, state tensors per variable, attributes (ONNX names = kernel names).
CASES = {
    "adagrad": ("Adagrad", ["H"], {"norm_coefficient": 0.01, "decay_factor": 0.1,
                                   "epsilon": 1e-5}),
    "adam": ("Adam", ["V", "H"], {"alpha": 0.9, "beta": 0.85, "epsilon": 1e-3,
                                  "norm_coefficient": 0.01, "norm_coefficient_post": 0.02}),
    "momentum": ("Momentum", ["V"], {"alpha": 0.95, "beta": 0.3, "norm_coefficient": 0.01,
                                     "mode": "standard"}),
    "nesterov": ("Momentum", ["V"], {"alpha": 0.95, "beta": 0.3, "norm_coefficient": 0.01,
                                     "mode": "nesterov"}),
}


def _inputs(dtype: str, state: list[str], count: int, seed: int = 0
            ) -> list[tuple[str, np.ndarray]]:
    """R, T, then X..., G..., and each state group (H positive: a squared-gradient sum)."""
    rng = np.random.default_rng(seed)
    named = [("R", np.array(0.1, dtype)), ("T", np.array(count, np.int64))]
    for group in ["X", "G", *state]:
        for i, shape in enumerate(SHAPES):
            low = 0.0 if group == "H" else -1.0
            named.append((f"{group}{i}", rng.uniform(low, 1.0, shape).astype(dtype)))
    return named


def _spec(case: str, named: list[tuple[str, np.ndarray]], attrs: dict[str, Any]
          ) -> list[np.ndarray]:
    """The ONNX spec's pseudo code in float64 (attributes rounded to float32 first, as a
    model stores them): X_new... then each state group."""
    a = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in attrs.items()}
    vals = {k: np.asarray(v, np.float64) for k, v in named}
    r, t = float(vals["R"]), int(vals["T"])
    n = len(SHAPES)
    groups: list[list[np.ndarray]] = [[], [], []]
    for i in range(n):
        x, g = vals[f"X{i}"], vals[f"G{i}"]
        g = a["norm_coefficient"] * x + g
        if case == "adagrad":
            h = vals[f"H{i}"] + g * g
            outs = [x - r / (1 + t * a["decay_factor"]) * g / (np.sqrt(h) + a["epsilon"]), h]
        elif case == "adam":
            v = a["alpha"] * vals[f"V{i}"] + (1 - a["alpha"]) * g
            h = a["beta"] * vals[f"H{i}"] + (1 - a["beta"]) * g * g
            rate = r * np.sqrt(1 - a["beta"] ** t) / (1 - a["alpha"] ** t) if t > 0 else r
            x_new = x - rate * v / (np.sqrt(h) + a["epsilon"])
            outs = [(1 - a["norm_coefficient_post"]) * x_new, v, h]
        else:
            v = a["alpha"] * vals[f"V{i}"] + (a["beta"] if t > 0 else 1.0) * g
            step = v if a["mode"] == "standard" else g + a["alpha"] * v
            outs = [x - r * step, v]
        for k, o in enumerate(outs):
            groups[k].append(o)
    return [o for group in groups for o in group]


def _run(case: str, dev: Any, dtype: str, count: int) -> tuple[list, list, list]:
    """The kernel's outputs, the float64 spec's and onnx.reference's."""
    op, state, attrs = CASES[case]
    named = _inputs(dtype, state, count)
    n_out = len(SHAPES) * (1 + len(state))
    reference = onnx_node_reference(op, named, 1, n_out, domain=TRAINING, **attrs)
    kernel = "momentum" if op == "Momentum" else case
    outs = [(e.shape, dtype) for e in reference]
    # ONNX stores float attributes as float32: the kernel gets them as the model holds them.
    values = [float(np.float32(v)) if isinstance(v, float) else v for v in attrs.values()]
    got = run_multi(kernel, dev, [tuple(v for _, v in named)], outs, values)
    return got, _spec(case, named, attrs), reference


@pytest.mark.parametrize("count", [0, 3])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", dtype_params("adam"))
def test_optimizer_matches_the_spec_in_float64(dev: Any, dtype: str, case: str,
                                               count: int) -> None:
    skip_unsupported(dev, dtype)
    got, spec, _ = _run(case, dev, dtype, count)
    kernel = "momentum" if case == "nesterov" else case
    assert len(got) == len(spec)
    for g, e in zip(got, spec, strict=True):
        check(kernel, g, e, dtype)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", dtype_params("adam"))
def test_optimizer_matches_onnx_reference(dev: Any, dtype: str, case: str) -> None:
    """onnx.reference rounds some scalar factors (and Adam's float64 outputs) to float32,
    so it agrees to float32 precision only."""
    skip_unsupported(dev, dtype)
    got, _, reference = _run(case, dev, dtype, 2)
    for g, e in zip(got, reference, strict=True):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_adam_first_step_uses_the_plain_learning_rate(dev: Any) -> None:
    """T = 0 skips the bias correction (whose 1 - alpha**0 would divide by zero)."""
    named = [("R", np.array(0.5, "float64")), ("T", np.array(0, np.int64)),
             ("X", np.array([1.0])), ("G", np.array([2.0])), ("V", np.array([0.0])),
             ("H", np.array([0.0]))]
    x_new, v_new, h_new = run_multi("adam", dev, [tuple(v for _, v in named)],
                                    [((1,), "float64")] * 3, [0.5, 0.75, 0.0])
    assert v_new[0] == 1.0 and h_new[0] == 1.0
    assert x_new[0] == pytest.approx(1.0 - 0.5 * 1.0 / 1.0)


def _call(kernel: str, xs: tuple, n_outs: int, attrs: list[Any]) -> None:
    run_multi(kernel, __import__("relaxvm").cpu(0), [xs], [((2,), "float32")] * n_outs, attrs)


def test_optimizer_rejects_a_ragged_layout() -> None:
    scalars = (np.array(0.1, np.float32), np.array(1, np.int64))
    x = np.zeros(2, np.float32)
    with pytest.raises(ArgumentError, match=r"adagrad: xs must be R, T and n tensors of each "
                                            r"of X, G, H \(2 \+ 3 \* n inputs"):
        _call("adagrad", (*scalars, x, x), 2, [])
    with pytest.raises(ArgumentError, match="adam: outs must hold 3 tensors"):
        _call("adam", (*scalars, x, x, x, x), 2, [])


def test_momentum_rejects_an_unknown_mode() -> None:
    scalars = (np.array(0.1, np.float32), np.array(1, np.int64))
    x = np.zeros(2, np.float32)
    with pytest.raises(ArgumentError, match="momentum: mode must be one of standard, "
                                            "nesterov, got 'heavy'"):
        _call("momentum", (*scalars, x, x, x), 2, [0.9, 0.1, 0.0, "heavy"])
