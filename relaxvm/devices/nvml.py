"""GPU telemetry through NVML (package ``nvidia-ml-py``, imported as ``pynvml``).

A CUDA index is mapped to its NVML handle by PCI bus id, because CUDA and NVML may
enumerate GPUs in different orders (and ``CUDA_VISIBLE_DEVICES`` renumbers CUDA's).
Every failure — no pynvml, no driver, an unsupported query, a GPU that cannot be matched
for sure — yields None for that field, never an exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_state: dict[str, Any] = {"initialized": None}


def _nvml() -> Any | None:
    if _state["initialized"] is False:
        return None
    try:
        import pynvml
        if not _state["initialized"]:
            pynvml.nvmlInit()
            _state["initialized"] = True
        return pynvml
    except Exception:
        _state["initialized"] = False
        return None


def _cuda_pci_bus_id(index: int) -> str | None:
    try:
        import cupy
        return str(cupy.cuda.runtime.deviceGetPCIBusId(index))
    except Exception:
        return None


def handle_for_cuda_index(index: int) -> Any | None:
    """The NVML handle of ``cuda:index``, matched by PCI bus id.

    Without a bus-id match, NVML's own index is used only while ``CUDA_VISIBLE_DEVICES`` is
    unset: once it is set, CUDA's index ``i`` is the i-th *listed* GPU, and NVML's ``i``
    would name another one. Telemetry of the wrong GPU is worse than None.
    """
    nvml = _nvml()
    if nvml is None:
        return None
    bus_id = _cuda_pci_bus_id(index)
    if bus_id is not None:
        handle = _handle_by_bus_id(nvml, bus_id)
        if handle is not None:
            return handle
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return None
    return _safe(lambda: nvml.nvmlDeviceGetHandleByIndex(index))


def _handle_by_bus_id(nvml: Any, bus_id: str) -> Any | None:
    # Older nvidia-ml-py wants bytes, newer accepts both; try bytes first.
    for key in (bus_id.encode(), bus_id):
        try:
            return nvml.nvmlDeviceGetHandleByPciBusId(key)
        except Exception:
            pass
    return None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def telemetry(index: int) -> dict[str, Any] | None:
    """Name, memory, utilization, clocks, temperature and power of ``cuda:index``.

    Returns None when NVML is unusable; individual fields are None when unsupported.
    """
    nvml = _nvml()
    handle = handle_for_cuda_index(index) if nvml is not None else None
    if nvml is None or handle is None:
        return None
    name = _safe(lambda: nvml.nvmlDeviceGetName(handle))
    if isinstance(name, bytes):
        name = name.decode()
    mem = _safe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    util = _safe(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    power_mw = _safe(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    return {
        "name": name,
        "pci_bus_id": _cuda_pci_bus_id(index),
        "memory_used_bytes": getattr(mem, "used", None),
        "memory_total_bytes": getattr(mem, "total", None),
        "gpu_utilization_percent": getattr(util, "gpu", None),
        "memory_utilization_percent": getattr(util, "memory", None),
        "sm_clock_mhz": _safe(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "memory_clock_mhz": _safe(
            lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)),
        "temperature_c": _safe(
            lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
        "power_w": None if power_mw is None else power_mw / 1000.0,
        "driver_version": _safe(lambda: _text(nvml.nvmlSystemGetDriverVersion())),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def device_count() -> int | None:
    """Number of GPUs NVML sees, or None when NVML is unusable."""
    nvml = _nvml()
    if nvml is None:
        return None
    return _safe(nvml.nvmlDeviceGetCount)
