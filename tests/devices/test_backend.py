"""The backend registry and the DeviceBackend interface."""

from __future__ import annotations

import re

import numpy as np
import pytest

import relaxvm
from relaxvm.devices import DeviceBackend, get_backend
from relaxvm.errors import DeviceError


def test_get_backend_returns_one_backend_per_device_type():
    cpu = get_backend(1)
    assert cpu is get_backend(1) is relaxvm.cpu(5).backend
    assert (cpu.device_type, cpu.name, cpu.xp) == (1, "cpu", np)


def test_get_backend_rejects_unknown_device_types():
    with pytest.raises(DeviceError, match=re.escape(
            "get_backend: no backend for device type 7; known types are [1, 2]")):
        get_backend(7)


def test_base_backend_methods_are_abstract():
    base = DeviceBackend()
    for call in (lambda: base.exists(0), lambda: base.raw_alloc(0, 1),
                 lambda: base.to_numpy(None), lambda: base.create_timer(0)):
        with pytest.raises(NotImplementedError):
            call()
