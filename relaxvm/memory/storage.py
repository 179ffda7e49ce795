"""Storage: owns one Buffer; tensors are views into it at byte offsets.

When the last reference to a Storage goes (the last tensor view and the register that
held it), CPython's reference counting runs ``__del__`` at once and the Buffer goes back
to its allocator. That is what makes ``null_value`` in the VM free memory immediately.
"""

from __future__ import annotations

from relaxvm.devices.device import Device
from relaxvm.memory.allocator import Buffer


class Storage:
    """A block of device memory that tensors view; freed when unreferenced."""

    __slots__ = ("buffer", "__weakref__")

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer

    @property
    def device(self) -> Device:
        return self.buffer.device

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes

    def __del__(self) -> None:
        buffer = self.buffer
        if buffer.handle is not None:
            try:
                buffer.allocator.free(buffer)
            except Exception:  # interpreter shutdown: modules may already be gone
                pass

    def __repr__(self) -> str:
        return f"Storage({self.buffer.device}, {self.buffer.nbytes} bytes)"
