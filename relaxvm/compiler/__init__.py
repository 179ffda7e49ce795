"""The compiler: graph IR, passes and code generation into VM executables.

``build(model_or_graph, target="cpu")`` is the entry point; ``lower`` stops before code
generation, ``memory_report`` returns the memory plan's numbers, ``evaluate`` runs a
Graph directly on NumPy (the reference the tests compare against).

Importing this package also registers the runtime kernels compiled programs call:
``fused_elementwise``, ``shape_func`` and ``shape_values``.
"""

from relaxvm.compiler.build import Lowered, build, lower, memory_report, resolve_devices
from relaxvm.compiler.evaluate import evaluate
from relaxvm.compiler.ir import Graph, Node, Value, clone
from relaxvm.compiler.symbolic import Expr, sym

__all__ = ["Expr", "Graph", "Lowered", "Node", "Value", "build", "clone", "evaluate", "lower",
           "memory_report", "resolve_devices", "sym"]
