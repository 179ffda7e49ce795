"""The onnxruntime peer: the default CPU provider, or the CUDA provider on a GPU.

Sessions use onnxruntime's defaults (all graph optimizations, its own thread count), as
a user who just loads the model gets. On CUDA the feeds are bound once to device memory
through an IOBinding and outputs stay on the device, so the timed call is the model, not
host-device copies (relaxvm's and torch's timed calls keep data on the device too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from .base import Feeds

try:
    import onnxruntime as ort
    _IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - exercised only without onnxruntime
    _IMPORT_ERROR = f"onnxruntime not installed ({exc})"

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OrtCpuRunner:
    """A CPU session with its feeds."""

    def __init__(self, session: Any, feeds: Feeds) -> None:
        self.session = session
        self.feeds = {i.name: np.ascontiguousarray(feeds[i.name]) for i in session.get_inputs()}

    def outputs(self) -> list[np.ndarray]:
        """Run once; every output in graph order."""
        return list(self.session.run(None, self.feeds))

    def step(self) -> None:
        """Run once (CPU calls return when done)."""
        self.session.run(None, self.feeds)


class OrtCudaRunner:
    """A CUDA session whose inputs and outputs live in GPU memory (IOBinding)."""

    def __init__(self, session: Any, feeds: Feeds) -> None:
        self.session = session
        self.binding = session.io_binding()
        self.inputs = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feeds[i.name]),
                                                        "cuda", 0) for i in session.get_inputs()]
        for meta, value in zip(session.get_inputs(), self.inputs, strict=True):
            self.binding.bind_ortvalue_input(meta.name, value)
        for meta in session.get_outputs():
            self.binding.bind_output(meta.name, "cuda", 0)

    def outputs(self) -> list[np.ndarray]:
        """Run once; outputs copied to the host."""
        self.session.run_with_iobinding(self.binding)
        return list(self.binding.copy_outputs_to_cpu())

    def step(self) -> None:
        """Run once; run_with_iobinding synchronizes the provider before returning."""
        self.session.run_with_iobinding(self.binding)


class OnnxRuntimePeer:
    """onnxruntime with the provider that matches the device."""

    name = "ort"

    def unavailable(self, device: str) -> str | None:
        """Why onnxruntime can't run on ``device`` here, or None."""
        if _IMPORT_ERROR:
            return _IMPORT_ERROR
        provider = PROVIDERS[device]
        if provider not in ort.get_available_providers():
            return (f"onnxruntime {ort.__version__} lacks {provider} "
                    f"(has {', '.join(ort.get_available_providers())})")
        return None

    def prepare(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> Any:
        """Create the session (graph optimizations happen here) and bind the feeds."""
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=[PROVIDERS[device]])
        return OrtCudaRunner(session, feeds) if device == "cuda" else OrtCpuRunner(session, feeds)
