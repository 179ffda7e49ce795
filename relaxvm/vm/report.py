"""Report: per-call profiling results as a table, CSV, JSON and a Chrome trace.

Columns follow TVM's profiler (Name, Duration (us), Percent, Device, Count, Argument
Shapes) plus Host (us): the host time each call took from dispatch to return, which on a
GPU is the Python launch cost the device time does not show. The per-device Total rows
carry the device time of the whole run and, as Host (us), its wall time.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

COLUMNS = ["Name", "Duration (us)", "Percent", "Device", "Count", "Argument Shapes", "Host (us)"]
_SUMMED = ("Duration (us)", "Percent", "Count", "Host (us)")


class Report:
    """Profiling rows (``calls``), per-device totals and a configuration block."""

    def __init__(self, calls: list[dict[str, Any]], device_metrics: dict[str, dict[str, Any]],
                 configuration: dict[str, Any], spans: list[dict[str, Any]] | None = None) -> None:
        self.calls = calls
        self.device_metrics = device_metrics
        self.configuration = configuration
        self.spans = spans or []

    # -- views ---------------------------------------------------------------------------
    def rows(self, sort: bool = True, aggregate: bool = True) -> list[dict[str, Any]]:
        """Call rows, optionally merged by (Name, Argument Shapes, Device) and sorted."""
        rows = [dict(c) for c in self.calls]
        if aggregate:
            merged: dict[tuple, dict[str, Any]] = {}
            for row in rows:
                key = (row["Name"], row.get("Argument Shapes", ""), row.get("Device", ""))
                if key in merged:
                    for col in _SUMMED:
                        merged[key][col] = merged[key].get(col, 0) + row.get(col, 0)
                else:
                    merged[key] = row
            rows = list(merged.values())
        if sort:
            rows.sort(key=lambda r: r.get("Duration (us)", 0.0), reverse=True)
        return rows

    def table(self, sort: bool = True, aggregate: bool = True, col_sums: bool = True) -> str:
        """A readable fixed-width table, then per-device totals and the configuration."""
        rows = self.rows(sort, aggregate)
        cells = [[_fmt(col, r.get(col, "")) for col in COLUMNS] for r in rows]
        if col_sums:
            sums = {col: sum(r.get(col, 0) for r in rows) for col in _SUMMED}
            cells.append(["-" * 10] + [""] * (len(COLUMNS) - 1))
            cells.append([_fmt(c, sums[c]) if c in sums else ("Sum" if c == "Name" else "")
                          for c in COLUMNS])
        for dev, metrics in self.device_metrics.items():
            host = metrics.get("Host (us)", "")
            cells.append(["Total", _fmt("Duration (us)", metrics.get("Duration (us)", 0.0)),
                          "", dev, "1", "", _fmt("Host (us)", host)])
        widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
                  for i, h in enumerate(COLUMNS)]
        lines = [_line(COLUMNS, widths)] + [_line(row, widths) for row in cells]
        lines += ["", "Configuration", "-------------"]
        lines += [f"{k}: {v}" for k, v in self.configuration.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def csv(self) -> str:
        """One CSV line per call (not aggregated), columns in table order."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in self.calls:
            writer.writerow(row)
        return out.getvalue()

    def json(self) -> str:
        """The report as JSON text, which :meth:`from_json` reads back."""
        return json.dumps({"calls": self.calls, "device_metrics": self.device_metrics,
                           "configuration": self.configuration, "spans": self.spans})

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a Report from ``json()`` output; ValueError on malformed input."""
        try:
            data = json.loads(text)
            calls = list(data["calls"])
            metrics = dict(data.get("device_metrics", {}))
            config = dict(data.get("configuration", {}))
            spans = list(data.get("spans", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"Report.from_json: expected the output of Report.json(), "
                             f"got malformed input ({exc})") from None
        return cls(calls, metrics, config, spans)

    # -- traces ----------------------------------------------------------------------------------
    def chrome_trace(self) -> dict[str, Any]:
        """Chrome trace-event JSON (Perfetto opens it): host and each device on its own track."""
        tracks = {"host": 0}
        for span in self.spans:
            tracks.setdefault(span["track"], len(tracks))
        events: list[dict[str, Any]] = [
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}}
            for name, tid in tracks.items()]
        for span in self.spans:
            events.append({"name": span["name"], "ph": "X", "pid": 1, "tid": tracks[span["track"]],
                           "ts": round(span["ts_us"], 3), "dur": round(span["dur_us"], 3),
                           "cat": span.get("cat", "op"), "args": span.get("args", {})})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def export_chrome_trace(self, path: str) -> None:
        """Write :meth:`chrome_trace` to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.chrome_trace(), f)


def _fmt(col: str, value: Any) -> str:
    if col in ("Duration (us)", "Host (us)"):
        return f"{float(value):,.2f}" if value != "" else ""
    if col == "Percent":
        return f"{float(value):.2f}" if value != "" else ""
    if col == "Count":
        return f"{int(value)}" if value != "" else ""
    return str(value)


def _line(cells: list[str], widths: list[int]) -> str:
    first = cells[0].ljust(widths[0])
    rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
    return "  ".join([first] + rest).rstrip()
