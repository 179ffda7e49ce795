"""The Relax virtual machine: bytecode, executables, the builder and the interpreter.

Names are loaded on first access, so ``import relaxvm.vm.bytecode`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExecBuilder": "relaxvm.vm.builder",
    "ArgKind": "relaxvm.vm.bytecode",
    "Instruction": "relaxvm.vm.bytecode",
    "Opcode": "relaxvm.vm.bytecode",
    "Call": "relaxvm.vm.bytecode",
    "Ret": "relaxvm.vm.bytecode",
    "Goto": "relaxvm.vm.bytecode",
    "If": "relaxvm.vm.bytecode",
    "VMClosure": "relaxvm.vm.closure",
    "Executable": "relaxvm.vm.executable",
    "FuncKind": "relaxvm.vm.executable",
    "FunctionInfo": "relaxvm.vm.executable",
    "load_executable": "relaxvm.vm.executable",
    "VirtualMachine": "relaxvm.vm.interpreter",
    "VMInstrumentReturnKind": "relaxvm.vm.interpreter",
    "get_global_func": "relaxvm.vm.registry",
    "list_global_func_names": "relaxvm.vm.registry",
    "register_func": "relaxvm.vm.registry",
    "Report": "relaxvm.vm.report",
    "BenchmarkResult": "relaxvm.vm.timer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'relaxvm.vm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
