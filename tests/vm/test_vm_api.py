"""The VirtualMachine methods of TVM's reference page, with their misuse errors."""

from __future__ import annotations

import numpy as np
import pytest
from programs import add_program

import relaxvm
from relaxvm.errors import ArgumentError, VMError
from relaxvm.vm import ExecBuilder, VirtualMachine, VMInstrumentReturnKind


def tuple_program():
    """main(a, b) -> ((a + b, a), b): nested tuple output."""
    ib = ExecBuilder()
    with ib.function("main", num_inputs=2, param_names=["a", "b"]):
        ib.emit_call("test.vm.add", args=[ib.r(0), ib.r(1)], dst=ib.r(2))
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(2), ib.r(0)], dst=ib.r(3))
        ib.emit_call("vm.builtin.make_tuple", args=[ib.r(3), ib.r(1)], dst=ib.r(4))
        ib.emit_ret(ib.r(4))
    return ib.get()


@pytest.fixture
def vm():
    return VirtualMachine(tuple_program(), relaxvm.cpu())


A = np.arange(3, dtype="float32")
B = np.full(3, 10, dtype="float32")


def test_set_input_invoke_stateful_get_outputs_nested(vm):
    vm.set_input("main", A, b=B)
    vm.invoke_stateful("main")
    (s, a), b = vm.get_outputs("main")
    np.testing.assert_array_equal(s.numpy(), A + B)
    np.testing.assert_array_equal(a.numpy(), A)
    np.testing.assert_array_equal(b.numpy(), B)


def test_invoke_stateful_without_set_input_is_an_error(vm):
    with pytest.raises(VMError, match="no inputs set for stateful call of main; use set_input"):
        vm.invoke_stateful("main")


def test_get_outputs_before_invoke_stateful_is_an_error(vm):
    vm.set_input("main", A, B)
    with pytest.raises(VMError, match=r"main has no outputs; call invoke_stateful\('main'\)"):
        vm.get_outputs("main")


def test_direct_call_after_set_input_is_an_error(vm):
    vm.set_input("main", A, B)
    with pytest.raises(VMError, match="inputs were set with set_input"):
        vm["main"](A, B)


def test_set_input_checks_arity_and_names(vm):
    with pytest.raises(ArgumentError, match=r"expects 2 arguments \(a, b\), but 1"):
        vm.set_input("main", A)
    with pytest.raises(ArgumentError, match=r"unexpected keyword argument\(s\) \['z'\]"):
        vm.set_input("main", A, z=B)
    with pytest.raises(AttributeError, match="no function 'nope'"):
        vm.set_input("nope", A, B)


def test_set_input_moves_tensors_to_the_first_device():
    vm = VirtualMachine(add_program(), relaxvm.cpu(1))
    vm.set_input("main", relaxvm.tensor(A, relaxvm.cpu(0)), B)
    vm.invoke_stateful("main")
    out = vm.get_outputs("main")
    assert out.device == relaxvm.cpu(1)
    np.testing.assert_array_equal(out.numpy(), A + B)


def test_save_function_binds_arguments(vm):
    vm.save_function("main", "main_saved", A, b=B)
    (s, _), _ = vm["main_saved"]()
    np.testing.assert_array_equal(s.numpy(), A + B)
    vm.save_function("main", "main_quiet", A, B, include_return=False)
    assert vm["main_quiet"]() is None


def test_save_function_cannot_shadow_a_real_function(vm):
    with pytest.raises(ValueError, match="saved_name 'main' is the name of a function"):
        vm.save_function("main", "main", A, B)


def test_instrument_sees_every_call_before_and_after(vm):
    events = []

    def instrument(func, symbol, before_run, ret_value, *args):
        events.append((symbol, before_run, ret_value is not None))
        return VMInstrumentReturnKind.NO_OP

    vm.set_instrument(instrument)
    vm["main"](A, B)
    assert events == [("test.vm.add", True, False), ("test.vm.add", False, True),
                      ("vm.builtin.make_tuple", True, False),
                      ("vm.builtin.make_tuple", False, True),
                      ("vm.builtin.make_tuple", True, False),
                      ("vm.builtin.make_tuple", False, True)]


