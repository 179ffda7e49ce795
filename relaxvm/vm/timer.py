"""``time_evaluator``: repeatable timing of a VM function, TVM's algorithm.

One untimed warm-up call; then per repeat, blocks of ``number`` calls timed between two
device timer marks (CUDA events on the device's stream, perf_counter on CPU) after a
synchronize. While a block lasts less than ``min_repeat_ms``, ``number`` grows (to what the
last block predicts, at least x1.618) and the block is timed again; the grown ``number``
carries into later repeats and later calls of the same evaluator; after 100 blocks that
read 0 ns it stops growing (TVM's limit_zero_time_iterations). After repeat ``i`` it sleeps
``cooldown_interval_ms`` when ``i % repeats_to_cooldown == 0`` (TVM's rule).

The arguments are bound once per evaluator call, onto the VM's first device, so the timed
calls do no conversion and no host-to-device copy. ``cache_flush_bytes`` copies that many
bytes between two device buffers before each block, outside the timed window. Each result
also keeps the host wall time of its block (``BenchmarkResult.host_results``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from relaxvm.devices.device import Device
from relaxvm.devices.device import device as parse_device
from relaxvm.vm.registry import get_global_func


class BenchmarkResult:
    """Seconds per call for each repeat, with summary statistics (std is population)."""

    def __init__(self, results: Any, host_results: Any = None, number: int = 0) -> None:
        self.results = tuple(float(r) for r in results)
        self.host_results = tuple(float(r) for r in (host_results or ()))
        self.number = number
        values = self.results or (0.0,)
        self.mean = float(np.mean(values))
        self.median = float(np.median(values))
        self.min = float(min(values))
        self.max = float(max(values))
        self.std = float(np.std(values))

    def __repr__(self) -> str:
        return (f"BenchmarkResult(min={self.min}, mean={self.mean}, median={self.median}, "
                f"max={self.max}, std={self.std}, results={self.results})")

    def __str__(self) -> str:
        header = "".join(f"{h:^12}" for h in
                         ("mean (ms)", "median (ms)", "max (ms)", "min (ms)", "std (ms)"))
        values = "".join(f"{v * 1e3:^12.4f}" for v in
                         (self.mean, self.median, self.max, self.min, self.std))
        text = f"Execution time summary:\n{header}\n{values}"
        if len(self.results) > 1 and self.median > 0 and self.std / self.median > 0.1:
            text += (f"\nWarning: spread is large (std is {100 * self.std / self.median:.0f}% "
                     f"of the median); results may be unreliable")
        return text


def _target(vm: Any, func_name: str) -> Callable[..., Callable[[], Any]]:
    """``bind(*args, **kwargs)`` -> a zero-argument call of ``func_name`` on those arguments.

    A VM function's arguments are bound once, onto the VM's first device (NumPy arrays
    converted, tensors elsewhere copied), and the translated function is called directly:
    no timed call pays for argument conversion or a host-to-device copy.
    """
    if func_name == "invoke_stateful":
        return lambda *args, **kwargs: lambda: vm.invoke_stateful(*args, **kwargs)
    saved = vm._saved.get(func_name)
    if saved is not None:
        return lambda *args, **kwargs: lambda: saved(*args, **kwargs)
    index = vm._function_index(func_name, "time_evaluator")  # unknown name: an error naming us
    invoke = vm._invoke

    def bind(*args: Any, **kwargs: Any) -> Callable[[], Any]:
        bound = vm._bind_args(func_name, index, args, kwargs, to_device=True)
        return lambda: invoke(index, bound)

    return bind


def _validate(number: int, repeat: int, min_repeat_ms: float, repeats_to_cooldown: int) -> None:
    for name, value, low in (("number", number, 1), ("repeat", repeat, 1),
                             ("repeats_to_cooldown", repeats_to_cooldown, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"time_evaluator: {name} must be an int >= {low}, got {value!r}")
    if min_repeat_ms < 0:
        raise ValueError(f"time_evaluator: min_repeat_ms must be >= 0, got {min_repeat_ms!r}")


LIMIT_ZERO_TIME_ITERATIONS = 100  # TVM's: stop growing ``number`` after this many 0 ns blocks
GOLDEN_RATIO = 1.618


def make_time_evaluator(vm: Any, func_name: str, dev: Device | str, number: int, repeat: int,
                        min_repeat_ms: float, cooldown_interval_ms: float,
                        repeats_to_cooldown: int, f_preproc: str, cache_flush_bytes: int, *,
                        sleep: Callable[[float], None] | None = None,
                        create_timer: Callable[[Device], Any] | None = None
                        ) -> Callable[..., BenchmarkResult]:
    """The evaluator behind ``VirtualMachine.time_evaluator``.

    ``sleep`` (seconds) and ``create_timer(dev)`` (an object with start/stop/elapsed_ns)
    default to ``time.sleep`` and the device backend's timer; tests inject fakes.
    """
    _validate(number, repeat, min_repeat_ms, repeats_to_cooldown)
    bind = _target(vm, func_name)
    dev = parse_device(dev)
    preproc = get_global_func(f_preproc) if f_preproc else None
    flush = _cache_flusher(dev, cache_flush_bytes)
    state = {"number": number}

    def time_block(n: int, call: Callable[[], Any]) -> tuple[int, int]:
        """Device and host nanoseconds for ``n`` back-to-back calls."""
        flush()  # outside the timed window
        dev.sync()
        timer = create_timer(dev) if create_timer is not None else \
            dev.backend.create_timer(dev.index)
        h0 = time.perf_counter_ns()
        timer.start()
        for _ in range(n):
            call()
        timer.stop()
        elapsed_ns = timer.elapsed_ns()
        host_ns = time.perf_counter_ns() - h0
        if create_timer is None:
            dev.backend.release_timer(dev.index, timer)
        return elapsed_ns, host_ns

    def evaluator(*args: Any, **kwargs: Any) -> BenchmarkResult:
        call = bind(*args, **kwargs)
        call()  # warm-up, discarded
        results, host_results = [], []
        for i in range(repeat):
            if preproc is not None:
                preproc(*args)
            duration_ms, zero_readings = 0.0, 0
            while True:
                n = state["number"]
                if duration_ms > 0:
                    n = next_number(n, duration_ms, min_repeat_ms)
                    state["number"] = n
                elapsed_ns, host_ns = time_block(n, call)
                duration_ms = elapsed_ns / 1e6
                zero_readings += elapsed_ns == 0
                if duration_ms >= min_repeat_ms or zero_readings >= LIMIT_ZERO_TIME_ITERATIONS:
                    break
            results.append(elapsed_ns / 1e9 / n)
            host_results.append(host_ns / 1e9 / n)
            if cooldown_interval_ms > 0 and i % repeats_to_cooldown == 0:
                (sleep or time.sleep)(cooldown_interval_ms / 1e3)
        return BenchmarkResult(results, host_results, state["number"])

    return evaluator


def next_number(number: int, duration_ms: float, min_repeat_ms: float) -> int:
    """TVM's growth rule: what the last block predicts for ``min_repeat_ms``, +1, and at
    least x1.618 (``number = max(min_repeat_ms / (duration_ms / number) + 1, number *
    1.618)``, truncated to an int)."""
    return int(max(min_repeat_ms / (duration_ms / number) + 1, number * GOLDEN_RATIO))


def _cache_flusher(dev: Device, nbytes: int) -> Callable[[], None]:
    """Copies ``nbytes`` between two device buffers to evict caches (outside the timing)."""
    if not nbytes:
        return lambda: None
    from relaxvm.tensor import empty
    src = empty((max(nbytes // 4, 1),), "int32", dev)
    dst = empty((max(nbytes // 4, 1),), "int32", dev)

    def flush() -> None:
        dev.backend.copy_within(dst.array, src.array)

    return flush


