"""The ONNX backend node tests, as a harness any runner can be measured with.

The ``onnx`` wheel ships the node-test generators (``onnx.backend.test.case.node``) but
not their data. :func:`generate_cases` runs onnx's own collector once and writes every
case the way onnx's ``backend-test-tools generate-data`` lays cases out
(``<case>/model.onnx``, ``<case>/test_data_set_0/input_0.pb`` ...) into a cache folder,
with a ``manifest.json`` naming each case, the op it tests and its tolerances.

A runner is ``runner(model, inputs) -> outputs``. :func:`run_case` runs one, compares its
outputs with onnx's expected ones at the case's tolerances (onnx's defaults: rtol 1e-3,
atol 1e-7) and classifies the case as ``pass``, ``fail`` (wrong numbers, shapes or
dtypes), ``unsupported`` (the runner raised :class:`relaxvm.UnsupportedOpError`) or
``error`` (anything else raised).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relaxvm.errors import UnsupportedOpError

ENV_VAR = "RELAXVM_ONNX_CASES"
MANIFEST = "manifest.json"
STATUSES = ("pass", "fail", "unsupported", "error")
#: Ops whose outputs are random draws: no runner can match the stored outputs.
RANDOM_OPS = frozenset({"Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike",
                        "RandomUniform", "RandomUniformLike"})
Runner = Callable[[Any, list[Any]], Sequence[Any]]


@dataclass(frozen=True)
class NodeCase:
    """One generated case on disk: its folder, the op it tests and its tolerances."""

    name: str
    path: Path
    op: str
    ops: tuple[str, ...]
    rtol: float = 1e-3
    atol: float = 1e-7

    @property
    def expanded(self) -> bool:
        """True for the variants where onnx replaced the op by its function body."""
        return "_expanded" in self.name


@dataclass
class LoadedCase:
    """A case read into memory: the ModelProto, its inputs and the expected outputs."""

    case: NodeCase
    model: Any
    inputs: list[Any]
    expected: list[Any]


@dataclass
class CaseResult:
    """What happened when a runner ran one case."""

    name: str
    op: str
    status: str
    message: str = ""
    seconds: float = 0.0


# -- generation ---------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$RELAXVM_ONNX_CASES`` or ``~/.cache/relaxvm/onnx-node-tests/<onnx version>``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    import onnx
    return Path.home() / ".cache" / "relaxvm" / "onnx-node-tests" / onnx.__version__


def generate_cases(dest: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Write every onnx node test case under ``dest`` (default: the cache) and return it.

    Does nothing when ``dest`` already holds a manifest for this onnx version, unless
    ``force``. Cases are written to a temporary sibling folder and renamed into place,
    so an interrupted or concurrent run never leaves a half-written cache behind.
    """
    import onnx
    root = Path(dest) if dest is not None else default_cache_dir()
    if not force and _manifest_version(root) == onnx.__version__:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        entries = [_write_case(staging, tc) for tc in _collect_node_cases()]
        _assign_tested_ops(entries)
        manifest = {"onnx_version": onnx.__version__, "cases": entries}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if not force and _manifest_version(root) == onnx.__version__:
            return root  # another process finished first; keep its cache
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _manifest_version(root: Path) -> str | None:
    try:
        return json.loads((root / MANIFEST).read_text()).get("onnx_version")
    except (OSError, ValueError):
        return None


def _collect_node_cases() -> list[Any]:
    """onnx's node TestCases (its generators run on import and record each case)."""
    import warnings
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            from onnx.backend.test.loader import load_node_model_tests
            return list(load_node_model_tests())
        except ImportError:  # older onnx: collect straight from the case package
            from onnx.backend.test.case import node
            return list(node.collect_testcases())


def _write_case(root: Path, testcase: Any) -> dict[str, Any]:
    """Write one onnx TestCase as model.onnx + test_data_set_<i>/{input,output}_<j>.pb."""
    folder = root / testcase.name
    folder.mkdir()
    model = testcase.model
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    graph = model.graph
    for i, (inputs, outputs) in enumerate(testcase.data_sets):
        data_dir = folder / f"test_data_set_{i}"
        data_dir.mkdir()
        for prefix, values, infos in (("input", inputs, graph.input),
                                      ("output", outputs, graph.output)):
            for j, value in enumerate(values):
                proto = _value_to_proto(value, infos[j])
                (data_dir / f"{prefix}_{j}.pb").write_bytes(proto.SerializeToString())
    ops = sorted({_op_name(n) for n in _all_nodes(graph)})
    return {"name": testcase.name, "ops": ops, "top": [_op_name(n) for n in graph.node],
            "rtol": testcase.rtol, "atol": testcase.atol}


