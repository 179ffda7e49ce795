"""relaxvm: a pure-Python Relax virtual machine for CPU (NumPy) and NVIDIA GPUs (CuPy)."""

from relaxvm import nd
from relaxvm.devices import Device, cpu, cuda, device
from relaxvm.errors import (ArgumentError, BuildError, DeviceError, ExecutableFormatError,
                            OutOfMemoryError, RelaxVMError, UnsupportedOpError, VMError)
from relaxvm.memory import global_memory_manager, memory_stats, memory_summary
from relaxvm.objects import DataType, Shape
from relaxvm.tensor import Tensor, empty, from_dlpack, tensor

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "BuildError", "DataType", "Device", "DeviceError", "ExecutableFormatError",
    "OutOfMemoryError", "RelaxVMError", "Shape", "Tensor", "UnsupportedOpError", "VMError",
    "cpu", "cuda", "device", "empty", "from_dlpack", "global_memory_manager", "memory_stats",
    "memory_summary", "nd", "tensor",
]
