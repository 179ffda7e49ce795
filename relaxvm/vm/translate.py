"""Translate VM bytecode, once at load, into Python functions.

A plain interpreter loop pays ~200 ns per instruction to decode and dispatch. Instead each
VM function becomes one generated Python function: registers are locals, callees are
bound closure variables, and straight-line code calls them directly. Functions with Goto/If
become a block state machine: ``pc`` holds a basic-block number and a balanced tree of
``if pc < mid`` tests picks the block, so a jump costs O(log blocks) compares and the source
nests only that deep (a flat ``if/elif`` chain overflows CPython's compiler near 2000
blocks; the tree compiles 100,000). Should CPython still refuse the code, the VM raises a
VMError naming the function. A register read before any write is None, as in TVM: straight-
line code reads such a register as the constant ``None`` (free), block code sets the
registers it reads to None on entry. The generated source contains only numbers and names
we make up (``r3``, ``k0``, ``p7``); nothing from the executable file is ever put into
source text — constants, callees and names are reached through lists built at load time.

Three modes share the generator: ``plain``; ``instrument`` (every Call goes through the
user's instrument hook); ``profile`` (every Call is timed). Choosing the mode at load keeps
the plain code free of per-call ``if`` checks.

In plain mode a run of parameter checks whose sites carry a ``Guard`` (see ``specialize``)
becomes one inline test, ``if r0.__class__ is not T or r0.array.shape != (32, 32) or
r0.array.dtype is not d1 or r1...:``, over the original site calls: passing costs one
condition instead of a call per check, and failing runs every check in order, each on
its own line, so the first that fails raises its usual error with its instruction index.
The shape is written as numbers; the Tensor class and dtypes are bound through a list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relaxvm.tensor import Tensor
from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Opcode,
    decode_arg,
)
from relaxvm.vm.specialize import GUARD_ATTR, Guard

PLAIN, INSTRUMENT, PROFILE = "plain", "instrument", "profile"


@dataclass
class CallSite:
    """One Call instruction, numbered across the program; modes hook in by site index."""
    func_index: int   # the VM function containing it
    pc: int           # instruction index (absolute)
    callee_index: int
    callee_name: str


@dataclass
class Translation:
    """The generated functions and the maps needed to explain failures."""
    functions: dict[int, Callable[..., Any]]
    sites: list[CallSite]
    # code object -> (function index, {line number: absolute pc})
    line_maps: dict[Any, tuple[int, dict[int, int]]] = field(default_factory=dict)
    source: str = ""
    site_callables: list[Any] = field(default_factory=list)  # site -> its s<site>, or None


LEAF_BLOCKS = 4  # a dispatch leaf compares pc against at most this many block numbers
GUARD_RUN = 32   # checks folded into one inline guard at most (keeps each condition short)


def _leaders(instrs: list[Any]) -> list[int]:
    """Instruction indices (relative) that start a basic block, in order."""
    n, leaders = len(instrs), {0}
    for i, ins in enumerate(instrs):
        if ins.opcode == Opcode.GOTO:
            leaders.update({i + ins.pc_offset, i + 1})
        elif ins.opcode == Opcode.IF:
            leaders.update({i + 1, i + ins.false_offset})
        elif ins.opcode == Opcode.RET:
            leaders.add(i + 1)
    return sorted(x for x in leaders if 0 <= x < n)


def _register_reads(instrs: list[Any]) -> set[int]:
    """Every ordinary register some instruction of the function reads."""
    reads: set[int] = set()
    for ins in instrs:
        if ins.opcode == Opcode.CALL:
            reads.update(v for k, v in map(decode_arg, ins.args) if k == ArgKind.REGISTER)
        elif ins.opcode == Opcode.RET:
            reads.add(ins.result)
        elif ins.opcode == Opcode.IF:
            reads.add(ins.cond)
    return {r for r in reads if r < BEGIN_SPECIAL_REG}


@dataclass
class _PendingCheck:
    """A guarded check waiting for the end of its run (see ``_Emitter.flush_checks``)."""
    func_index: int
    pc: int
    ins: Any
    site: int
    register: int
    guard: Guard


class _Emitter:
    def __init__(self, exe: Any, is_vm_func: list[bool], mode: str,
                 site_callable: Callable[[int, int, tuple], Any]) -> None:
        self.exe = exe
        self.is_vm_func = is_vm_func
        self.mode = mode
        self.site_callable = site_callable
        self.per_site: list[Any] = []  # site -> its own callable (bound as s<site>) or None
        self.guard_values: list[Any] = [Tensor]  # G: T = G[0], d<i> = G[i] (dtypes)
        self.pending: list[_PendingCheck] = []
        self.guards_emitted = False
        self.lines: list[str] = []
        self.line_pcs: dict[int, int] = {}  # absolute source line (1-based) -> pc
        self.func_lines: dict[int, tuple[int, int]] = {}  # function -> [first, end) line index
        self.sites: list[CallSite] = []
        self.consts_used: set[int] = set()
        self.packed_used: set[int] = set()
        self.sites_used: set[int] = set()
        # Registers not written yet in straight-line code: reading one yields None (TVM's
        # empty register) at no run-time cost. Block code initialises them instead.
        self.unset: set[int] = set()

    def emit(self, text: str, pc: int | None = None) -> None:
        self.lines.append(text)
        if pc is not None:
            self.line_pcs[len(self.lines)] = pc

    # -- arguments ---------------------------------------------------------------------
    def arg(self, word: int) -> str:
        kind, value = decode_arg(word)
        if kind == ArgKind.REGISTER:
            return self.reg(value)
        if kind == ArgKind.IMMEDIATE:
            return repr(int(value))
        if kind == ArgKind.CONST_IDX:
            self.consts_used.add(int(value))
            return f"k{int(value)}"
        return self.func_ref(int(value))

    def reg(self, value: int) -> str:
        if value == VOID_REGISTER or value in self.unset:
            return "None"
        if value == VM_REGISTER:
            return "VM"
        return f"r{int(value)}"

    def func_ref(self, index: int) -> str:
        if self.is_vm_func[index]:
            return f"fn{index}"
        self.packed_used.add(index)
        return f"p{index}"

    # -- one VM function -------------------------------------------------------------------
    def function(self, index: int) -> None:
        info = self.exe.func_table[index]
        first = len(self.lines)
        params = ", ".join(f"r{i}" for i in range(info.num_args))
        self.emit(f"    def fn{index}({params}):")
        instrs = [self.exe.get_instruction(pc) for pc in range(info.start_instr, info.end_instr)]
        if any(ins.opcode in (Opcode.GOTO, Opcode.IF) for ins in instrs):
            self.unset = set()
            self._blocks(index, info.start_instr, instrs, info.num_args)
        else:
            self.unset = set(range(info.num_args, info.register_file_size))
            for offset, ins in enumerate(instrs):
                self._straight(index, info.start_instr + offset, ins, "        ")
            self.flush_checks("        ")
        self.unset = set()
        self.emit(f"    fn{index}.vm_name = NAMES[{index}]")
        self.func_lines[index] = (first, len(self.lines))

    def _straight(self, func_index: int, pc: int, ins: Any, indent: str) -> None:
        if ins.opcode == Opcode.CALL:
            site = self._new_site(func_index, pc, ins)
            check = self._guarded_check(func_index, pc, ins, site)
            if check is not None:
                if len(self.pending) == GUARD_RUN:
                    self.flush_checks(indent)
                self.pending.append(check)
                return
            self.flush_checks(indent)
            self._call(func_index, pc, ins, indent, site)
        elif ins.opcode == Opcode.RET:
            self.flush_checks(indent)
            self.emit(f"{indent}return {self.reg(ins.result)}", pc)
        else:  # pragma: no cover - guarded by the caller
            raise AssertionError(ins.opcode)

    def _new_site(self, func_index: int, pc: int, ins: Any) -> int:
        site = len(self.sites)
        self.sites.append(CallSite(func_index, pc, ins.func_idx,
                                   self.exe.func_table[ins.func_idx].name))
        self.per_site.append(self.site_callable(func_index, ins.func_idx, ins.args))
        return site

    # -- inline guards for parameter checks (plain mode) ----------------------------------
    def _guarded_check(self, func_index: int, pc: int, ins: Any, site: int
                       ) -> _PendingCheck | None:
        """The check to fold into an inline guard, or None to emit the Call as it is."""
        guard = getattr(self.per_site[site], GUARD_ATTR, None)
        if self.mode != PLAIN or guard is None or ins.dst < BEGIN_SPECIAL_REG or not ins.args:
            return None
        kind, reg = decode_arg(ins.args[0])
        if kind != ArgKind.REGISTER or reg >= BEGIN_SPECIAL_REG or reg in self.unset:
            return None
        return _PendingCheck(func_index, pc, ins, site, int(reg), guard)

    def flush_checks(self, indent: str) -> None:
        """Emit the pending run of checks: one guard over the site calls it skips."""
        run, self.pending = self.pending, []
        if not run:
            return
        conditions: list[str] = []
        for reg in dict.fromkeys(check.register for check in run):
            guards = [check.guard for check in run if check.register == reg]
            conditions.append(f"r{reg}.__class__ is not T")
            dims = list(dict.fromkeys(g.dims for g in guards if g.dims is not None))
            conditions += [f"r{reg}.array.shape != {_tuple_source(d)}" for d in dims]
            implied = {len(d) for d in dims}
            conditions += [f"r{reg}.array.ndim != {int(n)}"
                           for n in dict.fromkeys(g.ndim for g in guards) if n not in implied]
            conditions += [f"r{reg}.array.dtype is not d{self._guard_value(g.dtype)}"
                           for g in guards if g.dtype is not None]
        self.emit(f"{indent}if {' or '.join(dict.fromkeys(conditions))}:", run[0].pc)
        self.guards_emitted = True
        for check in run:
            self._call(check.func_index, check.pc, check.ins, indent + "    ", check.site)

    def _guard_value(self, value: Any) -> int:
        for i, known in enumerate(self.guard_values):
            if known is value:
                return i
        self.guard_values.append(value)
        return len(self.guard_values) - 1

    def _call(self, func_index: int, pc: int, ins: Any, indent: str, site: int) -> None:
        args = ", ".join(self.arg(w) for w in ins.args)
        callee = self.func_ref(ins.func_idx)
        expr = callee if self.per_site[site] is None else f"s{site}"
        if expr != callee:
            self.sites_used.add(site)
        if self.mode == PLAIN or self.is_vm_func[ins.func_idx] and self.mode == PROFILE:
            call = f"{expr}({args})"
        else:
            call = f"HOOK({site}, {expr}, ({args}{',' if ins.args else ''}))"
        if ins.dst >= BEGIN_SPECIAL_REG:
            self.emit(f"{indent}{call}", pc)
        else:
            self.emit(f"{indent}r{ins.dst} = {call}", pc)
            self.unset.discard(ins.dst)

    # -- functions with jumps: a block state machine ------------------------------------
    def _blocks(self, func_index: int, start: int, instrs: list[Any], num_args: int) -> None:
        """``pc`` holds a block number; a balanced tree of ``if pc < mid`` picks the block,
        so dispatch costs O(log blocks) compares and the source nests only that deep."""
        starts = _leaders(instrs)
        block_of = {first: b for b, first in enumerate(starts)}
        # A path may skip a register's write: every register read starts as None (TVM's
        # empty register), chained 64 to a line.
        unset = sorted(r for r in _register_reads(instrs) if r >= num_args)
        for k in range(0, len(unset), 64):
            self.emit("        " + " = ".join(f"r{r}" for r in unset[k:k + 64]) + " = None")
        self.emit("        pc = 0")
        self.emit("        while True:")
        bounds = starts + [len(instrs)]
        self._dispatch(0, len(starts), 3, lambda b, depth: self._block(
            func_index, start, instrs, bounds[b], bounds[b + 1], block_of, depth))

    def _dispatch(self, lo: int, hi: int, depth: int,
                  body: Callable[[int, int], None]) -> None:
        """Emit code running block ``pc`` for ``lo <= pc < hi`` at indentation ``depth``."""
        ind = "    " * depth
        if hi - lo <= LEAF_BLOCKS:
            if hi - lo == 1:
                body(lo, depth)
                return
            for b in range(lo, hi):
                head = "if" if b == lo else "elif"
                self.emit(f"{ind}{head} pc == {b}:" if b < hi - 1 else f"{ind}else:")
                body(b, depth + 1)
            return
        mid = (lo + hi) // 2
        self.emit(f"{ind}if pc < {mid}:")
        self._dispatch(lo, mid, depth + 1, body)
        self.emit(f"{ind}else:")
        self._dispatch(mid, hi, depth + 1, body)

    def _block(self, func_index: int, start: int, instrs: list[Any], first: int, last: int,
               block_of: dict[int, int], depth: int) -> None:
        ind = "    " * depth
        for i in range(first, last):
            ins, pc = instrs[i], start + i
            if ins.opcode in (Opcode.GOTO, Opcode.IF):
                self.flush_checks(ind)
            if ins.opcode == Opcode.GOTO:
                self.emit(f"{ind}pc = {block_of[i + ins.pc_offset]}", pc)
                return
            if ins.opcode == Opcode.IF:
                self.emit(f"{ind}pc = {block_of[i + 1]} if {self.reg(ins.cond)} else "
                          f"{block_of[i + ins.false_offset]}", pc)
                return
            self._straight(func_index, pc, ins, ind)
            if ins.opcode == Opcode.RET:
                return
        self.flush_checks(ind)
        self.emit(f"{ind}pc = {block_of[last]}")


def translate(exe: Any, is_vm_func: list[bool], mode: str = PLAIN,
              site_callable: Callable[[int, int, tuple], Any] | None = None
              ) -> tuple[str, _Emitter]:
    """Generate the module source for every VM function of ``exe``.

    ``site_callable(func_index, callee_index, arg_words)`` may return a per-site callable
    (bound as ``s<site>`` from ``emitter.per_site``) to use instead of the shared callee, e.g.
    a kernel bound for the VM's device, or None.
    """
    emitter = _Emitter(exe, is_vm_func, mode, site_callable or (lambda func, callee, args: None))
    body_start = len(emitter.lines)
    for index, is_vm in enumerate(is_vm_func):
        if is_vm:
            emitter.function(index)
    body = emitter.lines[body_start:]
    prologue = ["def build(F, K, S, VM, NAMES, HOOK, G):"]
    prologue += [f"    k{i} = K[{i}]" for i in sorted(emitter.consts_used)]
    prologue += [f"    p{i} = F[{i}]" for i in sorted(emitter.packed_used)]
    prologue += [f"    s{i} = S[{i}]" for i in sorted(emitter.sites_used)]
    if emitter.guards_emitted:
        prologue += ["    T = G[0]"]
        prologue += [f"    d{i} = G[{i}]" for i in range(1, len(emitter.guard_values))]
    vm_indices = [i for i, v in enumerate(is_vm_func) if v]
    epilogue = ["    return {" + ", ".join(f"{i}: fn{i}" for i in vm_indices) + "}"]
    shift = len(prologue)
    emitter.line_pcs = {line + shift: pc for line, pc in emitter.line_pcs.items()}
    emitter.func_lines = {i: (a - body_start, b - body_start)
                          for i, (a, b) in emitter.func_lines.items()}
    return "\n".join(prologue + body + epilogue) + "\n", emitter


def compile_translation(exe: Any, is_vm_func: list[bool], pool: list[Any], constants: list[Any],
                        vm: Any, hook: Any, mode: str = PLAIN,
                        site_callable: Callable[[int, int, tuple], Any] | None = None
                        ) -> Translation:
    """Generate, compile and bind the functions; returns them with their line maps.

    ``site_callable(func_index, callee_index, arg_words)`` may return a per-site callable
    for a callee (a kernel implementation or a router that caches its device choice per
    site, a builtin specialised to constant arguments), or None to call the pool entry.
    """
    source, emitter = translate(exe, is_vm_func, mode, site_callable)
    names = [info.name for info in exe.func_table]
    try:
        code = compile(source, f"<relaxvm {mode} translation>", "exec")
        namespace: dict[str, Any] = {}
        exec(code, namespace)  # noqa: S102 - source built from our own tokens, see module doc
        functions = namespace["build"](pool, constants, emitter.per_site, vm, names, hook,
                                       emitter.guard_values)
    except _COMPILER_LIMITS as exc:
        raise _translation_error(exe, source, emitter, exc) from None
    line_maps: dict[Any, tuple[int, dict[int, int]]] = {}
    for index, fn in functions.items():
        line_maps[fn.__code__] = (index, emitter.line_pcs)
    return Translation(functions, emitter.sites, line_maps, source, emitter.per_site)


# What CPython's compiler raises when generated code exceeds one of its limits.
_COMPILER_LIMITS = (RecursionError, MemoryError, SyntaxError, ValueError, OverflowError)


def _translation_error(exe: Any, source: str, emitter: _Emitter, exc: BaseException
                       ) -> Exception:
    """A VMError naming the VM function whose generated code CPython could not compile: the
    first that fails alone, else the largest."""
    from relaxvm.errors import VMError
    body = source.splitlines()[1:]   # past the ``def build`` line
    culprit = max(emitter.func_lines, key=lambda i: emitter.func_lines[i][1]
                  - emitter.func_lines[i][0], default=None)
    for index, (first, end) in emitter.func_lines.items():
        try:
            compile("\n".join(["def build():", *body[first:end]]), "<relaxvm check>", "exec")
        except _COMPILER_LIMITS:
            culprit = index
            break
    info = exe.func_table[culprit] if culprit is not None else None
    what = (f"VM function {info.name!r} ({info.end_instr - info.start_instr} instructions)"
            if info is not None else "the executable")
    return VMError(f"VirtualMachine: cannot translate {what} into Python: the generated code "
                   f"exceeds a CPython compiler limit ({type(exc).__name__}: {exc}); split "
                   f"the function into smaller ones")


def _tuple_source(dims: tuple[int, ...]) -> str:
    """``(32, 32)``, ``(4,)``, ``()``: a tuple of ints as Python source."""
    items = [str(int(d)) for d in dims]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
