"""Per-device memory: allocators, pools, storages and the process-wide manager."""

from relaxvm.memory.allocator import NAIVE, POOLED, Allocator, Buffer, NaiveAllocator
from relaxvm.memory.manager import (
                                    ALLOCATOR_KINDS,
                                    MemoryManager,
                                    global_memory_manager,
                                    parse_memory_cfg,
)
from relaxvm.memory.pooled import PooledAllocator, round_size
from relaxvm.memory.storage import Storage
from relaxvm.memory.summary import format_bytes, memory_stats, memory_summary

__all__ = ["ALLOCATOR_KINDS", "Allocator", "Buffer", "MemoryManager", "NAIVE", "NaiveAllocator",
           "POOLED", "PooledAllocator", "Storage", "format_bytes", "global_memory_manager",
           "memory_stats", "memory_summary", "parse_memory_cfg", "round_size"]
