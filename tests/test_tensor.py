"""Tensor: round trips, copies between devices, DLPack zero-copy, views into storages."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import relaxvm
from relaxvm.devices import CUDA
from relaxvm.errors import DeviceError
from relaxvm.objects import Shape
from relaxvm.tensor import Tensor, from_dlpack, tensor_in_storage

DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64", "uint32", "float16", "float32",
          "float64", "bfloat16"]


def sample(dtype: str, shape=(3, 5), seed: int = 0) -> np.ndarray:
    """Random data of ``dtype`` spanning negative and positive values where they exist."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype == "bfloat16":
        return rng.standard_normal(shape).astype(ml_dtypes.bfloat16)
    kind = np.dtype(dtype).kind
    if kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def skip_unsupported_on_cuda(dev: relaxvm.Device, dtype: str) -> None:
    if dev.device_type == CUDA and dtype == "bfloat16":
        import cupy
        try:
            cupy.empty(1, ml_dtypes.bfloat16)
        except Exception as exc:  # CuPy builds without ml_dtypes support
            pytest.skip(f"this CuPy has no bfloat16 arrays ({exc})")


def host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_round_trip_keeps_values_dtype_and_shape(dev, dtype):
    skip_unsupported_on_cuda(dev, dtype)
    data = sample(dtype)
    t = relaxvm.tensor(data, dev)
    assert (t.dtype, t.device, t.shape) == (dtype, dev, (3, 5))
    assert isinstance(t.shape, Shape)
    out = t.numpy()
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out.view("uint8"), data.view("uint8"))  # bit-exact


def test_tensor_describes_itself(dev):
    t = relaxvm.tensor(np.zeros((2, 3, 4), "float32"), dev)
    assert (t.ndim, t.size, t.nbytes) == (3, 24, 96)
    assert repr(t) == f"<Tensor float32[2, 3, 4] on {dev}>"
    assert str(t).startswith(repr(t) + "\n[[[0.")
    np.testing.assert_array_equal(np.asarray(t), np.zeros((2, 3, 4)))
    assert np.asarray(t, dtype="int64").dtype == np.int64


def test_numpy_returns_an_independent_host_copy(dev):
    t = relaxvm.tensor(np.arange(4, dtype="int32"), dev)
    out = t.numpy()
    out[0] = 99
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


def test_tensor_from_lists_scalars_and_with_a_dtype(dev):
    np.testing.assert_array_equal(relaxvm.tensor([[1, 2], [3, 4]], dev).numpy(),
                                  np.array([[1, 2], [3, 4]]))
    scalar = relaxvm.tensor(2.5, dev)
    assert scalar.shape == () and scalar.numpy() == 2.5
    half = relaxvm.tensor([0.1, 3e4, -3.3], dev, dtype="float16")
    np.testing.assert_array_equal(half.numpy(), np.array([0.1, 3e4, -3.3]).astype("float16"))
    bf = relaxvm.tensor([1.0, 3.14159], relaxvm.cpu(), dtype="bfloat16")
    assert bf.dtype == "bfloat16"
    np.testing.assert_array_equal(bf.numpy().astype("float32"),
                                  np.array([1.0, 3.14159], "float32").astype(ml_dtypes.bfloat16)
                                  .astype("float32"))


def test_tensor_from_a_tensor_copies_and_can_cast(dev):
    src = relaxvm.tensor(np.arange(6, dtype="float32"), dev)
    same = relaxvm.tensor(src, dev)
    assert same is not src and same.storage is not src.storage
    cast = relaxvm.tensor(src, relaxvm.cpu(1), dtype="int16")
    assert cast.dtype == "int16" and cast.device == relaxvm.cpu(1)
    np.testing.assert_array_equal(cast.numpy(), np.arange(6, dtype="int16"))


def test_tensor_rejects_non_numeric_data():
    with pytest.raises(TypeError, match="tensor: data must be numeric, got an object array "
                                        "from <class 'list'>"):
        relaxvm.tensor([object(), 1])


