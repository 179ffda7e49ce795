"""Devices and their backends (CPU on NumPy, CUDA on CuPy, loaded lazily)."""

from relaxvm.devices.backend import ALIGNMENT, DeviceBackend, DeviceTimer, get_backend
from relaxvm.devices.device import CPU, CUDA, Device, cpu, cuda, device

__all__ = ["ALIGNMENT", "CPU", "CUDA", "Device", "DeviceBackend", "DeviceTimer",
           "cpu", "cuda", "device", "get_backend"]
