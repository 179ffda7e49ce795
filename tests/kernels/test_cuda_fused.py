"""The fused CUDA kernels: launch logic checked on the CPU with fake CuPy kernels, and the
real kernels (cuda-marked) against float64 references, fallbacks included."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from kernel_harness import check, random_array, run_kernel

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import cuda_fused
from relaxvm.kernels.norm import layer_norm_into, softmax_into


@pytest.mark.parametrize("cols, threads", [(1, 32), (32, 32), (33, 64), (768, 512),
                                           (100000, 512)])
def test_row_threads_grow_by_powers_of_two_up_to_512(cols: int, threads: int) -> None:
    assert cuda_fused.row_threads(cols) == threads


def test_lazy_kernel_builds_once_on_first_get(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setattr(cuda_fused, "_cupy", lambda: np)
    lazy = cuda_fused.LazyKernel(lambda xp: made.append(xp) or object())
    first = lazy.get()
    assert lazy.get() is first and made == [np]


class FakeRowKernel:
    """Stands in for a RawKernel: records the launch, computes with the NumPy fallback."""

    def __init__(self, kind: str) -> None:
        self.kind, self.launches = kind, []

    def __call__(self, grid: Any, block: Any, args: Any, shared_mem: int = 0) -> None:
        self.launches.append((grid, block, shared_mem))
        if self.kind == "softmax":
            a, o, cols, log = args
            softmax_into(np, a.reshape(-1, int(cols)), o.reshape(-1, int(cols)), -1, bool(log))
        else:
            a, g, b, o, cols, eps, has_beta = args
            rows = (-1, int(cols))
            layer_norm_into(np, a.reshape(rows), g.reshape(-1), b.reshape(-1) if has_beta
                            else None, o.reshape(rows), -1, float(eps))


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRowKernel]:
    """Route the fused CUDA wrappers to NumPy: _cupy() is numpy, row kernels are fakes."""
    fakes = {"softmax": FakeRowKernel("softmax"), "layer_norm": FakeRowKernel("layer_norm")}
    monkeypatch.setattr(cuda_fused, "_cupy", lambda: np)
    monkeypatch.setattr(cuda_fused._SOFTMAX_ROWS, "obj", fakes["softmax"])
    monkeypatch.setattr(cuda_fused._LAYER_NORM_ROWS, "obj", fakes["layer_norm"])
    return fakes


def _tensors(*arrays: np.ndarray) -> list[relaxvm.Tensor]:
    return [relaxvm.tensor(a) for a in arrays]


def test_softmax_launches_one_block_per_row_for_last_axis(fake_cuda: Any) -> None:
    x = random_array(np.random.default_rng(91), (3, 4, 100), "float32")
    [tx] = _tensors(x)
    out = relaxvm.empty(x.shape, "float32")
    cuda_fused.softmax(tx, out, -1)
    assert fake_cuda["softmax"].launches == [((12,), (128,), 512)]
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    check("softmax", out.numpy(), e / e.sum(-1, keepdims=True), "float32")


@pytest.mark.parametrize("shape, axis, dtype", [((3, 5), 0, "float32"), ((3, 5), -1, "float16"),
                                                ((3, 5), -1, "float64")])
def test_softmax_falls_back_for_other_axes_and_dtypes(fake_cuda: Any, shape: Any, axis: int,
                                                      dtype: str) -> None:
    x = random_array(np.random.default_rng(92), shape, dtype)
    [tx] = _tensors(x)
    out = relaxvm.empty(shape, dtype)
    cuda_fused.log_softmax(tx, out, axis)
    assert fake_cuda["softmax"].launches == []
    w = x.astype(np.float64)
    expected = w - w.max(axis, keepdims=True)
    expected -= np.log(np.exp(expected).sum(axis, keepdims=True))
    check("log_softmax", out.numpy(), expected, dtype)


@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_launches_rows_over_trailing_axes(fake_cuda: Any, with_bias: bool) -> None:
    rng = np.random.default_rng(93)
    x, g, b = (random_array(rng, (2, 3, 4, 8), "float32"), random_array(rng, (4, 8), "float32"),
               random_array(rng, (4, 8), "float32"))
    tx, tg, tb = _tensors(x, g, b)
    out = relaxvm.empty(x.shape, "float32")
    cuda_fused.layer_norm(tx, tg, tb if with_bias else None, out, 2, 1e-5)
    assert fake_cuda["layer_norm"].launches == [((6,), (32,), 128)]
    w = x.astype(np.float64)
    mean = w.mean(axis=(2, 3), keepdims=True)
    y = (w - mean) / np.sqrt(((w - mean) ** 2).mean(axis=(2, 3), keepdims=True) + 1e-5) * g
    check("layer_norm", out.numpy(), y + b if with_bias else y, "float32")


def test_layer_norm_falls_back_when_scale_does_not_cover_the_row(fake_cuda: Any) -> None:
    rng = np.random.default_rng(94)
    x, g = random_array(rng, (2, 3, 8), "float32"), random_array(rng, (8,), "float32")
    tx, tg = _tensors(x, g)
    out = relaxvm.empty(x.shape, "float32")
    cuda_fused.layer_norm(tx, tg, None, out, 1, 1e-5)
    assert fake_cuda["layer_norm"].launches == []


def test_gelu_cuda_checks_approximation_before_touching_cupy() -> None:
    x = relaxvm.tensor(np.ones(2, np.float32))
    with pytest.raises(ArgumentError, match="gelu: approximate must be 'none' or 'tanh', got "
                                            "'exact'"):
        cuda_fused.gelu(x, x, "exact")


# -- on a real GPU ------------------------------------------------------------------------

FUSED_REFERENCES = {
    "erf": math.erf,
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "silu": lambda v: v / (1 + math.exp(-v)),
    "rsqrt": lambda v: 1 / math.sqrt(v),
}


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(FUSED_REFERENCES))
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_fused_unary_on_gpu_for_every_float_width(name: str, dtype: str) -> None:
    x = random_array(np.random.default_rng(95), (1000,), dtype, 0.1, 4)
    got = run_kernel(name, relaxvm.cuda(0), [x], x.shape, dtype)
    ref = np.array([FUSED_REFERENCES[name](v) for v in x.astype(np.float64).tolist()])
    check(name, got, ref, dtype)


@pytest.mark.cuda
def test_fused_erf_on_gpu_accepts_integers_through_float32() -> None:
    x = np.array([-2, -1, 0, 1, 2], np.int32)
    got = run_kernel("erf", relaxvm.cuda(0), [x], x.shape, "float32")
    check("erf", got, np.array([math.erf(v) for v in x.tolist()]), "float32")


@pytest.mark.cuda
def test_row_kernels_on_gpu_match_cpu_for_long_rows() -> None:
    rng = np.random.default_rng(96)
    x = random_array(rng, (7, 3000), "float32")
    g, b = random_array(rng, (3000,), "float32"), random_array(rng, (3000,), "float32")
    for name, inputs, attrs in [("softmax", [x], [-1]), ("log_softmax", [x], [-1]),
                                ("layer_norm", [x, g, b], [-1, 1e-5])]:
        gpu = run_kernel(name, relaxvm.cuda(0), inputs, x.shape, "float32", attrs)
        cpu = run_kernel(name, relaxvm.cpu(0), inputs, x.shape, "float32", attrs)
        check(name, gpu, cpu.astype(np.float64), "float32")


def test_row_kernel_max_reduction_propagates_nan() -> None:
    """fmaxf(NaN, x) is x: a row reduced with it would hide a NaN that NumPy propagates."""
    source = cuda_fused._ROW_SOURCE
    assert "fmaxf(" not in source and "fmax(" not in source
    assert "(a != a || a > b) ? a : b" in source   # NaN wins in either operand
    assert source.count("rvm_max(") == 3           # definition, block reduce, per-thread max


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_row_kernels_on_gpu_propagate_a_nan_row_like_numpy(name: str) -> None:
    x = random_array(np.random.default_rng(97), (4, 1000), "float32")
    x[1, 617] = np.nan
    gpu = run_kernel(name, relaxvm.cuda(0), [x], x.shape, "float32", [-1])
    cpu = run_kernel(name, relaxvm.cpu(0), [x], x.shape, "float32", [-1])
    assert np.isnan(gpu[1]).all() and np.isnan(cpu[1]).all()
    assert not np.isnan(np.delete(gpu, 1, axis=0)).any()
    check(name, gpu, cpu.astype(np.float64), "float32")
