"""Readable views of allocator statistics: ``memory_stats`` and ``memory_summary``."""

from __future__ import annotations

from relaxvm.devices.device import Device
from relaxvm.memory.manager import global_memory_manager


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.50 KiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"


def memory_stats(device: Device | None = None) -> dict[str, dict[str, int]]:
    """Stats of every allocator (or those of one device), keyed ``"cpu:0/pooled"``."""
    stats = global_memory_manager().stats()
    if device is None:
        return stats
    prefix = f"{device}/"
    return {k: v for k, v in stats.items() if k.startswith(prefix)}


_ROWS = [
    ("Allocated (current)", "allocated_bytes.current", True),
    ("Allocated (peak)", "allocated_bytes.peak", True),
    ("Reserved (current)", "reserved_bytes.current", True),
    ("Reserved (peak)", "reserved_bytes.peak", True),
    ("Cached (current)", "cached_bytes.current", True),
    ("Allocs", "num_allocs", False),
    ("Frees", "num_frees", False),
    ("Cache hits", "num_cache_hits", False),
    ("Cache misses", "num_cache_misses", False),
    ("Alloc retries", "num_alloc_retries", False),
    ("OOMs", "num_ooms", False),
]


def memory_summary(device: Device | None = None) -> str:
    """A table: one column per allocator, one row per statistic."""
    stats = memory_stats(device)
    if not stats:
        return "No allocators have been used yet."
    names = list(stats)
    label_width = max(len(r[0]) for r in _ROWS)
    cells = [[(format_bytes(stats[n].get(key, 0)) if is_bytes else f"{stats[n].get(key, 0):,}")
              for n in names] for _, key, is_bytes in _ROWS]
    widths = [max(len(n), *(len(row[i]) for row in cells)) for i, n in enumerate(names)]
    header = "Metric".ljust(label_width) + "".join(
        "  " + n.rjust(w) for n, w in zip(names, widths, strict=True))
    lines = [header, "-" * len(header)]
    for (label, _, _), row in zip(_ROWS, cells, strict=True):
        lines.append(label.ljust(label_width) + "".join(
            "  " + c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)
