"""Test harnesses for relaxvm: the ONNX backend node-test suite (``onnx_node_suite``).

Importing this package imports nothing heavy; ``onnx`` is loaded only when a harness
function needs it.
"""
