"""Device placement: give every node a device and copy values that cross devices.

The executable's device list is fixed at build time (``devices[0]`` is the default
compute device; the VM appends the host CPU when the last device is not one). Graph
inputs and constants live on ``devices[0]`` (the VM puts them there). Each node runs on
``devices[0]`` unless ``placement`` names another device for it (by node name or by op),
or the kernel has no implementation for that device type, in which case it falls back
to a CPU device. Wherever a node reads a value that lives elsewhere, a ``to_device``
node is inserted (one per value and destination).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relaxvm.compiler.ir import Graph, Node, Value
from relaxvm.compiler.ops.registry import get_op
from relaxvm.devices.device import CPU, Device, cpu
from relaxvm.errors import BuildError
from relaxvm.kernels.registry import has_kernel


def _host(devices: Sequence[Device]) -> Device:
    for dev in devices:
        if dev.device_type == CPU:
            return dev
    return cpu(0)


def choose_device(node: Node, devices: Sequence[Device],
                  placement: Mapping[str, Device] | None) -> Device:
    """The device a node runs on (see the module docstring for the rules)."""
    wanted = devices[0]
    if placement:
        wanted = placement.get(node.name, placement.get(node.op, wanted))
    if wanted not in devices and wanted != _host(devices):
        raise BuildError(f"place_devices: node {node.name or node.op} is placed on {wanted}, "
                         f"which is not one of the executable's devices "
                         f"{[str(d) for d in devices]}")
    kernel = get_op(node.op).kernel_name
    if kernel and not has_kernel(kernel, wanted.device_type):
        return _host(devices)
    return wanted


def place_devices(graph: Graph, devices: Sequence[Device],
                  placement: Mapping[str, Device] | None = None) -> Graph:
    """Assign ``node.device`` and ``value.device`` everywhere; insert ``to_device`` copies."""
    if not devices:
        raise BuildError("place_devices: devices must name at least one device, got none")
    home = devices[0]
    for v in graph.inputs:
        v.device = home
    copies: dict[tuple[int, Device], Value] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        node.device = choose_device(node, devices, placement)
        node.inputs = [None if v is None else _on(v, node.device, home, copies, nodes)
                       for v in node.inputs]
        for out in node.outputs:
            out.device = node.device
        nodes.append(node)
    graph.nodes = nodes
    for v in graph.constants():
        v.device = home
    return graph


def _on(value: Value, device: Device, home: Device, copies: dict[tuple[int, Device], Value],
        nodes: list[Node]) -> Value:
    where = value.device if value.device is not None else home
    if where == device:
        return value
    key = (value.uid, device)
    if key not in copies:
        copy = Value(f"{value.name}@{device}", value.shape, value.dtype, device=device)
        nodes.append(Node("to_device", [value], [copy], {"device": device},
                          name=f"to_device({value.name})", device=device))
        copies[key] = copy
    return copies[key]
