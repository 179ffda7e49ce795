"""The Executable: function table, constant pool and flat bytecode, plus its listings.

An Executable is plain data, like TVM's ``VMExecutable``: ``func_table`` (one
:class:`FunctionInfo` per packed or VM function), ``func_map`` (name -> index),
``constants`` (host values, see below), ``instr_offset`` and ``instr_data`` (the flat
encoding of :mod:`relaxvm.vm.bytecode`). Build one with :class:`~relaxvm.vm.builder.ExecBuilder`,
save it with :meth:`Executable.save`, load it with :func:`load_executable`.

Constant pool values are host objects: ``numpy.ndarray`` (tensors, any numeric dtype, bool,
float16, ml_dtypes' bfloat16...), :class:`~relaxvm.objects.Shape`,
:class:`~relaxvm.objects.DataType`, ``str``, ``int`` (64-bit), ``float``, ``bool``,
``None`` and ``tuple`` (an Array of constants, nested) — the last is our extension over
TVM so kernel attributes such as float lists can be constants.

Helpers for single constants live in :mod:`relaxvm.vm.constants` and the structural checker
in :mod:`relaxvm.vm.validate`; both are re-exported here so existing imports keep working.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

from relaxvm.errors import ArgumentError, ExecutableFormatError
from relaxvm.vm.bytecode import (
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Call,
    Goto,
    If,
    Instruction,
    Ret,
    decode_arg,
    decode_instruction,
    format_arg,
    format_register,
)
from relaxvm.vm.constants import (
    INT64_MAX,
    INT64_MIN,
    MAX_NESTING,
    constant_defect,
    constant_key,
    constant_pools_equal,
    normalize_constant,
    python_constant,
    render_constant,
    tensor_dtype_supported,
)
from relaxvm.vm.validate import check_executable

# Names re-exported from relaxvm.vm.constants and relaxvm.vm.validate, which used to live
# here: ``from relaxvm.vm.executable import check_executable`` and the like keep working.
__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_NESTING",
    "Executable",
    "FuncKind",
    "FunctionInfo",
    "check_executable",
    "constant_defect",
    "constant_key",
    "constant_pools_equal",
    "load_executable",
    "normalize_constant",
    "python_constant",
    "render_constant",
    "tensor_dtype_supported",
]


class FuncKind(enum.IntEnum):
    """Where a function's body lives: a registered packed function, or bytecode."""

    PACKED_FUNC = 0
    VM_FUNC = 1


@dataclass
class FunctionInfo:
    """One entry of the function table.

    ``num_args`` is -2 for packed functions (TVM's "declared" marker); instruction
    indices ``[start_instr, end_instr)`` count instructions, not words.
    """

    kind: FuncKind
    name: str
    start_instr: int = 0
    end_instr: int = 0
    num_args: int = -2
    register_file_size: int = 0
    param_names: list[str] = field(default_factory=list)


# -- the executable ---------------------------------------------------------------------

