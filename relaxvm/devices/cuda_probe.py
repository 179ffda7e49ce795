"""Why ``cuda:N`` cannot be used, in words, and which extra matches the NVIDIA driver.

``cupy.cuda.is_available()`` swallows the CUDA error that made it False, so the probe asks
the runtime itself: the DeviceError then says what happened (no driver, a driver older
than the CuPy wheel, no visible GPU, an index past the last GPU) and which of
``relaxvm[cuda12]`` / ``relaxvm[cuda13]`` fits the driver that is installed.
"""

from __future__ import annotations

import os
from typing import Any

from relaxvm.errors import DeviceError

INSTALL_HINT = "install the CUDA extra: pip install 'relaxvm[cuda12]' (or 'relaxvm[cuda13]')"
#: CUDA major versions that have an extra; a newer driver runs the newest of them.
EXTRA_MAJORS = (12, 13)


def import_cupy() -> Any:
    """The ``cupy`` module, or DeviceError with the install hint when it will not import."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise DeviceError(
            f"CuPy could not be imported ({type(exc).__name__}: "
            f"{exc}); {INSTALL_HINT}") from exc
    return cupy


def device_attributes(cupy: Any, index: int) -> dict[str, Any]:
    """The attributes ``Device.attribute`` names, read from the CUDA device properties."""
    props = cupy.cuda.runtime.getDeviceProperties(index)
    raw_name = props["name"]
    return {
        "device_name": raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name),
        "compute_version": f"{props['major']}.{props['minor']}",
        "total_global_memory": props["totalGlobalMem"],
        "multi_processor_count": props["multiProcessorCount"],
        "max_threads_per_block": props["maxThreadsPerBlock"],
        "warp_size": props["warpSize"],
        "max_shared_memory_per_block": props["sharedMemPerBlock"],
        "max_clock_rate": props.get("clockRate", 0),
    }


def check_device(cupy: Any, index: int) -> None:
    """Raise DeviceError saying why ``cuda:index`` is unusable; return if it is usable."""
    runtime = cupy.cuda.runtime
    try:
        count = int(runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, a too-old driver, no device
        raise DeviceError(f"cuda:{index} is not available: the CUDA driver failed "
                          f"({type(exc).__name__}: {exc}); {driver_hint(runtime)}") from exc
    if count == 0:
        raise DeviceError(f"cuda:{index} is not available: no CUDA GPU was found (the driver "
                          f"reports 0 devices); {driver_hint(runtime)}")
    if index >= count:
        raise DeviceError(f"cuda:{index} is not available: this machine has {count} CUDA "
                          f"device(s), indices 0..{count - 1}")


def driver_hint(runtime: Any) -> str:
    """What to install or fix, judged from the driver's and CuPy's CUDA versions."""
    driver = _version(runtime, "driverGetVersion")
    built = _version(runtime, "runtimeGetVersion")
    if not driver:  # cudaDriverGetVersion reports 0 when no driver is installed
        hint = (f"no NVIDIA driver was found (nvidia-smi should list the GPU); install one, "
                f"then {INSTALL_HINT}")
    elif driver // 1000 < EXTRA_MAJORS[0]:
        hint = (f"the NVIDIA driver supports only CUDA {_text(driver)}, older than the CUDA "
                f"{' or '.join(map(str, EXTRA_MAJORS))} that relaxvm's extras need; upgrade "
                f"the driver")
    else:
        extra = f"relaxvm[cuda{min(driver // 1000, EXTRA_MAJORS[-1])}]"
        if built and built // 1000 > driver // 1000:
            hint = (f"CuPy is built for CUDA {_text(built)} but the NVIDIA driver supports "
                    f"only CUDA {_text(driver)}; install the extra that matches the driver: "
                    f"pip uninstall cupy-cuda{built // 1000}x && pip install '{extra}'")
        else:
            hint = (f"the NVIDIA driver supports CUDA {_text(driver)}, which matches "
                    f"pip install '{extra}'")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        hint += f"; note CUDA_VISIBLE_DEVICES={visible!r} limits which GPUs CUDA sees"
    return hint


def _version(runtime: Any, query: str) -> int | None:
    """``runtime.<query>()`` as an int, or None when it fails or does not exist."""
    try:
        return int(getattr(runtime, query)())
    except Exception:
        return None


def _text(version: int) -> str:
    """12040 -> "12.4" (CUDA encodes versions as 1000 * major + 10 * minor)."""
    return f"{version // 1000}.{version % 1000 // 10}"
