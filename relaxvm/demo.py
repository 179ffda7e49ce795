"""``relaxvm demo``: compile a zoo model, run and profile it on the best device.

When the ONNX compiler is not importable (e.g. ``onnx`` is missing), the demo falls back
to a program written directly with ExecBuilder — an MLP classifier (784-512-256-10 with
GEMM, ReLU and softmax) whose memory is planned by hand into one storage — so the runtime
can always be seen end to end.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from relaxvm.devices.device import CUDA, Device
from relaxvm.memory.summary import format_bytes, memory_summary
from relaxvm.objects import DataType
from relaxvm.progress import Progress

MLP_LAYERS = (784, 512, 256, 10)


def handwritten_mlp(batch: int = 1, seed: int = 0) -> tuple[Any, dict[str, np.ndarray]]:
    """An MLP as bytecode: weights are constants, activations share one planned storage."""
    from relaxvm.vm.builder import ExecBuilder
    rng = np.random.default_rng(seed)
    f32, u8 = DataType("float32"), DataType("uint8")
    ib = ExecBuilder()
    widths = MLP_LAYERS
    offsets, total = [], 0
    for width in widths[1:]:
        offsets.append(total)
        total += batch * width * 4
    offsets.append(total)  # softmax output
    total += batch * widths[-1] * 4
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("vm.builtin.check_tensor_info",
                     args=[ib.r(0), ib.imm(2), f32,
                           f"main: parameter x expects float32[{batch}, {widths[0]}]"])
        ib.emit_call("vm.builtin.alloc_storage", args=[ib.vm_state(), (total,), ib.imm(0), u8],
                     dst=ib.r(1))
        current = ib.r(0)
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            w = (rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)).astype("float32")
            b = (rng.standard_normal(fan_out) * 0.01).astype("float32")
            out = ib.r(2 + 2 * layer)
            ib.emit_call("vm.builtin.alloc_tensor",
                         args=[ib.r(1), ib.imm(offsets[layer]), (batch, fan_out), f32], dst=out)
            ib.emit_call("gemm", args=[current, w, b, out, 1.0, 1.0, ib.imm(0), ib.imm(1)])
            if layer < len(widths) - 2:
                ib.emit_call("relu", args=[out, out])
            current = out
        probs = ib.r(2 + 2 * (len(widths) - 1))
        ib.emit_call("vm.builtin.alloc_tensor",
                     args=[ib.r(1), ib.imm(offsets[-1]), (batch, widths[-1]), f32], dst=probs)
        ib.emit_call("softmax", args=[current, probs, ib.imm(-1)])
        ib.emit_ret(probs)
    inputs = {"x": rng.standard_normal((batch, widths[0])).astype("float32")}
    return ib.get(), inputs


def _compiled_zoo_model(model_name: str, size: str, target: str) -> tuple[Any, dict, str]:
    """The zoo model compiled for its example inputs' shapes, so memory is planned."""
    from relaxvm.compiler import build
    from relaxvm.models import build_model, example_inputs
    model = build_model(model_name, size)
    inputs = example_inputs(model)
    exe = build(model, target=target, shape_dict={k: v.shape for k, v in inputs.items()})
    return exe, inputs, f"{model_name} ({size})"


def _plan_line(exe: Any) -> str | None:
    """The static plan in one line: arena bytes against the lower bound."""
    plan = getattr(exe, "memory_plan", None)
    if not plan:
        return None
    arenas, lower = plan["planned_peak_bytes"], plan["lower_bound_bytes"]
    ratio = f" ({arenas / lower:.3f}x)" if lower else ""
    return (f"memory plan: {plan['planned_tensors']} tensors in {plan['arenas']} arena(s) of "
            f"{format_bytes(arenas)}, lower bound {format_bytes(lower)}{ratio}")


def run_demo(model_name: str, size: str, device: Device) -> int:
    """Print an output summary, the per-op profile and the pool statistics."""
    from relaxvm.vm import VirtualMachine

    target = "cuda" if device.device_type == CUDA else "cpu"
    with Progress("demo", total=4, stream=sys.stderr) as progress:
        progress.step(f"building {model_name} for {target}")
        t0 = time.perf_counter()
        try:
            exe, inputs, title = _compiled_zoo_model(model_name, size, target)
        except ImportError as exc:
            print(f"relaxvm demo: the ONNX compiler is unavailable ({exc}); running a "
                  f"hand-written MLP program instead", file=sys.stderr)
            exe, inputs = handwritten_mlp()
            title = "hand-written MLP 784-512-256-10"
        build_s = time.perf_counter() - t0
        progress.step(f"running on {device}")
        vm = VirtualMachine(exe, device)
        outputs = vm["main"](**inputs)
        progress.step("timing")
        timing = vm.time_evaluator("main", device, number=5, repeat=5)(**inputs)
        progress.step("profiling")
        report = vm.profile("main", **inputs)

    print(f"relaxvm demo: {title} on {device} (built in {build_s:.2f} s)")
    print("inputs: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in inputs.items()))
    items = outputs if isinstance(outputs, tuple) else (outputs,)
    for i, out in enumerate(items):
        host = out.numpy()
        print(f"output {i}: {host.dtype}{list(host.shape)} mean={float(np.mean(host)):.5f} "
              f"std={float(np.std(host)):.5f} argmax={int(np.argmax(host.reshape(-1)))}")
    print(f"latency: median {timing.median * 1e3:.3f} ms over {len(timing.results)} repeats")
    plan = _plan_line(exe)
    if plan:
        print(plan)
    print()
    print(report.table())
    print("\nMemory pools")
    print(memory_summary())
    return 0