class Executable:
    """A program the VM can run: function table, constant pool and flat bytecode."""

    def __init__(self, func_table: list[FunctionInfo] | None = None,
                 constants: list[Any] | None = None, instr_offset: list[int] | None = None,
                 instr_data: list[int] | None = None,
                 func_map: dict[str, int] | None = None) -> None:
        self.func_table: list[FunctionInfo] = list(func_table or [])
        self.constants: list[Any] = list(constants or [])
        self.instr_offset: list[int] = list(instr_offset or [])
        self.instr_data: list[int] = list(instr_data or [])
        self.func_map: dict[str, int] = (dict(func_map) if func_map is not None else
                                         {f.name: i for i, f in enumerate(self.func_table)})

    # -- access -------------------------------------------------------------------------
    @property
    def num_instructions(self) -> int:
        """How many instructions the code section holds (all functions together)."""
        return len(self.instr_offset)

    def get_instruction(self, i: int) -> Instruction:
        """Decode instruction ``i`` (an absolute instruction index)."""
        if not 0 <= i < len(self.instr_offset):
            raise ArgumentError(f"Executable.get_instruction: i must be in "
                                f"[0, {len(self.instr_offset)}), got {i}")
        return decode_instruction(self.instr_data, self.instr_offset[i])

    def has_function(self, name: str) -> bool:
        """True if ``name`` is in the function table (packed or VM)."""
        return name in self.func_map

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Executable):
            return NotImplemented
        return (self.func_table == other.func_table and self.func_map == other.func_map
                and self.instr_offset == other.instr_offset
                and self.instr_data == other.instr_data
                and constant_pools_equal(self.constants, other.constants))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"<Executable: {len(self.func_table)} functions, {self.num_instructions} "
                f"instructions, {len(self.constants)} constants>")

    # -- listings -----------------------------------------------------------------------
    def _instructions_of(self, info: FunctionInfo) -> list[Instruction]:
        return [self.get_instruction(pc) for pc in range(info.start_instr, info.end_instr)]

    def as_text(self) -> str:
        """A listing in TVM's layout, one instruction a line::

            @main:
              call  test.vm.add      in: %0, %1       dst: %2
              ret   %2

            @test.vm.add packed_func;
        """
        names = [f.name for f in self.func_table]
        out: list[str] = []
        for info in self.func_table:
            if info.kind != FuncKind.VM_FUNC:
                out.append(f"@{info.name} packed_func;\n\n")
                continue
            out.append(f"@{info.name}:\n")
            out.extend(_text_line(ins, names) + "\n" for ins in self._instructions_of(info))
            out.append("\n")
        return "".join(out)

    def as_python(self) -> str:
        """Python source of the ExecBuilder calls that rebuild this executable.

        Unlike TVM's, the text is runnable: ``exec`` it and ``ib.get()`` returns an
        executable equal to this one (for executables made by ExecBuilder). Constants are
        written out in full, tensors as hex bytes, so the text can be large.
        """
        lines = ["from relaxvm.objects import DataType, Shape",
                 "from relaxvm.vm.builder import ExecBuilder, host_array",
                 "from relaxvm.vm.executable import FuncKind", "", "ib = ExecBuilder()"]
        lines += [f"ib.add_constant({python_constant(c)})  # c[{i}]"
                  for i, c in enumerate(self.constants)]
        lines += [f"ib.declare_function({f.name!r}, FuncKind.{FuncKind(f.kind).name})"
                  for f in self.func_table]
        names = [f.name for f in self.func_table]
        vm_funcs = [f for f in self.func_table if f.kind == FuncKind.VM_FUNC]
        for info in sorted(vm_funcs, key=lambda f: f.start_instr):
            lines.append(f"with ib.function({info.name!r}, num_inputs={info.num_args}, "
                         f"param_names={list(info.param_names)!r}):")
            lines += ["    " + _python_line(ins, names) for ins in self._instructions_of(info)]
        return "\n".join(lines) + "\n"

    def stats(self) -> str:
        """A short summary in TVM's layout: the constant pool and the function names.

        Float constants print like any other (TVM's ``stats()`` throws on them)."""
        consts = ", ".join(render_constant(c) for c in self.constants)
        names = ", ".join(f.name for f in self.func_table)
        return (f"Relax VM executable statistics:\n"
                f"  Constant pool (# {len(self.constants)}): [{consts}]\n"
                f"  Globals (#{len(self.func_table)}): [{names}]")

    # -- validation and files -------------------------------------------------------------
    def validate(self) -> None:
        """Raise ExecutableFormatError naming the first structural defect, if any."""
        check_executable(self, "Executable.validate", ExecutableFormatError)

    def save_to_bytes(self) -> bytes:
        """The executable in relaxvm's binary format (docs/executable-format.md)."""
        from relaxvm.vm.serialization import save_to_bytes
        return save_to_bytes(self)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`save_to_bytes` to ``path``."""
        data = self.save_to_bytes()
        with open(path, "wb") as fh:
            fh.write(data)

    @staticmethod
    def load_from_bytes(data: bytes | bytearray | memoryview) -> Executable:
        """Parse and validate bytes written by :meth:`save_to_bytes`."""
        from relaxvm.vm.serialization import load_from_bytes
        return load_from_bytes(data)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Executable:
        """Read and validate an executable file written by :meth:`save`."""
        with open(path, "rb") as fh:
            data = fh.read()
        return Executable.load_from_bytes(data)


def load_executable(path_or_bytes: str | os.PathLike[str] | bytes | bytearray | memoryview
                    ) -> Executable:
    """Load an executable from a file path or from the bytes of one."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return Executable.load_from_bytes(path_or_bytes)
    if isinstance(path_or_bytes, (str, os.PathLike)):
        return Executable.load(path_or_bytes)
    raise ArgumentError(f"load_executable: path_or_bytes must be a path or bytes, got "
                        f"{type(path_or_bytes).__name__}")


# -- listing lines ----------------------------------------------------------------------

def _text_line(ins: Instruction, names: list[str]) -> str:
    if isinstance(ins, Call):
        args = ", ".join(format_arg(w, names) for w in ins.args)
        return f"  call  {names[ins.func_idx]:<16} in: {args:<12} dst: {format_register(ins.dst)}"
    if isinstance(ins, Ret):
        return f"  ret   {format_register(ins.result)}"
    if isinstance(ins, Goto):
        return f"  goto  {ins.pc_offset}"
    assert isinstance(ins, If)
    return f"  If    {format_register(ins.cond)}, {ins.false_offset}"


def _python_reg(reg: int) -> str:
    if reg == VOID_REGISTER:
        return "ib.void_arg()"
    if reg == VM_REGISTER:
        return "ib.vm_state()"
    return f"ib.r({reg})"


def _python_arg(word: int, names: list[str]) -> str:
    kind, value = decode_arg(word)
    if kind == ArgKind.REGISTER:
        return _python_reg(value)
    if kind == ArgKind.IMMEDIATE:
        return f"ib.imm({value})"
    if kind == ArgKind.CONST_IDX:
        return f"ib.c({value})"
    return f"ib.f({names[value]!r})"


def _python_line(ins: Instruction, names: list[str]) -> str:
    if isinstance(ins, Call):
        args = ", ".join(_python_arg(w, names) for w in ins.args)
        dst = "" if ins.dst == VOID_REGISTER else f", dst={_python_reg(ins.dst)}"
        return f"ib.emit_call({names[ins.func_idx]!r}, args=[{args}]{dst})"
    if isinstance(ins, Ret):
        return f"ib.emit_ret({_python_reg(ins.result)})"
    if isinstance(ins, Goto):
        return f"ib.emit_goto({ins.pc_offset})"
    assert isinstance(ins, If)
    return f"ib.emit_if({_python_reg(ins.cond)}, {ins.false_offset})"
