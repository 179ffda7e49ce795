"""VirtualMachine.profile: warm-up, one row per Call, device labels, totals, trace, timer pool
and the configuration block (NVML faked)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

import relaxvm
from relaxvm.vm import ExecBuilder, VirtualMachine
from relaxvm.vm import profiler as profiler_module
from relaxvm.vm.registry import register_func

F32 = relaxvm.DataType("float32")
CALLS: list[int] = []
register_func("test.profile.count", lambda x: CALLS.append(1), override=True)


def add_twice_program(device_index: int = 0):
    """main(a, b): t = a + b; u = t + b (``add`` twice on the same shapes), then a counted
    Python call on u and a null_value (no tensor arguments); returns u."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (32,), ib.imm(device_index),
                                                       relaxvm.DataType("uint8")], dst=ib.r(2))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(0), (4,), F32], dst=ib.r(3))
        ib.emit_call("vm.builtin.alloc_tensor", args=[ib.r(2), ib.imm(16), (4,), F32], dst=ib.r(4))
        ib.emit_call("add", args=[ib.r(0), ib.r(1), ib.r(3)])
        ib.emit_call("add", args=[ib.r(3), ib.r(1), ib.r(4)])
        ib.emit_call("test.profile.count", args=[ib.r(4)])
        ib.emit_call("vm.builtin.null_value", args=[], dst=ib.r(5))
        ib.emit_ret(ib.r(4))
    return ib.get()


NAMES = ["vm.builtin.alloc_storage", "vm.builtin.alloc_tensor", "vm.builtin.alloc_tensor",
         "add", "add", "test.profile.count", "vm.builtin.null_value"]
A = np.arange(4, dtype="float32")
B = np.full(4, 10, dtype="float32")


def inputs(dev):
    return relaxvm.tensor(A, dev), relaxvm.tensor(B, dev)


def test_profile_warms_up_once_then_times_one_run(dev):
    vm = VirtualMachine(add_twice_program(), dev)
    CALLS.clear()
    report = vm.profile("main", *inputs(dev))
    assert len(CALLS) == 2                                    # warm-up + timed run
    assert [c["Name"] for c in report.calls] == NAMES          # rows of the timed run only


def test_profile_of_set_input_arguments(dev):
    vm = VirtualMachine(add_twice_program(), dev)
    vm.set_input("main", *inputs(dev))
    assert [c["Name"] for c in vm.profile("main").calls] == NAMES


def test_add_twice_on_same_shapes_aggregates_to_count_two(dev):
    report = VirtualMachine(add_twice_program(), dev).profile("main", *inputs(dev))
    rows = {(r["Name"], r["Argument Shapes"]): r for r in report.rows()}
    add = rows[("add", "float32[4], float32[4], float32[4]")]
    assert add["Count"] == 2
    singles = [c for c in report.calls if c["Name"] == "add"]
    assert add["Duration (us)"] == pytest.approx(sum(c["Duration (us)"] for c in singles))
    assert rows[("vm.builtin.alloc_tensor", "")]["Count"] == 2
    assert len(report.rows(aggregate=False)) == len(NAMES)
    lines = report.table(sort=False, aggregate=False, col_sums=False).splitlines()
    assert len(lines[1:lines.index("")]) == len(NAMES) + len(report.device_metrics)


def test_percent_is_duration_over_the_device_total(dev):
    report = VirtualMachine(add_twice_program(), dev).profile("main", *inputs(dev))
    for row in report.calls:
        total = report.device_metrics[row["Device"]]["Duration (us)"]
        assert row["Percent"] == pytest.approx(100.0 * row["Duration (us)"] / total)
    assert sum(c["Percent"] for c in report.calls) <= 100.0 + 1e-6
    adds = [c for c in report.calls if c["Name"] == "add"]
    assert all(c["Duration (us)"] > 0 and c["Percent"] > 0 for c in adds)


def test_total_rows_carry_the_wall_time_of_the_timed_run(dev):
    report = VirtualMachine(add_twice_program(), dev).profile("main", *inputs(dev))
    for metrics in report.device_metrics.values():
        assert metrics["Host (us)"] >= sum(c["Host (us)"] for c in report.calls)
        assert metrics["Duration (us)"] > 0


def test_csv_has_one_row_per_call(dev):
    report = VirtualMachine(add_twice_program(), dev).profile("main", *inputs(dev))
    lines = report.csv().strip().splitlines()
    assert len(lines) - 1 == len(report.calls) == len(NAMES)


