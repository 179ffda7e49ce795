"""TVM-style aliases so old scripts read naturally: ``relaxvm.nd.array(x, dev)``."""

from relaxvm.tensor import Tensor, empty, from_dlpack
from relaxvm.tensor import tensor as array

NDArray = Tensor

__all__ = ["NDArray", "Tensor", "array", "empty", "from_dlpack"]
