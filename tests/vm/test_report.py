"""Report: aggregation, sorting, column sums, CSV, JSON and the Chrome trace, on known rows."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from relaxvm.vm.report import COLUMNS, Report


def call(name, duration, shapes="float32[4]", device="cuda:0", host=None):
    return {"Name": name, "Duration (us)": duration, "Percent": duration, "Device": device,
            "Count": 1, "Argument Shapes": shapes,
            "Host (us)": duration + 2.0 if host is None else host}


@pytest.fixture
def report():
    """Total device time 100 us, so Percent == Duration; ``add`` twice on float32[4]."""
    calls = [call("add", 10.0), call("matmul", 50.0), call("add", 30.0),
             call("add", 5.0, shapes="float32[8]")]
    spans = [{"name": "add", "track": "host", "ts_us": 0.0, "dur_us": 12.0, "cat": "host"},
             {"name": "add", "track": "cuda:0", "ts_us": 1.5, "dur_us": 10.0, "cat": "device",
              "args": {"shapes": "float32[4]"}}]
    return Report(calls, {"cuda:0": {"Duration (us)": 100.0, "Host (us)": 140.0}},
                  {"Executor": "relaxvm VM", "cuda:0 name": "NVIDIA H200"}, spans)


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def body(table):
    """The table's row lines: between the header and the blank line before Configuration."""
    lines = table.splitlines()
    return lines[1:lines.index("")]


def test_aggregate_merges_same_name_shapes_and_device(report):
    rows = report.rows(sort=False, aggregate=True)
    assert [(r["Name"], r["Argument Shapes"], r["Count"]) for r in rows] == [
        ("add", "float32[4]", 2), ("matmul", "float32[4]", 1), ("add", "float32[8]", 1)]
    add = rows[0]
    assert add["Duration (us)"] == 40.0 and add["Percent"] == 40.0 and add["Host (us)"] == 44.0


def test_same_name_on_another_device_is_not_merged(report):
    report.calls.append(call("add", 1.0, device="cpu:0"))
    rows = report.rows(sort=False)
    assert [(r["Name"], r["Device"], r["Count"]) for r in rows if r["Name"] == "add"] == [
        ("add", "cuda:0", 2), ("add", "cuda:0", 1), ("add", "cpu:0", 1)]


def test_sort_orders_by_duration_descending(report):
    assert [r["Duration (us)"] for r in report.rows(sort=True, aggregate=False)] == [
        50.0, 30.0, 10.0, 5.0]
    assert [r["Duration (us)"] for r in report.rows(sort=False, aggregate=False)] == [
        10.0, 50.0, 30.0, 5.0]


def test_default_table_aggregates_sorts_and_sums(report):
    table = report.table()
    rows = [cells(line) for line in body(table)]
    assert [r[0] for r in rows] == ["matmul", "add", "add", "----------", "Sum", "Total"]
    assert rows[1] == ["add", "40.00", "40.00", "cuda:0", "2", "float32[4]", "44.00"]
    assert rows[4] == ["Sum", "95.00", "95.00", "4", "103.00"]
    assert rows[5] == ["Total", "100.00", "cuda:0", "1", "140.00"]
    assert cells(table.splitlines()[0]) == COLUMNS


def test_table_without_aggregate_sort_or_sums_has_one_line_per_call(report):
    table = report.table(sort=False, aggregate=False, col_sums=False)
    rows = [cells(line) for line in body(table)]
    assert [r[0] for r in rows] == ["add", "matmul", "add", "add", "Total"]
    assert [r[1] for r in rows[:4]] == ["10.00", "50.00", "30.00", "5.00"]
    assert str(report) == report.table()


def test_table_ends_with_the_configuration_block(report):
    lines = report.table().splitlines()
    start = lines.index("Configuration")
    assert lines[start:] == ["Configuration", "-------------", "Executor: relaxvm VM",
                             "cuda:0 name: NVIDIA H200"]


def test_durations_use_thousands_separators():
    big = Report([call("conv", 1234567.891)], {}, {})
    assert cells(body(big.table(col_sums=False))[0])[1] == "1,234,567.89"


def test_csv_has_a_row_per_call_in_table_columns(report):
    rows = list(csv.DictReader(io.StringIO(report.csv())))
    assert len(rows) == len(report.calls) == 4
    assert list(rows[0]) == COLUMNS
    assert [r["Name"] for r in rows] == ["add", "matmul", "add", "add"]
    assert float(rows[1]["Duration (us)"]) == 50.0 and rows[3]["Argument Shapes"] == "float32[8]"


def test_json_round_trips_every_part(report):
    again = Report.from_json(report.json())
    assert again.calls == report.calls and again.device_metrics == report.device_metrics
    assert again.configuration == report.configuration and again.spans == report.spans
    assert again.table() == report.table()


@pytest.mark.parametrize("text", ["not json", "[]", '{"device_metrics": {}}'])
def test_from_json_rejects_malformed_input(text):
    with pytest.raises(ValueError, match=r"Report.from_json: expected the output of "
                                         r"Report.json\(\), got malformed input"):
        Report.from_json(text)


def test_chrome_trace_puts_host_and_device_spans_on_separate_tracks(report, tmp_path):
    path = tmp_path / "trace.json"
    report.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    names = {e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M"}
    assert set(names) == {"host", "cuda:0"} and names["host"] != names["cuda:0"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == 2
    for e in spans:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e)
        assert isinstance(e["ts"], (int, float)) and e["dur"] >= 0 and e["pid"] == 1
    host, device = spans
    assert host["tid"] == names["host"] and device["tid"] == names["cuda:0"]
    assert device["ts"] == 1.5 and device["dur"] == 10.0
