"""Device: interning, hashing, printing, parsing, and TVM-named properties."""

from __future__ import annotations

import copy
import enum
import pickle
import re

import pytest

import relaxvm
from relaxvm.devices import CPU, CUDA, Device, cpu, cuda, device
from relaxvm.errors import DeviceError


def test_devices_are_interned():
    assert Device(1, 0) is cpu(0) is cpu() is device("cpu:0") is Device("cpu", 0)
    assert Device(2, 3) is cuda(3) is device("cuda", 3) is device((2, 3))
    assert Device("gpu", 1) is cuda(1) and Device("llvm") is cpu(0)


def test_devices_compare_and_hash_by_type_and_index():
    assert cpu(0) == cpu(0) and cpu(0) != cpu(1) and cpu(0) != cuda(0)
    assert len({cpu(0), cpu(0), cpu(1), cuda(0)}) == 3
    table = {cpu(1): "naive"}
    assert table[Device(1, 1)] == "naive"
    assert cpu(0) != (1, 0) and cpu(0) != "cpu:0"


def test_devices_print_like_tvm():
    assert str(cuda(0)) == "cuda:0" and str(cpu(2)) == "cpu:2"
    assert repr(cuda(1)) == "cuda(1)" and repr(cpu(0)) == "cpu(0)"
    assert f"{cpu(3)}" == "cpu:3"


def test_device_fields_and_dlpack_codes():
    assert (CPU, CUDA) == (1, 2)
    dev = cuda(4)
    assert (dev.device_type, dev.index, dev.type_name) == (2, 4, "cuda")
    assert dev.dlpack_device == (2, 4) and cpu(1).dlpack_device == (1, 1)


def test_devices_are_immutable():
    with pytest.raises(AttributeError, match="Device is immutable"):
        cpu(0).index = 1


def test_pickle_and_copy_keep_the_interned_device():
    assert pickle.loads(pickle.dumps(cuda(2))) is cuda(2)
    assert copy.copy(cpu(1)) is cpu(1) and copy.deepcopy(cpu(1)) is cpu(1)


def test_int_enum_device_codes_are_normalized():
    class DLDeviceType(enum.IntEnum):
        kDLCPU = 1
        kDLCUDA = 2

    dev = Device(DLDeviceType.kDLCUDA, 0)
    assert dev is cuda(0) and type(dev.device_type) is int


@pytest.mark.parametrize("spec, expected", [
    ("cuda:0", (2, 0)), ("cpu", (1, 0)), ("CUDA:1", (2, 1)), (" cpu:3 ", (1, 3)),
    ("gpu:2", (2, 2)), ("llvm", (1, 0)),
])
def test_device_parses_strings(spec, expected):
    assert device(spec).dlpack_device == expected


def test_device_accepts_a_device_a_tuple_or_a_name_and_index():
    assert device(cuda(1)) is cuda(1)
    assert device((1, 2)) is cpu(2)
    assert device("cuda", 2) is cuda(2)
    assert device("cuda:2", 2) is cuda(2)


@pytest.mark.parametrize("spec, index, message", [
    ("tpu:0", None, "device: unknown device type 'tpu' in 'tpu:0'; expected one of 'cpu', "
                    "'cuda' (optionally with ':index')"),
    ("cuda:x", None, "device: index in 'cuda:x' must be a non-negative integer"),
    ("cuda:-1", None, "device: index in 'cuda:-1' must be a non-negative integer"),
    ("cuda:", None, "device: index in 'cuda:' must be a non-negative integer"),
    ("cuda:1", 0, "device: 'cuda:1' conflicts with index=0"),
    (3, None, "device: spec must be a str like 'cuda:0' or a Device, got 3"),
    (None, None, "device: spec must be a str like 'cuda:0' or a Device, got None"),
])
def test_device_rejects_bad_specs(spec, index, message):
    with pytest.raises(DeviceError, match=re.escape(message)):
        device(spec, index)


@pytest.mark.parametrize("args, message", [
    ((3, 0), "Device: device_type must be one of [1, 2] (1 = cpu, 2 = cuda), got 3"),
    ((True, 0), "Device: device_type must be one of [1, 2] (1 = cpu, 2 = cuda), got True"),
    (("tpu", 0), "Device: device_type must be one of ['cpu', 'cuda', 'gpu', 'llvm'] or a "
                 "DLPack code [1, 2], got 'tpu'"),
    ((1, -1), "Device: index must be an int >= 0, got -1"),
    ((1, True), "Device: index must be an int >= 0, got True"),
    ((1, 1.0), "Device: index must be an int >= 0, got 1.0"),
])
def test_device_constructor_rejects_bad_types_and_indices(args, message):
    cpu(1)  # interned already: (1, True) and (1, 1.0) hash alike but must still be refused
    with pytest.raises(DeviceError, match=re.escape(message)):
        Device(*args)


def test_device_error_is_a_runtime_error_and_a_relaxvm_error():
    with pytest.raises(RuntimeError):
        device("tpu")
    with pytest.raises(relaxvm.RelaxVMError):
        device("tpu")


def test_cpu_devices_exist_and_report_attributes():
    import os
    dev = cpu(1)
    assert dev.exist is True
    assert isinstance(dev.device_name, str) and dev.device_name
    assert dev.multi_processor_count == (os.cpu_count() or 1)
    assert dev.total_global_memory > 0
    assert dev.compute_version == ""
    assert (dev.max_threads_per_block, dev.warp_size) == (1, 1)
    assert dev.max_shared_memory_per_block == 0 and dev.max_clock_rate == 0
    dev.sync()  # CPU work is synchronous: a no-op that must not fail


def test_exist_is_false_never_raising_when_the_backend_breaks(monkeypatch):
    class Broken:
        def exists(self, index):
            raise RuntimeError("driver exploded")

    monkeypatch.setattr(Device, "backend", property(lambda self: Broken()))
    assert cuda(0).exist is False and cpu(0).exist is False


def test_loading_backends_does_not_shadow_the_cpu_and_cuda_helpers():
    import relaxvm.devices as package
    from relaxvm.devices.backend import get_backend
    get_backend(1)
    try:
        get_backend(2)
    except DeviceError:
        pass
    assert package.cpu(1) is Device(1, 1) and package.cuda(1) is Device(2, 1)