def test_instrument_skip_run_skips_call_and_after_hook(vm):
    events = []

    def instrument(func, symbol, before_run, ret_value, *args):
        events.append((symbol, before_run))
        if symbol == "test.vm.add":
            return VMInstrumentReturnKind.SKIP_RUN
        return None

    vm.set_instrument(instrument)
    (s, a), b = vm["main"](A, B)
    assert s is None  # the skipped call's destination receives None
    assert ("test.vm.add", False) not in events
    vm.set_instrument(None)
    (s, _), _ = vm["main"](A, B)
    np.testing.assert_array_equal(s.numpy(), A + B)


def test_time_evaluator_returns_seconds_per_call(vm):
    result = vm.time_evaluator("main", relaxvm.cpu(), number=3, repeat=4)(A, B)
    assert len(result.results) == 4 and all(r > 0 for r in result.results)
    assert result.min <= result.median <= result.max
    assert result.std == pytest.approx(np.std(result.results))
    assert "Execution time summary" in str(result)


def test_time_evaluator_grows_number_to_min_repeat_ms(vm):
    result = vm.time_evaluator("main", relaxvm.cpu(), number=1, repeat=1, min_repeat_ms=20)(A, B)
    assert result.number > 1
    assert result.results[0] * result.number >= 0.020 * 0.9


def test_time_evaluator_with_stateful_and_saved_functions(vm):
    vm.set_input("main", A, B)
    assert vm.time_evaluator("invoke_stateful", relaxvm.cpu(), number=2)("main").mean > 0
    vm.save_function("main", "saved", A, B)
    assert vm.time_evaluator("saved", relaxvm.cpu(), number=2)().mean > 0


def test_time_evaluator_calls_preproc_by_name(vm):
    calls = []
    relaxvm.vm.register_func("test.vm.preproc", lambda *a: calls.append(len(a)), override=True)
    vm.time_evaluator("main", relaxvm.cpu(), number=1, repeat=3,
                      f_preproc="test.vm.preproc")(A, B)
    assert calls == [2, 2, 2]


def test_time_evaluator_rejects_bad_parameters(vm):
    with pytest.raises(ValueError, match="number must be an int >= 1, got 0"):
        vm.time_evaluator("main", relaxvm.cpu(), number=0)


def test_profile_reports_a_row_per_call(vm):
    report = vm.profile("main", A, B)
    names = [c["Name"] for c in report.calls]
    assert names == ["test.vm.add", "vm.builtin.make_tuple", "vm.builtin.make_tuple"]
    add = report.calls[0]
    assert add["Device"] == "cpu:0" and add["Argument Shapes"] == "float32[3], float32[3]"
    assert add["Duration (us)"] > 0 and add["Host (us)"] >= add["Duration (us)"] * 0.5
    table = report.table()
    for column in ("Name", "Duration (us)", "Percent", "Device", "Count", "Argument Shapes",
                   "Host (us)"):
        assert column in table
    again = relaxvm.vm.Report.from_json(report.json())
    assert again.calls == report.calls
    assert report.csv().splitlines()[0].startswith("Name,Duration (us),Percent")


