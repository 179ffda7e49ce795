"""memory_stats and memory_summary: the flattened stats as a dict and as a table."""

from __future__ import annotations

import pytest

import relaxvm
from relaxvm.memory import format_bytes, memory_stats, memory_summary


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"),
    (3 * 2**20 // 2, "1.50 MiB"), (5 * 2**30, "5.00 GiB"), (2**42, "4096.00 GiB"),
])
def test_format_bytes_picks_a_binary_unit(n, text):
    assert format_bytes(n) == text


def test_memory_summary_without_allocators_says_so(fresh_memory):
    assert memory_summary() == "No allocators have been used yet."


def test_memory_stats_filters_by_device(fresh_memory):
    keep = relaxvm.empty((1000,), "float32", relaxvm.cpu(0))
    relaxvm.empty((10,), "int8", relaxvm.cpu(1))
    everything = memory_stats()
    assert set(everything) == {"cpu:0/pooled", "cpu:1/pooled"}
    only_cpu1 = memory_stats(relaxvm.cpu(1))
    assert list(only_cpu1) == ["cpu:1/pooled"]
    assert only_cpu1["cpu:1/pooled"]["cached_bytes.current"] == 4096
    assert everything["cpu:0/pooled"]["allocated_bytes.current"] == keep.storage.nbytes


def test_memory_summary_is_an_aligned_table_of_every_allocator(fresh_memory):
    keep = relaxvm.empty((1000,), "float32", relaxvm.cpu(0))
    relaxvm.empty((10,), "int8", relaxvm.cpu(1))
    fresh_memory.get_allocator(relaxvm.cpu(1), "naive").alloc(100)
    lines = memory_summary().splitlines()
    assert lines[0].split() == ["Metric", "cpu:0/pooled", "cpu:1/pooled", "cpu:1/naive"]
    assert set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    rows = {line[:20].strip(): line[20:].split("  ") for line in lines[2:]}
    cells = {label: [c.strip() for c in values if c.strip()] for label, values in rows.items()}
    assert cells["Allocated (current)"] == ["4.00 KiB", "0 B", "100 B"]
    assert cells["Cached (current)"] == ["0 B", "4.00 KiB", "0 B"]
    assert cells["Cache misses"] == ["1", "1", "1"]
    assert all(len(line) == len(lines[0]) for line in lines), "columns are right-aligned"
    del keep


def test_memory_summary_for_one_device(fresh_memory):
    relaxvm.empty((10,), "int8", relaxvm.cpu(1))
    relaxvm.empty((10,), "int8", relaxvm.cpu(0))
    header = memory_summary(relaxvm.cpu(1)).splitlines()[0]
    assert header.split() == ["Metric", "cpu:1/pooled"]
