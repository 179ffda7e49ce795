"""The work behind each ``relaxvm`` subcommand (argument parsing lives in ``cli.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from relaxvm.cli import best_device, load_inputs, parse_device_arg, parse_memory_cfg_arg
from relaxvm.devices.device import CUDA, Device, cpu, cuda
from relaxvm.memory.summary import format_bytes
from relaxvm.progress import Progress


def _shape_dict(specs: list[str]) -> dict[str, int] | None:
    if not specs:
        return None
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--shape {spec!r} must look like batch=1")
        out[name.strip()] = int(value)
    return out


def load_program(path: str, device: Device, shape_dict: dict[str, int] | None,
                 progress: Progress | None = None) -> Any:
    """An Executable from a .rvx file, or compiled from an .onnx model for ``device``."""
    from relaxvm.vm.executable import load_executable
    if not Path(path).exists():
        raise FileNotFoundError(f"no such model file: {path}")
    if path.endswith(".onnx"):
        from relaxvm.compiler import build
        target = "cuda" if device.device_type == CUDA else "cpu"
        if progress:
            progress.step(f"compiling {Path(path).name} for {target}")
        return build(path, target=target, shape_dict=shape_dict)
    return load_executable(path)


def _entry_and_inputs(exe: Any, given: dict[str, np.ndarray], seed: int = 0
                      ) -> tuple[str, list[np.ndarray]]:
    """The entry function ("main") and its inputs: given ones, random for the rest."""
    from relaxvm.vm.executable import FuncKind
    names = [f.name for f in exe.func_table if f.kind == FuncKind.VM_FUNC]
    entry = "main" if "main" in names else names[0]
    info = exe.func_table[exe.func_map[entry]]
    specs = getattr(exe, "input_specs", None) or {}
    unknown = sorted(set(given) - set(info.param_names))
    if unknown:
        raise ValueError(f"--input names {unknown} are not parameters of {entry} "
                         f"({', '.join(info.param_names)})")
    rng = np.random.default_rng(seed)
    arrays = []
    for name in info.param_names:
        if name in given:
            arrays.append(given[name])
            continue
        spec = specs.get(name)
        if spec is None:
            raise ValueError(f"input {name!r} is required: pass --input {name}=FILE.npy")
        shape, dtype = spec
        if np.dtype(dtype).kind in "iu":
            arrays.append(rng.integers(0, 2, size=shape).astype(dtype))
        elif np.dtype(dtype).kind == "b":
            arrays.append(np.ones(shape, dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return entry, arrays


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


def _make_vm(args: argparse.Namespace, progress: Progress) -> tuple[Any, str, list[Any], Device]:
    from relaxvm.vm import VirtualMachine
    device = parse_device_arg(args.device)
    device.backend.require(device.index)
    exe = load_program(args.model, device, _shape_dict(args.shape), progress)
    progress.step("loading executable")
    vm = VirtualMachine(exe, device, memory_cfg=parse_memory_cfg_arg(args.memory_cfg))
    entry, arrays = _entry_and_inputs(exe, load_inputs(args.input))
    return vm, entry, arrays, device


def cmd_run(args: argparse.Namespace) -> int:
    from relaxvm.memory.manager import global_memory_manager
    with Progress("run", stream=sys.stderr) as progress:
        vm, entry, arrays, device = _make_vm(args, progress)
        global_memory_manager().clear()
        for alloc in vm.allocators:
            alloc.reset_peak_stats()
        progress.step("first run")
        out = vm[entry](*arrays)
        timer = vm.time_evaluator(entry, device, number=1, repeat=max(1, args.repeat))
        progress.step(f"timing {args.repeat} runs")
        result = timer(*arrays)
    print(_summarise("output", out))
    print(f"\nlatency on {device}: median {result.median * 1e3:.3f} ms, "
          f"min {result.min * 1e3:.3f} ms over {len(result.results)} runs")
    peaks = {f"{a.device}/{a.kind}": a.stats()["allocated_bytes.peak"] for a in vm.allocators}
    print("peak pool bytes: " + ", ".join(f"{k} {format_bytes(v)}" for k, v in peaks.items()))
    if args.memory_report:
        _memory_report(args, device)
    if args.save_outputs:
        _save_outputs(out, Path(args.save_outputs))
    return 0


def _memory_report(args: argparse.Namespace, device: Device) -> None:
    """Planned vs unplanned peaks, from the compiler's plan of the same model."""
    from relaxvm.compiler import memory_report
    report = memory_report(args.model, target="cuda" if device.device_type == CUDA else "cpu",
                           shape_dict=_shape_dict(args.shape))
    print("\nmemory plan")
    for key, value in report.items():
        print(f"  {key:<28} {format_bytes(value) if isinstance(value, int) else value}")


def _save_outputs(out: Any, folder: Path) -> None:
    from relaxvm.tensor import Tensor
    folder.mkdir(parents=True, exist_ok=True)
    items = out if isinstance(out, tuple) else (out,)
    for i, item in enumerate(items):
        if isinstance(item, Tensor):
            np.save(folder / f"output_{i}.npy", item.numpy())
    print(f"outputs written to {folder}")


def cmd_profile(args: argparse.Namespace) -> int:
    with Progress("profile", stream=sys.stderr) as progress:
        vm, entry, arrays, _ = _make_vm(args, progress)
        progress.step("profiling (one warm-up run, one timed run)")
        report = vm.profile(entry, *arrays)
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
    from relaxvm.compiler import build
    with Progress("compile", stream=sys.stderr) as progress:
        progress.step(f"compiling {args.model} for {args.target}")
        exe = build(args.model, target=args.target, shape_dict=_shape_dict(args.shape))
        progress.step(f"saving {args.output}")
        exe.save(args.output)
    print(f"wrote {args.output} ({Path(args.output).stat().st_size:,} bytes)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from relaxvm.vm.executable import load_executable
    exe = load_executable(args.executable)
    print(exe.stats())
    print()
    print(exe.as_text())
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
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
    from relaxvm.demo import run_demo
    device = best_device() if args.device == "auto" else parse_device_arg(args.device)
    return run_demo(args.model, args.size, device)