def _value_to_proto(value: Any, info: Any) -> Any:
    """A TensorProto / SequenceProto / OptionalProto / MapProto for one value."""
    from onnx import TensorProto, numpy_helper
    kind = info.type.WhichOneof("value")
    if kind == "sequence_type":
        return numpy_helper.from_list(value, info.name)
    if kind == "optional_type":
        return numpy_helper.from_optional(value, info.name)
    if kind == "map_type":
        return numpy_helper.from_dict(value, info.name)
    if isinstance(value, TensorProto):
        return value
    return numpy_helper.from_array(np.asarray(value), info.name)


def _all_nodes(graph: Any) -> Iterable[Any]:
    """Every node of a graph, including those inside If/Loop/Scan subgraphs."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def _op_name(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _assign_tested_ops(entries: list[dict[str, Any]]) -> None:
    """Name the op each case tests: its (single) top-level node's op, or, for an
    ``_expanded`` case, the op of the case it expands (its graph holds the function body)."""
    by_name = {e["name"]: e for e in entries}
    for entry in entries:
        base = by_name.get(entry["name"].split("_expanded")[0], entry)
        entry["op"] = "+".join(dict.fromkeys(base["top"]))
    for entry in entries:
        del entry["top"]


# -- loading ------------------------------------------------------------------------------
def list_cases(root: str | os.PathLike[str] | None = None, pattern: str | None = None,
               generate: bool = True) -> list[NodeCase]:
    """The cases under ``root`` (generated first if missing), optionally those whose name
    matches the regular expression ``pattern``; sorted by name."""
    folder = Path(root) if root is not None else default_cache_dir()
    if generate:
        generate_cases(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except OSError as exc:
        raise FileNotFoundError(f"list_cases: no {MANIFEST} in {folder}; run generate_cases() "
                                f"first") from exc
    regex = re.compile(pattern) if pattern else None
    cases = [NodeCase(e["name"], folder / e["name"], e["op"], tuple(e["ops"]),
                      float(e["rtol"]), float(e["atol"]))
             for e in manifest["cases"] if regex is None or regex.search(e["name"])]
    return sorted(cases, key=lambda c: c.name)


def load_case(case: NodeCase, data_set: int = 0) -> LoadedCase:
    """Read a case's model and one data set of inputs and expected outputs."""
    import onnx
    model = onnx.load(str(case.path / "model.onnx"))
    data_dir = case.path / f"test_data_set_{data_set}"
    inputs = _read_values(data_dir, "input", model.graph.input)
    expected = _read_values(data_dir, "output", model.graph.output)
    return LoadedCase(case, model, inputs, expected)


def _read_values(data_dir: Path, prefix: str, infos: Sequence[Any]) -> list[Any]:
    count = len(list(data_dir.glob(f"{prefix}_*.pb")))
    return [_proto_to_value((data_dir / f"{prefix}_{j}.pb").read_bytes(), infos[j])
            for j in range(count)]


def _proto_to_value(data: bytes, info: Any) -> Any:
    """Parse one .pb file according to the graph's declared type for it."""
    import onnx
    from onnx import numpy_helper
    kind = info.type.WhichOneof("value")
    proto_type, convert = {
        "sequence_type": (onnx.SequenceProto, numpy_helper.to_list),
        "optional_type": (onnx.OptionalProto, numpy_helper.to_optional),
        "map_type": (onnx.MapProto, numpy_helper.to_dict),
    }.get(kind, (onnx.TensorProto, numpy_helper.to_array))
    proto = proto_type()
    proto.ParseFromString(data)
    return convert(proto)


