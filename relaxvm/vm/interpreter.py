"""VirtualMachine: loads an Executable onto devices and runs its functions.

Loading does all the name work once (TVM's InitFuncPool): packed functions are resolved
to builtins, registered functions or kernel routers; constants move to the first device;
VM functions are translated to Python functions (see ``translate``). Running is then a
plain Python call. Errors raised inside are re-raised with the VM function, instruction
index and callee attached, and the VM keeps no per-call state, so it stays usable.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from relaxvm.devices.device import CPU, Device, cpu
from relaxvm.devices.device import device as parse_device
from relaxvm.errors import ArgumentError, ExecutableFormatError, VMError
from relaxvm.memory.allocator import Allocator
from relaxvm.memory.manager import global_memory_manager, parse_memory_cfg
from relaxvm.objects import DataType, Shape
from relaxvm.tensor import Tensor, tensor
from relaxvm.vm import builtins as _builtins  # noqa: F401  (registers vm.builtin.*)
from relaxvm.vm.closure import VMClosure
from relaxvm.vm.errors import contextualize
from relaxvm.vm.executable import Executable, FuncKind, check_executable
from relaxvm.vm.resolve import direct_kernel_functions, resolve_packed
from relaxvm.vm.translate import INSTRUMENT, PLAIN, Translation, compile_translation


class VMInstrumentReturnKind(enum.IntEnum):
    """What an instrument returns before a call: run it (NO_OP) or skip it (SKIP_RUN)."""
    NO_OP = 0
    SKIP_RUN = 1


class VirtualMachine:
    """Runs an Executable on one device or a list of devices (a CPU is always appended).

    ``memory_cfg``: None (pooled everywhere), "naive"/"pooled", or a dict Device -> kind.
    ``profile=True`` builds the per-op profiling translation at construction, so the first
    ``profile()`` call pays no translation cost; otherwise ``profile()`` builds it on first use.
    The executable is validated first (as loading a file does): a defect raises
    ExecutableFormatError instead of misbehaving at run time.
    """

    NAIVE_ALLOCATOR = 1
    POOLED_ALLOCATOR = 2

    def __init__(self, exe: Executable, device: Device | str | Sequence[Device | str],
                 memory_cfg: str | Mapping[Device, str] | None = None,
                 profile: bool = False) -> None:
        if not isinstance(exe, Executable):
            raise TypeError(f"VirtualMachine: exe must be an Executable, got "
                            f"{type(exe).__name__}")
        check_executable(exe, "VirtualMachine", ExecutableFormatError)
        self.exe = exe
        self.devices = _device_list(device)
        kinds = parse_memory_cfg(memory_cfg, self.devices)
        manager = global_memory_manager()
        self.allocators: list[Allocator] = [
            manager.get_allocator(dev, kind) for dev, kind in zip(self.devices, kinds)]
        # CuPy launches kernels on its current device; a VM on cuda:i (i > 0) makes its
        # device current for the duration of each call.
        gpus = [d for d in self.devices if d.device_type != CPU]
        self._device_context = (gpus[0].backend.activate(gpus[0].index)
                                if gpus and gpus[0].index != 0 else None)
        self._strict_devices = len(set(self.devices)) > len({d.device_type for d in self.devices})
        self.constants = [self._load_constant(c) for c in exe.constants]
        self._is_vm_func = [info.kind == FuncKind.VM_FUNC for info in exe.func_table]
        self._pool: list[Any] = [None] * len(exe.func_table)
        self._kernel_names: set[int] = set()
        for index, info in enumerate(exe.func_table):
            if not self._is_vm_func[index]:
                self._pool[index] = resolve_packed(info.name, self)
        # Functions whose kernel sites are bound to implementations for devices[0], without
        # routers; tensors given to them must be of that device type (see _convert_arg).
        self._direct_functions = direct_kernel_functions(self)
        self._translations: dict[str, Translation] = {}
        self._instrument: Callable[..., Any] | None = None
        self._fns: list[Any] = [None] * len(exe.func_table)
        self._activate(self._translate(PLAIN))
        self._entries: dict[str, Callable[..., Any]] = {}
        self._saved: dict[str, Callable[..., Any]] = {}
        self._inputs: dict[str, list[Any]] = {}
        self._outputs: dict[str, Any] = {}
        self._profiler: Any = None
        if profile:
            from relaxvm.vm.profiler import _profile_translation
            _profile_translation(self)

    # -- loading ------------------------------------------------------------------------
    def _load_constant(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return _tensor_from(value, self.devices[0], self.allocators[0])
        if type(value) is tuple:
            return tuple(self._load_constant(v) for v in value)
        return value

    def _translate(self, mode: str, hook: Any = None) -> Translation:
        from relaxvm.vm.resolve import site_router_factory
        translation = compile_translation(
            self.exe, self._is_vm_func, self._pool, self.constants, self, hook, mode,
            site_router_factory(self))
        if mode != INSTRUMENT:
            self._translations[mode] = translation
        return translation

    def _activate(self, translation: Translation) -> None:
        """Make ``translation`` the one calls run; entries see the change (shared list)."""
        self._active = translation
        self._fns[:] = [translation.functions.get(i) for i in range(len(self._fns))]

    def _all_translations(self) -> list[Translation]:
        found = list(self._translations.values())
        if self._active not in found:
            found.append(self._active)
        return found

    def allocator_for(self, device: Device) -> Allocator:
        """The VM's allocator for ``device``, or the pooled global one if it is not listed."""
        for dev, alloc in zip(self.devices, self.allocators):
            if dev is device:
                return alloc
        return global_memory_manager().get_allocator(device)

    # -- calling ----------------------------------------------------------------------------
    def _function_index(self, name: str, where: str) -> int:
        index = self.exe.func_map.get(name)
        if index is None or not self._is_vm_func[index]:
            import difflib
            names = [i.name for i, vm in zip(self.exe.func_table, self._is_vm_func) if vm]
            close = difflib.get_close_matches(name, names + list(self._saved), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AttributeError(f"{where}: unknown function {name!r}: the executable has no "
                                 f"function {name!r} (functions: {', '.join(names) or 'none'})"
                                 f"{hint}")
        return index

    def _convert_arg(self, value: Any, to_device: bool, checked: bool = False,
                     where: str = "", what: str = "an argument") -> Any:
        """``value`` as the VM takes it: arrays become tensors on the first device, lists
        tuples; with ``to_device``, tensors move there. With ``checked`` (the function's
        kernels are bound for devices[0]), a tensor of another device type is an error
        that reads ``{where}: {what} is a tensor on ...``."""
        if isinstance(value, Tensor):
            home = self.devices[0]
            if to_device and value.device is not home:
                return value.copyto(home)
            if checked and value.device.device_type != home.device_type:
                raise ArgumentError(
                    f"{where}: {what} is a tensor on {value.device}, but this VM runs on "
                    f"{home}; copy it there first (.copyto({home!r}))")
            return value
        if isinstance(value, (np.ndarray, np.generic)):
            return tensor(np.asarray(value), self.devices[0])
        if isinstance(value, list) or type(value) is tuple:
            return tuple(self._convert_arg(v, to_device, checked, where, f"{what}[{i}]")
                         for i, v in enumerate(value))
        return value

    def _bind_args(self, name: str, index: int, args: Sequence[Any],
                   kwargs: Mapping[str, Any], to_device: bool = False) -> list[Any]:
        info = self.exe.func_table[index]
        params = list(info.param_names) or [f"arg{i}" for i in range(info.num_args)]
        if kwargs:
            args = list(args)
            unknown = [k for k in kwargs if k not in params]
            if unknown:
                raise ArgumentError(f"{name}: unexpected keyword argument(s) {unknown}; "
                                    f"parameters are ({', '.join(params)})")
            for position, param in enumerate(params):
                if param in kwargs:
                    if position < len(args):
                        raise ArgumentError(f"{name}: parameter {param} given both "
                                            f"positionally and by keyword")
                    if position > len(args):
                        raise _missing(name, params, params[len(args):position])
                    args.append(kwargs[param])
            if len(args) < info.num_args:
                raise _missing(name, params, params[len(args):])
        if len(args) != info.num_args:
            missing = params[len(args):]
            raise ArgumentError(
                f"{name}: invoking function {name} expects {info.num_args} arguments "
                f"({', '.join(params)}), but {len(args)} arguments were provided"
                + (f"; missing {', '.join(missing)}" if missing else ""))
        checked = index in self._direct_functions
        return [self._convert_arg(a, to_device, checked, name, "parameter " + param)
                for a, param in zip(args, params)]

    def _invoke(self, index: int, args: Sequence[Any]) -> Any:
        fn = self._fns[index]
        try:
            if self._device_context is None:
                return fn(*args)
            with self._device_context:
                return fn(*args)
        except Exception as exc:
            raise contextualize(exc, self) from exc

    def __getitem__(self, name: str) -> Callable[..., Any]:
        saved = self._saved.get(name)
        if saved is not None:
            return saved
        entry = self._entries.get(name)
        if entry is None:
            index = self._function_index(name, f"vm[{name!r}]")
            entry = self._entries[name] = self._make_entry(name, index)
        return entry

    def _make_entry(self, name: str, index: int) -> Callable[..., Any]:
        """The callable ``vm[name]`` returns: a fast path for positional Tensor/scalar args,
        everything else (kwargs, conversion, misuse) through ``_call_named``."""
        nargs = self.exe.func_table[index].num_args
        fns, inputs, vm = self._fns, self._inputs, self
        slow = self._call_named
        if self._device_context is not None:
            return functools.partial(self._call_named, name, index)
        # With the function's kernels bound for devices[0], a tensor elsewhere takes the slow
        # path, which checks its device type.
        home = self.devices[0] if index in self._direct_functions else None

        def entry(*args: Any, **kwargs: Any) -> Any:
            if kwargs or len(args) != nargs or inputs and name in inputs:
                return slow(name, index, *args, **kwargs)
            for a in args:
                if a.__class__ is Tensor:
                    if a.device is home or home is None:
                        continue
                elif a.__class__ in _PASSTHROUGH:
                    continue
                return slow(name, index, *args)
            try:
                return fns[index](*args)
            except Exception as exc:
                raise contextualize(exc, vm) from exc

        entry.__name__ = name
        entry.__qualname__ = f"VirtualMachine[{name!r}]"
        return entry

    def _call_named(self, name: str, index: int, *args: Any, **kwargs: Any) -> Any:
        if name in self._inputs:
            raise VMError(f"{name}: inputs were set with set_input; call "
                          f"invoke_stateful({name!r}) and get_outputs({name!r}) instead")
        return self._invoke(index, self._bind_args(name, index, args, kwargs))

    def invoke_closure(self, closure: Any, *args: Any) -> Any:
        """Call a VMClosure (or VM function value) returned by the VM with ``args``."""
        if not callable(closure):
            raise ArgumentError(f"invoke_closure: closure must be a VMClosure, got "
                                f"{type(closure).__name__}")
        # Unchecked: no VM function with bound kernels can be a closure or function value
        # (direct_kernel_functions), so ``closure`` runs only routed kernels.
        converted = [self._convert_arg(a, False) for a in args]
        try:
            return closure(*converted)
        except Exception as exc:
            raise contextualize(exc, self) from exc

    # -- stateful API -------------------------------------------------------------------------
    def set_input(self, func_name: str, *args: Any, **kwargs: Any) -> None:
        """Store inputs for ``invoke_stateful``; arrays are moved to the first device."""
        index = self._function_index(func_name, "set_input")
        self._inputs[func_name] = self._bind_args(func_name, index, args, kwargs, to_device=True)
        self._outputs.pop(func_name, None)

    def invoke_stateful(self, func_name: str) -> None:
        """Run ``func_name`` on the inputs given to ``set_input``; read with ``get_outputs``."""
        index = self._function_index(func_name, "invoke_stateful")
        if func_name not in self._inputs:
            raise VMError(f"invoke_stateful: no inputs set for stateful call of {func_name}; "
                          f"use set_input first")
        self._outputs[func_name] = self._invoke(index, self._inputs[func_name])

    def get_outputs(self, func_name: str) -> Any:
        """The result of the last ``invoke_stateful(func_name)``; tuples nest as tuples."""
        if func_name not in self._outputs:
            self._function_index(func_name, "get_outputs")  # unknown function: say so
            raise VMError(f"get_outputs: {func_name} has no outputs; call "
                          f"invoke_stateful({func_name!r}) first")
        return self._outputs[func_name]

    def save_function(self, func_name: str, saved_name: str, *args: Any,
                      include_return: bool = True, **kwargs: Any) -> None:
        """Save ``func_name`` with its arguments bound as a zero-argument ``vm[saved_name]``.

        Unlike TVM, a saved name may not shadow a function of the executable.
        """
        index = self._function_index(func_name, "save_function")
        if saved_name in self.exe.func_map:
            raise ValueError(f"save_function: saved_name {saved_name!r} is the name of a "
                             f"function in the executable and cannot be overridden")
        bound = self._bind_args(func_name, index, args, kwargs, to_device=True)

        def saved() -> Any:
            result = self._invoke(index, bound)
            return result if include_return else None

        saved.__name__ = saved_name
        self._saved[saved_name] = saved

    # -- instrumentation, timing, profiling ------------------------------------------------
    def set_instrument(self, instrument: Callable[..., Any] | None) -> None:
        """Call ``instrument(func, func_symbol, before_run, ret_value, *args)`` around every
        Call; returning VMInstrumentReturnKind.SKIP_RUN before a call skips it."""
        if instrument is None:
            self._instrument = None
            self._activate(self._translations[PLAIN])
            return
        if not callable(instrument):
            raise TypeError(f"set_instrument: instrument must be callable, got "
                            f"{type(instrument).__name__}")
        from relaxvm.vm.instrument import make_instrument_hook
        hook, sites = make_instrument_hook(self, instrument)
        self._instrument = instrument
        translation = self._translate(INSTRUMENT, hook)
        sites.extend(translation.sites)
        self._activate(translation)

    def time_evaluator(self, func_name: str, dev: Device, number: int = 10, repeat: int = 1,
                       min_repeat_ms: int = 0, cooldown_interval_ms: int = 0,
                       repeats_to_cooldown: int = 1, f_preproc: str = "",
                       cache_flush_bytes: int = 0) -> Callable[..., Any]:
        """An evaluator: call it with the function's arguments to get a BenchmarkResult."""
        from relaxvm.vm.timer import make_time_evaluator
        return make_time_evaluator(self, func_name, dev, number, repeat, min_repeat_ms,
                                   cooldown_interval_ms, repeats_to_cooldown, f_preproc,
                                   cache_flush_bytes)

    def profile(self, func_name: str, *args: Any, **kwargs: Any) -> Any:
        """Run once to warm up, then once timed per Call; returns a profiler Report."""
        from relaxvm.vm.profiler import profile_call
        return profile_call(self, func_name, args, kwargs)

    # -- introspection --------------------------------------------------------------------------
    def get_function_arity(self, func_name: str) -> int:
        """How many parameters function ``func_name`` takes."""
        return self.exe.func_table[self._function_index(func_name, "get_function_arity")].num_args

    def get_function_param_name(self, func_name: str, index: int) -> str:
        """The name of parameter ``index`` of function ``func_name``."""
        info = self.exe.func_table[self._function_index(func_name, "get_function_param_name")]
        count = len(info.param_names)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise ArgumentError(f"get_function_param_name: index must be an int in [0, {count}) "
                                f"for function {func_name!r}, got {index!r}")
        return info.param_names[index]

    def __repr__(self) -> str:
        return f"<VirtualMachine on {', '.join(map(str, self.devices))}>"


def _missing(name: str, params: list[str], missing: list[str]) -> ArgumentError:
    return ArgumentError(f"{name}: missing argument for parameter(s) {', '.join(missing)} "
                         f"(parameters are ({', '.join(params)}))")


# Entry arguments that need no conversion (Tensors are checked apart).
_PASSTHROUGH = frozenset({int, float, bool, str, type(None), Shape, DataType, VMClosure})


def _device_list(device: Any) -> list[Device]:
    if isinstance(device, (list, tuple)):
        devices = [parse_device(d) for d in device]
        if not devices:
            raise ValueError("VirtualMachine: device list must not be empty")
    else:
        devices = [parse_device(device)]
    if devices[-1].device_type != CPU:
        devices.append(cpu(0))  # shape computations run on the host (TVM's rule)
    return devices


def _tensor_from(value: np.ndarray, dev: Device, allocator: Allocator) -> Tensor:
    from relaxvm.memory.storage import Storage
    from relaxvm.tensor import tensor_in_storage
    out = tensor_in_storage(Storage(allocator.alloc(value.nbytes)), 0, value.shape, value.dtype)
    if dev.device_type == CPU:
        np.copyto(out.array, value)
    else:
        dev.backend.copy_from_host(out.array, value)
    return out

