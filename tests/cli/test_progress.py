"""Progress: a line per step in logs, and throttled sub-step updates (fake clock)."""

from __future__ import annotations

import io

from relaxvm.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_a_line_per_step_when_not_a_terminal():
    stream, clock = io.StringIO(), FakeClock()
    with Progress("run", total=2, stream=stream, clock=clock) as progress:
        progress.step("compiling")
        clock.now = 1.5
        progress.step("timing")
    assert stream.getvalue().splitlines() == ["[run 1/2    0.0s] compiling",
                                              "[run 2/2    1.5s] timing"]


def test_progress_updates_are_silent_for_fast_steps():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress("run", stream=stream, clock=clock, delay_s=1.0)
    progress.step("timing")
    for i in range(1, 11):
        clock.now = i * 0.05
        progress.update(f"{i}/10")
    assert stream.getvalue().splitlines() == ["[run 1    0.0s] timing"]


def test_progress_updates_of_a_long_step_are_throttled_to_the_interval():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress("run", stream=stream, clock=clock, delay_s=1.0, interval_s=2.0)
    progress.step("timing")
    for i in range(1, 11):
        clock.now = float(i)
        progress.update(f"{i}/10")
    lines = stream.getvalue().splitlines()
    assert lines == ["[run 1    0.0s] timing", "[run 1    1.0s] timing 1/10",
                     "[run 1    3.0s] timing 3/10", "[run 1    5.0s] timing 5/10",
                     "[run 1    7.0s] timing 7/10", "[run 1    9.0s] timing 9/10"]


def test_progress_redraws_one_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream, clock = Tty(), FakeClock()
    with Progress("compile", stream=stream, clock=clock) as progress:
        progress.step("fold constants")
    assert stream.getvalue() == "\r\033[K[compile 1    0.0s] fold constants\n"


def test_disabled_progress_writes_nothing_but_counts():
    stream = io.StringIO()
    progress = Progress("run", stream=stream, enabled=False)
    progress.step("a")
    progress.update("1/2")
    assert stream.getvalue() == "" and progress.done == 1
