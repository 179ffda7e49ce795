"""``relaxvm demo``: build a zoo model, compile it, run and profile it on the best device."""

from __future__ import annotations

import sys
import time

import numpy as np

from relaxvm.devices.device import CUDA, Device
from relaxvm.memory.summary import memory_summary
from relaxvm.progress import Progress


def run_demo(model_name: str, size: str, device: Device) -> int:
    """Print an output summary, the per-op profile and the pool statistics."""
    from relaxvm.compiler import build
    from relaxvm.models import build_model, example_inputs
    from relaxvm.vm import VirtualMachine

    target = "cuda" if device.device_type == CUDA else "cpu"
    with Progress("demo", total=5, stream=sys.stderr) as progress:
        progress.step(f"building the {model_name} ({size}) model")
        model = build_model(model_name, size)
        inputs = example_inputs(model)
        progress.step(f"compiling for {target}")
        t0 = time.perf_counter()
        exe = build(model, target=target)
        compile_s = time.perf_counter() - t0
        progress.step(f"running on {device}")
        vm = VirtualMachine(exe, device)
        outputs = vm["main"](**inputs)
        progress.step("timing")
        timing = vm.time_evaluator("main", device, number=5, repeat=5)(**inputs)
        progress.step("profiling")
        report = vm.profile("main", **inputs)

    print(f"relaxvm demo: {model_name} ({size}) on {device}, compiled in {compile_s:.2f} s")
    print(f"inputs: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in inputs.items()))
    items = outputs if isinstance(outputs, tuple) else (outputs,)
    for i, out in enumerate(items):
        host = out.numpy()
        print(f"output {i}: {host.dtype}{list(host.shape)} mean={float(np.mean(host)):.5f} "
              f"std={float(np.std(host)):.5f}")
    print(f"latency: median {timing.median * 1e3:.3f} ms over {len(timing.results)} repeats\n")
    print(report.table())
    print("\nMemory pools")
    print(memory_summary())
    return 0