# -- comparing and running ----------------------------------------------------------------
def compare_outputs(expected: Sequence[Any], actual: Sequence[Any], rtol: float = 1e-3,
                    atol: float = 1e-7) -> None:
    """Raise AssertionError describing the first output that differs from ``expected``.

    Arrays must match in shape and dtype; numbers within ``atol + rtol * |expected|``
    (NaN where NaN is expected); strings, bools and objects exactly. Sequences compare
    item by item; an empty optional is None.
    """
    actual = list(actual)
    if len(actual) != len(expected):
        raise AssertionError(f"expected {len(expected)} outputs, got {len(actual)}")
    for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
        _compare_value(want, got, rtol, atol, f"output {i}")


def _compare_value(want: Any, got: Any, rtol: float, atol: float, where: str) -> None:
    if want is None or got is None:
        if want is not got:
            raise AssertionError(f"{where}: expected {_describe(want)}, got {_describe(got)}")
        return
    if isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(want):
            raise AssertionError(f"{where}: expected a sequence of {len(want)}, got "
                                 f"{_describe(got)}")
        for j, (w, g) in enumerate(zip(want, got, strict=True)):
            _compare_value(w, g, rtol, atol, f"{where}[{j}]")
        return
    want, got = np.asarray(want), as_numpy(got)
    text = want.dtype.kind in "OUS" and got.dtype.kind in "OUS"  # onnx strings: any str dtype
    if want.shape != got.shape or (want.dtype != got.dtype and not text):
        raise AssertionError(f"{where}: expected {_describe(want)}, got {_describe(got)}")
    try:
        if text or want.dtype.kind == "b":
            np.testing.assert_array_equal(got, want)
            return
        if want.dtype.name == "bfloat16":
            rtol = max(rtol, 2 ** -6)  # two bfloat16 steps, as onnx's own backend test allows
        elif want.dtype == np.float16:
            # Two float16 steps: onnx computes its float16 expectations op by op in float16,
            # we accumulate matmul/softmax in float32 and round once (closer to the float64
            # truth, e.g. test_attention_4d_causal_fp16_expanded), which can differ by 2 ulp.
            rtol = max(rtol, 2 ** -9)
        if want.dtype.kind != "c":  # ml_dtypes types (bfloat16, float8, int4) go via float64
            want, got = want.astype(np.float64), got.astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    except AssertionError as exc:
        raise AssertionError(f"{where}: {str(exc).strip()}") from None


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"{value.dtype.name}{list(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a sequence of {len(value)}"
    return type(value).__name__


def as_numpy(value: Any) -> np.ndarray:
    """A host ndarray from a NumPy/CuPy array, a relaxvm Tensor or a scalar."""
    if hasattr(value, "numpy") and callable(value.numpy):
        return np.asarray(value.numpy())
    if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__"):
        return value.get()
    return np.asarray(value)


def run_case(case: NodeCase | LoadedCase, runner: Runner) -> CaseResult:
    """Run one case with ``runner`` and classify the outcome (never raises)."""
    start = time.perf_counter()
    name = case.case.name if isinstance(case, LoadedCase) else case.name
    op = case.case.op if isinstance(case, LoadedCase) else case.op
    try:
        loaded = case if isinstance(case, LoadedCase) else load_case(case)
        outputs = runner(loaded.model, list(loaded.inputs))
    except UnsupportedOpError as exc:
        return CaseResult(name, op, "unsupported", str(exc), time.perf_counter() - start)
    except Exception as exc:  # any other failure of the runner is an "error"
        return CaseResult(name, op, "error", f"{type(exc).__name__}: {exc}",
                          time.perf_counter() - start)
    try:
        compare_outputs(loaded.expected, outputs, loaded.case.rtol, loaded.case.atol)
    except AssertionError as exc:
        return CaseResult(name, op, "fail", str(exc).strip(), time.perf_counter() - start)
    return CaseResult(name, op, "pass", "", time.perf_counter() - start)