def test_tensor_rejects_unknown_dtypes():
    with pytest.raises(TypeError, match="unknown dtype 'float7'; expected a NumPy dtype name"):
        relaxvm.tensor([1.0], dtype="float7")


def test_copyto_another_cpu_device_uses_that_devices_pool(fresh_memory, dev):
    t = relaxvm.tensor(sample("float32"), dev)
    moved = t.copyto(relaxvm.cpu(1))
    assert moved.device is relaxvm.cpu(1) and moved.storage.device is relaxvm.cpu(1)
    np.testing.assert_array_equal(moved.numpy(), t.numpy())
    assert fresh_memory.stats()["cpu:1/pooled"]["allocated_bytes.current"] == 4096
    assert moved.copyto("cpu:1").device is relaxvm.cpu(1)


@pytest.mark.cuda
def test_copyto_cuda_and_back():
    data = sample("float64")
    gpu = relaxvm.tensor(data).copyto(relaxvm.cuda(0))
    assert gpu.device is relaxvm.cuda(0) and type(gpu.array).__module__.startswith("cupy")
    back = gpu.copyto("cpu:1")
    np.testing.assert_array_equal(back.numpy(), data)


def test_copyto_a_tensor_target_overwrites_it(dev):
    src = relaxvm.tensor(sample("int32"), dev)
    dst = relaxvm.empty((3, 5), "int32", relaxvm.cpu(1))
    assert src.copyto(dst) is dst
    np.testing.assert_array_equal(dst.numpy(), src.numpy())


def test_copyfrom_arrays_lists_and_tensors(dev):
    t = relaxvm.empty((2, 3), "float32", dev)
    t.copyfrom(np.arange(6, dtype="float32").reshape(2, 3))
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    t.copyfrom([[1, 1, 1], [2, 2, 2]])  # int64 list data is cast to float32
    np.testing.assert_array_equal(t.numpy(), [[1, 1, 1], [2, 2, 2]])
    other = relaxvm.tensor(np.full((2, 3), 7, "float32"), relaxvm.cpu(1))
    assert t.copyfrom(other) is t
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 7))


@pytest.mark.parametrize("source, got", [
    (np.zeros((3, 2), "float32"), "float32[3, 2]"),
    (np.zeros((6,), "float64"), "float64[6]"),
    ([1.0, 2.0], "float64[2]"),
])
def test_copyfrom_with_a_shape_mismatch_names_both_layouts(dev, source, got):
    t = relaxvm.empty((2, 3), "float32", dev)
    with pytest.raises(ValueError, match=re.escape(
            f"Tensor.copyfrom: source must be float32[2, 3], got {got}")):
        t.copyfrom(source)
    prefix = "Tensor.copyfrom: source must be float32[2, 3]"
    with pytest.raises(ValueError, match=re.escape(prefix)):
        t.copyfrom(relaxvm.tensor(np.asarray(source, dtype="float32")))


def test_empty_makes_uninitialized_tensors_from_the_pool(fresh_memory, dev):
    t = relaxvm.empty((4, 100), "float16", dev)
    assert (t.shape, t.dtype, t.device) == ((4, 100), "float16", dev)
    assert t.storage.nbytes == 4096 and t.byte_offset == 0
    zero = relaxvm.empty((0, 3), "int8", dev)
    assert zero.size == 0 and zero.numpy().shape == (0, 3)


@pytest.mark.parametrize("shape, error, message", [
    (5, TypeError, "empty: shape must be a sequence of ints, got 5"),
    ((2, -1), ValueError, "empty: shape must not have negative dimensions, got [2, -1]"),
])
def test_empty_rejects_bad_shapes(shape, error, message):
    with pytest.raises(error, match=re.escape(message)):
        relaxvm.empty(shape, "float32")


def test_nd_array_is_the_tvm_style_alias():
    assert relaxvm.nd.array is relaxvm.tensor and relaxvm.nd.NDArray is Tensor
    assert relaxvm.nd.empty is relaxvm.empty and relaxvm.nd.from_dlpack is from_dlpack
    t = relaxvm.nd.array(np.ones(3, "float32"), relaxvm.cpu(0))
    np.testing.assert_array_equal(t.numpy(), np.ones(3))


