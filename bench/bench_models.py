"""Zoo models on relaxvm against onnxruntime, PyTorch eager and TVM, in one process.

For each model at its real size (or ``--size tiny``): relaxvm's median latency and the
peak bytes of its device pool, then each installed peer's median latency and the ratio
relaxvm / peer. Every engine's outputs are checked against relaxvm's (against
onnxruntime's CPU session while relaxvm can't run) before it is timed; a peer that
disagrees is reported, not timed. The status column compares relaxvm with the design
brief's target for the model: on the CPU <= 1.2x onnxruntime on the transformers, <= 1.5x
on the MLP, <= 2x on the CNNs; on a GPU <= 1.0x PyTorch eager at batch 1. ``blas %`` is
the share of relaxvm's kernel time spent in BLAS-bound kernels (one profiled run), and
``blas/<peer>`` that time alone over the target peer's whole latency: above the target,
no change outside the BLAS can reach it.

    python bench/bench_models.py                          # every model, real size, CPU
    python bench/bench_models.py --size tiny              # quick run
    python bench/bench_models.py --models mlp,vit --skip-tvm --budget 2 --json out.json
    python bench/bench_models.py --device cuda

Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]   # bench/ for common & peers; repo for relaxvm
from common import add_output_args, blas_note, print_table, write_outputs  # noqa: E402
from peers import OnnxRuntimePeer, RelaxvmSubject, Timing, all_peers, max_rel_error, measure  # noqa: E402

from relaxvm.models import build_model, example_inputs, get_spec, list_models  # noqa: E402

TRANSFORMERS = ("bert", "gpt2", "gpt2_decode", "vit")
CNNS = ("resnet18", "resnet50")
GPU_TARGET = ("torch", 1.0)
SETTLE_S = 0.5
LATE_PEERS = ("tvm",)
BLAS_COLUMNS_NOTE = (
    "blas %: relaxvm's kernel time in matmul / gemm / conv (one profiled run); "
    "blas/<peer>: that time alone over the target peer's whole latency "
    "(above the target, only a faster BLAS can meet it).")


def target_for(model: str, device: str) -> tuple[str, float]:
    """(peer name, largest allowed ratio relaxvm / peer) from the design brief."""
    if device == "cuda":
        return GPU_TARGET
    if model in TRANSFORMERS:
        return "ort", 1.2
    if model in CNNS:
        return "ort", 2.0
    return "ort", 1.5


def progress(message: str) -> None:
    """One line of progress on stderr, with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Measured:
    """What one engine did on one model: latency, its check, or why it didn't run."""

    ms: float | None = None
    error: float | None = None
    peak_bytes: int | None = None
    blas_share: float | None = None
    note: str | None = None


@dataclass
class Case:
    """One model at one size on one device, with the settings of the run."""

    name: str
    size: str
    device: str
    budget_s: float
    tol: float
    seed: int = 0
    batch: int = 1
    notes: list[str] = field(default_factory=list)


def run_relaxvm(case: Case, model: Any, feeds: dict) -> tuple[Measured, list | None]:
    """Build, run, time and read the pool peak of relaxvm; (result, its outputs or None)."""
    subject = RelaxvmSubject()
    reason = subject.unavailable(case.device)
    if reason:
        return Measured(note=f"relaxvm: not available ({reason})"), None
    try:
        progress(f"{case.name}/{case.size}: relaxvm build")
        runner = subject.prepare(model, feeds, case.device)
        outputs = runner.outputs()
        progress(f"{case.name}/{case.size}: relaxvm timing")
        timing = runner.time(case.budget_s)
        peak = runner.peak_bytes()
        share = runner.blas_share()
    except Exception as exc:  # noqa: BLE001 - any failure is a result to report
        return Measured(note=f"relaxvm: failed ({type(exc).__name__}: {exc})"), None
    progress(f"{case.name}/{case.size}: relaxvm {timing.median * 1e3:.3f} ms, "
             f"peak {peak / 2**20:.1f} MiB")
    return Measured(ms=timing.median * 1e3, peak_bytes=peak, blas_share=share), outputs


def reference_outputs(model: Any, feeds: dict) -> list | None:
    """onnxruntime's CPU outputs: the oracle while relaxvm can't run the model."""
    if OnnxRuntimePeer().unavailable("cpu"):
        return None
    return OnnxRuntimePeer().prepare(model, feeds, "cpu").outputs()


def check(outputs: list, reference: list, tol: float) -> tuple[float, str | None]:
    """(largest relative error over outputs, a complaint or None)."""
    if len(outputs) != len(reference):
        return float("inf"), f"{len(outputs)} outputs, reference has {len(reference)}"
    worst = max((max_rel_error(o, r) for o, r in zip(outputs, reference, strict=True)),
                default=0.0)
    return worst, None if worst <= tol else f"outputs differ (max rel err {worst:.2g})"


def run_peer(peer: Any, case: Case, model: Any, feeds: dict, reference: list | None
             ) -> Measured:
    """Prepare one peer, check its outputs, and time it within the budget."""
    reason = peer.unavailable(case.device)
    if reason:
        return Measured(note=f"{peer.name}: not available ({reason})")
    try:
        progress(f"{case.name}/{case.size}: {peer.name} prepare")
        runner = peer.prepare(model, feeds, case.device)
        error, complaint = (None, None)
        if reference is not None:
            error, complaint = check(runner.outputs(), reference, case.tol)
        if complaint:
            return Measured(error=error, note=f"{peer.name}: WRONG, {complaint}")
        progress(f"{case.name}/{case.size}: {peer.name} timing")
        timing: Timing = measure(runner.step, case.budget_s)
    except Exception as exc:  # noqa: BLE001 - any failure is a result to report
        return Measured(note=f"{peer.name}: failed ({type(exc).__name__}: {exc})")
    return Measured(ms=timing.median * 1e3, error=error)


