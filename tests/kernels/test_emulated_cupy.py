"""The fake CuPy and the ``cuda-emulated`` case: that they behave like CuPy where our
kernels' CUDA branches depend on it, and that the harness really takes those branches."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from emulated_cupy import EMULATED_CUDA, FAKE_CUPY, DeviceArray, installed
from kernel_harness import run_kernel, run_multi, skip_unsupported

import relaxvm
from relaxvm.errors import ArgumentError
from relaxvm.kernels import register_template, unregister_kernel
from relaxvm.objects import numpy_dtype

xp = FAKE_CUPY


def test_it_is_numpy_named_cupy() -> None:
    assert xp is not np and xp.__name__ == "cupy"
    assert xp.float32 is np.float32 and xp.add is np.add
    assert xp.lib.stride_tricks.as_strided is not None and xp.fft.rfft is not None


def test_arrays_are_device_arrays_with_get_and_asnumpy_copies_to_host() -> None:
    a = xp.arange(4, dtype=np.float32)
    assert type(a) is DeviceArray and type(a + 1) is DeviceArray
    assert type(xp.where(a > 1, a, 0)) is DeviceArray
    assert type(a.get()) is np.ndarray and type(xp.asnumpy(a)) is np.ndarray
    assert type(xp.asarray(np.ones(2))) is DeviceArray
    assert a.get().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_host_arrays_next_to_device_arrays_raise_as_in_cupy() -> None:
    a = xp.ones(3, np.float32)
    with pytest.raises(TypeError, match=r"multiply.__call__ got a host numpy.ndarray"):
        a * np.ones(3, np.float32)
    with pytest.raises(TypeError, match=r"add.__call__ got a host"):
        np.ones(3, np.float32) + a
    with pytest.raises(TypeError, match=r"cupy.where got a host numpy.ndarray bool\[3\]"):
        xp.where(np.ones(3, bool), a, 0)
    assert (a * np.float32(2)).tolist() == [2.0] * 3  # scalars are fine
    assert (a + np.array(1.0)).tolist() == [2.0] * 3  # so are 0-d arrays


def test_cupy_api_differences_our_kernels_work_around() -> None:
    a = xp.arange(6.0).reshape(2, 3)
    with pytest.raises(TypeError, match="CuPy's einsum has no out="):
        xp.einsum("ij->ji", a, out=xp.empty((3, 2)))
    with pytest.raises(TypeError, match="CuPy's take has no mode="):
        xp.take(a, xp.asarray([0]), axis=1, mode="wrap")
    assert xp.take(a, xp.asarray([3, -1]), axis=1).tolist() == [[0.0, 2.0], [3.0, 5.0]]
    with pytest.raises(ValueError, match="only kind=None or 'stable'"):
        xp.argsort(a, kind="quicksort")
    assert xp.argsort(xp.asarray([1, 0, 1, 0]), kind="stable").tolist() == [1, 3, 0, 2]


def test_installed_provides_cupyx_scatter_and_restores_sys_modules() -> None:
    before = sys.modules.get("cupyx")
    with installed():
        import cupyx
        o = xp.zeros(3)
        cupyx.scatter_add(o, (xp.asarray([0, 0, 2]),), xp.asarray([1.0, 2.0, 3.0]))
        cupyx.scatter_max(o, (xp.asarray([1]),), xp.asarray([-1.0]))
        assert o.tolist() == [3.0, 0.0, 3.0]
    assert sys.modules.get("cupyx") is before


def test_the_emulated_device_skips_tests_that_use_it_as_a_device() -> None:
    with pytest.raises(pytest.skip.Exception, match=r"dev.device_type"):
        EMULATED_CUDA.device_type  # noqa: B018
    with pytest.raises(AttributeError):
        EMULATED_CUDA.not_a_device_attribute  # noqa: B018
    with pytest.raises(pytest.skip.Exception, match="CuPy's bfloat16 support"):
        skip_unsupported(EMULATED_CUDA, "bfloat16")
    with pytest.raises(pytest.skip.Exception, match="CuPy has no float8_e4m3fn type"):
        skip_unsupported(EMULATED_CUDA, "float8_e4m3fn")
    skip_unsupported(EMULATED_CUDA, "float16")


@pytest.fixture
def cuda_only_bug() -> Iterator[str]:
    """A template that is right on the CPU and wrong in its CUDA branch."""
    name = "test_fake_cupy_kernel"

    @register_template(name)
    def k(xp: Any, x: Any, out: Any) -> None:
        if xp is np:
            np.negative(x.array, out=out.array)
        else:
            xp.copyto(out.array, x.array)  # the bug: forgot to negate

    yield name
    unregister_kernel(name)


def test_run_kernel_takes_the_cuda_branch(cuda_only_bug: str) -> None:
    x = np.array([1.0, -2.0], np.float32)
    assert run_kernel(cuda_only_bug, relaxvm.cpu(0), [x], x.shape, "float32").tolist() == \
        [-1.0, 2.0]
    assert run_kernel(cuda_only_bug, EMULATED_CUDA, [x], x.shape, "float32").tolist() == \
        [1.0, -2.0]


def test_real_kernels_run_their_cuda_branches() -> None:
    x = np.arange(4, dtype=np.float32)
    bad = np.array([0, 9], np.int64)
    with pytest.raises(ArgumentError, match="take: indices must be in"):
        run_kernel("take", relaxvm.cpu(0), [x, bad], (2,), "float32")
    # CuPy's take wraps unchecked (no sync): the CUDA branch does not check either
    assert run_kernel("take", EMULATED_CUDA, [x, bad], (2,), "float32").tolist() == [0.0, 1.0]
    got = run_multi("topk", EMULATED_CUDA, [x], [((2,), "float32"), ((2,), "int64")],
                    [0, 1, 1])
    assert [g.tolist() for g in got] == [[3.0, 2.0], [3, 2]]


def test_kernels_without_a_cuda_template_and_probed_dtypes_skip() -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(pytest.skip.Exception, match="softmax has no CUDA template"):
        run_kernel("softmax", EMULATED_CUDA, [x], x.shape, "float32", [-1])
    with pytest.raises(pytest.skip.Exception, match="bfloat16"):
        run_kernel("take", EMULATED_CUDA, [x.astype(numpy_dtype("bfloat16")),
                                           np.array([0], np.int64)], (1, 3), "bfloat16")
