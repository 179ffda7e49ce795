"""relaxvm: a pure-Python Relax virtual machine for CPU (NumPy) and NVIDIA GPUs (CuPy)."""

from relaxvm import nd
from relaxvm.devices import Device, cpu, cuda, device
from relaxvm.errors import (
    ArgumentError,
    BuildError,
    DeviceError,
    ExecutableFormatError,
    OutOfMemoryError,
    RelaxVMError,
    UnsupportedOpError,
    VMError,
)
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

# Loaded on first use so ``import relaxvm`` stays light and has no import cycles.
_LAZY = {
    "VirtualMachine": ("relaxvm.vm.interpreter", "VirtualMachine"),
    "VMInstrumentReturnKind": ("relaxvm.vm.interpreter", "VMInstrumentReturnKind"),
    "ExecBuilder": ("relaxvm.vm.builder", "ExecBuilder"),
    "Executable": ("relaxvm.vm.executable", "Executable"),
    "load_executable": ("relaxvm.vm.executable", "load_executable"),
    "register_func": ("relaxvm.vm.registry", "register_func"),
    "get_global_func": ("relaxvm.vm.registry", "get_global_func"),
    "build": ("relaxvm.compiler", "build"),
    "from_onnx": ("relaxvm.frontend", "from_onnx"),
}
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> object:
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'relaxvm' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(entry[0]), entry[1])
    globals()[name] = value
    return value
