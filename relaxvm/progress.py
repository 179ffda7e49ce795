"""A small progress display for long commands (compile, repeated runs).

On a terminal it redraws one status line; otherwise (CI logs, pipes) it prints a line
per step, so logs stay readable. Writes to stderr, keeping stdout for results.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class Progress:
    """``with Progress("compile", total=5) as p: p.step("fold constants")``."""

    def __init__(self, label: str, total: int | None = None, stream: IO[str] | None = None,
                 enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.perf_counter()

    def step(self, message: str = "", advance: int = 1) -> None:
        """Record progress and show ``message`` as the current activity."""
        self.done += advance
        if not self.enabled:
            return
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"[{self.label} {count} {time.perf_counter() - self._t0:6.1f}s] {message}"
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
