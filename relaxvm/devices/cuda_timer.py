"""CUDA event timers for the profiler and ``time_evaluator``."""

from __future__ import annotations

from typing import Any

from relaxvm.devices.backend import DeviceTimer


class CUDATimer(DeviceTimer):
    """Two CUDA events recorded on one device's stream; no device sync until ``elapsed_ns``.

    The timer keeps its device and the stream to record on (the device's current stream
    when it was created or handed out again by ``create_timer``). Each record runs with that
    device current: CuPy's null stream means "the legacy stream of the *current* device",
    so recording it while another GPU is current would time the wrong device.
    """

    __slots__ = ("_cupy", "device", "stream", "_begin", "_end")

    def __init__(self, cupy: Any, index: int) -> None:
        self._cupy = cupy
        self.device = cupy.cuda.Device(index)
        with self.device:  # events belong to the device current at creation
            self.stream = cupy.cuda.get_current_stream()
            self._begin = cupy.cuda.Event()
            self._end = cupy.cuda.Event()

    def start(self) -> None:
        with self.device:
            self._begin.record(self.stream)

    def stop(self) -> None:
        with self.device:
            self._end.record(self.stream)

    def elapsed_ns(self) -> int:
        self._end.synchronize()
        return int(self._cupy.cuda.get_elapsed_time(self._begin, self._end) * 1e6)

    def start_offset_ns(self, origin: DeviceTimer) -> int:
        self._begin.synchronize()
        return int(self._cupy.cuda.get_elapsed_time(origin._begin, self._begin)  # type: ignore
                   * 1e6)
