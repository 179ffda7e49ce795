"""Translate VM bytecode, once at load, into Python functions.

A plain interpreter loop pays ~200 ns per instruction to decode and dispatch. Instead each
VM function becomes one generated Python function: registers are locals, callees are
bound closure variables, and straight-line code calls them directly. Functions with Goto/If
become a small block state machine. The generated source contains only numbers and names
we make up (``r3``, ``k0``, ``p7``); nothing from the executable file is ever put into
source text — constants, callees and names are reached through lists built at load time.

Three modes share the generator: ``plain``; ``instrument`` (every Call goes through the
user's instrument hook); ``profile`` (every Call is timed). Choosing the mode at load keeps
the plain code free of per-call ``if`` checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relaxvm.vm.bytecode import (
    BEGIN_SPECIAL_REG,
    VM_REGISTER,
    VOID_REGISTER,
    ArgKind,
    Opcode,
    decode_arg,
)

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


class _Emitter:
    def __init__(self, exe: Any, is_vm_func: list[bool], mode: str,
                 site_exprs: Callable[[int, int, tuple], str]) -> None:
        self.exe = exe
        self.is_vm_func = is_vm_func
        self.mode = mode
        self.site_expr = site_exprs
        self.lines: list[str] = []
        self.line_pcs: dict[int, int] = {}  # absolute source line (1-based) -> pc
        self.sites: list[CallSite] = []
        self.consts_used: set[int] = set()
        self.packed_used: set[int] = set()
        self.sites_used: set[int] = set()

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
        if value == VOID_REGISTER:
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
        params = ", ".join(f"r{i}" for i in range(info.num_args))
        self.emit(f"    def fn{index}({params}):")
        instrs = [self.exe.get_instruction(pc) for pc in range(info.start_instr, info.end_instr)]
        if any(ins.opcode in (Opcode.GOTO, Opcode.IF) for ins in instrs):
            self._blocks(index, info.start_instr, instrs)
        else:
            for offset, ins in enumerate(instrs):
                self._straight(index, info.start_instr + offset, ins, "        ")
        self.emit(f"    fn{index}.vm_name = NAMES[{index}]")

    def _straight(self, func_index: int, pc: int, ins: Any, indent: str) -> None:
        if ins.opcode == Opcode.CALL:
            self._call(func_index, pc, ins, indent)
        elif ins.opcode == Opcode.RET:
            self.emit(f"{indent}return {self.reg(ins.result)}", pc)
        else:  # pragma: no cover - guarded by the caller
            raise AssertionError(ins.opcode)

    def _call(self, func_index: int, pc: int, ins: Any, indent: str) -> None:
        args = ", ".join(self.arg(w) for w in ins.args)
        callee = self.func_ref(ins.func_idx)
        site = len(self.sites)
        self.sites.append(CallSite(func_index, pc, ins.func_idx,
                                   self.exe.func_table[ins.func_idx].name))
        expr = self.site_expr(site, ins.func_idx, ins.args) or callee
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

    def _blocks(self, func_index: int, start: int, instrs: list[Any]) -> None:
        n = len(instrs)
        leaders = {0}
        for i, ins in enumerate(instrs):
            if ins.opcode == Opcode.GOTO:
                leaders.update({i + ins.pc_offset, i + 1})
            elif ins.opcode == Opcode.IF:
                leaders.update({i + 1, i + ins.false_offset})
            elif ins.opcode == Opcode.RET:
                leaders.add(i + 1)
        starts = sorted(x for x in leaders if 0 <= x < n)
        self.emit("        pc = 0")
        self.emit("        while True:")
        for b, first in enumerate(starts):
            last = starts[b + 1] if b + 1 < len(starts) else n
            self.emit(f"            {'if' if b == 0 else 'elif'} pc == {first}:")
            ind = "                "
            terminated = False
            for i in range(first, last):
                ins, pc = instrs[i], start + i
                if ins.opcode == Opcode.GOTO:
                    self.emit(f"{ind}pc = {i + ins.pc_offset}", pc)
                    terminated = True
                elif ins.opcode == Opcode.IF:
                    self.emit(f"{ind}pc = {i + 1} if {self.reg(ins.cond)} else "
                              f"{i + ins.false_offset}", pc)
                    terminated = True
                else:
                    self._straight(func_index, pc, ins, ind)
                    terminated = ins.opcode == Opcode.RET
            if not terminated:
                self.emit(f"{ind}pc = {last}")
        self.emit("            else:")
        self.emit("                raise FALLTHROUGH(pc)")


def translate(exe: Any, is_vm_func: list[bool], mode: str = PLAIN,
              site_expr: Callable[[int, int, tuple], str] | None = None
              ) -> tuple[str, _Emitter]:
    """Generate the module source for every VM function of ``exe``.

    ``site_expr(site, callee_index, arg_words)`` may name a per-site callable (``S[site]``) to use
    instead of the shared callee, e.g. a kernel router that caches its choice per site.
    """
    emitter = _Emitter(exe, is_vm_func, mode, site_expr or (lambda site, callee, args: ""))
    body_start = len(emitter.lines)
    for index, is_vm in enumerate(is_vm_func):
        if is_vm:
            emitter.function(index)
    body = emitter.lines[body_start:]
    prologue = ["def build(F, K, S, VM, NAMES, HOOK, FALLTHROUGH):"]
    prologue += [f"    k{i} = K[{i}]" for i in sorted(emitter.consts_used)]
    prologue += [f"    p{i} = F[{i}]" for i in sorted(emitter.packed_used)]
    prologue += [f"    s{i} = S[{i}]" for i in sorted(emitter.sites_used)]
    vm_indices = [i for i, v in enumerate(is_vm_func) if v]
    epilogue = ["    return {" + ", ".join(f"{i}: fn{i}" for i in vm_indices) + "}"]
    shift = len(prologue)
    emitter.line_pcs = {line + shift: pc for line, pc in emitter.line_pcs.items()}
    return "\n".join(prologue + body + epilogue) + "\n", emitter


def compile_translation(exe: Any, is_vm_func: list[bool], pool: list[Any], constants: list[Any],
                        vm: Any, hook: Any, mode: str = PLAIN,
                        site_callable: Callable[[int, tuple], Any] | None = None
                        ) -> Translation:
    """Generate, compile and bind the functions; returns them with their line maps.

    ``site_callable(callee_index, arg_words)`` may return a fresh per-site callable for a
    callee (a kernel router that caches its device choice per call site, an allocation
    specialised to constant arguments), or None to call the shared pool entry.
    """
    per_site: list[Any] = []

    def site_expr(site: int, callee: int, args: tuple) -> str:
        made = site_callable(callee, args) if site_callable is not None else None
        per_site.append(made)
        return f"s{site}" if made is not None else ""

    source, emitter = translate(exe, is_vm_func, mode, site_expr)
    code = compile(source, f"<relaxvm {mode} translation>", "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - source built from our own tokens, see module doc
    names = [info.name for info in exe.func_table]
    functions = namespace["build"](pool, constants, per_site, vm, names, hook, _fallthrough)
    line_maps: dict[Any, tuple[int, dict[int, int]]] = {}
    for index, fn in functions.items():
        line_maps[fn.__code__] = (index, emitter.line_pcs)
    return Translation(functions, emitter.sites, line_maps, source)


def _fallthrough(pc: int) -> Exception:
    from relaxvm.errors import VMError
    return VMError(f"control reached instruction {pc}, which is not the start of a block")
