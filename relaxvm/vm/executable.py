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
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError, ExecutableFormatError
from relaxvm.objects import DataType, Shape
from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
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
    function_defect,
    instruction_length,
    is_plain_int,
)

MAX_NESTING = 32  # deepest Array-in-Array nesting of a constant (bounds recursion)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


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


# -- constant pool values ---------------------------------------------------------------

def tensor_dtype_supported(dtype: np.dtype) -> bool:
    """True for dtypes a tensor constant may have: bool, ints, floats, complex, and the
    ml_dtypes extension types (bfloat16, float8...). Object, string and record dtypes
    cannot be saved portably."""
    return dtype.kind in "biufc" or (dtype.kind == "V" and dtype.type.__module__ == "ml_dtypes")


def _normalize_array(arr: np.ndarray) -> np.ndarray:
    if not tensor_dtype_supported(arr.dtype):
        raise ValueError(f"tensor dtype {arr.dtype} is not supported (expected bool, int, "
                         f"uint, float, complex or an ml_dtypes type such as bfloat16)")
    dtype = arr.dtype.newbyteorder("=") if arr.dtype.kind in "iufc" else arr.dtype
    return np.array(arr, dtype=dtype, order="C", copy=True)


def normalize_constant(obj: Any, depth: int = 0) -> Any:
    """``obj`` in the canonical form the constant pool stores.

    A relaxvm Tensor becomes its host ``.numpy()`` copy, arrays are copied (C order,
    native byte order), NumPy scalars become Python scalars, lists become tuples.
    Raises ValueError naming the offending value for anything else.
    """
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        if not INT64_MIN <= int(obj) <= INT64_MAX:
            raise ValueError(f"int constant {int(obj)} does not fit in 64 bits")
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, (Shape, DataType)):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, np.dtype):
        return DataType(obj)
    if isinstance(obj, np.ndarray):
        return _normalize_array(obj)
    if isinstance(obj, (tuple, list)):
        if depth >= MAX_NESTING:
            raise ValueError(f"Array constants nest deeper than {MAX_NESTING} levels")
        return tuple(normalize_constant(item, depth + 1) for item in obj)
    if hasattr(obj, "numpy") and hasattr(obj, "device") and hasattr(obj, "storage"):
        return _normalize_array(obj.numpy())
    raise ValueError(f"a constant must be a tensor, numpy array, Shape, DataType, str, int, "
                     f"float, bool, None or a tuple of those, got {type(obj).__name__}")


def constant_defect(obj: Any, depth: int = 0) -> str | None:
    """Why ``obj`` is not a canonical constant-pool value, or None when it is.

    Cheap (no copies), so loading and saving large tensors stays fast."""
    if isinstance(obj, np.ndarray):
        if not tensor_dtype_supported(obj.dtype):
            return f"tensor dtype {obj.dtype} is not supported"
        if not obj.dtype.isnative and obj.dtype.itemsize > 1:
            return f"tensor dtype {obj.dtype.str} is not in native byte order"
        return None
    if isinstance(obj, int) and not isinstance(obj, bool):
        ok = INT64_MIN <= obj <= INT64_MAX
        return None if ok else f"int constant {obj} does not fit in 64 bits"
    if obj is None or isinstance(obj, (bool, float, str)):  # str covers DataType
        return None
    if type(obj) is tuple:
        if depth >= MAX_NESTING:
            return f"Array constants nest deeper than {MAX_NESTING} levels"
        return next((p for item in obj if (p := constant_defect(item, depth + 1))), None)
    if isinstance(obj, Shape) and all(INT64_MIN <= d <= INT64_MAX for d in obj):
        return None
    return (f"{type(obj).__name__} is not a constant-pool type (tensor, Shape, DataType, "
            f"str, int, float, bool, None or tuple)")


def constant_key(obj: Any, digest: bool = False) -> Any:
    """A hashable structural key: equal keys mean interchangeable constants.

    Tensors compare by dtype, shape and bytes; ``1``, ``1.0`` and ``True`` differ; floats
    compare by bit pattern (0.0 differs from -0.0), and every NaN equals every NaN.
    ``digest=True`` keys tensors by a BLAKE2b digest of their bytes instead of the bytes,
    so a dedup table does not hold a second copy of every weight.
    """
    if isinstance(obj, np.ndarray):
        data = obj.tobytes()
        return ("tensor", obj.dtype.name, obj.shape,
                hashlib.blake2b(data).digest() if digest else data)
    if isinstance(obj, Shape):
        return ("shape", tuple(obj))
    if isinstance(obj, DataType):
        return ("dtype", str(obj))
    if isinstance(obj, tuple):
        return ("tuple", tuple(constant_key(item, digest) for item in obj))
    if isinstance(obj, float):
        return ("float", "nan" if obj != obj else struct.pack("<d", obj))
    return (type(obj).__name__, obj)


def render_constant(obj: Any) -> str:
    """A constant as ``stats()`` prints it (TVM's style: tensors by shape or ``scalar``)."""
    if isinstance(obj, np.ndarray):
        return f"[{', '.join(map(str, obj.shape))}]" if obj.ndim else "scalar"
    if isinstance(obj, Shape):
        return f"shapetuple[{', '.join(map(str, obj))}]"
    if isinstance(obj, DataType):
        return str(obj)
    if isinstance(obj, str):
        return f'"{obj}"'
    if isinstance(obj, tuple):
        return "(" + ", ".join(render_constant(item) for item in obj) + ")"
    return repr(obj)


def python_constant(obj: Any) -> str:
    """Python source that rebuilds ``obj`` exactly (used by ``as_python``)."""
    if isinstance(obj, np.ndarray):
        return f"host_array({obj.dtype.name!r}, {list(obj.shape)}, {obj.tobytes().hex()!r})"
    if isinstance(obj, Shape):
        return f"Shape({list(obj)})"
    if isinstance(obj, DataType):
        return f"DataType({str(obj)!r})"
    if isinstance(obj, tuple):
        items = [python_constant(item) for item in obj]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(obj, float) and not np.isfinite(obj):
        return f"float({repr(obj)!r})"
    return repr(obj)


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
                and len(self.constants) == len(other.constants)
                and all(constant_key(a) == constant_key(b)
                        for a, b in zip(self.constants, other.constants, strict=True)))

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


# -- structural validation ----------------------------------------------------------------

def _function_entry_defect(i: int, f: Any, num_instructions: int) -> str | None:
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
    names = [f.name for f in exe.func_table]
    arity = [f.num_args if f.kind == FuncKind.VM_FUNC else None for f in exe.func_table]
    for f in exe.func_table:
        if f.kind == FuncKind.VM_FUNC:
            problem = function_defect(f.name, exe._instructions_of(f), f.register_file_size,
                                      len(exe.constants), arity, names)
            if problem:
                return problem
    return None
