"""Engines the model benchmark compares relaxvm against, one module per peer.

``all_peers()`` lists them in table order; each is cheap to construct and imports its
engine lazily-guarded, so a missing engine only makes that peer report itself unavailable.
"""

from __future__ import annotations

from .base import Peer, Runner, Timing, max_rel_error, measure, plan_repeats
from .onnxruntime_peer import OnnxRuntimePeer
from .relaxvm_subject import RelaxvmSubject
from .torch_eager import TorchEagerPeer
from .tvm_relax import TvmRelaxPeer

__all__ = ["OnnxRuntimePeer", "Peer", "RelaxvmSubject", "Runner", "Timing", "TorchEagerPeer",
           "TvmRelaxPeer", "all_peers", "max_rel_error", "measure", "plan_repeats"]


def all_peers() -> list[Peer]:
    """onnxruntime, PyTorch eager and TVM, in the order the table shows them."""
    return [OnnxRuntimePeer(), TorchEagerPeer(), TvmRelaxPeer()]
