"""The work behind each ``relaxvm`` subcommand (argument parsing lives in ``cli.py``).

``run`` and ``profile`` load a :class:`Program`: a compiled ``.rvx`` file as it is, or an
``.onnx`` model compiled for concrete inputs. Those are the ``--input`` files, and seeded
example inputs (``relaxvm.models.example_inputs``) for the rest, whose symbolic dimensions
take their size from ``--shape``, then from an input file that shares the dimension, then
from the model's ``relaxvm.dim.*`` metadata, else 1. The input shapes become the build's
``shape_dict``, so memory is planned statically; ``--dynamic`` compiles with symbolic
dimensions instead. Every input is checked before anything is compiled or run.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relaxvm.cli import (
    best_device,
    load_inputs,
    onnx_inputs,
    parse_device_arg,
    parse_memory_cfg_arg,
    parse_shape_args,
)
from relaxvm.devices.device import CUDA, Device, cpu, cuda
from relaxvm.errors import ArgumentError
from relaxvm.memory.summary import format_bytes
from relaxvm.progress import Progress

TIMING_HOOK = "relaxvm.cli.timing_progress"


def _target(device: Device) -> str:
    return "cuda" if device.device_type == CUDA else "cpu"


@dataclass
class Program:
    """An executable with the inputs of one call, and how it was made.

    ``model`` is the source ``onnx.ModelProto`` (None for a ``.rvx`` file) and
    ``shape_dict`` what it was compiled with (None: symbolic dimensions kept).
    """

    exe: Any
    entry: str
    inputs: dict[str, np.ndarray]
    output_names: list[str] | None = None
    model: Any = None
    shape_dict: dict[str, tuple[int, ...]] | None = None

    @property
    def arrays(self) -> list[np.ndarray]:
        """The inputs in parameter order."""
        return list(self.inputs.values())


def load_program(args: argparse.Namespace, device: Device, progress: Progress) -> Program:
    """A Program from ``args.model``: a ``.rvx`` file, or an ``.onnx`` model compiled for
    ``device`` and the inputs (see the module docstring)."""
    path = Path(args.model)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    given = load_inputs(args.input)
    dims = parse_shape_args(args.shape)
    if path.suffix != ".onnx":
        if dims or args.dynamic:
            raise ArgumentError(f"--shape and --dynamic apply to .onnx models; {path.name} "
                                f"is compiled already")
        from relaxvm.vm.executable import load_executable
        progress.step(f"loading {path.name}")
        exe = load_executable(str(path))
        entry = _entry(exe)
        return Program(exe, entry, _executable_inputs(exe, entry, given))
    from relaxvm.compiler import build
    from relaxvm.frontend.onnx import load_model
    progress.step(f"loading {path.name}")
    model = load_model(str(path))
    inputs = onnx_inputs(model, given, dims, seed=args.seed, where=path.name)
    shape_dict = None if args.dynamic else {k: v.shape for k, v in inputs.items()}
    progress.step(f"compiling {path.name} for {_target(device)} "
                  f"({'dynamic shapes' if args.dynamic else _shapes_text(inputs)})")
    exe = build(model, target=_target(device), shape_dict=shape_dict)
    return Program(exe, _entry(exe), inputs, [o.name for o in model.graph.output], model,
                   shape_dict)


def _shapes_text(inputs: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in inputs.items()) or "no inputs"


def _entry(exe: Any) -> str:
    """The function to run: "main", else the first VM function."""
    from relaxvm.vm.executable import FuncKind
    names = [f.name for f in exe.func_table if f.kind == FuncKind.VM_FUNC]
    if not names:
        raise ArgumentError("the executable has no VM function to run")
    return "main" if "main" in names else names[0]


def _executable_inputs(exe: Any, entry: str, given: dict[str, np.ndarray]
                       ) -> dict[str, np.ndarray]:
    """A compiled file's inputs: every parameter must come from ``--input``."""
    params = list(exe.func_table[exe.func_map[entry]].param_names)
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise ArgumentError(f"--input names {unknown} are not parameters of {entry} "
                            f"({', '.join(params)})")
    missing = [p for p in params if p not in given]
    if missing:
        raise ArgumentError(f"input {missing[0]!r} is required: pass --input "
                            f"{missing[0]}=FILE.npy (a compiled file keeps no input shapes)")
    return {p: given[p] for p in params}


# -- running ---------------------------------------------------------------------------------
def _summarise(name: str, value: Any) -> str:
    from relaxvm.tensor import Tensor
    if isinstance(value, Tensor):
        host = value.numpy()
        stats = ""
        if host.size and host.dtype.kind in "fiu":
            h = host.astype(np.float64)
            stats = f" mean={h.mean():.4g} std={h.std():.4g} min={h.min():.4g} max={h.max():.4g}"
        return f"{name}: {host.dtype}{list(host.shape)} on {value.device}{stats}"
    if isinstance(value, tuple):
        return "\n".join(_summarise(f"{name}[{i}]", v) for i, v in enumerate(value))
    return f"{name}: {value!r}"


