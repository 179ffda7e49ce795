"""The ``relaxvm`` command line: run, profile, compile, inspect, devices, demo.

This module turns arguments into values (devices, memory configs, the inputs of an ONNX
model) and parses the command line; ``commands.py`` does each subcommand's work.
``run`` and ``profile`` accept an ``.onnx`` model or a compiled ``.rvx`` executable. An ONNX
model is compiled for the concrete shapes of its inputs (the ``--input`` files, seeded
example inputs for the rest), so its memory is planned statically; ``--dynamic`` keeps
symbolic dimensions instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from relaxvm.devices.device import Device, cpu, cuda
from relaxvm.devices.device import device as parse_device
from relaxvm.errors import ArgumentError, RelaxVMError, UnsupportedOpError


def best_device() -> Device:
    """cuda(0) when a GPU is usable, else cpu(0)."""
    return cuda(0) if cuda(0).exist else cpu(0)


def parse_device_arg(text: str | None) -> Device:
    """``auto`` (or None) -> the best device; otherwise ``cpu``, ``cuda`` or ``cuda:i``."""
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
        if not sep or not name:
            raise ArgumentError(f"--input {spec!r} must look like NAME=FILE.npy")
        if name in inputs:
            raise ArgumentError(f"--input {name} is given twice")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArgumentError(f"--input {name}: cannot read {path!r} as a .npy array "
                                f"({exc})") from None
    return inputs


def parse_shape_args(specs: Sequence[str]) -> dict[str, int]:
    """``DIM=VALUE`` pairs -> sizes of symbolic dimensions."""
    out: dict[str, int] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ArgumentError(f"--shape {spec!r} must look like batch=1 (a name and an "
                                f"int >= 1)")
        out[name.strip()] = int(value)
    return out


Dims = list[int | str | None]   # static size, symbolic name, or unnamed symbolic size


def _input_specs(model: Any) -> dict[str, tuple[Dims | None, np.dtype, int]]:
    """Graph input name -> (dims, NumPy dtype, ONNX element type), initializers skipped."""
    from onnx import helper
    weights = {t.name for t in model.graph.initializer}
    specs = {}
    for info in model.graph.input:
        if info.name in weights:
            continue
        if not info.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"input {info.name!r} is not a tensor (sequences, maps "
                                     f"and optionals are not supported)")
        tensor_type = info.type.tensor_type
        dims: Dims | None = None   # unknown rank: only an --input file can say
        if tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else
                    (d.dim_param or None) for d in tensor_type.shape.dim]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        specs[info.name] = (dims, dtype, tensor_type.elem_type)
    return specs


def _describe(dims: Any, dtype: np.dtype) -> str:
    return f"{dtype}[{', '.join('?' if d is None else str(d) for d in dims)}]"


def _bind(name: str, array: np.ndarray, dims: Dims | None, dtype: np.dtype,
          bound: dict[str, int]) -> None:
    """Check ``array`` against the input's type; record the sizes of its symbolic dims."""
    got = f"{array.dtype}{list(array.shape)}"
    expected = _describe(array.shape if dims is None else dims, dtype)
    if dims is None:
        dims = list(array.shape)   # the model does not say; the file decides
    if array.dtype != dtype:
        raise ArgumentError(f"--input {name}: expected {expected}, got {got} (convert it with "
                            f".astype({dtype.name!r}))")
    if array.ndim != len(dims):
        raise ArgumentError(f"--input {name}: expected {expected} ({len(dims)} dimensions), "
                            f"got {got}")
    for axis, (dim, size) in enumerate(zip(dims, array.shape)):
        if isinstance(dim, int) and dim != size:
            raise ArgumentError(f"--input {name}: expected {expected}, got {got} "
                                f"(dimension {axis} must be {dim})")
        if isinstance(dim, str) and bound.setdefault(dim, size) != size:
            raise ArgumentError(f"--input {name}: expected {expected} with {dim}="
                                f"{bound[dim]} (from --shape or another input), got {got}")


def _check_names(specs: Mapping[str, Any], given: Mapping[str, Any], dims: Mapping[str, int],
                 where: str) -> None:
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ArgumentError(f"--input names {unknown} are not inputs of {where} "
                            f"(inputs: {', '.join(specs) or 'none'})")
    symbols = {d for spec_dims, _, _ in specs.values() for d in spec_dims or ()
               if isinstance(d, str)}
    if set(dims) - symbols:
        raise ArgumentError(f"--shape names {sorted(set(dims) - symbols)} are not symbolic "
                            f"dimensions of {where} (symbolic: "
                            f"{', '.join(sorted(symbols)) or 'none'})")


