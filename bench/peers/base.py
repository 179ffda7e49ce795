"""What every engine in the model benchmark provides: a Peer that prepares a Runner.

A Peer knows whether it can run on this machine (``unavailable`` returns the reason it
cannot, or None) and turns an ONNX model, example feeds and a device kind into a Runner.
A Runner has the feeds bound already: ``outputs()`` returns the model's outputs as NumPy
arrays, in graph-output order, for the correctness check; ``step()`` runs once and waits
for the device, for timing. ``measure`` times any ``step`` under a time budget, the same
way for every peer, so the numbers compare.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnx

Feeds = Mapping[str, np.ndarray]


class Runner(Protocol):
    """A model ready to run with its inputs bound."""

    def outputs(self) -> list[np.ndarray]:
        """Run once; every graph output as a host array, in the model's output order."""
        ...

    def step(self) -> None:
        """Run once and wait for the device to finish (what ``measure`` times)."""
        ...


class Peer(Protocol):
    """An engine the benchmark compares relaxvm against."""

    name: str

    def unavailable(self, device: str) -> str | None:
        """Why this peer cannot run on ``device`` ("cpu" or "cuda") here, or None if it can."""
        ...

    def prepare(self, model: onnx.ModelProto, feeds: Feeds, device: str) -> Runner:
        """Load ``model`` for ``device`` and bind ``feeds`` (the expensive part, untimed)."""
        ...


@dataclass(frozen=True)
class Timing:
    """Median seconds per call over ``repeat`` blocks of ``number`` calls each."""

    median: float
    number: int
    repeat: int


def plan_repeats(per_call: float, budget_s: float, block_s: float = 0.05,
                 max_repeat: int = 20, min_repeat: int = 3) -> tuple[int, int]:
    """(number, repeat): blocks of about ``block_s`` seconds, as many as the budget allows
    between ``min_repeat`` and ``max_repeat``; one call per block when calls are slow."""
    per_call = max(per_call, 1e-7)
    number = max(1, int(block_s / per_call))
    repeat = int(budget_s / (number * per_call))
    return number, max(min_repeat, min(max_repeat, repeat))


def estimate(step: Callable[[], None], clock: Callable[[], float] = time.perf_counter,
             calls: int = 3, cap_s: float = 0.5) -> float:
    """Seconds one call of ``step`` takes: the fastest of up to ``calls`` calls, stopping
    early once ``cap_s`` has gone by (a 1-second call is estimated from one call)."""
    best, start = float("inf"), clock()
    for _ in range(calls):
        t0 = clock()
        step()
        now = clock()
        best = min(best, now - t0)
        if now - start >= cap_s:
            break
    return best


def measure(step: Callable[[], None], budget_s: float = 2.0,
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``step``: a warm-up call, an ``estimate``, then blocks per ``plan_repeats``.

    The estimate sets the block size, so a slow engine (TVM untuned on a CNN) gets a few
    single calls while a fast one gets many calls per block, and a call longer than the
    whole budget (TVM untuned on BERT: 25 s) is timed once. The first call is left out of
    the estimate because it pays one-time costs (kernel selection, page faults)."""
    step()
    per_call = estimate(step, clock)
    if per_call >= budget_s:        # one more call would overrun: the estimate is the answer
        return Timing(per_call, 1, 1)
    number, repeat = plan_repeats(per_call, budget_s)
    blocks = []
    for _ in range(repeat):
        t0 = clock()
        for _ in range(number):
            step()
        blocks.append((clock() - t0) / number)
    return Timing(statistics.median(blocks), number, repeat)


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| divided by the largest |want| (at least 1): one scale-free number
    per output that tolerates float32 reassociation in big sums."""
    got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got64.shape != want64.shape:
        return float("inf")
    if got64.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(want64))))
    return float(np.max(np.abs(got64 - want64))) / scale