def test_truth_value_of_a_tensor_is_an_error():
    with pytest.raises(TypeError, match=re.escape(
            "the truth value of a Tensor (int32[1]) is ambiguous; read it with "
            "vm.builtin.read_if_cond or .numpy()")):
        bool(relaxvm.tensor(np.array([1], "int32")))


# -- DLPack --------------------------------------------------------------------------------
def test_dlpack_export_shares_memory(dev):
    t = relaxvm.tensor(np.arange(8, dtype="float32"), dev)
    view = dev.backend.xp.from_dlpack(t)
    assert t.__dlpack_device__() == dev.dlpack_device
    view[2] = -1.0  # a write through the consumer's view shows in the tensor
    np.testing.assert_array_equal(t.numpy(), [0, 1, -1, 3, 4, 5, 6, 7])
    if dev.device_type != CUDA:
        assert np.shares_memory(view, t.array)


def test_from_dlpack_of_numpy_is_zero_copy():
    data = np.arange(12, dtype="int64").reshape(3, 4)
    t = from_dlpack(data)
    assert t.device is relaxvm.cpu(0) and t.storage is None and t.byte_offset == 0
    assert np.shares_memory(t.array, data)
    data[1, 1] = 100
    assert t.numpy()[1, 1] == 100
    assert from_dlpack(t) is t


@pytest.mark.cuda
def test_from_dlpack_of_cupy_is_zero_copy():
    import cupy
    data = cupy.arange(6, dtype="float32")
    t = from_dlpack(data)
    assert t.device is relaxvm.cuda(0) and t.array.data.ptr == data.data.ptr


def test_from_dlpack_rejects_objects_without_the_protocol():
    with pytest.raises(TypeError, match="from_dlpack: expected an object with __dlpack__ and "
                                        "__dlpack_device__, got list"):
        from_dlpack([1, 2, 3])


def test_from_dlpack_rejects_unsupported_device_types():
    class OnTPU:
        def __dlpack__(self, **kwargs):
            raise AssertionError("never called")

        def __dlpack_device__(self):
            return (13, 0)

    with pytest.raises(DeviceError, match=re.escape(
            "from_dlpack: device type 13 is not supported; relaxvm handles CPU (1) and CUDA (2)")):
        from_dlpack(OnTPU())


