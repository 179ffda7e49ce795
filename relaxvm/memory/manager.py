"""MemoryManager: one allocator per (device, kind), process-wide, shared by VMs; and
``memory_cfg`` parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relaxvm.devices.device import Device
from relaxvm.errors import DeviceError
from relaxvm.memory.allocator import NAIVE, POOLED, Allocator, NaiveAllocator
from relaxvm.memory.pooled import PooledAllocator

ALLOCATOR_KINDS: dict[str, type[Allocator]] = {NAIVE: NaiveAllocator, POOLED: PooledAllocator}
# TVM's VirtualMachine.NAIVE_ALLOCATOR / POOLED_ALLOCATOR integer codes.
_TVM_CODES = {1: NAIVE, 2: POOLED}


class MemoryManager:
    """Creates allocators on demand and keeps them for the life of the process."""

    def __init__(self) -> None:
        self._allocators: dict[tuple[Device, str], Allocator] = {}

    def get_allocator(self, device: Device, kind: str = POOLED) -> Allocator:
        """The allocator of ``kind`` for ``device``, created on first use."""
        key = (device, kind)
        allocator = self._allocators.get(key)
        if allocator is None:
            if kind not in ALLOCATOR_KINDS:
                raise ValueError(f"MemoryManager.get_allocator: kind must be one of "
                                 f"{sorted(ALLOCATOR_KINDS)}, got {kind!r}")
            device.backend.require(device.index)
            allocator = ALLOCATOR_KINDS[kind](device)
            self._allocators[key] = allocator
        return allocator

    def allocators(self) -> list[Allocator]:
        """Every allocator created so far, in creation order."""
        return list(self._allocators.values())

    def set_limit(self, device: Device, limit_bytes: int | None, kind: str = POOLED) -> None:
        """Cap the bytes the allocator of (device, kind) may reserve."""
        allocator = self.get_allocator(device, kind)
        if limit_bytes is not None and (not isinstance(limit_bytes, int) or limit_bytes < 0):
            raise ValueError(f"MemoryManager.set_limit: limit_bytes must be an int >= 0 or "
                             f"None, got {limit_bytes!r}")
        allocator.limit_bytes = limit_bytes

    def clear(self) -> int:
        """Release every cached block of every allocator; returns bytes released."""
        return sum(a.empty_cache() for a in self._allocators.values())

    def reset(self) -> None:
        """Forget every allocator (tests use this for a clean slate)."""
        self.clear()
        self._allocators.clear()

    def stats(self) -> dict[str, dict[str, int]]:
        """``{"cpu:0/pooled": {...}, ...}`` for every allocator."""
        return {f"{dev}/{kind}": a.stats() for (dev, kind), a in self._allocators.items()}


_GLOBAL = MemoryManager()


def global_memory_manager() -> MemoryManager:
    """The process-wide MemoryManager every VirtualMachine draws from."""
    return _GLOBAL


def _kind_name(value: Any, where: str) -> str:
    if isinstance(value, str) and value in ALLOCATOR_KINDS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _TVM_CODES:
        return _TVM_CODES[value]
    if not isinstance(value, (str, int)):
        raise TypeError(f'memory_cfg{where} must be "naive" or "pooled", got {value!r} of type '
                        f'{type(value).__name__}')
    raise ValueError(f'memory_cfg{where} must be "naive" or "pooled", got {value!r}')


def parse_memory_cfg(memory_cfg: str | Mapping[Device, str] | None,
                     devices: Sequence[Device]) -> list[str]:
    """The allocator kind for each device.

    ``None`` -> pooled everywhere; ``"naive"`` / ``"pooled"`` -> that kind everywhere;
    a dict Device -> kind -> per device, pooled where a device is not named. Dict keys
    may also be strings such as ``"cuda:0"``. TVM's integer codes (1 naive, 2 pooled)
    are accepted too.
    """
    from relaxvm.devices.device import device as parse_device
    if memory_cfg is None:
        return [POOLED] * len(devices)
    if isinstance(memory_cfg, (str, int)) and not isinstance(memory_cfg, bool):
        return [_kind_name(memory_cfg, "")] * len(devices)
    if isinstance(memory_cfg, Mapping):
        per_device: dict[Device, str] = {}
        for key, value in memory_cfg.items():
            if not isinstance(key, (Device, str)):
                raise TypeError(f"memory_cfg keys must be Devices or strings like 'cuda:0', "
                                f"got {key!r} of type {type(key).__name__}")
            try:
                dev = parse_device(key) if isinstance(key, str) else key
            except DeviceError as exc:
                raise ValueError(f"memory_cfg key {key!r} is not a device like 'cpu:0' or "
                                 f"'cuda:0' ({exc})") from None
            per_device[dev] = _kind_name(value, f" for {dev}")
        unknown = [str(d) for d in per_device if d not in devices]
        if unknown:
            raise ValueError(f"memory_cfg names device(s) {unknown} that are not among the "
                             f"VM's devices {[str(d) for d in devices]}")
        return [per_device.get(dev, POOLED) for dev in devices]
    raise TypeError(f'memory_cfg must be None, "naive", "pooled" or a dict mapping Device to '
                    f'"naive"/"pooled", got {type(memory_cfg).__name__}: {memory_cfg!r}')