def status(ours: Measured, peers: dict[str, Measured], case: Case) -> tuple[str, str]:
    """(target text, PASS / MISS / n/a) for relaxvm against the brief's target."""
    peer, limit = target_for(case.name, case.device)
    text = f"<={limit:g}x {peer}"
    theirs = peers.get(peer)
    if ours.ms is None or theirs is None or theirs.ms is None:
        return text, "n/a"
    return text, "PASS" if ours.ms / theirs.ms <= limit else "MISS"


def make_row(case: Case, ours: Measured, peers: dict[str, Measured]) -> dict[str, Any]:
    """One table row: latencies, ratios, target, status, peak MiB, the worst output
    check among the peers, and notes."""
    row: dict[str, Any] = {"model": case.name, "size": case.size, "device": case.device,
                           "relaxvm ms": ours.ms}
    for name, result in peers.items():
        row[f"{name} ms"] = result.ms
        ratio = ours.ms / result.ms if ours.ms and result.ms else None
        row[f"rvm/{name}"] = ratio
    row["target"], row["status"] = status(ours, peers, case)
    row["blas %"] = 100 * ours.blas_share if ours.blas_share is not None else None
    target_peer = target_for(case.name, case.device)[0]
    theirs = peers.get(target_peer)
    row[f"blas/{target_peer}"] = (ours.ms * ours.blas_share / theirs.ms
                                  if ours.ms and ours.blas_share is not None and theirs
                                  and theirs.ms else None)
    row["peak MiB"] = ours.peak_bytes / 2**20 if ours.peak_bytes is not None else None
    errors = [m.error for m in peers.values() if m.error is not None]
    row["max err"] = max(errors) if errors else None     # worst peer-vs-reference check
    notes = [m.note for m in (ours, *peers.values()) if m.note] + case.notes
    row["notes"] = "; ".join(notes) or None
    return row


def inputs_of(case: Case) -> tuple[Any, dict]:
    """The zoo model of ``case`` and its seeded example feeds."""
    model = build_model(case.name, case.size, seed=case.seed)
    return model, example_inputs(model, seed=case.seed, batch=case.batch)


def run_peers(case: Case, peers: list[Any], model: Any, feeds: dict, reference: list | None,
              results: dict[str, Measured]) -> None:
    """Run each peer on one model, adding its result to ``results``."""
    for peer in peers:
        results[peer.name] = run_peer(peer, case, model, feeds, reference)
        gc.collect()    # drop the peer's weights before the next one loads its own
        time.sleep(SETTLE_S)    # let the last engine's spinning worker threads go idle
        got = results[peer.name]
        progress(f"{case.name}/{case.size}: {peer.name} "
                 + (f"{got.ms:.3f} ms" if got.ms else got.note or "done"))


def bench_all(cases: list[Case], peers: list[Any]) -> list[dict[str, Any]]:
    """Every engine on every model; one table row per model.

    relaxvm and the fast peers run model by model; the LATE_PEERS (TVM) run afterwards,
    over all models, because minutes of untuned TVM slowed the engines timed right after
    it (GPT-2 decode measured 180 ms after TVM's GPT-2 run, 34 ms without it)."""
    early = [p for p in peers if p.name not in LATE_PEERS]
    late = [p for p in peers if p.name in LATE_PEERS]
    done = []
    for case in cases:
        model, feeds = inputs_of(case)
        ours, reference = run_relaxvm(case, model, feeds)
        if reference is None:
            reference = reference_outputs(model, feeds)
            case.notes.append("peers checked against onnxruntime CPU")
        results: dict[str, Measured] = {}
        run_peers(case, early, model, feeds, reference, results)
        done.append((case, ours, reference, results))
    for case, _, reference, results in done if late else []:
        run_peers(case, late, *inputs_of(case), reference, results)
    return [make_row(case, ours, results) for case, ours, _, results in done]


def chosen_models(text: str | None) -> list[str]:
    """The --models list (checked against the zoo), or every zoo model."""
    if not text:
        return [name for name, _ in list_models()]
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        get_spec(name)      # raises ArgumentError naming the zoo for an unknown name
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated zoo names (default: all)")
    parser.add_argument("--size", default="full",
                        help='"full" (each model\'s real size, default), "tiny", or a size name')
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--skip-tvm", action="store_true", help="leave TVM out (slow on CNNs)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of timing per engine per model (default 3)")
    parser.add_argument("--tol", type=float, default=1e-3,
                        help="largest max|diff|/max(1, max|ref|) accepted (default 1e-3)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    add_output_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    peers = [p for p in all_peers() if not (args.skip_tvm and p.name == "tvm")]
    cases = [Case(name, get_spec(name).full_size if args.size == "full" else args.size,
                  args.device, args.budget, args.tol, args.seed, args.batch)
             for name in chosen_models(args.models)]
    rows = bench_all(cases, peers)
    title = f"zoo models, batch {args.batch}, median latency (ms) on {args.device}"
    print_table(rows, title=title)
    print(BLAS_COLUMNS_NOTE)
    note = blas_note() if args.device == "cpu" else None
    if note:
        print(note)
    write_outputs(rows, args.csv, args.json, meta={"args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
