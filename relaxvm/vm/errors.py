"""Attaching VM context (function, instruction index, callee) to errors raised inside.

The translated functions carry no bookkeeping. When an exception escapes, its traceback
still holds the frames of the generated functions; their line numbers map back to
instruction indices. The re-raised error keeps the original type too: it is an instance
of a class deriving from both VMError and the original exception's class, so callers can
catch either.
"""

from __future__ import annotations

from typing import Any

from relaxvm.errors import VMError

_DUAL_CLASSES: dict[type, type] = {}


def _dual_class(original: type) -> type:
    """A class that is both a VMError and ``original`` (cached); VMError when impossible."""
    if issubclass(original, VMError):
        return original if original is not VMError else VMError
    cls = _DUAL_CLASSES.get(original)
    if cls is None:
        try:
            cls = type(f"VM{original.__name__}", (VMError, original),
                       {"__init__": lambda self, msg: Exception.__init__(self, msg),
                        "__module__": "relaxvm.errors",
                        "__str__": lambda self: str(self.args[0]) if self.args else ""})
        except TypeError:  # incompatible layouts (e.g. OSError)
            cls = VMError
        _DUAL_CLASSES[original] = cls
    return cls


def vm_frames(exc: BaseException, vm: Any) -> list[tuple[int, int]]:
    """(function index, pc) for each generated VM frame in the traceback, outermost first."""
    maps: dict[Any, tuple[int, dict[int, int]]] = {}
    for translation in vm._all_translations():
        maps.update(translation.line_maps)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        entry = maps.get(tb.tb_frame.f_code)
        if entry is not None:
            func_index, line_pcs = entry
            pc = line_pcs.get(tb.tb_lineno)
            if pc is not None:
                frames.append((func_index, pc))
        tb = tb.tb_next
    return frames


STACK_EDGE = 5  # frames shown at each end of a long VM call stack


def _format_stack(exe: Any, frames: list[tuple[int, int]]) -> str:
    """``inner@3 <- outer@0``, innermost first; past 2 * STACK_EDGE + 1 frames (deep
    recursion), only the innermost and outermost STACK_EDGE and a count of the rest."""
    labels = [f"{exe.func_table[f].name}@{p - exe.func_table[f].start_instr}"
              for f, p in reversed(frames)]
    if len(labels) > 2 * STACK_EDGE + 1:
        hidden = len(labels) - 2 * STACK_EDGE
        labels = [*labels[:STACK_EDGE], f"... {hidden} more frames ...", *labels[-STACK_EDGE:]]
    return " <- ".join(labels)


def contextualize(exc: Exception, vm: Any) -> Exception:
    """An exception like ``exc`` whose message names the VM function, pc and callee."""
    if getattr(exc, "vm_context", None) is not None:
        return exc
    frames = vm_frames(exc, vm)
    if not frames:
        return exc
    exe = vm.exe
    func_index, pc = frames[-1]
    ins = exe.get_instruction(pc)
    fname = exe.func_table[func_index].name
    callee = exe.func_table[ins.func_idx].name if hasattr(ins, "func_idx") else None
    where = f"instruction {pc - exe.func_table[func_index].start_instr}"
    what = f" (call {callee})" if callee else ""
    stack = _format_stack(exe, frames)
    message = f"{fname}: {where}{what}: {type(exc).__name__}: {exc}"
    if len(frames) > 1:
        message += f"\n  VM call stack: {stack}"
    new = _dual_class(type(exc))(message)
    for key, value in getattr(exc, "__dict__", {}).items():
        try:
            setattr(new, key, value)
        except AttributeError:
            pass
    new.vm_context = {"function": fname, "instruction": pc - exe.func_table[func_index].start_instr,
                      "pc": pc, "callee": callee, "stack": frames}
    return new
