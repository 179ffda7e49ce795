"""Random alloc/free/empty_cache sequences keep allocator statistics consistent.

A hypothesis state machine drives a PooledAllocator (with and without a limit) and a
NaiveAllocator over a fake backend and checks, after every step: allocated bytes equal
the sum of live buffer sizes; reserved equals live plus cached and equals what the
backend holds (nothing leaks); peaks never drop below current values nor decrease; no
raw block is handed out twice while live; an OOM happens only when the request truly
cannot fit under the limit.
"""

from __future__ import annotations

from fake_backend import FakeBackend
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

import relaxvm
from relaxvm.errors import OutOfMemoryError
from relaxvm.memory import NaiveAllocator, PooledAllocator, round_size

KIB = 1 << 10
SIZES = st.one_of(st.integers(0, 64 * KIB), st.sampled_from([4 * KIB, 8 * KIB, 12 * KIB]),
                  st.integers(1 << 20, (1 << 20) + 200 * KIB))


class AllocatorMachine(RuleBasedStateMachine):
    """Shared rules; subclasses choose the allocator."""

    buffers = Bundle("buffers")
    limit: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.backend = FakeBackend()
        self.alloc = self.make_allocator()
        self.live: dict[int, object] = {}   # id(Buffer) -> Buffer
        self.peaks = (0, 0)

    def make_allocator(self):
        raise NotImplementedError

    @rule(target=buffers, nbytes=SIZES)
    def allocate(self, nbytes):
        allocated_before = self.alloc.allocated_bytes
        try:
            buf = self.alloc.alloc(nbytes)
        except OutOfMemoryError as err:
            assert self.limit is not None
            assert allocated_before + self.block_size(nbytes) > self.limit
            assert err.requested_bytes == nbytes
            return None
        assert buf.nbytes >= nbytes
        serials = {b.handle.serial for b in self.live.values()}
        assert buf.handle.serial not in serials, "a live block was handed out twice"
        self.live[id(buf)] = buf
        return buf

    @rule(buf=consumes(buffers))
    def release(self, buf):
        if buf is None:
            return
        del self.live[id(buf)]
        self.alloc.free(buf)

    @rule()
    def empty_cache(self):
        cached = self.alloc.reserved_bytes - self.alloc.allocated_bytes
        assert self.alloc.empty_cache() == cached

    @rule()
    def reset_peaks(self):
        self.alloc.reset_peak_stats()
        self.peaks = (0, 0)

    def block_size(self, nbytes: int) -> int:
        return nbytes

    @invariant()
    def stats_are_consistent(self):
        stats = self.alloc.stats()
        live_bytes = sum(b.nbytes for b in self.live.values())
        assert stats["allocated_bytes.current"] == live_bytes
        assert stats["reserved_bytes.current"] == self.backend.live_bytes, "bytes leaked"
        assert stats["reserved_bytes.current"] == live_bytes + stats.get("cached_bytes.current", 0)
        assert stats["num_allocs"] - stats["num_frees"] == len(self.live)
        if self.limit is not None:
            assert stats["reserved_bytes.current"] <= self.limit
        peaks = (stats["allocated_bytes.peak"], stats["reserved_bytes.peak"])
        assert peaks[0] >= stats["allocated_bytes.current"]
        assert peaks[1] >= stats["reserved_bytes.current"]
        assert peaks[0] >= self.peaks[0] and peaks[1] >= self.peaks[1], "a peak decreased"
        self.peaks = peaks


class PooledMachine(AllocatorMachine):
    def make_allocator(self):
        return PooledAllocator(relaxvm.cpu(0), self.backend, limit_bytes=self.limit)

    def block_size(self, nbytes: int) -> int:
        return round_size(nbytes)


class LimitedPooledMachine(PooledMachine):
    limit = 1 << 21


class NaiveMachine(AllocatorMachine):
    def make_allocator(self):
        return NaiveAllocator(relaxvm.cpu(0), self.backend)


def _test_case(machine: type[RuleBasedStateMachine]) -> type:
    case = machine.TestCase
    case.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
    return case


TestPooledAllocatorRandomSequences = _test_case(PooledMachine)
TestLimitedPooledAllocatorRandomSequences = _test_case(LimitedPooledMachine)
TestNaiveAllocatorRandomSequences = _test_case(NaiveMachine)
