"""Code generation: a planned Graph becomes VM bytecode through ExecBuilder.

The generated ``main`` follows TVM's shape of program:

1. ``check_tensor_info`` and ``match_shape`` on every parameter, with an error context
   naming the parameter and its expected type; symbolic sizes go to the shape heap;
2. one ``shape_func`` call computing every derived size into the heap;
3. one ``alloc_storage`` per device arena;
4. per node: ``alloc_tensor`` for its outputs (arena offset, or own storage), the
   kernel call (destination passing), and ``null_value`` for values that die there
   and own memory;
5. ``ret`` of the output (a ``make_tuple`` when there are several).

Ops flagged ``returns_outputs`` break step 4's destination passing: their kernel is
called with ``out=None`` and its result goes to a register (``tuple_getitem`` splits a
tuple). Then ``match_shape`` on each returned tensor checks its dtype and known dims
and stores its data-dependent sizes (the node's fresh ``symbols``) in the shape heap,
and a ``shape_func`` fills the sizes derived from them, exactly as for ``bind_dims``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import get_op
from relaxvm.compiler.passes.memplan import MemoryPlan
from relaxvm.compiler.shapecode import ASSERT_IMM, ASSERT_LOAD, STORE, ShapeHeap, expr_text
from relaxvm.compiler.symbolic import Dim, Expr
from relaxvm.devices.device import Device
from relaxvm.errors import BuildError
from relaxvm.kernels.registry import REQUIRED, kernel_signature
from relaxvm.objects import DataType, Shape
from relaxvm.vm.builder import ExecBuilder

B = "vm.builtin."


def error_context(fn: str, name: str, value: Value) -> str:
    """The error-context string of a parameter check: ``main: parameter x expects ...``."""
    return f"{fn}: parameter {name} expects {value.type_text()}"


def _symbolic(value: Any) -> bool:
    if isinstance(value, Expr):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, Expr) for v in value)


class Emitter:
    """Emits one graph as one VM function."""

    def __init__(self, graph: Graph, plan: MemoryPlan, devices: Sequence[Device],
                 ib: ExecBuilder) -> None:
        self.graph, self.plan, self.devices, self.ib = graph, plan, list(devices), ib
        self.reg: dict[int, int] = {}
        self.next_reg = len(graph.inputs)
        self.heap = ShapeHeap()
        self.heap_reg: int | None = None
        self.arena_reg: dict[Any, int] = {}
        self.arena_left: dict[Any, int] = {}
        self.shape_regs: dict[tuple[Dim, ...], int] = {}
        self.prim_regs: dict[Dim, int] = {}
        self.storage_reg: int | None = None
        self.available: set[str] = set()  # symbols whose heap slots hold their value

    # -- registers and arguments -------------------------------------------------------------
    def new_reg(self) -> int:
        self.next_reg += 1
        return self.ib.r(self.next_reg - 1)

    def arg(self, value: Value | None) -> int:
        if value is None:
            return self.ib.void_arg()
        if value.is_constant:
            return self.ib.convert_constant(value.data)
        return self.reg[value.uid]

    def attr(self, value: Any) -> int:
        if value is None:
            return self.ib.void_arg()
        if isinstance(value, Expr):
            return self.make_prim_value(value)
        if _symbolic(value):
            return self.make_shape(tuple(value))
        if isinstance(value, (list, tuple)):
            return self.ib.convert_constant(tuple(value))
        return self.ib.convert_constant(value)

    def heap_arg(self) -> int:
        return self.ib.void_arg() if self.heap_reg is None else self.heap_reg

    def shape_arg(self, dims: Sequence[Dim]) -> int:
        if all(isinstance(d, int) for d in dims):
            return self.ib.convert_constant(Shape(int(d) for d in dims))
        return self.make_shape(dims)

    def make_shape(self, dims: Sequence[Dim]) -> int:
        """A register holding the Shape ``dims``; built once per call, then reused (the
        function is straight-line code, so an earlier register is always defined)."""
        key = tuple(dims)
        dst = self.shape_regs.get(key)
        if dst is None:
            dst = self.shape_regs[key] = self.new_reg()
            codes = [self.ib.imm(c) for c in self.heap.shape_codes(dims)]
            self.ib.emit_call(B + "make_shape", [self.heap_arg(), self.ib.imm(len(dims)),
                                                 *codes], dst=dst)
        return dst

    def make_prim_value(self, dim: Expr) -> int:
        """A register holding the int value of a symbolic scalar attribute."""
        dst = self.prim_regs.get(dim)
        if dst is None:
            dst = self.prim_regs[dim] = self.new_reg()
            self.ib.emit_call(B + "make_prim_value", [self.heap_arg(), self.ib.imm(1),
                                                      self.ib.imm(self.heap.slot(dim))], dst=dst)
        return dst

    def device_index(self, device: Device | None) -> int:
        if device is None or device == self.devices[0]:
            return 0
        return self.devices.index(device) if device in self.devices else -1

    # -- prologue ------------------------------------------------------------------------
    def collect_sizes(self) -> None:
        """Bind input symbols and give every derived size a heap slot, before emitting."""
        for v in self.graph.inputs:
            for d in v.shape:
                if isinstance(d, Expr) and d.symbol_name is not None:
                    self.heap.bind_symbol(d.symbol_name)
        for node in self.graph.nodes:
            returns = get_op(node.op).returns_outputs
            for name in node.attrs.get("symbols", ()) if node.op == "bind_dims" or returns \
                    else ():
                self.heap.bind_symbol(name)
            for out in node.outputs:
                if returns:  # the known dims that match_shape checks
                    self.heap.shape_codes(d for d in out.shape
                                          if isinstance(d, Expr) and d.symbol_name is None)
                kind = self.plan.kind.get(out.uid)
                if kind in ("own", "view") and not out.is_static:
                    self.heap.shape_codes(out.shape)
                    if kind == "own":
                        self.heap.shape_codes([out.nbytes])
            kernel = get_op(node.op).kernel_name
            if kernel and node.op not in ("shape_values", "bind_dims"):
                for name in kernel_signature(kernel).attrs:
                    value = node.attrs.get(name)
                    if isinstance(value, Expr):
                        self.heap.shape_codes((value,))
                    elif value is not None and _symbolic(value):
                        self.heap.shape_codes(value)

    def prologue(self, fn: str) -> None:
        self.collect_sizes()
        self.heap.frozen = True
        if self.heap.size:
            self.heap_reg = self.new_reg()
            self.ib.emit_call(B + "alloc_shape_heap", [self.ib.vm_state(),
                                                       self.ib.imm(self.heap.size)],
                              dst=self.heap_reg)
        bound: set[str] = set()
        for i, v in enumerate(self.graph.inputs):
            self.reg[v.uid] = self.ib.r(i)
            self.check_input(fn, i, v, bound)
        self.available = set(bound)
        self.shape_program()
        for device, size in self.plan.arena_size.items():
            self.arena_reg[device] = self.alloc_storage(size, device)
            self.arena_left[device] = len(self.plan.intervals[device])

    def check_input(self, fn: str, i: int, v: Value, bound: set[str]) -> None:
        self.match_value(self.ib.r(i), v, error_context(fn, v.name, v), bound)

    def match_value(self, reg: int, v: Value, ctx: str, bound: set[str]) -> None:
        """check_tensor_info and match_shape on the tensor in ``reg``: symbols not in
        ``bound`` are stored in the heap (and added to it), the other dims checked."""
        self.ib.emit_call(B + "check_tensor_info",
                          [reg, self.ib.imm(v.ndim), DataType(v.dtype), ctx])
        codes: list[int] = []
        for d in v.shape:
            name = d.symbol_name if isinstance(d, Expr) else None
            if name is None and isinstance(d, Expr):
                codes += [ASSERT_LOAD, self.heap.slot(d)]
            elif name is None:
                codes += [ASSERT_IMM, int(d)]
            else:
                codes += [STORE if name not in bound else ASSERT_LOAD, self.heap.symbols[name]]
                bound.add(name)
        self.ib.emit_call(B + "match_shape", [reg, self.heap_arg(),
                                              self.ib.imm(v.ndim),
                                              *[self.ib.imm(c) for c in codes], ctx])

    def shape_program(self) -> None:
        """One ``shape_func`` call filling every size computable from the symbols bound so
        far (none when there is nothing new)."""
        program = self.heap.program(self.available)
        if program:
            self.ib.emit_call("shape_func", [self.heap_reg, self.heap_reg, program])

    # -- allocation ----------------------------------------------------------------------
    def alloc_storage(self, nbytes: Dim, device: Device | None, scratch: bool = False) -> int:
        """A Storage register; ``scratch`` reuses one register for every per-tensor storage
        (overwriting it drops the previous reference, as ``null_value`` would)."""
        if not scratch:
            dst = self.new_reg()
        elif self.storage_reg is None:
            dst = self.storage_reg = self.new_reg()
        else:
            dst = self.storage_reg
        self.ib.emit_call(B + "alloc_storage", [self.ib.vm_state(), self.shape_arg([nbytes]),
                                                self.ib.imm(self.device_index(device)),
                                                DataType("uint8")], dst=dst)
        return dst

    def alloc_output(self, out: Value) -> None:
        kind = self.plan.kind[out.uid]
        dst = self.new_reg()
        if kind == "arena":
            storage, offset = self.arena_reg[out.device], self.plan.offset[out.uid]
        else:
            storage, offset = self.alloc_storage(out.nbytes, out.device, scratch=True), 0
        self.ib.emit_call(B + "alloc_tensor", [storage, self.ib.imm(offset),
                                               self.shape_arg(out.shape), DataType(out.dtype)],
                          dst=dst)
        self.reg[out.uid] = dst
        if kind == "arena":
            self.arena_left[out.device] -= 1
            if self.arena_left[out.device] == 0:  # the tensors keep the arena alive
                self.ib.emit_call(B + "null_value", [], dst=storage)

    # -- nodes ---------------------------------------------------------------------------
    def node(self, i: int, node: Node) -> None:
        if node.op == "bind_dims":
            self.bind_dims(node)
            self.release(i, node)
            return
        out = node.outputs[0]
        if self.plan.kind.get(out.uid) == "view":
            self.reg[out.uid] = dst = self.new_reg()
            self.ib.emit_call(B + "reshape", [self.arg(node.inputs[0]),
                                              self.shape_arg(out.shape)], dst=dst)
        elif get_op(node.op).returns_outputs:
            self.returning_call(i, node)
        elif node.op == "to_device":
            self.reg[out.uid] = dst = self.new_reg()
            dev = node.attrs["device"]
            self.ib.emit_call(B + "to_device", [self.arg(node.inputs[0]),
                                                self.ib.imm(dev.device_type),
                                                self.ib.imm(dev.index)], dst=dst)
        else:
            for o in node.outputs:
                self.alloc_output(o)
            self.kernel_call(node)
        self.release(i, node)

    def bind_dims(self, node: Node) -> None:
        """Store run-time sizes in the heap, then fill the sizes derived from them."""
        symbols = tuple(node.attrs["symbols"])
        slots = Shape(self.heap.symbols[s] for s in symbols)
        self.ib.emit_call("bind_dims", [
            self.make_tuple([self.arg(v) for v in node.inputs]), self.heap_arg(),
            self.ib.convert_constant(node.attrs["rule"]),
            self.ib.convert_constant(tuple(int(p) for p in node.attrs.get("params", ()))),
            self.ib.convert_constant(slots)])
        self.available.update(symbols)
        self.shape_program()

    def kernel_call(self, node: Node) -> None:
        op = get_op(node.op)
        name = op.kernel_name
        if name is None:
            raise BuildError(f"codegen: op {node.op} has no kernel and no lowering")
        sig = kernel_signature(name)
        if node.op == "shape_values":
            inputs = [self.heap_arg()]
            program = ";".join(f"v{k}={expr_text(d, self.heap.symbols)}"
                               for k, d in enumerate(node.attrs["values"]))
            attrs = [self.ib.convert_constant(program)]
        else:
            inputs = [self.arg(v) for v in node.inputs]
            if op.variadic:
                inputs = [self.make_tuple(inputs)]
            attrs = [self.attr(self.attr_value(node, name, k, d)) for k, d in sig.attrs.items()]
        outs = [self.reg[o.uid] for o in node.outputs]
        out = self.make_tuple(outs) if sig.output == "outs" else outs[0]
        self.ib.emit_call(name, [*inputs, out, *attrs])

    def returning_call(self, index: int, node: Node) -> None:
        """``result = kernel(*inputs, None, *attrs)`` for a kernel that allocates its
        outputs; then bind their data-dependent sizes (see the module docstring)."""
        name = get_op(node.op).kernel_name or node.op
        sig = kernel_signature(name)
        inputs = [self.arg(v) for v in node.inputs]
        attrs = [self.attr(self.attr_value(node, name, k, d)) for k, d in sig.attrs.items()]
        result = self.new_reg()
        self.ib.emit_call(name, [*inputs, self.ib.void_arg(), *attrs], dst=result)
        if len(node.outputs) == 1:
            self.reg[node.outputs[0].uid] = result
        else:
            for k, out in enumerate(node.outputs):
                self.reg[out.uid] = dst = self.new_reg()
                self.ib.emit_call(B + "tuple_getitem", [result, self.ib.imm(k)], dst=dst)
            self.ib.emit_call(B + "null_value", [], dst=result)
        bound = set(self.available) - set(node.attrs["symbols"])
        for k, out in enumerate(node.outputs):
            ctx = f"{node.name or node.op}: output {k} of {name} expects {out.type_text()}"
            self.match_value(self.reg[out.uid], out, ctx, bound)
        self.available.update(node.attrs["symbols"])
        self.shape_program()
        returned = {v.uid for v in self.graph.outputs}
        for out in node.outputs:  # outputs nothing reads (Unique's counts, say)
            if out.uid not in returned and self.plan.last_use.get(out.uid) == index:
                self.ib.emit_call(B + "null_value", [], dst=self.reg[out.uid])

    @staticmethod
    def attr_value(node: Node, kernel: str, name: str, default: Any) -> Any:
        value = node.attrs.get(name, default)
        if value is REQUIRED:
            raise BuildError(f"codegen: node {node.name or node.op}: attribute {name} of "
                             f"kernel {kernel} is required")
        return value

    def make_tuple(self, words: list[int]) -> int:
        dst = self.new_reg()
        self.ib.emit_call(B + "make_tuple", words, dst=dst)
        return dst

    def release(self, i: int, node: Node) -> None:
        """null_value for inputs whose last use is this node and that own memory."""
        returned = {v.uid for v in self.graph.outputs}
        seen: set[int] = set()
        for v in node.inputs:
            if v is None or v.uid in seen or v.uid in returned or v.is_constant:
                continue
            seen.add(v.uid)
            if self.plan.last_use.get(v.uid) == i and \
                    self.plan.kind.get(v.uid) in ("own", "kernel"):
                self.ib.emit_call(B + "null_value", [], dst=self.reg[v.uid])

    # -- epilogue ------------------------------------------------------------------------
    def ret(self) -> None:
        words = []
        for v in self.graph.outputs:
            if v.is_constant:
                dst = self.new_reg()
                self.ib.emit_call(B + "copy", [self.arg(v)], dst=dst)
                words.append(dst)
            else:
                words.append(self.reg[v.uid])
        if len(words) == 1:
            self.ib.emit_ret(words[0])
        else:
            self.ib.emit_ret(self.make_tuple(words))


def generate(graph: Graph, plan: MemoryPlan, devices: Sequence[Device],
             ib: ExecBuilder | None = None, fn: str = "main") -> ExecBuilder:
    """Emit ``graph`` as VM function ``fn`` into ``ib`` (a new ExecBuilder when None)."""
    ib = ExecBuilder() if ib is None else ib
    if not graph.outputs:
        raise BuildError(f"codegen: graph {graph.name} returns nothing")
    emitter = Emitter(graph, plan, devices, ib)
    with ib.function(fn, num_inputs=len(graph.inputs),
                     param_names=[v.name for v in graph.inputs]):
        emitter.prologue(fn)
        for i, node in enumerate(graph.nodes):
            emitter.node(i, node)
        emitter.ret()
    return ib

