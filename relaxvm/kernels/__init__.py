"""The per-device kernel library: destination-passing kernels keyed by (name, device type).

Importing this package registers every kernel for ``"cpu"`` (NumPy) and ``"cuda"``
(CuPy, imported on first use, never here). Look kernels up with :func:`get_kernel`; the
compiler reads each op's positional layout from :func:`kernel_signature`. The op
families live in one module each: elementwise, binary, linalg, conv, conv_transpose,
pool, norm, reduce, shape, index, resize, scatter, select, recurrent, signal, image,
quantize, qlinear, ml and training (the ai.onnx.ml and preview-training domains) and
data_dependent (kernels that allocate outputs whose sizes only they know), with fused
CUDA versions in cuda_fused. ``fused`` (one kernel for a chain of elementwise ops),
``shape_program`` (symbolic sizes over the shape heap) and ``dynamic_dims`` (sizes read
from tensor data) are what compiled programs call besides. ``python -m
relaxvm.kernels.docgen`` prints the table in ``docs/kernels.md``.
"""

from relaxvm.kernels import (  # noqa: F401
                             binary,
                             conv,
                             conv_transpose,
                             cuda_fused,
                             data_dependent,
                             dynamic_dims,
                             elementwise,
                             fused,
                             image,
                             index,
                             linalg,
                             ml,
                             norm,
                             pool,
                             qlinear,
                             quantize,
                             recurrent,
                             reduce,
                             resize,
                             scatter,
                             select,
                             shape,
                             shape_program,
                             signal,
                             training,
)
from relaxvm.kernels.registry import (
                             REQUIRED,
                             KernelSignature,
                             get_kernel,
                             has_kernel,
                             kernel_devices,
                             kernel_names,
                             kernel_signature,
                             register_builder,
                             register_kernel,
                             register_template,
                             unregister_kernel,
)

__all__ = [
    "REQUIRED", "KernelSignature", "get_kernel", "has_kernel", "kernel_devices", "kernel_names",
    "kernel_signature", "register_builder", "register_kernel", "register_template",
    "unregister_kernel",
]