def test_profile_trace_has_host_and_device_tracks(vm, tmp_path):
    import json
    report = vm.profile("main", A, B)
    path = tmp_path / "trace.json"
    report.export_chrome_trace(str(path))
    events = json.loads(path.read_text())["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert tracks == {"host", "cpu:0"}
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 6 and all(e["dur"] >= 0 for e in spans)


def test_profile_then_plain_call_still_works(vm):
    vm.profile("main", A, B)
    (s, _), _ = vm["main"](A, B)
    np.testing.assert_array_equal(s.numpy(), A + B)


def test_unknown_function_errors_name_the_method_and_say_unknown(vm):
    with pytest.raises(AttributeError, match=r"^time_evaluator: unknown function 'nope': "
                                             r"the executable has no function 'nope' "
                                             r"\(functions: main\)$"):
        vm.time_evaluator("nope", relaxvm.cpu())
    with pytest.raises(AttributeError, match=r"^get_outputs: unknown function 'nope'"):
        vm.get_outputs("nope")
    with pytest.raises(VMError, match=r"get_outputs: main has no outputs"):
        vm.get_outputs("main")   # a real function without outputs keeps its own message


# -- profile=True ------------------------------------------------------------------------

def test_profile_true_prepares_the_profiling_translation_that_profile_reuses():
    from relaxvm.vm.translate import PROFILE
    plain = VirtualMachine(tuple_program(), relaxvm.cpu())
    assert PROFILE not in plain._translations          # built lazily by profile()
    vm = VirtualMachine(tuple_program(), relaxvm.cpu(), profile=True)
    prepared = vm._translations[PROFILE]
    report = vm.profile("main", A, B)
    assert vm._translations[PROFILE] is prepared
    assert [c["Name"] for c in report.calls][0] == "test.vm.add"
    (s, _), _ = vm["main"](A, B)                      # plain calls are unaffected
    np.testing.assert_array_equal(s.numpy(), A + B)


# -- time_evaluator with an injected sleep and timer ---------------------------------------

class FakeTimer:
    """Reports ``per_call_ns`` for each call made between start and stop."""

    def __init__(self, calls, per_call_ns):
        self.calls, self.per_call_ns = calls, per_call_ns

    def start(self):
        self.begin = len(self.calls)

    def stop(self):
        self.end = len(self.calls)

    def elapsed_ns(self):
        return (self.end - self.begin) * self.per_call_ns


def evaluator(vm, per_call_ns=1000, **options):
    from relaxvm.vm.timer import make_time_evaluator
    calls, sleeps = [], []
    vm.save_function("main", "counted", A, B)
    counted = vm._saved["counted"]
    vm._saved["counted"] = lambda: calls.append(1) or counted()
    settings = dict(number=1, repeat=1, min_repeat_ms=0, cooldown_interval_ms=0,
                    repeats_to_cooldown=1, f_preproc="", cache_flush_bytes=0) | options
    run = make_time_evaluator(vm, "counted", relaxvm.cpu(), **settings, sleep=sleeps.append,
                              create_timer=lambda dev: FakeTimer(calls, per_call_ns))
    return run, calls, sleeps


@pytest.mark.parametrize("repeat, every, expected_sleeps", [
    (5, 1, 5), (5, 2, 3), (6, 3, 2), (1, 4, 1)])
def test_cooldown_sleeps_after_every_repeats_to_cooldown_repeats(vm, repeat, every,
                                                                 expected_sleeps):
    run, calls, sleeps = evaluator(vm, repeat=repeat, cooldown_interval_ms=30,
                                   repeats_to_cooldown=every)
    result = run()
    assert sleeps == [0.03] * expected_sleeps     # after repeats i with i % every == 0
    assert len(result.results) == repeat and len(calls) == 1 + repeat


def test_no_cooldown_by_default(vm):
    run, _, sleeps = evaluator(vm, repeat=4)
    run()
    assert sleeps == []


def test_number_grows_by_the_golden_ratio_rule_with_a_fake_clock(vm):
    run, calls, _ = evaluator(vm, per_call_ns=1_000_000, number=1, min_repeat_ms=10)
    result = run()   # 1 call = 1 ms < 10 ms -> number = max(10/1 + 1, 1.618) = 11 -> 11 ms
    assert result.number == 11 and len(calls) == 1 + 1 + 11
    assert result.results == (0.001,)


def test_a_timer_that_always_reads_zero_stops_after_the_zero_limit(vm):
    from relaxvm.vm.timer import LIMIT_ZERO_TIME_ITERATIONS
    run, calls, _ = evaluator(vm, per_call_ns=0, number=2, min_repeat_ms=5)
    result = run()
    assert len(calls) == 1 + 2 * LIMIT_ZERO_TIME_ITERATIONS and result.results == (0.0,)


# -- register_func ---------------------------------------------------------------------------

def test_register_func_refuses_a_taken_name_unless_override():
    from relaxvm.vm.registry import get_global_func, register_func, remove_global_func
    try:
        register_func("test.api.dup", lambda: 1)
        with pytest.raises(ValueError, match=r"register_func: 'test.api.dup' is already "
                                             r"registered; pass override=True to replace it"):
            register_func("test.api.dup", lambda: 2)
        with pytest.raises(ValueError, match="already registered"):
            register_func("test.api.dup")(lambda: 3)      # decorator form too
        assert get_global_func("test.api.dup")() == 1
        register_func("test.api.dup", lambda: 4, override=True)
        assert get_global_func("test.api.dup")() == 4
    finally:
        remove_global_func("test.api.dup")
