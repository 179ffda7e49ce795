"""Graph passes, each one module: simplify (inference, folding, DCE), algebra (strength
reduction, batch-norm folding), placement, layout (transposes folded into matmuls),
fuse, memplan.
:func:`relaxvm.compiler.build.lower` runs them in order."""

from relaxvm.compiler.passes.algebra import fold_batch_norm, reduce_strength
from relaxvm.compiler.passes.fuse import fuse_elementwise
from relaxvm.compiler.passes.layout import fold_transposes
from relaxvm.compiler.passes.memplan import MemoryPlan, check_plan, plan_memory
from relaxvm.compiler.passes.placement import place_devices
from relaxvm.compiler.passes.simplify import (
                                              eliminate_dead_code,
                                              fold_constants,
                                              infer_shapes,
                                              replace_uses,
)

__all__ = ["MemoryPlan", "check_plan", "eliminate_dead_code", "fold_batch_norm", "fold_constants",
           "fold_transposes", "fuse_elementwise", "infer_shapes", "place_devices", "plan_memory",
           "reduce_strength", "replace_uses"]