def _output_lines(program: Program, out: Any) -> list[str]:
    """One summary line per output, named as in the model where it is known."""
    items = out if isinstance(out, tuple) else (out,)
    names = program.output_names
    if not names or len(names) != len(items):
        return [_summarise("output", out)]
    width = max(len(n) for n in names)
    return [_summarise(n.ljust(width), v) for n, v in zip(names, items)]


def _allocators(vm: Any) -> list[Any]:
    """The VM's allocators, each once (a CPU target lists cpu:0 once per role)."""
    seen: dict[int, Any] = {}
    for alloc in vm.allocators:
        seen.setdefault(id(alloc), alloc)
    return list(seen.values())


def _allocated() -> dict[str, int]:
    """Bytes each allocator holds now (every allocator created so far)."""
    from relaxvm.memory.manager import global_memory_manager
    return {f"{a.device}/{a.kind}": a.stats()["allocated_bytes.current"]
            for a in global_memory_manager().allocators()}


def _make_vm(program: Program, device: Device, memory_cfg: Any) -> tuple[Any, dict[str, int]]:
    """A VM for ``program``, and the bytes allocators held before it loaded its constants."""
    from relaxvm.vm import VirtualMachine
    gc.collect()   # free unreachable tensors now, not in the middle of a measured run
    held = _allocated()
    return VirtualMachine(program.exe, device, memory_cfg=memory_cfg), held


def measured_run(vm: Any, program: Program, held: Mapping[str, int]
                 ) -> tuple[Any, dict[str, dict[str, int]]]:
    """Run once; returns the outputs and, per allocator, ``peak``: the most bytes this VM
    held during the run (its constants, the inputs, intermediates and outputs), i.e.
    ``allocated_bytes.peak`` after ``reset_peak_stats`` less what was held before the VM
    loaded; ``loaded``: what it held when the run began (its constants); and ``allocs``:
    the allocator calls the run made."""
    allocators = _allocators(vm)
    before = {}
    for alloc in allocators:
        before[id(alloc)] = alloc.stats()
        alloc.reset_peak_stats()
    out = vm[program.entry](*program.arrays)
    peaks = {}
    for alloc in allocators:
        key, stats, start = f"{alloc.device}/{alloc.kind}", alloc.stats(), before[id(alloc)]
        peaks[key] = {"peak": stats["allocated_bytes.peak"] - held.get(key, 0),
                      "loaded": start["allocated_bytes.current"] - held.get(key, 0),
                      "allocs": stats["num_allocs"] - start["num_allocs"]}
    return out, peaks


def timed_runs(vm: Any, program: Program, device: Device, repeat: int,
               progress: Progress) -> Any:
    """``repeat`` timed calls (after one warm-up), reporting "timing i/n" as they go.

    The evaluator's ``f_preproc`` hook runs before each repeat, outside the timed block;
    Progress throttles it, so fast runs print nothing extra.
    """
    from relaxvm.vm.registry import register_func, remove_global_func
    counter = itertools.count(1)
    register_func(TIMING_HOOK, lambda *_: progress.update(f"{next(counter)}/{repeat}"),
                  override=True)
    try:
        timer = vm.time_evaluator(program.entry, device, number=1, repeat=repeat,
                                  f_preproc=TIMING_HOOK)
        return timer(*program.arrays)
    finally:
        remove_global_func(TIMING_HOOK)


def cmd_run(args: argparse.Namespace) -> int:
    """``relaxvm run``: compile (for ONNX), run, summarise outputs, time and report memory."""
    from relaxvm.memory.manager import global_memory_manager
    device = _device(args)
    memory_cfg = parse_memory_cfg_arg(args.memory_cfg)
    is_onnx = Path(args.model).suffix == ".onnx"
    steps = 4 + is_onnx + 2 * (is_onnx and args.memory_report)
    with Progress("run", total=steps, stream=sys.stderr) as progress:
        program = load_program(args, device, progress)
        progress.step("loading executable")
        global_memory_manager().clear()
        vm, held = _make_vm(program, device, memory_cfg)
        progress.step("first run")
        out, peaks = measured_run(vm, program, held)
        progress.step("timing")
        result = timed_runs(vm, program, device, args.repeat, progress)
        report = memory_numbers(program, device, memory_cfg, peaks, progress) \
            if args.memory_report else None
    print("\n".join(_output_lines(program, out)))
    print(f"\nlatency on {device}: median {result.median * 1e3:.3f} ms, "
          f"min {result.min * 1e3:.3f} ms over {len(result.results)} runs")
    print("peak pool bytes (one run): "
          + ", ".join(f"{k} {format_bytes(v['peak'])}" for k, v in peaks.items()))
    if report is not None:
        print("\n" + format_memory_report(report))
    if args.json:
        _write_json(Path(args.json), program, device, result, peaks, report)
    if args.save_outputs:
        _save_outputs(out, Path(args.save_outputs), program.output_names)
    return 0


