"""NVML telemetry degrades to None, never raising, without pynvml, a driver or a GPU."""

from __future__ import annotations

import sys
import types

import pytest

from relaxvm.devices import nvml


@pytest.fixture
def fresh_nvml(monkeypatch):
    """Forget whether NVML was initialized, hide CuPy so bus ids come from nowhere, and
    unset CUDA_VISIBLE_DEVICES."""
    monkeypatch.setitem(nvml._state, "initialized", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def install_fake_cupy_bus_ids(monkeypatch):
    runtime = types.SimpleNamespace(deviceGetPCIBusId=lambda i: f"0000:{i + 0x17:02x}:00.0")
    monkeypatch.setitem(sys.modules, "cupy",
                        types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))


def install_fake_pynvml(monkeypatch, init_error: Exception | None = None):
    class Memory:
        used, total = 3 * 2**30, 80 * 2**30

    class Util:
        gpu, memory = 55, 20

    def unsupported(*args):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    def init():
        if init_error is not None:
            raise init_error

    fake = types.SimpleNamespace(
        nvmlInit=init,
        nvmlDeviceGetHandleByPciBusId=unsupported,
        nvmlDeviceGetHandleByIndex=lambda i: ("handle", i),
        nvmlDeviceGetName=lambda h: b"Fake H100",
        nvmlDeviceGetMemoryInfo=lambda h: Memory(),
        nvmlDeviceGetUtilizationRates=lambda h: Util(),
        nvmlDeviceGetPowerUsage=lambda h: 123_500,
        nvmlDeviceGetClockInfo=lambda h, kind: {0: 1980, 2: 2619}[kind],
        nvmlDeviceGetTemperature=unsupported,
        nvmlSystemGetDriverVersion=lambda: b"550.54",
        nvmlDeviceGetCount=lambda: 1,
        NVML_CLOCK_SM=0, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_telemetry_is_none_when_pynvml_cannot_be_imported(fresh_nvml, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert nvml.telemetry(0) is None
    assert nvml.device_count() is None
    assert nvml.handle_for_cuda_index(0) is None
    assert nvml._state["initialized"] is False, "the failure is remembered, not retried"


def test_telemetry_is_none_when_nvml_init_fails(fresh_nvml, monkeypatch):
    install_fake_pynvml(monkeypatch, init_error=RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED"))
    assert nvml.telemetry(0) is None and nvml.device_count() is None


def test_telemetry_reads_fields_and_leaves_unsupported_ones_none(fresh_nvml, monkeypatch):
    install_fake_pynvml(monkeypatch)
    info = nvml.telemetry(0)
    assert info == {
        "name": "Fake H100", "pci_bus_id": None,
        "memory_used_bytes": 3 * 2**30, "memory_total_bytes": 80 * 2**30,
        "gpu_utilization_percent": 55, "memory_utilization_percent": 20,
        "sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "temperature_c": None,
        "power_w": 123.5, "driver_version": "550.54",
    }
    assert nvml.device_count() == 1


def test_handle_is_matched_by_pci_bus_id_when_cupy_knows_it(fresh_nvml, monkeypatch):
    fake = install_fake_pynvml(monkeypatch)
    fake.nvmlDeviceGetHandleByPciBusId = lambda bus: ("by-bus", bus)
    install_fake_cupy_bus_ids(monkeypatch)
    assert nvml.handle_for_cuda_index(1) == ("by-bus", b"0000:18:00.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert nvml.handle_for_cuda_index(1) == ("by-bus", b"0000:18:00.0"), \
        "a bus-id match is right whatever CUDA_VISIBLE_DEVICES says"


def test_bus_id_given_as_str_when_pynvml_refuses_bytes(fresh_nvml, monkeypatch):
    fake = install_fake_pynvml(monkeypatch)

    def by_bus(bus):
        if isinstance(bus, bytes):
            raise TypeError("expected str")
        return ("by-bus", bus)

    fake.nvmlDeviceGetHandleByPciBusId = by_bus
    install_fake_cupy_bus_ids(monkeypatch)
    assert nvml.handle_for_cuda_index(0) == ("by-bus", "0000:17:00.0")


def test_unmatched_gpu_falls_back_to_nvml_index_only_without_cuda_visible_devices(
        fresh_nvml, monkeypatch):
    install_fake_pynvml(monkeypatch)  # its bus-id lookup always fails
    install_fake_cupy_bus_ids(monkeypatch)
    assert nvml.handle_for_cuda_index(1) == ("handle", 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # cuda:1 is NVML's GPU 3, not 1
    assert nvml.handle_for_cuda_index(1) is None
    assert nvml.telemetry(1) is None


def test_no_bus_id_and_cuda_visible_devices_set_gives_no_telemetry(fresh_nvml, monkeypatch):
    install_fake_pynvml(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # and no CuPy to ask for the bus id
    assert nvml.handle_for_cuda_index(0) is None and nvml.telemetry(0) is None
    assert nvml.device_count() == 1, "NVML itself still works"


def test_every_query_failing_still_returns_a_dict_of_nones(fresh_nvml, monkeypatch):
    fake = install_fake_pynvml(monkeypatch)
    for name in list(vars(fake)):
        if name.startswith("nvmlDeviceGet") and name != "nvmlDeviceGetHandleByIndex":
            setattr(fake, name, lambda *a: (_ for _ in ()).throw(RuntimeError("gone")))
    fake.nvmlSystemGetDriverVersion = fake.nvmlDeviceGetName
    info = nvml.telemetry(0)
    assert info is not None and set(info.values()) == {None}


@pytest.mark.cuda
def test_real_gpu_telemetry_names_the_device():
    pytest.importorskip("pynvml")
    info = nvml.telemetry(0)
    assert info is not None and info["name"]
    assert info["memory_total_bytes"] and info["memory_total_bytes"] > 2**30
