"""A small progress display for long commands (compile, repeated runs).

On a terminal it redraws one status line; otherwise (CI logs, pipes) it prints a line
per step, so logs stay readable. Writes to stderr, keeping stdout for results.

Within a step, :meth:`Progress.update` reports sub-progress such as ``timing 3/10``. It is
throttled so that fast work prints nothing extra: an update is shown only once the step
has lasted ``delay_s``, and then at most once per ``interval_s`` (a terminal redraws
often; a log gets a line every few seconds).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

TTY_INTERVAL_S = 0.1
LOG_INTERVAL_S = 2.0


class Progress:
    """``with Progress("compile", total=5) as p: p.step("fold constants")``.

    ``clock`` (seconds) defaults to ``time.perf_counter``; tests inject a fake one.
    """

    def __init__(self, label: str, total: int | None = None, stream: IO[str] | None = None,
                 enabled: bool = True, delay_s: float = 1.0, interval_s: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.delay_s = delay_s
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = interval_s if interval_s is not None else (
            TTY_INTERVAL_S if self._tty else LOG_INTERVAL_S)
        self._clock = clock
        self._t0 = clock()
        self._step_t0 = self._t0
        self._last_update: float | None = None
        self._message = ""

    def step(self, message: str = "", advance: int = 1) -> None:
        """Record progress and show ``message`` as the current activity."""
        self.done += advance
        self._message = message
        self._step_t0 = self._clock()
        self._last_update = None
        self._show(message)

    def update(self, detail: str) -> None:
        """Show ``detail`` beside the current step's message, throttled (see module doc)."""
        now = self._clock()
        if now - self._step_t0 < self.delay_s:
            return
        if self._last_update is not None and now - self._last_update < self.interval_s:
            return
        self._last_update = now
        self._show(f"{self._message} {detail}" if self._message else detail)

    def _show(self, message: str) -> None:
        if not self.enabled:
            return
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"[{self.label} {count} {self._clock() - self._t0:6.1f}s] {message}"
        if self._tty:
            self.stream.write("\r\033[K" + text[:120])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
