"""Structural validation of an Executable: :func:`check_executable` and its helpers.

One checker serves every entry point — ``Executable.validate()``, ``ExecBuilder.get()``,
saving and loading — so an executable that passes here is safe for the interpreter to run
without per-instruction bounds checks. Each helper returns a message naming the first
defect it finds (or None), and :func:`check_executable` raises the caller's error type.

:mod:`relaxvm.vm.executable` imports this module (and re-exports ``check_executable``), so
``FuncKind`` and ``FunctionInfo`` are imported inside the functions that need them, not at
module level, to keep the import graph free of cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relaxvm.errors import ExecutableFormatError
from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
    function_defect,
    instruction_length,
    is_plain_int,
)
from relaxvm.vm.constants import INT64_MIN, constant_defect

if TYPE_CHECKING:
    from relaxvm.vm.executable import Executable, FunctionInfo


def _function_entry_defect(i: int, f: Any, num_instructions: int) -> str | None:
    from relaxvm.vm.executable import FuncKind, FunctionInfo

    if not isinstance(f, FunctionInfo):
        return f"func_table[{i}] must be a FunctionInfo, got {type(f).__name__}"
    if not isinstance(f.name, str) or not f.name:
        return f"func_table[{i}] has name {f.name!r}; expected a non-empty str"
    where = f"function {f.name!r} (func_table[{i}])"
    ints = (f.start_instr, f.end_instr, f.num_args, f.register_file_size)
    if f.kind not in (FuncKind.PACKED_FUNC, FuncKind.VM_FUNC) or not all(map(is_plain_int, ints)):
        return f"{where} has kind {f.kind!r} or non-int fields {ints!r}"
    if not isinstance(f.param_names, list) or not all(isinstance(p, str) for p in
                                                       f.param_names):
        return f"{where} has param_names {f.param_names!r}; expected a list of str"
    if f.kind == FuncKind.PACKED_FUNC:
        if ints != (0, 0, -2, 0) or f.param_names:
            return (f"{where} is a packed function and must have start_instr=0, end_instr=0, "
                    f"num_args=-2, register_file_size=0 and no param_names, got {ints!r} "
                    f"and {len(f.param_names)} param_names")
        return None
    return _vm_entry_defect(where, f, num_instructions)


def _vm_entry_defect(where: str, f: FunctionInfo, num_instructions: int) -> str | None:
    if not 0 <= f.start_instr < f.end_instr <= num_instructions:
        return (f"{where} spans instructions [{f.start_instr}, {f.end_instr}); expected a "
                f"non-empty range inside the code [0, {num_instructions})")
    if f.num_args < 0 or len(f.param_names) != f.num_args:
        return (f"{where} has num_args={f.num_args} and {len(f.param_names)} param_names; "
                f"expected num_args >= 0 and one name per parameter")
    limit = f.num_args + (f.end_instr - f.start_instr)
    if not f.num_args <= f.register_file_size <= min(limit, BEGIN_SPECIAL_REG - 1):
        return (f"{where} has register_file_size={f.register_file_size}; expected between "
                f"num_args={f.num_args} and num_args + its instruction count = {limit}")
    return None


def _code_defect(exe: Executable) -> str | None:
    data, offsets = exe.instr_data, exe.instr_offset
    if not all(is_plain_int(w) and INT64_MIN <= w < (1 << 64) for w in data):
        return "instr_data holds a word that is not a 64-bit int"
    expected = 0
    for i, offset in enumerate(offsets):
        if offset != expected:
            return (f"instruction {i} starts at word {offset!r}; expected {expected} "
                    f"(instructions must be stored back to back)")
        try:
            expected += instruction_length(data, offset)
        except ValueError as exc:
            return f"instruction {i}: {exc}"
    if expected != len(data):
        return f"instr_data has {len(data)} words but its instructions use {expected}"
    return None


def _table_defect(exe: Executable) -> str | None:
    from relaxvm.vm.executable import FuncKind

    table = exe.func_table
    for i, f in enumerate(table):
        problem = _function_entry_defect(i, f, exe.num_instructions)
        if problem:
            return problem
    names = [f.name for f in table]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        return f"function name {dup!r} appears more than once in the function table"
    if exe.func_map != {name: i for i, name in enumerate(names)}:
        return "func_map does not map each function name to its func_table index"
    spans = sorted((f.start_instr, f.end_instr, f.name) for f in table
                   if f.kind == FuncKind.VM_FUNC)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        if start < end:
            return f"functions {a!r} and {b!r} have overlapping instruction ranges"
    return None


def check_executable(exe: Executable, where: str,
                     error: Callable[[str], Exception] = ExecutableFormatError) -> None:
    """Raise ``error`` with a message naming the first structural defect of ``exe``.

    Checks the function table, the code layout, every constant's kind and every VM
    function's code (see :func:`relaxvm.vm.bytecode.function_defect`).
    """
    problem = _code_defect(exe) or _table_defect(exe)
    if problem is None:
        problem = next((f"constant c[{i}]: {p}" for i, c in enumerate(exe.constants)
                        if (p := constant_defect(c)) is not None), None)
    problem = problem or _functions_defect(exe)
    if problem:
        raise error(f"{where}: {problem}")


def _functions_defect(exe: Executable) -> str | None:
    from relaxvm.vm.executable import FuncKind

    names = [f.name for f in exe.func_table]
    arity = [f.num_args if f.kind == FuncKind.VM_FUNC else None for f in exe.func_table]
    for f in exe.func_table:
        if f.kind == FuncKind.VM_FUNC:
            code = [exe.get_instruction(pc) for pc in range(f.start_instr, f.end_instr)]
            problem = function_defect(f.name, code, f.register_file_size,
                                      len(exe.constants), arity, names)
            if problem:
                return problem
    return None