def run_cases(cases: Sequence[NodeCase], runner: Runner,
              on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Run every case in order; ``on_result`` is called after each (for progress)."""
    results = []
    for case in cases:
        result = run_case(case, runner)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summarize(results: Iterable[CaseResult]) -> dict[str, Any]:
    """``{"overall": {status: n}, "per_op": {op: {status: n}}}`` with every status present."""
    overall: Counter[str] = Counter()
    per_op: dict[str, Counter[str]] = {}
    for r in results:
        overall[r.status] += 1
        per_op.setdefault(r.op, Counter())[r.status] += 1
    return {"overall": _all_statuses(overall),
            "per_op": {op: _all_statuses(c) for op, c in sorted(per_op.items())}}


def _all_statuses(counter: Counter[str]) -> dict[str, int]:
    return {status: counter.get(status, 0) for status in STATUSES}


# -- runners ------------------------------------------------------------------------------
def reference_runner(model: Any, inputs: list[Any]) -> list[Any]:
    """onnx's own ``ReferenceEvaluator``: the harness's known-good runner."""
    from onnx.reference import ReferenceEvaluator
    names = [i.name for i in model.graph.input]
    return list(ReferenceEvaluator(model).run(None, dict(zip(names, inputs, strict=False))))


def make_relaxvm_runner(target: str = "cpu") -> Runner:
    """A runner that imports the model with relaxvm's frontend, builds it for ``target``
    and runs ``main`` in a VirtualMachine. The model is compiled with the sizes it
    declares (symbolic ones stay symbolic); when that is unsupported (a size that decides
    a rank, such as the length of a run-time axes input), it is compiled again for the
    inputs' concrete shapes, as ``relaxvm run`` does by default. A sequence input (a
    list) is passed as its elements, with its length given to the frontend
    (``sequence_lengths``); an empty optional input (None) as nothing
    (``empty_optionals``); sequence and optional outputs are regrouped by the graph's
    ``output_layout``. While the frontend, compiler or VM are not available, every case
    reports "unsupported" saying which piece is missing."""
    def run(model: Any, inputs: list[Any]) -> list[Any]:
        frontend, build, vm_class = _relaxvm_pipeline()
        if any(isinstance(x, dict) for x in inputs):
            raise UnsupportedOpError("relaxvm_runner: map inputs are not supported")
        import relaxvm
        from relaxvm.frontend.onnx.sequence import nest_outputs
        device = relaxvm.device(target)
        infos = _graph_inputs(model)
        lengths = {v.name: len(x) for v, x in zip(infos, inputs, strict=False)
                   if isinstance(x, (list, tuple))}
        empty = [v.name for v, x in zip(infos, inputs, strict=False) if x is None]
        try:
            graph = frontend(model, sequence_lengths=lengths, empty_optionals=empty)
            exe = build(graph, target=target)
        except UnsupportedOpError:
            shapes = {v.name: _shape_of(x) for v, x in zip(infos, inputs, strict=False)
                      if x is not None}
            graph = frontend(model, shape_dict=shapes, sequence_lengths=lengths,
                             empty_optionals=empty)
            exe = build(graph, target=target)
        vm = vm_class(exe, device)
        args = [a for x in inputs if x is not None
                for a in (x if isinstance(x, (list, tuple)) else [x])]
        layout = getattr(graph, "metadata", {}).get("output_layout")
        return nest_outputs(layout, _flatten(vm["main"](*args)))
    return run


def _shape_of(value: Any) -> Any:
    """An input's shape; a list of element shapes for a sequence."""
    if isinstance(value, (list, tuple)):
        return [tuple(np.shape(x)) for x in value]
    return tuple(np.shape(value))


def _graph_inputs(model: Any) -> list[Any]:
    """The graph inputs that are not initializers (IR < 4 models list both)."""
    weights = {init.name for init in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in weights]


def _relaxvm_pipeline() -> tuple[Any, Any, Any]:
    try:
        from relaxvm.compiler import build
        from relaxvm.frontend import from_onnx
        from relaxvm.vm import VirtualMachine
    except (ImportError, AttributeError) as exc:
        raise UnsupportedOpError(f"relaxvm_runner: the ONNX pipeline (relaxvm.frontend."
                                 f"from_onnx, relaxvm.compiler.build, relaxvm.vm."
                                 f"VirtualMachine) is not available yet: {exc}") from exc
    return from_onnx, build, VirtualMachine


def _flatten(result: Any) -> list[Any]:
    """The VM's return value as a list of outputs (a tuple holds several)."""
    if isinstance(result, (tuple, list)):
        return [list(map(as_numpy, r)) if isinstance(r, (tuple, list)) else as_numpy(r)
                for r in result]
    return [as_numpy(result)]


relaxvm_runner: Runner = make_relaxvm_runner("cpu")
"""The default relaxvm runner: build for the CPU and run there."""
