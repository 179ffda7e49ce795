"""The VM instruction set: four opcodes and TVM's 64-bit argument words.

An argument of a Call is one 64-bit word: the top 8 bits say what kind of argument it is
(register, immediate int, constant-pool index, function index) and the low 56 bits hold the
value, sign-extended when read. We keep TVM's exact encoding so that a TVM ExecBuilder
program transcribes to ours line for line and listings print the same. Words are Python
ints in ``[0, 2**64)``; e.g. ``encode_arg(ArgKind.IMMEDIATE, -3) == 0x01fffffffffffffd``.

Instructions are stored flat in ``Executable.instr_data`` exactly as TVM lays them out::

    Call : [1, dst, func_idx, num_args, arg_0 ... arg_{n-1}]
    Ret  : [2, result_reg]
    Goto : [3, pc_offset]          (relative to the Goto; may be negative)
    If   : [4, cond_reg, false_offset]

``dst``, ``result`` and ``cond`` are plain register numbers (kind 0 words), offsets are
signed Python ints.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class Opcode(enum.IntEnum):
    """The four instructions; all real work happens in the functions that Call invokes."""

    CALL = 1
    RET = 2
    GOTO = 3
    IF = 4


class ArgKind(enum.IntEnum):
    """What the value of an argument word means."""

    REGISTER = 0
    IMMEDIATE = 1
    CONST_IDX = 2
    FUNC_IDX = 3


KIND_BIT = 8
VALUE_BIT = 56
VALUE_MAX = 2**55 - 1
VALUE_MIN = -(2**55 - 1)
_VALUE_MASK = (1 << VALUE_BIT) - 1
_SIGN_BIT = 1 << (VALUE_BIT - 1)
WORD_MASK = (1 << 64) - 1

BEGIN_SPECIAL_REG = 1 << 54
VOID_REGISTER = 1 << 54          # reads as None; as a dst it discards the result
VM_REGISTER = (1 << 54) + 1      # reads as the VirtualMachine (context of some builtins)


def encode_arg(kind: ArgKind | int, value: int) -> int:
    """The 64-bit word for an argument of ``kind`` holding ``value``.

    Raises ValueError when ``kind`` is not an ArgKind or ``value`` does not fit in the
    56-bit signed field (TVM checks the same range).
    """
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in _KINDS:
        raise ValueError(f"encode_arg: kind must be an ArgKind (0..3), got {kind!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"encode_arg: value must be an int, got {type(value).__name__} "
                         f"{value!r}")
    if not VALUE_MIN <= value <= VALUE_MAX:
        raise ValueError(f"encode_arg: value {value} is outside the encodable range "
                         f"[{VALUE_MIN}, {VALUE_MAX}] (56-bit signed)")
    return (int(kind) << VALUE_BIT) | (value & _VALUE_MASK)


_KINDS = {int(k): k for k in ArgKind}


def decode_arg(word: int) -> tuple[ArgKind, int]:
    """Split a word into its kind and its sign-extended value.

    Accepts words as unsigned ``[0, 2**64)`` or as signed int64; raises ValueError for
    anything else or for an unknown kind.
    """
    if isinstance(word, bool) or not isinstance(word, int) or not -(1 << 63) <= word <= WORD_MASK:
        raise ValueError(f"decode_arg: word must be a 64-bit int, got {word!r}")
    word &= WORD_MASK
    kind = _KINDS.get(word >> VALUE_BIT)
    if kind is None:
        raise ValueError(f"decode_arg: word {word:#018x} has unknown kind {word >> VALUE_BIT} "
                         f"(expected 0..3)")
    value = word & _VALUE_MASK
    if value & _SIGN_BIT:
        value -= 1 << VALUE_BIT
    return kind, value


def format_register(reg: int) -> str:
    """``%3``, ``%void`` or ``%vm`` as listings print a register."""
    if reg == VOID_REGISTER:
        return "%void"
    if reg == VM_REGISTER:
        return "%vm"
    return f"%{reg}"


def format_arg(word: int, func_names: Sequence[str]) -> str:
    """One argument as ``as_text`` prints it: ``%3``, ``%void``, ``%vm``, ``i-3``, ``c[2]``,
    ``f[name]`` (``f[#7]`` when the index is outside ``func_names``)."""
    kind, value = decode_arg(word)
    if kind == ArgKind.REGISTER:
        return format_register(value)
    if kind == ArgKind.IMMEDIATE:
        return f"i{value}"
    if kind == ArgKind.CONST_IDX:
        return f"c[{value}]"
    name = func_names[value] if 0 <= value < len(func_names) else f"#{value}"
    return f"f[{name}]"


# -- instructions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    """Base of the four decoded instruction records; ``opcode`` says which one."""

    opcode: ClassVar[Opcode]

    def encode(self) -> list[int]:
        """The instruction's words in ``instr_data`` layout."""
        raise NotImplementedError


@dataclass(frozen=True)
class Call(Instruction):
    """``dst = func_pool[func_idx](*args)``; ``dst == VOID_REGISTER`` discards the result."""

    dst: int
    func_idx: int
    args: tuple[int, ...] = ()
    opcode: ClassVar[Opcode] = Opcode.CALL

    def encode(self) -> list[int]:
        return [int(Opcode.CALL), self.dst, self.func_idx, len(self.args), *self.args]


@dataclass(frozen=True)
class Ret(Instruction):
    """Return the value of register ``result`` to the caller."""

    result: int
    opcode: ClassVar[Opcode] = Opcode.RET

    def encode(self) -> list[int]:
        return [int(Opcode.RET), self.result]


@dataclass(frozen=True)
class Goto(Instruction):
    """Jump by ``pc_offset`` instructions, relative to this one."""

    pc_offset: int
    opcode: ClassVar[Opcode] = Opcode.GOTO

    def encode(self) -> list[int]:
        return [int(Opcode.GOTO), self.pc_offset]


@dataclass(frozen=True)
class If(Instruction):
    """Fall through when register ``cond`` is non-zero, else jump by ``false_offset``."""

    cond: int
    false_offset: int
    opcode: ClassVar[Opcode] = Opcode.IF

    def encode(self) -> list[int]:
        return [int(Opcode.IF), self.cond, self.false_offset]


_FIXED_LENGTH = {int(Opcode.RET): 2, int(Opcode.GOTO): 2, int(Opcode.IF): 3}


def instruction_length(data: Sequence[int], offset: int) -> int:
    """How many words the instruction at ``data[offset]`` occupies.

    Raises ValueError for an unknown opcode, a negative argument count or words missing
    past the end of ``data``.
    """
    if not 0 <= offset < len(data):
        raise ValueError(f"instruction offset {offset} is outside instr_data "
                         f"(length {len(data)})")
    op = data[offset]
    if op == Opcode.CALL:
        if offset + 4 > len(data):
            raise ValueError(f"Call at word {offset} is truncated: needs 4 header words, "
                             f"{len(data) - offset} remain")
        nargs = data[offset + 3]
        if not 0 <= nargs <= len(data) - offset - 4:
            raise ValueError(f"Call at word {offset} has {nargs} arguments but only "
                             f"{len(data) - offset - 4} words remain")
        return 4 + nargs
    length = _FIXED_LENGTH.get(op)
    if length is None:
        raise ValueError(f"unknown opcode {op} at word {offset} (expected 1..4)")
    if offset + length > len(data):
        raise ValueError(f"{Opcode(op).name} at word {offset} is truncated: needs {length} "
                         f"words, {len(data) - offset} remain")
    return length


def decode_instruction(data: Sequence[int], offset: int) -> Instruction:
    """The instruction starting at word ``offset`` (ValueError when malformed)."""
    length = instruction_length(data, offset)
    op = data[offset]
    if op == Opcode.CALL:
        return Call(data[offset + 1], data[offset + 2], tuple(data[offset + 4:offset + length]))
    if op == Opcode.RET:
        return Ret(data[offset + 1])
    if op == Opcode.GOTO:
        return Goto(data[offset + 1])
    return If(data[offset + 1], data[offset + 2])


# -- validation of one function's code ------------------------------------------------------

def describe(ins: Instruction, func_names: Sequence[str]) -> str:
    """A short label for messages: ``call test.vm.add``, ``ret``, ``goto``, ``if``."""
    if isinstance(ins, Call):
        callee = func_names[ins.func_idx] if 0 <= ins.func_idx < len(func_names) else "?"
        return f"call {callee}"
    return ins.opcode.name.lower()


def is_plain_int(value: object) -> bool:
    """True for ints that are not bools (bool is an int subclass in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _read_defect(reg: object, reg_size: int, what: str) -> str | None:
    if reg == VOID_REGISTER or reg == VM_REGISTER:
        return None
    if not is_plain_int(reg) or not 0 <= reg < reg_size:  # type: ignore[operator]
        return (f"{what} register {reg!r}, outside the register file [0, {reg_size}) "
                f"and not %void or %vm")
    return None


def _arg_defect(word: object, reg_size: int, num_consts: int, num_funcs: int,
                k: int) -> str | None:
    try:
        kind, value = decode_arg(word)  # type: ignore[arg-type]
    except ValueError as exc:
        return f"argument {k}: {exc}"
    if kind == ArgKind.REGISTER:
        return _read_defect(value, reg_size, f"argument {k} reads")
    if kind == ArgKind.CONST_IDX and not 0 <= value < num_consts:
        return f"argument {k} uses constant c[{value}], but the pool has {num_consts} constants"
    if kind == ArgKind.FUNC_IDX and not 0 <= value < num_funcs:
        return (f"argument {k} uses function index {value}, but the function table has "
                f"{num_funcs} entries")
    return None


def _call_defect(ins: Call, reg_size: int, num_consts: int,
                 func_arity: Sequence[int | None], func_names: Sequence[str]) -> str | None:
    if not is_plain_int(ins.func_idx) or not 0 <= ins.func_idx < len(func_arity):
        return (f"calls function index {ins.func_idx!r}, but the function table has "
                f"{len(func_arity)} entries")
    if ins.dst != VOID_REGISTER and (not is_plain_int(ins.dst) or not 0 <= ins.dst < reg_size):
        return (f"writes register {ins.dst!r}, outside the register file [0, {reg_size}) "
                f"and not %void")
    for k, word in enumerate(ins.args):
        problem = _arg_defect(word, reg_size, num_consts, len(func_arity), k)
        if problem:
            return problem
    arity = func_arity[ins.func_idx]
    if arity is not None and arity != len(ins.args):
        return (f"calls VM function {func_names[ins.func_idx]!r} with {len(ins.args)} "
                f"arguments, but it takes {arity}")
    return None


def _jump_defect(i: int, offset: object, n: int, what: str) -> str | None:
    if not is_plain_int(offset):
        return f"{what} offset must be an int, got {offset!r}"
    target = i + offset  # type: ignore[operator]
    if not 0 <= target < n:
        return (f"{what} jumps to instruction {target}, outside the function's "
                f"instructions [0, {n})")
    return None


def instruction_defect(i: int, ins: Instruction, n: int, reg_size: int, num_consts: int,
                       func_arity: Sequence[int | None],
                       func_names: Sequence[str]) -> str | None:
    """What is wrong with instruction ``i`` of a function of ``n`` instructions, or None.

    ``func_arity[j]`` is the number of parameters of VM function ``j`` (None for packed
    functions, whose arity is unknown until they run).
    """
    if isinstance(ins, Call):
        return _call_defect(ins, reg_size, num_consts, func_arity, func_names)
    if isinstance(ins, Ret):
        return _read_defect(ins.result, reg_size, "returns")
    if isinstance(ins, Goto):
        if ins.pc_offset == 0:
            return "goto offset must not be 0 (it would jump to itself forever)"
        return _jump_defect(i, ins.pc_offset, n, "goto")
    if isinstance(ins, If):
        problem = _read_defect(ins.cond, reg_size, "condition reads")
        if problem is None and i + 1 >= n:
            problem = "if is the last instruction; its true branch would run past the end"
        if problem is None and is_plain_int(ins.false_offset) and ins.false_offset <= 1:
            problem = (f"if false_offset must be greater than 1 (1 is the fall-through "
                       f"instruction), got {ins.false_offset}")
        return problem or _jump_defect(i, ins.false_offset, n, "if")
    return f"unknown instruction {ins!r}"


def function_defect(name: str, instrs: Sequence[Instruction], reg_size: int, num_consts: int,
                    func_arity: Sequence[int | None], func_names: Sequence[str]) -> str | None:
    """The first defect of a VM function's code as a message naming the function and the
    instruction index (relative to the function's start), or None when it is well formed.

    Checks every register against ``reg_size`` (or %void/%vm), every constant and function
    index, call arity of VM callees, jump offsets (Goto != 0, If > 1) and targets (inside
    the function), that a Ret exists and that control cannot run past the last instruction.
    """
    n = len(instrs)
    for i, ins in enumerate(instrs):
        problem = instruction_defect(i, ins, n, reg_size, num_consts, func_arity, func_names)
        if problem:
            return f"function {name!r}, instruction {i} ({describe(ins, func_names)}): {problem}"
    if not any(isinstance(ins, Ret) for ins in instrs):
        return f"function {name!r} has no Ret instruction"
    if n and not isinstance(instrs[-1], (Ret, Goto)):
        return (f"function {name!r}, instruction {n - 1} ({describe(instrs[-1], func_names)}): "
                f"the last instruction must be Ret or Goto, otherwise control runs past the "
                f"end of the function")
    return None
