"""The kernel registry: registration rules, lookups, signatures and their errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import relaxvm
from relaxvm.errors import DeviceError, KernelNotFoundError
from relaxvm.kernels import (
    REQUIRED,
    KernelSignature,
    get_kernel,
    has_kernel,
    kernel_devices,
    kernel_names,
    kernel_signature,
    register_builder,
    register_kernel,
    register_template,
    unregister_kernel,
)
from relaxvm.kernels.coverage import COVERAGE
from relaxvm.kernels.registry import template_of


@pytest.fixture
def scratch() -> Iterator[str]:
    """A kernel name that tests may register; removed afterwards."""
    name = "test_scratch_kernel"
    yield name
    unregister_kernel(name)


def test_register_kernel_then_get_kernel_returns_the_function(scratch: str) -> None:
    @register_kernel(scratch, "cpu")
    def k(x: Any, out: Any) -> None:
        out.array[...] = x.array + 1

    assert get_kernel(scratch, "cpu") is k
    assert get_kernel(scratch, 1) is k
    x, out = relaxvm.tensor(np.arange(3.0)), relaxvm.empty((3,), "float64")
    k(x, out)
    np.testing.assert_array_equal(out.numpy(), [1.0, 2.0, 3.0])


def test_second_registration_for_same_device_raises_naming_kernel_and_device(
        scratch: str) -> None:
    register_kernel(scratch, "cpu")(lambda x, out: None)
    with pytest.raises(ValueError, match=f"kernel '{scratch}' is already registered for "
                                         f"device type 'cpu'"):
        register_kernel(scratch, 1)(lambda x, out: None)


def test_same_name_on_another_device_is_allowed(scratch: str) -> None:
    register_kernel(scratch, "cpu")(lambda x, out: None)
    register_kernel(scratch, "cuda")(lambda x, out: None)
    assert kernel_devices(scratch) == ["cpu", "cuda"]


def test_devices_must_share_one_signature(scratch: str) -> None:
    register_kernel(scratch, "cpu")(lambda x, out, axis=0: None)
    with pytest.raises(ValueError, match=r"has signature \(x, out, axis=1\), but other devices "
                                         r"registered \(x, out, axis=0\)"):
        register_kernel(scratch, "cuda")(lambda x, out, axis=1: None)


def test_unknown_device_type_is_a_device_error() -> None:
    with pytest.raises(DeviceError, match="register_kernel: device_type must be 'cpu', 'cuda', "
                                          "1 or 2, got 'tpu'"):
        register_kernel("whatever", "tpu")
    with pytest.raises(DeviceError, match="get_kernel: device_type must be .* got 7"):
        get_kernel("add", 7)


@pytest.mark.parametrize("fn, message", [
    (lambda x, y: None, r"expected exactly one output parameter named 'out' or 'outs', got "
                        r"parameters \['x', 'y'\]"),
    (lambda x, out, outs: None, "expected exactly one output parameter"),
    (lambda x, *out: None, "parameter 'out' must be positional, got variadic positional"),
    (lambda x, out, *, axis=0: None, "parameter 'axis' must be positional, got keyword-only"),
    (lambda x=None, out=None: None, "tensor parameter 'x' must not have a default"),
])
def test_signature_convention_violations_raise(scratch: str, fn: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register_kernel(scratch, "cpu")(fn)


def test_get_kernel_for_unknown_name_suggests_close_names() -> None:
    with pytest.raises(KernelNotFoundError, match=r"get_kernel: no kernel named 'matmull' for "
                                                  r"device type 'cpu'; did you mean 'matmul'"):
        get_kernel("matmull", "cpu")


def test_get_kernel_for_missing_device_lists_devices_that_have_it(scratch: str) -> None:
    register_kernel(scratch, "cuda")(lambda x, out: None)
    with pytest.raises(KernelNotFoundError, match=f"kernel '{scratch}' has no implementation "
                                                  f"for device type 'cpu'; it is registered "
                                                  f"for: cuda"):
        get_kernel(scratch, "cpu")


def test_kernel_not_found_error_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        get_kernel("no_such_kernel_at_all", "cpu")


def test_has_kernel_with_and_without_device() -> None:
    assert has_kernel("add") and has_kernel("add", "cpu") and has_kernel("add", 2)
    assert not has_kernel("no_such_kernel_at_all")
    assert not has_kernel("no_such_kernel_at_all", "cpu")


def test_kernel_names_sorted_and_include_the_contract_ops() -> None:
    names = kernel_names()
    assert names == sorted(names)
    for op in ("relu", "gelu", "add", "divide", "where", "matmul", "gemm", "conv2d",
               "max_pool2d", "avg_pool2d", "global_avg_pool2d", "batch_norm", "layer_norm",
               "softmax", "sum", "argmax", "reshape", "concat", "split", "slice", "take",
               "gather_elements", "expand", "pad", "resize_nearest", "tile", "trilu", "cast"):
        assert op in names
        assert kernel_devices(op) == ["cpu", "cuda"]


def test_every_kernel_has_documented_test_coverage() -> None:
    assert sorted(COVERAGE) == kernel_names()


def test_kernel_signature_splits_inputs_output_and_attrs() -> None:
    assert kernel_signature("conv2d") == KernelSignature(
        ("x", "w", "b"), "out",
        {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "groups": 1})
    assert kernel_signature("split") == KernelSignature(("x",), "outs", {"axis": 0})
    assert kernel_signature("concat").inputs == ("xs",)
    assert kernel_signature("add") == KernelSignature(("a", "b"), "out", {})


def test_attributes_without_default_are_marked_required() -> None:
    sig = kernel_signature("slice")
    assert sig.attrs == {"starts": REQUIRED, "ends": REQUIRED, "axes": None, "steps": None}
    assert str(sig) == "(x, out, starts, ends, axes=None, steps=None)"
    assert repr(REQUIRED) == "REQUIRED"


def test_kernel_signature_and_devices_of_unknown_name_raise() -> None:
    with pytest.raises(KernelNotFoundError, match="kernel_signature: no kernel named 'sofmax'; "
                                                  "did you mean 'softmax'"):
        kernel_signature("sofmax")
    with pytest.raises(KernelNotFoundError, match="kernel_devices: no kernel named 'zzz'"):
        kernel_devices("zzz")


def test_template_is_bound_to_the_device_array_module(scratch: str) -> None:
    seen = []

    @register_template(scratch, ("cpu",))
    def k(xp: Any, x: Any, out: Any, scale: float = 2.0) -> None:
        seen.append(xp)
        xp.multiply(x.array, scale, out=out.array)

    assert kernel_signature(scratch) == KernelSignature(("x",), "out", {"scale": 2.0})
    out = relaxvm.empty((2,), "float32")
    get_kernel(scratch, "cpu")(relaxvm.tensor(np.array([1.0, 2.0], np.float32)), out, 3.0)
    assert seen == [np] and out.numpy().tolist() == [3.0, 6.0]
    assert get_kernel(scratch, "cpu") is get_kernel(scratch, "cpu")  # bound once


def test_builder_runs_once_per_device_type(scratch: str) -> None:
    builds = []

    @register_builder(scratch, ("cpu",))
    def build(xp: Any) -> Any:
        builds.append(xp)

        def k(x: Any, out: Any) -> None:
            xp.negative(x.array, out=out.array)

        return k

    assert len(builds) == 1  # once with NumPy at registration, to read the signature
    first = get_kernel(scratch, "cpu")
    assert get_kernel(scratch, "cpu") is first and len(builds) == 2


def test_template_of_gives_the_unbound_template_per_device(scratch: str) -> None:
    @register_template(scratch, ("cuda",))
    def k(xp: Any, x: Any, out: Any) -> None:
        xp.negative(x.array, out=out.array)

    assert template_of(scratch) is k and template_of(scratch, 2) is k
    assert template_of(scratch, "cpu") is None  # not registered there
    assert template_of(scratch, "cuda") is k
    unregister_kernel(scratch, "cuda")
    with pytest.raises(KernelNotFoundError, match="template_of: no kernel named"):
        template_of(scratch)


def test_template_of_survives_binding_and_wraps_builders(scratch: str) -> None:
    @register_builder(scratch, ("cpu",))
    def build(xp: Any) -> Any:
        def k(x: Any, out: Any, shift: float = 1.0) -> None:
            xp.add(x.array, shift, out=out.array)

        return k

    get_kernel(scratch, "cpu")  # replaces the lazy registration with the bound kernel
    template = template_of(scratch, "cpu")
    assert template is not None and template.__name__ == "build"
    out = relaxvm.empty((2,), "float32")
    template(np, relaxvm.tensor(np.array([1.0, 2.0], np.float32)), out, 0.5)
    assert out.numpy().tolist() == [1.5, 2.5]


def test_template_of_is_none_for_dedicated_kernels() -> None:
    assert template_of("softmax", "cuda") is None   # cuda_fused.py: a CuPy RawKernel
    assert template_of("softmax", "cpu") is None    # a plain CPU function
    assert template_of("take", "cuda") is template_of("take", "cpu") is not None
    with pytest.raises(DeviceError, match="template_of: device_type must be"):
        template_of("take", "tpu")
    with pytest.raises(KernelNotFoundError, match="did you mean 'take'"):
        template_of("takee")


def test_importing_kernels_does_not_import_cupy() -> None:
    code = ("import sys, relaxvm.kernels as k; assert k.has_kernel('relu', 'cuda'); "
            "k.kernel_signature('gelu'); print('cupy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_cuda_lookup_without_cupy_raises_device_error_with_hint() -> None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(DeviceError, match="CuPy could not be imported"):
            get_kernel("relu", "cuda")
    else:
        pytest.skip("CuPy is installed: the lookup succeeds")