class HostProducer:
    """A DLPack producer that is not an ndarray and has no ``__array__``."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def __dlpack__(self, **kwargs):
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()


def test_tensor_and_copyfrom_read_any_dlpack_producer(dev):
    producer = HostProducer(np.arange(6, dtype="int32").reshape(2, 3))
    t = relaxvm.tensor(producer, dev)
    assert (t.device, t.dtype, t.shape) == (dev, "int32", (2, 3))
    np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    cast = relaxvm.tensor(producer, dev, dtype="float64")
    assert cast.dtype == "float64"
    np.testing.assert_array_equal(cast.numpy(), np.arange(6).reshape(2, 3))
    dst = relaxvm.empty((2, 3), "int32", dev)
    assert dst.copyfrom(producer) is dst
    np.testing.assert_array_equal(dst.numpy(), np.arange(6).reshape(2, 3))


def test_device_arrays_copy_into_cpu_tensors(dev):
    source = dev.backend.xp.arange(6, dtype="float32")  # a CuPy array on cuda
    t = relaxvm.empty((6,), "float32", relaxvm.cpu(1)).copyfrom(source)
    np.testing.assert_array_equal(t.numpy(), np.arange(6))
    copy = relaxvm.tensor(source)
    assert copy.device is relaxvm.cpu(0) and copy.dtype == "float32"
    ints = relaxvm.tensor(source, dtype="int16")
    assert ints.dtype == "int16"
    np.testing.assert_array_equal(ints.numpy(), np.arange(6))
    back = relaxvm.tensor(source, dev)
    assert back.device is dev and back.array is not source
    np.testing.assert_array_equal(back.numpy(), np.arange(6))


def test_tensor_of_a_torch_tensor_copies_through_dlpack(dev):
    torch = pytest.importorskip("torch")
    if dev.device_type == CUDA and not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    where = f"cuda:{dev.index}" if dev.device_type == CUDA else "cpu"
    src = torch.arange(6, dtype=torch.float32, device=where).reshape(2, 3)
    for target in (dev, relaxvm.cpu(1)):
        t = relaxvm.tensor(src, target)
        assert (t.device, t.dtype, t.shape) == (target, "float32", (2, 3))
        np.testing.assert_array_equal(t.numpy(), np.arange(6).reshape(2, 3))
    half = relaxvm.tensor(src, dev, dtype="float16")
    assert (half.device, half.dtype) == (dev, "float16")
    np.testing.assert_array_equal(half.numpy(), np.arange(6).reshape(2, 3))
    copy = relaxvm.tensor(src, dev)
    view = relaxvm.from_dlpack(src)
    assert view.device == dev
    src.add_(1)
    np.testing.assert_array_equal(copy.numpy(), np.arange(6).reshape(2, 3))  # a copy
    np.testing.assert_array_equal(view.numpy(), np.arange(1, 7).reshape(2, 3))  # zero-copy
    dst = relaxvm.empty((2, 3), "float32", relaxvm.cpu(0)).copyfrom(src)
    np.testing.assert_array_equal(dst.numpy(), np.arange(1, 7).reshape(2, 3))


# -- views into storages ---------------------------------------------------------------------
def test_views_at_offsets_alias_the_same_bytes(dev):
    base = relaxvm.empty((64,), "float32", dev)
    base.copyfrom(np.arange(64, dtype="float32"))
    view = tensor_in_storage(base.storage, 128, (4, 4), "float32")
    assert view.byte_offset == 128 and view.storage is base.storage
    np.testing.assert_array_equal(view.numpy(), np.arange(32, 48).reshape(4, 4))
    as_ints = tensor_in_storage(base.storage, 0, (2,), "int32")
    np.testing.assert_array_equal(as_ints.numpy(), np.array([0, 1], "float32").view("int32"))
    view.copyfrom(np.zeros((4, 4), "float32"))
    expected = np.arange(64, dtype="float32")
    expected[32:48] = 0
    np.testing.assert_array_equal(base.numpy(), expected)


def test_the_last_view_returns_the_storage_to_the_pool(fresh_memory, dev):
    pool = fresh_memory.get_allocator(dev)
    base = relaxvm.empty((1024,), "float32", dev)
    view = tensor_in_storage(base.storage, 2048, (8,), "float32")
    del base
    assert pool.allocated_bytes == 4096
    del view
    assert pool.allocated_bytes == 0 and pool.cached_bytes == 4096


LOW_BIT = ["float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
           "float8_e8m0fnu", "float4_e2m1fn", "int4", "uint4", "int2", "uint2"]


@pytest.mark.parametrize("dtype", LOW_BIT)
def test_low_bit_tensors_round_trip_on_the_cpu_one_byte_per_element(dtype: str) -> None:
    values = [0.5, 1.0, 2.0, 4.0] if dtype.startswith("float") else [0, 1, 1, 0]
    t = relaxvm.tensor(values, relaxvm.cpu(), dtype=dtype)
    assert t.dtype == dtype and relaxvm.DataType(dtype) == dtype
    assert relaxvm.DataType(dtype).itemsize == 1
    back = t.numpy()
    assert back.dtype.name == dtype
    np.testing.assert_array_equal(back.astype(np.float32), np.array(values, np.float32))
    copy = t.copyto(relaxvm.cpu())
    assert copy.numpy().tobytes() == back.tobytes()


def test_unknown_dtype_names_point_at_ml_dtypes() -> None:
    with pytest.raises(TypeError, match="unknown dtype 'float7'; expected a NumPy dtype "
                                        "name such as 'float32', or an ml_dtypes type such "
                                        "as 'bfloat16', 'float8_e4m3fn' or 'int4'"):
        relaxvm.DataType("float7")
