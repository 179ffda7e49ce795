"""The exception hierarchy of relaxvm.

Every class also inherits the built-in exception it refines, so callers who catch
``MemoryError`` or ``ValueError`` keep working. Messages follow one convention: name
what was asked (function and parameter), what was expected, and what came, e.g.::

    memory_cfg for cuda:0 must be "naive" or "pooled", got "bogus"
"""

from __future__ import annotations


class RelaxVMError(Exception):
    """Base class of every error relaxvm raises on purpose."""


class DeviceError(RelaxVMError, RuntimeError):
    """A device is missing or unusable, e.g.
    ``cuda:0 is not available: CuPy is not installed (pip install 'relaxvm[cuda12]')``."""


class OutOfMemoryError(RelaxVMError, MemoryError):
    """An allocation failed even after the pool released its cache and retried.

    Carries the numbers as fields as well as in the text, so callers can react
    without parsing: ``device``, ``requested_bytes``, ``allocated_bytes``,
    ``reserved_bytes`` and ``limit_bytes`` (None when the pool has no limit).
    """

    def __init__(
        self,
        message: str,
        *,
        device: object = None,
        requested_bytes: int = 0,
        allocated_bytes: int = 0,
        reserved_bytes: int = 0,
        limit_bytes: int | None = None,
    ) -> None:
        super().__init__(message)
        self.device = device
        self.requested_bytes = requested_bytes
        self.allocated_bytes = allocated_bytes
        self.reserved_bytes = reserved_bytes
        self.limit_bytes = limit_bytes


class ExecutableFormatError(RelaxVMError, ValueError):
    """An executable file or byte string is malformed, e.g.
    ``load_executable: function 'main' jumps to instruction 12, outside [0, 9)``."""


class BuildError(RelaxVMError, ValueError):
    """An ExecBuilder program is invalid when ``get()`` validates it."""


class VMError(RelaxVMError, RuntimeError):
    """A failure while the VM runs a function; the message carries the function,
    the instruction index and the callee, e.g.
    ``main: instruction 4 (call matmul): shapes (3, 4) and (5, 6) are not aligned``."""


class ArgumentError(RelaxVMError, TypeError, ValueError):
    """A function received an argument of the wrong kind, shape or dtype, e.g.
    ``main: parameter x expects float32[32, 32], got float32[3, 3]``.

    It is both a TypeError and a ValueError: TVM raises the former for a wrong kind of
    value and the latter for a wrong shape or dtype, and callers catch either."""


class UnsupportedOpError(RelaxVMError, NotImplementedError):
    """A model uses operators relaxvm cannot convert; the message lists all of them."""


class KernelNotFoundError(RelaxVMError, LookupError):
    """No kernel is registered for an op on a device type."""