@pytest.mark.parametrize("devices, alloc_device, host", [
    pytest.param(["cpu:0", "cpu:1"], "cpu:0", "cpu:1", id="cpu0+cpu1"),
    pytest.param(["cuda:0"], "cuda:0", "cpu:0", id="cuda0", marks=pytest.mark.cuda),
])
def test_calls_without_tensor_arguments_are_labelled_with_their_device(devices, alloc_device,
                                                                       host):
    vm = VirtualMachine(add_twice_program(0), [relaxvm.device(d) for d in devices])
    report = vm.profile("main", *inputs(relaxvm.device(devices[0])))
    device_of = {}
    for row in report.calls:
        device_of.setdefault(row["Name"], set()).add(row["Device"])
    assert device_of["vm.builtin.alloc_storage"] == {alloc_device}   # its device index
    assert device_of["vm.builtin.alloc_tensor"] == {alloc_device}    # its storage's device
    assert device_of["add"] == {alloc_device}
    assert device_of["vm.builtin.null_value"] == {host}              # nothing says: the host


def test_trace_puts_host_and_device_spans_on_separate_tids(dev):
    report = VirtualMachine(add_twice_program(), dev).profile("main", *inputs(dev))
    trace = json.loads(json.dumps(report.chrome_trace()))     # plain JSON throughout
    events = trace["traceEvents"]
    tids = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M"}
    assert set(tids) == {"host", str(dev)} and tids["host"] != tids[str(dev)]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 2 * len(NAMES)
    for e in spans:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e) and e["dur"] >= 0
    host = [e for e in spans if e["cat"] == "host"]
    device = [e for e in spans if e["cat"] == "device"]
    assert {e["tid"] for e in host} == {tids["host"]}
    assert {e["tid"] for e in device} == {tids[str(dev)]}
    assert [e["name"] for e in host] == NAMES
    assert [e["ts"] for e in host] == sorted(e["ts"] for e in host)


# -- the timer pool -----------------------------------------------------------------------

class LoggedTimer:
    def __init__(self, log, number):
        self.log, self.number = log, number

    def start(self):
        self.log.append(("start", self.number))

    def stop(self):
        self.log.append(("stop", self.number))

    def elapsed_ns(self):
        return 1000

    def start_offset_ns(self, origin):
        return 0


def test_timed_run_takes_every_timer_from_the_pool_the_warm_up_filled(monkeypatch):
    from relaxvm.devices.cpu_backend import BACKEND
    log, pool, made = [], [], []

    def create_timer(index):
        if pool:
            return pool.pop()
        made.append(LoggedTimer(log, len(made)))
        log.append(("fresh", made[-1].number))
        return made[-1]

    monkeypatch.setattr(BACKEND, "create_timer", create_timer)
    monkeypatch.setattr(BACKEND, "release_timer", lambda index, timer: pool.append(timer))
    vm = VirtualMachine(add_twice_program(), relaxvm.cpu())
    report = vm.profile("main", A, B)
    assert len(report.calls) == len(NAMES)
    # The origin timer brackets the timed run: its stop is the last event.
    origin = log[-1][1]
    begin = max(i for i, event in enumerate(log) if event == ("start", origin))
    assert [e for e in log[begin:] if e[0] == "fresh"] == []
    assert len(made) == len(NAMES) + 1 and len(pool) == len(made)   # all handed back


# -- the configuration block ------------------------------------------------------------

def fake_pynvml():
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None
    module.nvmlDeviceGetHandleByIndex = lambda index: ("gpu", index)
    module.nvmlDeviceGetHandleByPciBusId = lambda bus_id: ("gpu", 0)
    module.nvmlDeviceGetName = lambda handle: b"NVIDIA H200"
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(
        used=3 * 2**30, total=140 * 2**30, free=137 * 2**30)
    return module


@pytest.fixture
def nvml_state(monkeypatch):
    from relaxvm.devices import nvml
    monkeypatch.setitem(nvml._state, "initialized", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return monkeypatch


def test_configuration_names_each_gpu_and_its_memory_from_nvml(nvml_state):
    nvml_state.setitem(sys.modules, "pynvml", fake_pynvml())
    stub_vm = types.SimpleNamespace(devices=[relaxvm.cuda(0), relaxvm.cpu(0)])
    config = profiler_module._configuration(stub_vm)
    assert config["cuda:0 name"] == "NVIDIA H200"
    assert config["cuda:0 memory"] == "3.00 / 140.00 GiB used"
    assert config["Devices"] == "cuda:0, cpu:0" and config["Executor"] == "relaxvm VM"
    table = relaxvm.vm.Report([], {}, config).table()
    assert "cuda:0 name: NVIDIA H200\ncuda:0 memory: 3.00 / 140.00 GiB used" in table


def test_configuration_says_when_nvml_is_unavailable(nvml_state):
    broken = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    nvml_state.setitem(sys.modules, "pynvml", broken)
    config = profiler_module._configuration(
        types.SimpleNamespace(devices=[relaxvm.cuda(0), relaxvm.cpu(0)]))
    assert config["cuda:0 telemetry"] == "unknown (NVML unavailable)"
    assert "cuda:0 name" not in config


def test_cpu_only_configuration_has_no_gpu_lines():
    config = profiler_module._configuration(types.SimpleNamespace(devices=[relaxvm.cpu(0)]))
    assert not [k for k in config if k.startswith("cuda")]
    assert config["Number of threads"] >= 1