def _device(args: argparse.Namespace) -> Device:
    device = parse_device_arg(args.device)
    device.backend.require(device.index)
    return device


# -- memory report ---------------------------------------------------------------------------
def _constants(exe: Any) -> tuple[int, int]:
    """(bytes, count) of the executable's array constants (weights, folded values)."""
    arrays = []
    stack = list(exe.constants)
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            arrays.append(item)
        elif type(item) is tuple:
            stack.extend(item)
    return sum(a.nbytes for a in arrays), len(arrays)


def memory_numbers(program: Program, device: Device, memory_cfg: Any,
                   planned: Mapping[str, Mapping[str, int]], progress: Progress
                   ) -> dict[str, Any]:
    """Planned vs unplanned peaks (see :func:`measured_run`), and the static plan's numbers.

    The unplanned baseline is the same model built with ``opt_level=0`` (no folding or
    fusion, every tensor in its own pooled storage), run once on the same inputs.
    """
    peaks: dict[str, dict[str, Any]] = {k: {"planned": dict(v), "unplanned": None}
                                        for k, v in planned.items()}
    if program.model is not None:
        from relaxvm.compiler import build
        progress.step("building the unplanned baseline (opt_level=0)")
        exe = build(program.model, target=_target(device), shape_dict=program.shape_dict,
                    opt_level=0)
        vm, held = _make_vm(Program(exe, program.entry, program.inputs), device, memory_cfg)
        progress.step("running the unplanned baseline")
        _, unplanned = measured_run(vm, program, held)
        for key, value in unplanned.items():
            peaks.setdefault(key, {"planned": None})["unplanned"] = value
    constant_bytes, constant_count = _constants(program.exe)
    return {"input_shapes": {k: list(v.shape) for k, v in program.inputs.items()},
            "dynamic": program.model is not None and program.shape_dict is None,
            "peak_pool_bytes": peaks,
            "plan": getattr(program.exe, "memory_plan", None),
            "constant_bytes": constant_bytes, "constants": constant_count}


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Text rows, column ``i`` left- (``l``) or right-aligned (``r``) as ``align[i]``."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                      for c, w, a in zip(row, widths, align)).rstrip()
            for row in [header, *rows]]


def _ratio(a: int | None, b: int | None) -> str:
    return f"{a / b:.3f}x" if a is not None and b else "-"


def _peak_rows(peaks: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    parts = (("{key} peak pool bytes", lambda m: m["peak"], format_bytes),
             ("  above its loaded constants", lambda m: m["peak"] - m["loaded"], format_bytes),
             ("  allocations in the run", lambda m: m["allocs"], lambda n: f"{n:,}"))
    for key, both in peaks.items():
        for label, pick, fmt in parts:
            values = [None if m is None else pick(m) for m in (both["planned"],
                                                               both["unplanned"])]
            rows.append([label.format(key=key), *("-" if v is None else fmt(v) for v in values),
                         _ratio(*values)])
    return rows


def format_memory_report(numbers: Mapping[str, Any]) -> str:
    """The report of :func:`memory_numbers` as aligned tables."""
    lines = _table(["Measured in one run", "planned", "unplanned (opt_level=0)",
                    "planned/unplanned"], _peak_rows(numbers["peak_pool_bytes"]), "lrrr")
    plan = numbers["plan"]
    if plan is None:
        lines.append("(a compiled .rvx keeps neither its plan nor its source: run the .onnx "
                     "model for the unplanned baseline and the static plan)")
        return "\n".join(lines)
    arenas, lower = plan["planned_peak_bytes"], plan["lower_bound_bytes"]
    lines.append("")
    lines += _table(["Static memory plan", "bytes", ""], [
        ["arenas (planned peak)", format_bytes(arenas),
         f"{plan['arenas']} arena(s) holding {plan['planned_tensors']} tensors"],
        ["lower bound (most bytes live)", format_bytes(lower),
         f"arenas/lower bound {_ratio(arenas, lower)}"],
        ["arena tensors allocated apart", format_bytes(plan["unplanned_bytes"]),
         f"besides: {plan['own_tensors']} own allocation(s), {plan['views']} view(s)"],
        ["weights and constants", format_bytes(numbers["constant_bytes"]),
         f"{numbers['constants']} arrays"],
    ], "lrl")
    if plan["symbolic_sizes"]:
        lines.append(f"symbolic sizes {', '.join(plan['symbolic_sizes'])}: tensors whose size "
                     f"depends on them get their own pooled storage (drop --dynamic to plan "
                     f"them)")
    return "\n".join(lines)


def _write_json(path: Path, program: Program, device: Device, result: Any,
                peaks: Mapping[str, Any], report: Mapping[str, Any] | None) -> None:
    data = {"device": str(device), "entry": program.entry,
            "inputs": {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                       for k, v in program.inputs.items()},
            "latency_s": {"median": result.median, "min": result.min, "mean": result.mean,
                          "runs": list(result.results)},
            "peak_pool_bytes": dict(peaks), "memory_report": report}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"numbers written to {path}")


