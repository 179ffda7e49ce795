"""Device: a (device type, index) pair, hashable and interned.

Device type codes are DLPack's (CPU = 1, CUDA = 2), so ``__dlpack_device__`` and
TVM-style scripts agree with us. ``Device(2, 0)`` always returns the same object, which
makes device comparison in hot paths an identity check.
"""

from __future__ import annotations

from typing import Any, ClassVar

from relaxvm.errors import DeviceError

CPU = 1
CUDA = 2

DEVICE_TYPE_NAMES: dict[int, str] = {CPU: "cpu", CUDA: "cuda"}
DEVICE_NAME_TYPES: dict[str, int] = {"cpu": CPU, "llvm": CPU, "cuda": CUDA, "gpu": CUDA}


class Device:
    """A compute device; use :func:`cpu`, :func:`cuda` or :func:`device` to make one."""

    __slots__ = ("device_type", "index", "_name", "_backend", "__weakref__")
    _interned: ClassVar[dict[tuple[int, int], Device]] = {}

    device_type: int
    index: int
    _name: str
    _backend: Any

    def __new__(cls, device_type: int | str, index: int = 0) -> Device:
        if isinstance(device_type, str):
            if device_type not in DEVICE_NAME_TYPES:
                raise DeviceError(
                    f"Device: device_type must be one of {sorted(DEVICE_NAME_TYPES)} "
                    f"or a DLPack code {sorted(DEVICE_TYPE_NAMES)}, got {device_type!r}")
            device_type = DEVICE_NAME_TYPES[device_type]
        # Only exact ints may hit the cache: (1, True) and (1, 1.0) hash like (1, 1).
        if index.__class__ is int and device_type.__class__ is int:
            found = cls._interned.get((device_type, index))
            if found is not None:
                return found
        return cls._create(device_type, index)

    @classmethod
    def _create(cls, device_type: Any, index: Any) -> Device:
        """Validate, normalize int subclasses (IntEnum codes), and intern a new Device."""
        if not _is_int(device_type) or int(device_type) not in DEVICE_TYPE_NAMES:
            raise DeviceError(
                f"Device: device_type must be one of {sorted(DEVICE_TYPE_NAMES)} "
                f"(1 = cpu, 2 = cuda), got {device_type!r}")
        if not _is_int(index) or index < 0:
            raise DeviceError(f"Device: index must be an int >= 0, got {index!r}")
        key = (int(device_type), int(index))
        found = cls._interned.get(key)
        if found is None:
            found = object.__new__(cls)
            object.__setattr__(found, "device_type", key[0])
            object.__setattr__(found, "index", key[1])
            object.__setattr__(found, "_name", f"{DEVICE_TYPE_NAMES[key[0]]}:{key[1]}")
            cls._interned[key] = found
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Device is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Device, (self.device_type, self.index))

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{DEVICE_TYPE_NAMES[self.device_type]}({self.index})"

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, Device)
            and other.device_type == self.device_type and other.index == self.index)

    def __hash__(self) -> int:
        return hash((self.device_type, self.index))

    @property
    def type_name(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return DEVICE_TYPE_NAMES[self.device_type]

    @property
    def dlpack_device(self) -> tuple[int, int]:
        return (self.device_type, self.index)

    @property
    def backend(self) -> Any:
        """The DeviceBackend that serves this device type."""
        try:
            return self._backend
        except AttributeError:
            from relaxvm.devices.backend import get_backend
            backend = get_backend(self.device_type)
            object.__setattr__(self, "_backend", backend)
            return backend

    # TVM-named properties. ``exist`` never raises; the others raise DeviceError when
    # the device is absent, which says why.
    @property
    def exist(self) -> bool:
        try:
            return bool(self.backend.exists(self.index))
        except Exception:
            return False

    @property
    def device_name(self) -> str:
        return str(self.backend.attribute(self.index, "device_name"))

    @property
    def compute_version(self) -> str:
        return str(self.backend.attribute(self.index, "compute_version"))

    @property
    def total_global_memory(self) -> int:
        return int(self.backend.attribute(self.index, "total_global_memory"))

    @property
    def multi_processor_count(self) -> int:
        return int(self.backend.attribute(self.index, "multi_processor_count"))

    @property
    def max_threads_per_block(self) -> int:
        return int(self.backend.attribute(self.index, "max_threads_per_block"))

    @property
    def warp_size(self) -> int:
        return int(self.backend.attribute(self.index, "warp_size"))

    @property
    def max_shared_memory_per_block(self) -> int:
        return int(self.backend.attribute(self.index, "max_shared_memory_per_block"))

    @property
    def max_clock_rate(self) -> int:
        return int(self.backend.attribute(self.index, "max_clock_rate"))

    def sync(self) -> None:
        """Wait until all work queued on this device has finished."""
        self.backend.synchronize(self.index)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cpu(index: int = 0) -> Device:
    """The CPU device ``cpu:index``; several indices are distinct devices with distinct pools."""
    return Device(CPU, index)


def cuda(index: int = 0) -> Device:
    """The CUDA device ``cuda:index``. Creating it never touches the GPU."""
    return Device(CUDA, index)


def device(spec: str | Device | tuple[int, int], index: int | None = None) -> Device:
    """Parse ``"cuda:0"``, ``"cpu"``, ``"cuda", 1`` or ``(2, 0)`` into a Device."""
    if isinstance(spec, Device):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return Device(spec[0], spec[1])
    if not isinstance(spec, str):
        raise DeviceError(f"device: spec must be a str like 'cuda:0' or a Device, got {spec!r}")
    name, sep, idx = spec.strip().lower().partition(":")
    if name not in DEVICE_NAME_TYPES:
        raise DeviceError(
            f"device: unknown device type {name!r} in {spec!r}; expected one of "
            f"'cpu', 'cuda' (optionally with ':index')")
    if sep:
        if not idx.isdigit():
            raise DeviceError(f"device: index in {spec!r} must be a non-negative integer")
        if index is not None and index != int(idx):
            raise DeviceError(f"device: {spec!r} conflicts with index={index}")
        index = int(idx)
    return Device(DEVICE_NAME_TYPES[name], 0 if index is None else index)
