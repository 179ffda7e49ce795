"""Layout rewrites: transposes that only feed, or only read, a matmul become views.

Attention splits heads out of the hidden axis (``reshape -> transpose(0, 2, 1, 3)``),
transposes K (often as a second transpose) and merges heads back after ``P @ V``; each
transpose is a full copy of an activation. BLAS reads a permuted operand, and writes a
permuted product, in place through its leading dimension as long as one of the
matrix axes keeps unit stride, so :func:`fold_transposes` first merges chains of
transposes into one, then folds a transpose into the ``matmul`` that is its only
reader (``a_perm`` / ``b_perm``) or the only reader of the matmul's product
(``out_perm``), giving a ``matmul_permuted`` node. Folds that would leave a matrix with
no unit-stride axis (NumPy would then skip BLAS) are not made. Only CPU nodes are
rewritten: the CUDA kernel would copy a permuted product anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from relaxvm.compiler.ir import Graph, Node, Value

#: dtypes NumPy multiplies with BLAS (narrower floats are widened by the kernel anyway).
BLAS_DTYPES = ("float32", "float64")


def _perm(node: Node) -> tuple[int, ...]:
    return tuple(int(p) for p in node.attrs["perm"])


def _blas_view(perm: Sequence[int]) -> bool:
    """Whether a permuted view of a contiguous tensor keeps unit stride on one of its
    last two axes (what NumPy needs to hand the matrices to BLAS)."""
    last = len(perm) - 1
    return len(perm) >= 2 and last in (perm[-1], perm[-2])


def _on_cpu(node: Node) -> bool:
    return node.device is None or getattr(node.device, "device_type", 1) == 1


class _Uses:
    """Readers per value and the graph's returned values, kept current while rewriting."""

    def __init__(self, graph: Graph) -> None:
        self.users = graph.consumers()
        self.returned = {v.uid for v in graph.outputs}

    def only_reader(self, value: Value) -> Node | None:
        readers = self.users.get(value.uid, [])
        if value.uid in self.returned or len(readers) != 1:
            return None
        return readers[0]


def _move_reader(uses: _Uses, value: Value | None, old: Node, new: Node) -> None:
    """``value`` is now read by ``new`` where ``old`` read it."""
    if value is None:
        return
    readers = uses.users.setdefault(value.uid, [])
    if old in readers:
        readers.remove(old)
    readers.append(new)


def _merge_chains(graph: Graph, uses: _Uses, dropped: set[int]) -> None:
    """``transpose(transpose(x, p1), p2)`` -> ``transpose(x, [p1[k] for k in p2])`` when
    the inner transpose has no other reader."""
    for node in graph.nodes:
        if node.op != "transpose" or id(node) in dropped:
            continue
        inner = node.inputs[0].producer if node.inputs[0] is not None else None
        while inner is not None and inner.op == "transpose" and \
                uses.only_reader(inner.outputs[0]) is node:
            p1, p2 = _perm(inner), _perm(node)
            node.attrs["perm"] = tuple(p1[k] for k in p2)
            source = inner.inputs[0]
            node.inputs = [source]
            _move_reader(uses, source, inner, node)
            dropped.add(id(inner))
            inner = source.producer if source is not None else None


def _fold_operands(node: Node, uses: _Uses, dropped: set[int]) -> dict[str, tuple[int, ...]]:
    """Fold each operand's transpose into ``node``; the perms folded, by attribute."""
    perms = {}
    for i, key in ((0, "a_perm"), (1, "b_perm")):
        v = node.inputs[i]
        t = v.producer if v is not None else None
        if t is None or t.op != "transpose" or id(t) in dropped or \
                uses.only_reader(v) is not node or not _blas_view(_perm(t)):  # type: ignore
            continue
        perms[key] = _perm(t)
        node.inputs[i] = t.inputs[0]
        _move_reader(uses, t.inputs[0], t, node)
        dropped.add(id(t))
    return perms


def _fold_product(node: Node, uses: _Uses, dropped: set[int]) -> tuple[int, ...] | None:
    """Fold the transpose that is the product's only reader; its perm, or None."""
    t = uses.only_reader(node.outputs[0])
    if t is None or t.op != "transpose" or id(t) in dropped:
        return None
    perm = _perm(t)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    if not _blas_view(inverse):
        return None
    node.outputs = list(t.outputs)
    for out in node.outputs:
        out.producer = node
    dropped.add(id(t))
    return perm


def fold_transposes(graph: Graph) -> Graph:
    """Merge transpose chains and fold transposes into the matmuls next to them."""
    uses = _Uses(graph)
    dropped: set[int] = set()
    _merge_chains(graph, uses, dropped)
    for node in graph.nodes:
        if node.op != "matmul" or id(node) in dropped or not _on_cpu(node) or \
                any(v is None or v.ndim < 2 or v.dtype not in BLAS_DTYPES
                    for v in node.inputs[:2]):
            continue
        attrs = _fold_operands(node, uses, dropped)
        out_perm = _fold_product(node, uses, dropped)
        if out_perm is not None:
            attrs["out_perm"] = out_perm
        if attrs:
            node.op = "matmul_permuted"
            node.attrs = {**node.attrs, **attrs}
    graph.nodes = [n for n in graph.nodes if id(n) not in dropped]
    return graph