def onnx_inputs(model: Any, given: Mapping[str, np.ndarray], dims: Mapping[str, int],
                seed: int = 0, where: str = "the model") -> dict[str, np.ndarray]:
    """Concrete inputs for every graph input of ``model``, in graph order: the ``given``
    arrays (checked against the model), seeded example inputs for the rest.

    A symbolic dimension takes its size from ``dims`` (``--shape``), then from a given
    array that has it, then from the model's ``relaxvm.dim.<name>`` metadata, else 1;
    an unnamed one is 1.
    """
    from onnx import ModelProto, helper

    from relaxvm.models import example_inputs
    from relaxvm.models.graph_builder import DIM_KEY
    specs = _input_specs(model)
    _check_names(specs, given, dims, where)
    bound = dict(dims)
    for name, (spec_dims, dtype, _) in specs.items():
        if name in given:
            _bind(name, np.asarray(given[name]), spec_dims, dtype, bound)
    meta = {p.key: p.value for p in model.metadata_props}
    # A stub model whose inputs have every size resolved lets example_inputs fill any
    # model's inputs (not only the zoo's), with its value ranges, without copying weights.
    stub = ModelProto()
    stub.metadata_props.extend(model.metadata_props)
    for name, (spec_dims, _, elem_type) in specs.items():
        if name in given:
            continue
        if spec_dims is None:
            raise ArgumentError(f"input {name!r} has no shape in {where}: pass --input "
                                f"{name}=FILE.npy")
        shape = [d if isinstance(d, int) else 1 if d is None else
                 bound.setdefault(d, int(meta.get(DIM_KEY + d, 1))) for d in spec_dims]
        stub.graph.input.append(helper.make_tensor_value_info(name, elem_type, shape))
    generated = example_inputs(stub, seed=seed)
    return {name: np.asarray(given[name]) if name in given else generated[name]
            for name in specs}


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return int(text)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx model or a compiled .rvx executable")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:i (default: best)")
    p.add_argument("--memory-cfg", default=None,
                   help="pooled | naive | per device, e.g. cuda:0=pooled,cpu=naive")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array; inputs not given are seeded example inputs")
    p.add_argument("--shape", action="append", default=[], metavar="DIM=VALUE",
                   help="size of a symbolic dimension for generated inputs, e.g. batch=4 "
                        "(default: the model's relaxvm.dim.* metadata, else 1)")
    p.add_argument("--dynamic", action="store_true",
                   help="keep symbolic dimensions: compile once for any size (memory is "
                        "then allocated per tensor instead of planned)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")


def make_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="relaxvm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a model and summarise its outputs")
    _add_model_args(p)
    p.add_argument("--repeat", type=positive_int, default=10, help="timed runs (default 10)")
    p.add_argument("--memory-report", action="store_true",
                   help="measure planned vs unplanned (opt_level=0) peak pool bytes and "
                        "print them with the static plan against its lower bound")
    p.add_argument("--json", metavar="OUT.json",
                   help="write latency, peak pool bytes and (with --memory-report) the "
                        "memory report as JSON")
    p.add_argument("--save-outputs", metavar="DIR",
                   help="write outputs as DIR/output_<i>.npy")
    p = sub.add_parser("profile", help="per-op timing table")
    _add_model_args(p)
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    p.add_argument("--csv", metavar="OUT.csv")
    p.add_argument("--json", metavar="OUT.json")
    p = sub.add_parser("compile", help="compile an ONNX model to an executable file")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--shape", action="append", default=[], metavar="DIM=VALUE",
                   help="fix a symbolic dimension (others stay symbolic)")
    p = sub.add_parser("inspect", help="print an executable's listing and statistics")
    p.add_argument("executable")
    sub.add_parser("devices", help="list devices with telemetry")
    p = sub.add_parser("demo", help="build a zoo model, run and profile it on the best device")
    p.add_argument("--model", default="bert", help="zoo model name (default bert)")
    p.add_argument("--size", default="tiny")
    p.add_argument("--device", default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; errors print one line and return 1."""
    args = make_parser().parse_args(argv)
    from relaxvm import commands
    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except RelaxVMError as exc:
        print(f"relaxvm {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"relaxvm {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"relaxvm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
