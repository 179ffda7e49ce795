"""Selection kernels with ONNX semantics: top-k, hardmax, one-hot (filled in)."""
