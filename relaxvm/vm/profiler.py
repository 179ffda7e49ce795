"""``VirtualMachine.profile``: time every Call of one run, per device.

The profiling translation wraps each Call in a hook (the plain translation carries no
profiling code). Device time comes from the device's timer — CUDA events recorded on the
device's current stream with that device current, without synchronizing between ops, read
once after the run — and host time from ``perf_counter_ns`` around the dispatch.

One profiled warm-up run comes first (lazy init, pool fill, kernel compilation); its timers
go back to the backend's pool, so the timed run finds one ready for each of its calls and
creates no CUDA events while it runs.

Device column: a call with tensor arguments is timed and labelled on the device of its
first tensor. TVM skips calls without tensor arguments; we keep them, labelled with the
device they allocate on where that is known — ``alloc_storage``'s device index, the device
of ``alloc_tensor``'s storage — and with the host otherwise (``make_shape``,
``null_value``, ...). Their device time is near zero (they queue no device work); their
cost shows in Host (us).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from relaxvm.devices.device import CUDA, Device
from relaxvm.memory.storage import Storage
from relaxvm.tensor import Tensor
from relaxvm.vm.report import Report
from relaxvm.vm.translate import PROFILE

ALLOC_STORAGE = "vm.builtin.alloc_storage"


class _Recorder:
    """Collects (site, device, timer, host start, host end, shapes) during one run."""

    def __init__(self) -> None:
        self.records: list[tuple[int, Device, Any, int, int, list]] = []


def _tensor_device(args: tuple) -> Device | None:
    for a in args:
        if a.__class__ is Tensor:
            return a.device
        if type(a) is tuple:
            for item in a:
                if item.__class__ is Tensor:
                    return item.device
    return None


def _allocation_device(vm: Any, callee: str, args: tuple) -> Device | None:
    """The device a call without tensor arguments allocates on, when it says so."""
    if callee == ALLOC_STORAGE and len(args) >= 3 and type(args[2]) is int:
        index = args[2]
        if -1 <= index < len(vm.devices):
            return vm.devices[index]
    for a in args:
        if a.__class__ is Storage:
            return a.device
    return None


def _shapes(args: tuple) -> list[tuple[Any, tuple]]:
    """(dtype, shape) of each tensor argument; formatted only when the report is built."""
    found = []
    for a in args:
        if a.__class__ is Tensor:
            array = a.array
            found.append((array.dtype, array.shape))
        elif type(a) is tuple:
            found.extend((t.array.dtype, t.array.shape) for t in a if t.__class__ is Tensor)
    return found


def _format_shapes(shapes: list[tuple[Any, tuple]]) -> str:
    return ", ".join(f"{dtype.name}{list(shape)}" for dtype, shape in shapes)


def make_profile_hook(vm: Any, state: dict[str, Any]) -> Callable[..., Any]:
    """The HOOK used by the profiling translation; records into ``state["recorder"]``."""
    host = vm.devices[-1]
    perf = time.perf_counter_ns

    def hook(site: int, func: Any, args: tuple) -> Any:
        recorder = state.get("recorder")
        if recorder is None:
            return func(*args)
        dev = _tensor_device(args)
        if dev is None:
            dev = _allocation_device(vm, state["sites"][site].callee_name, args) or host
        timer = dev.backend.create_timer(dev.index)
        h0 = perf()
        timer.start()
        result = func(*args)
        timer.stop()
        h1 = perf()
        recorder.records.append((site, dev, timer, h0, h1, _shapes(args)))
        return result

    return hook


def _profile_translation(vm: Any) -> tuple[Any, dict[str, Any]]:
    cached = vm._translations.get(PROFILE)
    if cached is not None and hasattr(vm, "_profile_state"):
        return cached, vm._profile_state
    state: dict[str, Any] = {}
    translation = vm._translate(PROFILE, make_profile_hook(vm, state))
    state["sites"] = translation.sites
    vm._profile_state = state
    return translation, state


def _run(vm: Any, translation: Any, state: dict[str, Any], recorder: _Recorder, index: int,
         bound: Any) -> None:
    """One run of function ``index`` through the profiling translation into ``recorder``."""
    previous = vm._active
    state["recorder"] = recorder
    vm._activate(translation)
    try:
        vm._invoke(index, bound)
    finally:
        vm._activate(previous)
        state["recorder"] = None


def _release(timers: list[tuple[Device, Any]]) -> None:
    for dev, timer in timers:
        dev.backend.release_timer(dev.index, timer)


def profile_call(vm: Any, func_name: str, args: tuple, kwargs: dict[str, Any]) -> Report:
    """Warm up once, then run once with every Call timed; returns the Report."""
    index = vm._function_index(func_name, "profile")
    if args or kwargs:
        bound = vm._bind_args(func_name, index, args, kwargs)
    elif func_name in vm._inputs:
        bound = vm._inputs[func_name]
    else:
        bound = vm._bind_args(func_name, index, args, kwargs)
    translation, state = _profile_translation(vm)
    warm_up = _Recorder()
    _run(vm, translation, state, warm_up, index, bound)
    devices = list(dict.fromkeys(vm.devices))
    for dev in devices:
        dev.sync()
    origins = {dev: dev.backend.create_timer(dev.index) for dev in devices}
    # Handing the warm-up's timers back after taking the origins leaves a ready timer in
    # the pool for every call of the timed run (the same calls, if control flow repeats).
    _release([(dev, timer) for _, dev, timer, *_ in warm_up.records])
    recorder = _Recorder()
    t0 = time.perf_counter_ns()
    for timer in origins.values():
        timer.start()
    _run(vm, translation, state, recorder, index, bound)
    for timer in origins.values():
        timer.stop()
    t1 = time.perf_counter_ns()
    report = _build_report(vm, translation, recorder, origins, t0, t1)
    _release([(dev, timer) for _, dev, timer, *_ in recorder.records])
    _release(list(origins.items()))
    return report


def _build_report(vm: Any, translation: Any, recorder: _Recorder, origins: dict[Device, Any],
                  t0: int, t1: int) -> Report:
    calls, spans = [], []
    totals = {str(dev): timer.elapsed_ns() / 1e3 for dev, timer in origins.items()}
    host_total = (t1 - t0) / 1e3
    for site, dev, timer, h0, h1, shape_list in recorder.records:
        name = translation.sites[site].callee_name
        shapes = _format_shapes(shape_list)
        duration = timer.elapsed_ns() / 1e3
        total = totals.get(str(dev)) or host_total
        calls.append({"Name": name, "Duration (us)": duration,
                      "Percent": 100.0 * duration / total if total else 0.0,
                      "Device": str(dev), "Count": 1, "Argument Shapes": shapes,
                      "Host (us)": (h1 - h0) / 1e3})
        spans.append({"name": name, "track": "host", "ts_us": (h0 - t0) / 1e3,
                      "dur_us": (h1 - h0) / 1e3, "cat": "host"})
        origin = origins.get(dev)
        if origin is not None:
            spans.append({"name": name, "track": str(dev),
                          "ts_us": timer.start_offset_ns(origin) / 1e3, "dur_us": duration,
                          "cat": "device", "args": {"shapes": shapes}})
    # Host (us) of a Total row: wall time of the whole timed run, dispatch included.
    metrics = {dev: {"Duration (us)": total, "Host (us)": host_total}
               for dev, total in totals.items()}
    return Report(calls, metrics, _configuration(vm), spans)


def _configuration(vm: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"Executor": "relaxvm VM",
                              "Devices": ", ".join(str(d) for d in vm.devices),
                              "Number of threads": os.cpu_count() or 1}
    for dev in vm.devices:
        if dev.device_type == CUDA:
            from relaxvm.devices import nvml
            info = nvml.telemetry(dev.index)
            if info is None:
                config[f"{dev} telemetry"] = "unknown (NVML unavailable)"
                continue
            config[f"{dev} name"] = info.get("name") or "unknown"
            used, total = info.get("memory_used_bytes"), info.get("memory_total_bytes")
            if used is not None and total is not None:
                config[f"{dev} memory"] = f"{used / 2**30:.2f} / {total / 2**30:.2f} GiB used"
    return config