def _save_outputs(out: Any, folder: Path, names: list[str] | None) -> None:
    """Each tensor output as ``output_<i>.npy``, in the model's output order."""
    from relaxvm.tensor import Tensor
    folder.mkdir(parents=True, exist_ok=True)
    items = out if isinstance(out, tuple) else (out,)
    labels = names if names and len(names) == len(items) else [None] * len(items)
    written = []
    for i, (item, label) in enumerate(zip(items, labels)):
        if isinstance(item, Tensor):
            np.save(folder / f"output_{i}.npy", item.numpy())
            written.append(f"output_{i}.npy" + (f" ({label})" if label else ""))
    print(f"outputs written to {folder}: {', '.join(written)}")


def cmd_profile(args: argparse.Namespace) -> int:
    """``relaxvm profile``: the per-op table, and a Chrome trace with ``--trace``."""
    device = _device(args)
    steps = 4 + (Path(args.model).suffix == ".onnx")
    with Progress("profile", total=steps, stream=sys.stderr) as progress:
        program = load_program(args, device, progress)
        progress.step("loading executable")
        vm, _ = _make_vm(program, device, parse_memory_cfg_arg(args.memory_cfg))
        progress.step("profiling (one warm-up run, one timed run)")
        report = vm.profile(program.entry, *program.arrays)
    print(report.table())
    if args.trace:
        report.export_chrome_trace(args.trace)
        print(f"\ntrace written to {args.trace} (open it in https://ui.perfetto.dev)")
    if args.csv:
        Path(args.csv).write_text(report.csv())
    if args.json:
        Path(args.json).write_text(report.json())
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    """``relaxvm compile``: an ONNX model to a saved executable."""
    from relaxvm.compiler import build
    with Progress("compile", total=2, stream=sys.stderr) as progress:
        progress.step(f"compiling {args.model} for {args.target}")
        exe = build(args.model, target=args.target, shape_dict=parse_shape_args(args.shape) or None)
        progress.step(f"saving {args.output}")
        exe.save(args.output)
    print(f"wrote {args.output} ({Path(args.output).stat().st_size:,} bytes)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``relaxvm inspect``: an executable's listing and statistics."""
    from relaxvm.vm.executable import load_executable
    exe = load_executable(args.executable)
    print(exe.stats())
    print()
    print(exe.as_text())
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """``relaxvm devices``: the devices found, with NVML telemetry for GPUs."""
    from relaxvm.devices import nvml
    host = cpu(0)
    print(f"cpu:0  {host.device_name}  {host.multi_processor_count} cores  "
          f"{format_bytes(host.total_global_memory)} memory")
    if not cuda(0).exist:
        print("cuda: no GPU available (needs CuPy and a CUDA driver: "
              "pip install 'relaxvm[cuda12]' or 'relaxvm[cuda13]')")
        return 0
    import cupy
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        dev = cuda(i)
        line = (f"cuda:{i}  {dev.device_name}  compute {dev.compute_version}  "
                f"{dev.multi_processor_count} SMs  {format_bytes(dev.total_global_memory)}")
        info = nvml.telemetry(i)
        if info:
            used, total = info.get("memory_used_bytes"), info.get("memory_total_bytes")
            parts = [f"mem {format_bytes(used)}/{format_bytes(total or 0)}" if used else None,
                     f"util {info['gpu_utilization_percent']}%"
                     if info.get("gpu_utilization_percent") is not None else None,
                     f"{info['temperature_c']} C" if info.get("temperature_c") else None,
                     f"{info['power_w']:.0f} W" if info.get("power_w") else None]
            line += "  " + "  ".join(p for p in parts if p)
        else:
            line += "  (telemetry unknown: NVML unavailable)"
        print(line)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``relaxvm demo``: build a zoo model, run and profile it on the best device."""
    from relaxvm.demo import run_demo
    device = best_device() if args.device == "auto" else parse_device_arg(args.device)
    return run_demo(args.model, args.size, device)


