"""ExecBuilder: write VM bytecode by hand or from a compiler, with TVM's names.

A TVM ``ExecBuilder`` program transcribes to ours line for line::

    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(7))
        ib.emit_ret(ib.r(7))
    exe = ib.get()          # renumbers r7 -> r2, validates, returns an Executable

Differences from TVM, all deliberate:

* A name that ``emit_call`` auto-declared as a packed function is upgraded to a VM function
  when ``function()`` later defines it, so forward references just work (TVM keeps it
  packed and the VM fails to load).
* ``f(name)`` may name a function defined later; ``get()`` reports it if it never is.
* A name ``emit_call`` auto-declared must, by ``get()``, be defined here, be a vm.builtin,
  a ``register_func`` function or a kernel; otherwise ``get()`` reports the unknown callee
  (as the issue asks; TVM only fails when the VM loads). ``declare_function(name)`` opts a
  name out, for functions registered after the build.
* In ``emit_call`` args, ``bool``, ``None``, ``float``, ``str``, lists, arrays and tensors
  become constants. A plain ``int`` is still taken as an **already-encoded argument
  word**, as in TVM: ``5`` means register 5, not the number 5 — write ``ib.imm(5)``.
* Misuse is reported as :class:`~relaxvm.errors.BuildError` naming the function and the
  instruction index: immediately where it can be (emit outside ``with ib.function``,
  defining twice, wrong param_names), otherwise by ``get()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import BuildError
from relaxvm.objects import Shape, numpy_dtype
from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
    VALUE_MAX,
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Call,
    Goto,
    If,
    Instruction,
    Ret,
    decode_arg,
    describe,
    encode_arg,
)
from relaxvm.vm.executable import (
    Executable,
    FuncKind,
    FunctionInfo,
    check_executable,
    constant_key,
    normalize_constant,
)


def host_array(dtype: str, shape: Sequence[int], hex_data: str) -> np.ndarray:
    """A host array from its dtype, shape and raw bytes in hex (used by ``as_python``)."""
    return np.frombuffer(bytes.fromhex(hex_data), dtype=numpy_dtype(dtype)).reshape(shape).copy()


class _FunctionScope:
    """What ``ExecBuilder.function`` returns: ``with`` ends the function on exit."""

    def __init__(self, builder: ExecBuilder, name: str) -> None:
        self.builder, self.name = builder, name

    def __enter__(self) -> _FunctionScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.builder._end_function(self.name)


class ExecBuilder:
    """Builds an :class:`~relaxvm.vm.executable.Executable` one instruction at a time."""

    def __init__(self) -> None:
        self._table: list[FunctionInfo] = []
        self._map: dict[str, int] = {}
        self._auto: set[str] = set()           # declared implicitly, kind may still change
        self._referenced: set[str] = set()     # named by f() before any declaration
        self._defined: set[str] = set()
        self._constants: list[Any] = []
        self._const_index: dict[Any, int] = {}
        self._instrs: list[Instruction] = []
        self._current: str | None = None

    # -- argument words -------------------------------------------------------------------
    def r(self, idx: int) -> int:
        """The argument word of register ``idx``."""
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx <= VALUE_MAX:
            raise BuildError(f"ExecBuilder.r: idx must be a register number >= 0, got {idx!r}")
        return encode_arg(ArgKind.REGISTER, idx)

    def imm(self, value: int) -> int:
        """The argument word of the immediate int ``value`` (56-bit signed range)."""
        try:
            return encode_arg(ArgKind.IMMEDIATE, value)
        except ValueError as exc:
            raise BuildError(f"ExecBuilder.imm: {exc}; use convert_constant for larger "
                             f"ints") from None

    def c(self, idx: int) -> int:
        """The argument word of constant-pool entry ``idx`` (checked by ``get()``)."""
        try:
            return encode_arg(ArgKind.CONST_IDX, idx)
        except ValueError as exc:
            raise BuildError(f"ExecBuilder.c: {exc}") from None

    def f(self, name: str) -> int:
        """The argument word of function ``name``; it may be defined later."""
        if name not in self._map:
            self._declare(name, FuncKind.PACKED_FUNC)
            self._auto.add(name)
            self._referenced.add(name)
        return encode_arg(ArgKind.FUNC_IDX, self._map[name])

    def void_arg(self) -> int:
        """The %void register: a None argument."""
        return VOID_REGISTER

    def vm_state(self) -> int:
        """The %vm register: the VirtualMachine, first argument of builtins that need it."""
        return VM_REGISTER

    def convert_constant(self, obj: Any) -> int:
        """The argument word for ``obj``: an immediate for ints in the 56-bit range,
        otherwise a constant-pool entry shared with every structurally equal constant."""
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, (bool, np.bool_)):
            if -VALUE_MAX <= int(obj) <= VALUE_MAX:
                return encode_arg(ArgKind.IMMEDIATE, int(obj))
        value = self._normalize(obj, "convert_constant")
        key = constant_key(value, digest=True)
        index = self._const_index.get(key)
        if index is None:
            index = self._const_index[key] = len(self._constants)
            self._constants.append(value)
        return encode_arg(ArgKind.CONST_IDX, index)

    def add_constant(self, obj: Any) -> int:
        """Append ``obj`` to the pool as is (no immediate, no dedup); return its word.

        ``as_python`` uses it to rebuild a constant pool entry by entry."""
        value = self._normalize(obj, "add_constant")
        self._const_index.setdefault(constant_key(value, digest=True), len(self._constants))
        self._constants.append(value)
        return encode_arg(ArgKind.CONST_IDX, len(self._constants) - 1)

    @staticmethod
    def _normalize(obj: Any, where: str) -> Any:
        try:
            return normalize_constant(obj)
        except ValueError as exc:
            raise BuildError(f"ExecBuilder.{where}: {exc}") from None

    # -- functions --------------------------------------------------------------------------
    def _declare(self, name: str, kind: FuncKind) -> None:
        if not isinstance(name, str) or not name:
            raise BuildError(f"ExecBuilder: a function name must be a non-empty str, "
                             f"got {name!r}")
        self._map[name] = len(self._table)
        self._table.append(FunctionInfo(FuncKind(kind), name))

    def declare_function(self, name: str, kind: FuncKind = FuncKind.PACKED_FUNC) -> None:
        """Add ``name`` to the function table without defining it.

        Declaring a VM function first is how TVM allows forward references; here it is
        optional. Re-declaring with another kind is an error unless the first declaration
        was implicit.
        """
        if kind not in (FuncKind.PACKED_FUNC, FuncKind.VM_FUNC):
            raise BuildError(f"declare_function({name!r}): kind must be a FuncKind, "
                             f"got {kind!r}")
        if name not in self._map:
            self._declare(name, kind)
            return
        info = self._table[self._map[name]]
        if name in self._auto:
            info.kind = FuncKind(kind)
            self._auto.discard(name)
            self._referenced.discard(name)
        elif info.kind != kind:
            raise BuildError(f"declare_function({name!r}): already declared as "
                             f"{info.kind.name}, cannot redeclare as {FuncKind(kind).name}")

    def function(self, name: str, num_inputs: int = 0,
                 param_names: Sequence[str] | None = None) -> _FunctionScope:
        """Begin VM function ``name``; use as ``with ib.function(...):``.

        Parameters occupy registers ``0 .. num_inputs-1``. ``param_names`` defaults to
        ``arg0, arg1, ...``.
        """
        where = f"function({name!r})"
        if self._current is not None:
            raise BuildError(f"{where}: function {self._current!r} is still open; "
                             f"functions cannot nest")
        if isinstance(num_inputs, bool) or not isinstance(num_inputs, int) or num_inputs < 0:
            raise BuildError(f"{where}: num_inputs must be an int >= 0, got {num_inputs!r}")
        names = [f"arg{i}" for i in range(num_inputs)] if param_names is None else \
            list(param_names)
        if len(names) != num_inputs or not all(isinstance(p, str) for p in names):
            raise BuildError(f"{where}: param_names must be {num_inputs} strings (one per "
                             f"input), got {param_names!r}")
        if name in self._defined:
            raise BuildError(f"{where}: function {name!r} is already defined")
        self._start_function(name, num_inputs, names)
        return _FunctionScope(self, name)

    def _start_function(self, name: str, num_inputs: int, names: list[str]) -> None:
        if name in self._map and name not in self._auto \
                and self._table[self._map[name]].kind != FuncKind.VM_FUNC:
            raise BuildError(f"function({name!r}): {name!r} was declared as a packed "
                             f"function and cannot be defined as a VM function")
        if name not in self._map:
            self._declare(name, FuncKind.VM_FUNC)
        self._auto.discard(name)
        self._referenced.discard(name)
        info = self._table[self._map[name]]
        info.kind, info.num_args, info.param_names = FuncKind.VM_FUNC, num_inputs, names
        info.start_instr = info.end_instr = len(self._instrs)
        self._defined.add(name)
        self._current = name

    def _end_function(self, name: str) -> None:
        if self._current == name:
            self._table[self._map[name]].end_instr = len(self._instrs)
            self._current = None

    # -- instructions -----------------------------------------------------------------------
    def _require_scope(self, where: str) -> None:
        if self._current is None:
            raise BuildError(f"{where}: emit should happen in a function scope (use "
                             f"'with ib.function(...)'); instruction {len(self._instrs)} "
                             f"was emitted outside any function")

    def _position(self) -> str:
        info = self._table[self._map[self._current]] if self._current else None
        index = len(self._instrs) - (info.start_instr if info else 0)
        return f"function {self._current!r}, instruction {index}"

    def _register(self, word: Any, where: str, what: str) -> int:
        try:
            kind, value = decode_arg(word)
        except ValueError:
            kind, value = None, word
        if kind != ArgKind.REGISTER:
            raise BuildError(f"{where} ({self._position()}): {what} must be a register "
                             f"word such as ib.r(2), got {word!r}")
        return value

    def _offset(self, value: Any, where: str, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise BuildError(f"{where} ({self._position()}): {what} must be an int, got "
                             f"{value!r}")
        return int(value)

    def _arg_word(self, arg: Any, k: int, where: str) -> int:
        if isinstance(arg, (int, np.integer)) and not isinstance(arg, (bool, np.bool_)):
            try:
                decode_arg(int(arg))
            except ValueError:
                raise BuildError(f"{where} ({self._position()}): argument {k} is the int "
                                 f"{arg}, which is not an encoded argument word; plain ints "
                                 f"are taken as words (use ib.imm({arg}) for a number)") \
                    from None
            return int(arg)
        if isinstance(arg, tuple) and not isinstance(arg, Shape):
            try:
                arg = Shape(arg)
            except TypeError as exc:
                raise BuildError(f"{where} ({self._position()}): argument {k}: a tuple "
                                 f"argument becomes a Shape: {exc}") from None
        return self.convert_constant(arg)

    def emit_call(self, name: str, args: Sequence[Any] | None = None,
                  dst: int | None = None) -> None:
        """Emit ``dst = name(*args)``; ``dst=None`` discards the result (%void).

        Unknown ``name`` is declared as a packed function. In ``args`` a tuple becomes a
        Shape constant, tensors/arrays/DataTypes/Shapes/strs/floats/bools/None become
        constants, and an int is an already-encoded word (``ib.r(0)``, ``ib.imm(3)``...).
        """
        where = f"emit_call({name!r})"
        self._require_scope(where)
        words = tuple(self._arg_word(a, k, where) for k, a in enumerate(args or ()))
        target = VOID_REGISTER if dst is None else self._register(dst, where, "dst")
        if name not in self._map:
            self._declare(name, FuncKind.PACKED_FUNC)
            self._auto.add(name)
        self._referenced.discard(name)   # called by name: a packed function at worst
        self._instrs.append(Call(target, self._map[name], words))

    def emit_ret(self, result: int) -> None:
        """Emit ``return result``; ``result`` must be a register word."""
        self._require_scope("emit_ret")
        self._instrs.append(Ret(self._register(result, "emit_ret", "result")))

    def emit_goto(self, pc_offset: int) -> None:
        """Emit a jump by ``pc_offset`` instructions relative to this one (not 0)."""
        self._require_scope("emit_goto")
        self._instrs.append(Goto(self._offset(pc_offset, "emit_goto", "pc_offset")))

    def emit_if(self, cond: int, false_offset: int) -> None:
        """Emit: fall through if register ``cond`` is non-zero, else jump by ``false_offset``
        (relative to this instruction, > 1)."""
        self._require_scope("emit_if")
        offset = self._offset(false_offset, "emit_if", "false_offset")
        self._instrs.append(If(self._register(cond, "emit_if", "cond"), offset))

    # -- finishing ----------------------------------------------------------------------------
    def get(self) -> Executable:
        """Formalize registers, validate, and return the Executable.

        Formalize (TVM's): per VM function, each new destination register >= num_args gets
        the next free number from num_args in program order, and register_file_size =
        num_args + the number of distinct destinations. Then every rule of
        :func:`~relaxvm.vm.executable.check_executable` is checked, plus: functions ended,
        names referenced by ``f()`` defined or declared, and no register read before an
        earlier instruction (in program order) writes it. Errors are BuildError.
        """
        self._check_functions()
        table = [FunctionInfo(f.kind, f.name, f.start_instr, f.end_instr, f.num_args,
                              f.register_file_size, list(f.param_names)) for f in self._table]
        instrs = list(self._instrs)
        names = [f.name for f in table]
        for info in table:
            if info.kind == FuncKind.VM_FUNC:
                body = instrs[info.start_instr:info.end_instr]
                _check_reads(info, body, names)
                body, info.register_file_size = _formalize(body, info.num_args)
                instrs[info.start_instr:info.end_instr] = body
        offsets: list[int] = []
        data: list[int] = []
        for ins in instrs:
            offsets.append(len(data))
            data.extend(ins.encode())
        exe = Executable(table, list(self._constants), offsets, data)
        check_executable(exe, "ExecBuilder.get", BuildError)
        self._check_callees()
        return exe

    def _check_functions(self) -> None:
        if self._current is not None:
            raise BuildError(f"ExecBuilder.get: function {self._current!r} was never ended "
                             f"(use 'with ib.function(...)')")
        for name in sorted(self._referenced):
            raise BuildError(f"ExecBuilder.get: f({name!r}) names a function that is never "
                             f"defined or declared")
        for info in self._table:
            if info.kind == FuncKind.VM_FUNC and info.name not in self._defined:
                raise BuildError(f"ExecBuilder.get: function {info.name!r} is declared as a "
                                 f"VM function but never defined")
            if info.kind == FuncKind.VM_FUNC and info.start_instr == info.end_instr:
                raise BuildError(f"ExecBuilder.get: function {info.name!r} has no "
                                 f"instructions; it needs at least a Ret")

    def _check_callees(self) -> None:
        """BuildError for a call of a name that ``emit_call`` declared implicitly and that
        resolves to nothing: not defined here, not declared, not a vm.builtin, not
        registered with register_func, not a kernel."""
        from relaxvm.vm.resolve import close_packed_names, packed_exists
        unknown = {self._map[n] for n in self._auto - self._referenced if not packed_exists(n)}
        if not unknown:
            return
        pc, ins = next((pc, ins) for pc, ins in enumerate(self._instrs)
                       if isinstance(ins, Call) and ins.func_idx in unknown)
        name = self._table[ins.func_idx].name
        caller = next(f for f in self._table if f.kind == FuncKind.VM_FUNC
                      and f.start_instr <= pc < f.end_instr)
        hint = close_packed_names(name, [f.name for f in self._table])
        raise BuildError(
            f"ExecBuilder.get: function {caller.name!r}, instruction {pc - caller.start_instr} "
            f"calls unknown function {name!r}: it is not defined in this builder, not a "
            f"vm.builtin, not registered with register_func and not a kernel{hint}; to call a "
            f"function registered later, declare it with ib.declare_function({name!r})")


def _check_reads(info: FunctionInfo, body: list[Instruction], names: list[str]) -> None:
    """BuildError if a register is read before any earlier instruction writes it."""
    written = set(range(info.num_args))
    for i, ins in enumerate(body):
        reads: list[int] = []
        if isinstance(ins, Call):
            reads = [v for k, v in map(_safe_decode, ins.args) if k == ArgKind.REGISTER]
        elif isinstance(ins, Ret):
            reads = [ins.result]
        elif isinstance(ins, If):
            reads = [ins.cond]
        for reg in reads:
            problem = None
            if reg < 0 or reg >= BEGIN_SPECIAL_REG and reg not in (VOID_REGISTER, VM_REGISTER):
                problem = f"register %{reg} is out of range (not a register nor %void/%vm)"
            elif reg < BEGIN_SPECIAL_REG and reg not in written:
                problem = f"register %{reg} is read before any earlier instruction writes it"
            if problem:
                raise BuildError(f"ExecBuilder.get: function {info.name!r}, instruction {i} "
                                 f"({describe(ins, names)}): {problem}")
        if isinstance(ins, Call):
            written.add(ins.dst)


def _safe_decode(word: int) -> tuple[ArgKind | None, int]:
    try:
        return decode_arg(word)
    except ValueError:
        return None, 0


def _formalize(body: list[Instruction], num_args: int) -> tuple[list[Instruction], int]:
    """Renumber destination registers densely from ``num_args`` (TVM's Formalize)."""
    mapping: dict[int, int] = {}
    for ins in body:
        if isinstance(ins, Call) and num_args <= ins.dst < BEGIN_SPECIAL_REG:
            mapping.setdefault(ins.dst, num_args + len(mapping))

    def reg(r: int) -> int:
        return mapping.get(r, r)

    def word(w: int) -> int:
        kind, value = _safe_decode(w)
        return encode_arg(ArgKind.REGISTER, mapping[value]) \
            if kind == ArgKind.REGISTER and value in mapping else w

    out: list[Instruction] = []
    for ins in body:
        if isinstance(ins, Call):
            ins = Call(reg(ins.dst), ins.func_idx, tuple(word(w) for w in ins.args))
        elif isinstance(ins, Ret):
            ins = Ret(reg(ins.result))
        elif isinstance(ins, If):
            ins = If(reg(ins.cond), ins.false_offset)
        out.append(ins)
    return out, num_args + len(mapping)
