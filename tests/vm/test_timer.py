"""time_evaluator: warm-up, TVM's ``number`` growth, cooldown, cache flush, host times,
arguments bound once; and the CUDA event timer's device and stream (CuPy faked)."""

from __future__ import annotations

import types

import numpy as np
import pytest

import relaxvm
from relaxvm.vm import ExecBuilder, VirtualMachine
from relaxvm.vm import timer as timer_module
from relaxvm.vm.registry import register_func
from relaxvm.vm.timer import GOLDEN_RATIO, make_time_evaluator, next_number

SEEN: list[tuple] = []
register_func("test.timer.seen", lambda a, b: SEEN.append((a, b)), override=True)
F32 = relaxvm.DataType("float32")
A = np.arange(4, dtype="float32")
B = np.full(4, 10, dtype="float32")


def program():
    """main(a, b): test.timer.seen(a, b), then out = a + b in a storage on device 0."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("test.timer.seen", args=[ib.r(0), ib.r(1)])
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (16,), ib.imm(0),
                                                       relaxvm.DataType("uint8")], dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4,), F32], dst=ib.r(3))
        ib.emit_call("add", args=[ib.r(0), ib.r(1), ib.r(3)])
        ib.emit_ret(ib.r(3))
    return ib.get()


class ScriptedTimer:
    """Reads the next scripted duration (ms) per block; logs the calls each block timed."""

    def __init__(self, readings_ms, blocks, events):
        self.readings_ms, self.blocks, self.events = readings_ms, blocks, events

    def start(self):
        self.events.append("start")
        self.begin = len(SEEN)

    def stop(self):
        self.events.append("stop")
        self.blocks.append(len(SEEN) - self.begin)

    def elapsed_ns(self):
        return int(self.readings_ms.pop(0) * 1e6)


def scripted(vm, readings_ms, **options):
    blocks, events = [], []
    settings = dict(number=1, repeat=1, min_repeat_ms=0, cooldown_interval_ms=0,
                    repeats_to_cooldown=1, f_preproc="", cache_flush_bytes=0) | options
    run = make_time_evaluator(vm, "main", relaxvm.cpu(), **settings,
                              create_timer=lambda d: ScriptedTimer(readings_ms, blocks, events))
    return run, blocks, events


@pytest.fixture
def vm():
    SEEN.clear()
    return VirtualMachine(program(), relaxvm.cpu())


def test_next_number_is_tvms_rule():
    assert next_number(10, 9.9, 10) == int(max(10 / (9.9 / 10) + 1, 10 * 1.618)) == 16
    assert next_number(1, 1.0, 10) == 11
    assert GOLDEN_RATIO == 1.618


def test_number_grows_by_the_exact_tvm_sequence(vm):
    # 10 calls: 9.9 ms < 10 -> max(10/0.99 + 1, 16.18) = 16; 16 calls: 5 ms -> max(10/(5/16)
    # + 1, 25.9) = 33; 33 calls: 20 ms >= 10: done. The next repeat starts at 33.
    run, blocks, _ = scripted(vm, [9.9, 5.0, 20.0, 12.0], number=10, min_repeat_ms=10,
                              repeat=2)
    result = run(A, B)
    assert blocks == [10, 16, 33, 33]
    assert result.number == 33 and len(SEEN) == 1 + 10 + 16 + 33 + 33
    assert result.results == pytest.approx((20e-3 / 33, 12e-3 / 33))


def test_grown_number_carries_into_the_next_evaluator_call(vm):
    run, blocks, _ = scripted(vm, [1.0, 11.0, 30.0], number=1, min_repeat_ms=10)
    run(A, B)
    run(A, B)
    assert blocks == [1, 11, 11]


def test_one_untimed_warm_up_call_then_number_calls_per_repeat(vm):
    run, blocks, _ = scripted(vm, [1.0] * 3, number=4, repeat=3)
    run(A, B)
    assert blocks == [4, 4, 4] and len(SEEN) == 1 + 12


def test_arguments_are_converted_once_and_every_call_sees_the_same_tensors(vm, monkeypatch):
    conversions = []
    from relaxvm.vm import interpreter
    original = interpreter.tensor
    monkeypatch.setattr(interpreter, "tensor",
                        lambda *a, **k: conversions.append(1) or original(*a, **k))
    result = vm.time_evaluator("main", relaxvm.cpu(), number=3, repeat=2)(A, B)
    assert len(result.results) == 2
    assert len(conversions) == 2                      # A and B, once each
    assert len(SEEN) == 1 + 6 and len({(id(a), id(b)) for a, b in SEEN}) == 1


def test_tensors_on_another_device_move_to_the_first_device_once():
    SEEN.clear()
    vm = VirtualMachine(program(), [relaxvm.cpu(0), relaxvm.cpu(1)])
    a, b = relaxvm.tensor(A, relaxvm.cpu(1)), relaxvm.tensor(B, relaxvm.cpu(1))
    vm.time_evaluator("main", relaxvm.cpu(0), number=2, repeat=2)(a, b)
    assert {(x.device, y.device) for x, y in SEEN} == {(relaxvm.cpu(0), relaxvm.cpu(0))}
    assert len({(id(x), id(y)) for x, y in SEEN}) == 1


def test_host_wall_times_are_kept_for_each_repeat(vm):
    result = vm.time_evaluator("main", relaxvm.cpu(), number=5, repeat=3)(A, B)
    assert len(result.host_results) == 3 and all(h > 0 for h in result.host_results)
    # On the CPU the device timer is a wall clock inside the host window.
    assert all(h >= d for h, d in zip(result.host_results, result.results))


def test_cache_is_flushed_once_per_block_before_its_timer_starts(vm, monkeypatch):
    def flusher(dev, nbytes):
        assert (dev, nbytes) == (relaxvm.cpu(), 1 << 20)
        return lambda: events.append("flush")

    monkeypatch.setattr(timer_module, "_cache_flusher", flusher)
    run, blocks, events = scripted(vm, [1.0, 11.0, 2.0, 30.0], number=2, repeat=2,
                                   min_repeat_ms=10, cache_flush_bytes=1 << 20)
    run(A, B)
    assert events == ["flush", "start", "stop"] * 4


def test_cache_flush_copies_between_device_buffers(vm, monkeypatch):
    from relaxvm.devices.cpu_backend import BACKEND
    copies = []
    original = BACKEND.copy_within
    monkeypatch.setattr(BACKEND, "copy_within",
                        lambda dst, src: copies.append(dst.nbytes) or original(dst, src))
    vm.time_evaluator("main", relaxvm.cpu(), number=2, repeat=3, cache_flush_bytes=4096)(A, B)
    assert copies == [4096] * 3
    copies.clear()
    vm.time_evaluator("main", relaxvm.cpu(), number=2, repeat=3)(A, B)
    assert copies == []


def test_cooldown_sleeps_through_time_sleep_by_default(vm, monkeypatch):
    sleeps = []
    monkeypatch.setattr(timer_module.time, "sleep", sleeps.append)
    vm.time_evaluator("main", relaxvm.cpu(), number=1, repeat=5, cooldown_interval_ms=20,
                      repeats_to_cooldown=2)(A, B)
    assert sleeps == [0.02] * 3                       # after repeats 0, 2 and 4


def test_time_evaluator_on_each_device_copies_no_inputs_while_timing(dev, monkeypatch):
    SEEN.clear()
    vm = VirtualMachine(program(), dev)
    copies = []
    original = dev.backend.copy_from_host
    monkeypatch.setattr(dev.backend, "copy_from_host",
                        lambda dst, src: copies.append(1) or original(dst, src))
    result = vm.time_evaluator("main", dev, number=4, repeat=2)(A, B)
    assert len(copies) == 2 and all(r > 0 for r in result.results)
    assert {x.device for x, _ in SEEN} == {dev}


# -- the CUDA event timer, with CuPy faked ---------------------------------------------------

class FakeCuda:
    """cupy.cuda's Device / Event / get_current_stream, tracking the current device."""

    def __init__(self):
        self.current = 0
        self.streams = {0: "stream-of-0", 1: "stream-of-1"}
        self.records = []
        cuda = self

        class Device:
            def __init__(self, index):
                self.id = index

            def __enter__(self):
                self.saved, cuda.current = cuda.current, self.id
                return self

            def __exit__(self, *exc):
                cuda.current = self.saved

        class Event:
            def __init__(self):
                self.device = cuda.current

            def record(self, stream=None):
                cuda.records.append((self.device, cuda.current, stream))

            def synchronize(self):
                pass

        self.Device, self.Event = Device, Event
        self.get_elapsed_time = lambda begin, end: 0.25

    def get_current_stream(self):
        return self.streams[self.current]


@pytest.fixture
def fake_backend(monkeypatch):
    from relaxvm.devices.cuda_backend import CUDABackend
    backend = CUDABackend()
    fake = types.SimpleNamespace(cuda=FakeCuda())
    backend._cupy = fake
    backend._ready.update({0, 1})
    return backend, fake.cuda


def test_cuda_timer_records_on_its_devices_stream_with_that_device_current(fake_backend):
    backend, cuda = fake_backend
    timer = backend.create_timer(1)                   # device 0 is current
    timer.start()
    timer.stop()
    assert cuda.current == 0                          # restored after each record
    # (event's device, device current while recording, stream)
    assert cuda.records == [(1, 1, "stream-of-1"), (1, 1, "stream-of-1")]
    assert timer.elapsed_ns() == 250_000


def test_reused_cuda_timer_follows_the_devices_current_stream(fake_backend):
    backend, cuda = fake_backend
    timer = backend.create_timer(0)
    backend.release_timer(0, timer)
    cuda.streams[0] = "user-stream-on-0"              # e.g. inside `with cupy.cuda.Stream()`
    again = backend.create_timer(0)
    assert again is timer
    again.start()
    assert cuda.records == [(0, 0, "user-stream-on-0")]
