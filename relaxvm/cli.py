"""The ``relaxvm`` command line: run, profile, compile, inspect, devices, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.devices.device import Device, cpu, cuda
from relaxvm.devices.device import device as parse_device
from relaxvm.errors import RelaxVMError


def best_device() -> Device:
    """cuda(0) when a GPU is usable, else cpu(0)."""
    return cuda(0) if cuda(0).exist else cpu(0)


def parse_device_arg(text: str | None) -> Device:
    if text in (None, "auto"):
        return best_device()
    return parse_device(text)


def parse_memory_cfg_arg(text: str | None) -> Any:
    """``pooled`` | ``naive`` | ``cuda:0=pooled,cpu=naive`` -> a memory_cfg value."""
    if text is None:
        return None
    if "=" not in text:
        return text
    cfg: dict[Device, str] = {}
    for part in text.split(","):
        name, sep, kind = part.partition("=")
        if not sep:
            raise SystemExit(f"relaxvm: --memory-cfg entry {part!r} must look like cpu=naive")
        cfg[parse_device(name.strip())] = kind.strip()
    return cfg


def load_inputs(specs: Sequence[str]) -> dict[str, np.ndarray]:
    """``NAME=FILE.npy`` pairs -> arrays (loaded with allow_pickle=False)."""
    inputs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"relaxvm: --input {spec!r} must look like NAME=FILE.npy")
        inputs[name] = np.load(path, allow_pickle=False)
    return inputs


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx model or a compiled .rvx executable")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:i (default: best)")
    p.add_argument("--memory-cfg", default=None,
                   help="pooled | naive | per device, e.g. cuda:0=pooled,cpu=naive")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--shape", action="append", default=[], metavar="DIM=VALUE",
                   help="bind a symbolic dimension, e.g. batch=1")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaxvm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a model and summarise its outputs")
    _add_model_args(p)
    p.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--memory-report", action="store_true",
                   help="print planned vs unplanned peak pool bytes")
    p.add_argument("--save-outputs", metavar="DIR", help="write outputs as .npy files")
    p = sub.add_parser("profile", help="per-op timing table")
    _add_model_args(p)
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    p.add_argument("--csv", metavar="OUT.csv")
    p.add_argument("--json", metavar="OUT.json")
    p = sub.add_parser("compile", help="compile an ONNX model to an executable file")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shape", action="append", default=[], metavar="DIM=VALUE")
    p = sub.add_parser("inspect", help="print an executable's listing and statistics")
    p.add_argument("executable")
    sub.add_parser("devices", help="list devices with telemetry")
    p = sub.add_parser("demo", help="build a zoo model, run and profile it on the best device")
    p.add_argument("--model", default="bert", help="zoo model name (default bert)")
    p.add_argument("--size", default="tiny")
    p.add_argument("--device", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from relaxvm import commands
    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except RelaxVMError as exc:
        print(f"relaxvm {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as exc:
        print(f"relaxvm {args.command}: {exc}", file=sys.stderr)
        return 1



if __name__ == "__main__":
    sys.exit(main())
