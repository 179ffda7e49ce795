"""Signal and small linear-algebra kernels with ONNX semantics: dft, stft,
mel_weight_matrix, det, bitcast and col2im.

Complex tensors are ONNX's real representation: a trailing axis of 2 (real, imaginary),
or of 1 for a real signal. Transforms run on the array module's ``fft`` (NumPy, CuPy) in
the input's precision; float16 and bfloat16 are computed in float32 and rounded once.
``mel_weight_matrix`` builds its small table on the host. ``bitcast`` reinterprets bytes
through a view, so the bit widths must match (:data:`DTYPE_BITS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError
from relaxvm.kernels.registry import register_template

#: Bits per element of the dtypes whose in-memory width (one byte for ml_dtypes' low-bit
#: types) differs from their ONNX width; every other dtype has ``itemsize * 8``.
DTYPE_BITS = {"float4_e2m1fn": 4, "float6_e2m3fn": 6, "float6_e3m2fn": 6, "int4": 4,
              "uint4": 4, "int2": 2, "uint2": 2}


def dtype_bits(dtype: Any) -> int:
    """The ONNX bit width of one element of ``dtype`` (bool counts 8)."""
    dt = np.dtype(dtype)
    return DTYPE_BITS.get(dt.name, dt.itemsize * 8)


def work_dtype(dtype: Any) -> np.dtype:
    """The float dtype a kernel computes in: float64 and float32 as given, narrower
    floats (float16, bfloat16) and everything else in float32."""
    dt = np.dtype(dtype)
    return dt if dt in (np.dtype(np.float64), np.dtype(np.float32)) else np.dtype(np.float32)


def _complex_dtype(real: np.dtype) -> np.dtype:
    return np.dtype(np.complex128 if real == np.float64 else np.complex64)


def _to_signal(xp: Any, a: Any, where: str) -> Any:
    """ONNX's [..., 1] (real) or [..., 2] (complex) layout as a real or complex array."""
    if a.ndim < 2 or a.shape[-1] not in (1, 2):
        raise ArgumentError(f"{where}: the input's last axis must be 1 (real) or 2 (complex), "
                            f"got shape {list(a.shape)}")
    wd = work_dtype(a.dtype)
    if a.shape[-1] == 1:
        return a[..., 0].astype(wd)
    cd = _complex_dtype(wd)
    return a[..., 0].astype(cd) + a[..., 1].astype(cd) * 1j


def _store_complex(o: Any, z: Any, where: str) -> None:
    """Write complex ``z`` into ``o``'s [..., 2] layout (shapes must agree)."""
    if o.shape[:-1] != z.shape or o.shape[-1] != 2:
        raise ArgumentError(f"{where}: out must have shape {[*z.shape, 2]}, got "
                            f"{list(o.shape)}")
    o[..., 0] = z.real
    o[..., 1] = z.imag


def _dft_axis(axis: int, ndim: int) -> int:
    """ONNX DFT axis in [-r, -2] or [0, r - 2] as a non-negative axis of the signal."""
    if not (-ndim <= axis <= -2 or 0 <= axis <= ndim - 2):
        raise ArgumentError(f"dft: axis must be in [{-ndim}, -2] or [0, {ndim - 2}] for a "
                            f"{ndim}-d input, got {axis}")
    return axis % ndim


@register_template("dft")
def dft(xp: Any, x: Any, out: Any, axis: int = 1, inverse: int = 0, onesided: int = 0,
        dft_length: int | None = None) -> None:
    """ONNX DFT along ``axis``: full (fft/ifft), one-sided forward (rfft, real input) or
    one-sided inverse (irfft: complex half spectrum in, real [..., 1] signal out).

    ``dft_length`` zero-pads or truncates the signal (default: the axis length, or
    ``2 * (n - 1)`` for irfft). The inverse is scaled by ``1 / dft_length``."""
    a, o = x.array, out.array
    if inverse not in (0, 1) or onesided not in (0, 1):
        raise ArgumentError(f"dft: inverse and onesided must be 0 or 1, got {inverse} and "
                            f"{onesided}")
    ax = _dft_axis(int(axis), a.ndim)
    sig = _to_signal(xp, a, "dft")
    n_in = sig.shape[ax]
    n = int(dft_length) if dft_length is not None else \
        (2 * (n_in - 1) if inverse and onesided else n_in)
    if n < 1:
        raise ArgumentError(f"dft: dft_length must be positive, got {n}")
    if inverse and onesided:
        y = xp.fft.irfft(sig, n=n, axis=ax)
        if o.shape != (*y.shape, 1):
            raise ArgumentError(f"dft: out must have shape {[*y.shape, 1]}, got "
                                f"{list(o.shape)}")
        o[..., 0] = y
        return
    if inverse:
        z = xp.fft.ifft(sig, n=n, axis=ax)
    elif onesided and a.shape[-1] == 1:
        z = xp.fft.rfft(sig, n=n, axis=ax)
    else:
        z = xp.fft.fft(sig, n=n, axis=ax)
        if onesided:  # complex input: keep the first half like the real case
            z = z[(slice(None),) * ax + (slice(0, n // 2 + 1),)]
    _store_complex(o, z, "dft")


@register_template("stft")
def stft(xp: Any, signal: Any, window: Any, out: Any, frame_step: int,
         frame_length: int, onesided: int = 1) -> None:
    """ONNX STFT of a [batch, length, 1 or 2] signal: frames of ``frame_length`` every
    ``frame_step`` samples, times ``window`` (none: all ones), each transformed by a
    DFT of ``frame_length`` points (the first ``frame_length // 2 + 1`` when
    ``onesided``). Out: [batch, frames, bins, 2]."""
    a, o = signal.array, out.array
    if a.ndim != 3:
        raise ArgumentError(f"stft: signal must be [batch, length, 1 or 2], got shape "
                            f"{list(a.shape)}")
    step, length = int(frame_step), int(frame_length)
    if step < 1 or not 1 <= length <= a.shape[1]:
        raise ArgumentError(f"stft: frame_step must be positive and frame_length in [1, "
                            f"{a.shape[1]}], got {step} and {length}")
    if onesided not in (0, 1):
        raise ArgumentError(f"stft: onesided must be 0 or 1, got {onesided}")
    sig = _to_signal(xp, a, "stft")
    frames = (a.shape[1] - length) // step + 1
    starts = np.arange(frames, dtype=np.int64)[:, None] * step
    index = xp.asarray(starts + np.arange(length, dtype=np.int64)[None, :])
    framed = sig[:, index]  # [batch, frames, length]
    if window is not None:
        w = window.array
        if w.shape != (length,):
            raise ArgumentError(f"stft: window must have shape [{length}] (frame_length), "
                                f"got {list(w.shape)}")
        framed = framed * w.astype(work_dtype(a.dtype))
    if onesided and a.shape[-1] == 1:
        z = xp.fft.rfft(framed, n=length, axis=-1)
    else:
        z = xp.fft.fft(framed, n=length, axis=-1)
        if onesided:
            z = z[..., :length // 2 + 1]
    _store_complex(o, z, "stft")


def mel_matrix(num_mel_bins: int, dft_length: int, sample_rate: float, lower_hz: float,
               upper_hz: float) -> np.ndarray:
    """ONNX MelWeightMatrix in float64: [dft_length // 2 + 1, num_mel_bins] triangles.

    ONNX places ``num_mel_bins + 2`` edges evenly on the mel scale
    (``2595 * log10(1 + f / 700)``) from ``lower_hz`` in steps of
    ``(mel(upper_hz) - mel(lower_hz)) / (num_mel_bins + 2)``, maps each to the DFT bin
    ``floor((dft_length + 1) * f / sample_rate)`` and draws triangle ``i`` rising from
    edge ``i`` to a peak of 1 at edge ``i + 1`` and falling to 0 at edge ``i + 2``."""
    bins = dft_length // 2 + 1
    ln10 = np.log(10.0)
    mel_low = 2595.0 * np.log1p(lower_hz / 700.0) / ln10
    mel_high = 2595.0 * np.log1p(upper_hz / 700.0) / ln10
    mels = mel_low + np.arange(num_mel_bins + 2) * ((mel_high - mel_low) / (num_mel_bins + 2))
    hertz = 700.0 * np.expm1(mels / 2595.0 * ln10)
    edges = np.floor((dft_length + 1) * hertz / sample_rate).astype(np.int64)
    if edges.min() < 0 or edges[:-1].max() >= bins or edges[-1] > bins:
        raise ArgumentError(f"mel_weight_matrix: the band edges fall on DFT bins "
                            f"{edges.tolist()}, outside the {bins} bins; check sample_rate "
                            f"and the edge frequencies")
    low, mid, high = edges[:-2], edges[1:-1], edges[2:]
    j = np.arange(bins)[:, None]
    rise = (j - low) / np.maximum(mid - low, 1)
    fall = (high - j) / np.maximum(high - mid, 1)
    result = np.where((j >= low) & (j <= mid), np.where(mid == low, 1.0, rise), 0.0)
    return np.where((j >= mid) & (j < high), fall, result)


@register_template("mel_weight_matrix")
def mel_weight_matrix(xp: Any, sample_rate: Any, lower_edge_hertz: Any,
                      upper_edge_hertz: Any, out: Any, num_mel_bins: int,
                      dft_length: int) -> None:
    """ONNX MelWeightMatrix (see :func:`mel_matrix`); the three scalars are tensors read
    on the host, the result is converted to out's dtype."""
    def scalar(t: Any, name: str) -> float:
        array = t.array
        if array.size != 1:
            raise ArgumentError(f"mel_weight_matrix: {name} must be a scalar, got shape "
                                f"{list(array.shape)}")
        return float(array.reshape(-1)[0])

    rate = scalar(sample_rate, "sample_rate")
    if num_mel_bins < 0 or dft_length < 1 or rate <= 0:
        raise ArgumentError(f"mel_weight_matrix: num_mel_bins must be >= 0, dft_length and "
                            f"sample_rate positive, got {num_mel_bins}, {dft_length} and "
                            f"{rate}")
    table = mel_matrix(int(num_mel_bins), int(dft_length), rate,
                       scalar(lower_edge_hertz, "lower_edge_hertz"),
                       scalar(upper_edge_hertz, "upper_edge_hertz"))
    o = out.array
    if o.shape != table.shape:
        raise ArgumentError(f"mel_weight_matrix: out must have shape {list(table.shape)}, got "
                            f"{list(o.shape)}")
    o[...] = xp.asarray(table.astype(o.dtype))


@register_template("det")
def det(xp: Any, x: Any, out: Any) -> None:
    """out = determinant of each [M, M] matrix of x [*, M, M] (float16 via float32)."""
    a = x.array
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ArgumentError(f"det: x must be [*, M, M], got shape {list(a.shape)}")
    out.array[...] = xp.linalg.det(a.astype(work_dtype(a.dtype)))


@register_template("bitcast")
def bitcast(xp: Any, x: Any, out: Any) -> None:
    """out = x's bytes reinterpreted as out's dtype (ONNX BitCast: equal bit widths)."""
    a, o = x.array, out.array
    if dtype_bits(a.dtype) != dtype_bits(o.dtype) or a.dtype.itemsize != o.dtype.itemsize:
        raise ArgumentError(f"bitcast: the dtypes must have the same bit width, got "
                            f"{a.dtype.name} ({dtype_bits(a.dtype)} bits) and "
                            f"{o.dtype.name} ({dtype_bits(o.dtype)} bits)")
    if a.dtype.name in DTYPE_BITS and a.dtype != o.dtype:
        raise ArgumentError(f"bitcast: sub-byte dtypes are held one per byte, so "
                            f"{a.dtype.name} to {o.dtype.name} cannot be a view")
    if a.shape != o.shape:
        raise ArgumentError(f"bitcast: out must have x's shape {list(a.shape)}, got "
                            f"{list(o.shape)}")
    xp.copyto(o, xp.ascontiguousarray(a).view(o.dtype))


def _block_grid(image: Sequence[int], block: Sequence[int], dilations: Sequence[int],
                pads: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Blocks per spatial axis: (image + pads - dilated block) // stride + 1."""
    n = len(image)
    grid = []
    for d in range(n):
        span = dilations[d] * (block[d] - 1) + 1
        grid.append((image[d] + pads[d] + pads[d + n] - span) // strides[d] + 1)
    return grid


@register_template("col2im")
def col2im(xp: Any, x: Any, out: Any, block_shape: Sequence[int],
           dilations: Sequence[int] | None = None, pads: Sequence[int] | None = None,
           strides: Sequence[int] | None = None) -> None:
    """ONNX Col2Im: x [N, C * prod(block_shape), L] column blocks summed back into out
    [N, C, *image_shape]; blocks in lexicographic order over the block grid.

    One strided add per block offset (prod(block_shape) of them) into a padded image,
    computed in float32 for narrow floats."""
    a, o = x.array, out.array
    block = [int(b) for b in block_shape]
    n = len(block)
    image = [int(d) for d in o.shape[2:]]
    dil = [1] * n if dilations is None else [int(d) for d in dilations]
    pad = [0] * (2 * n) if pads is None else [int(p) for p in pads]
    stride = [1] * n if strides is None else [int(s) for s in strides]
    if a.ndim != 3 or len(image) != n or len(dil) != n or len(pad) != 2 * n or \
            len(stride) != n:
        raise ArgumentError(f"col2im: x must be 3-d and image_shape, block_shape, "
                            f"dilations, strides ({n}) and pads ({2 * n}) must agree, got x "
                            f"{list(a.shape)}, image {image}, dilations {dil}, pads {pad}, "
                            f"strides {stride}")
    if min(block + dil + stride) < 1 or min(pad) < 0:
        raise ArgumentError(f"col2im: block_shape, dilations and strides must be positive "
                            f"and pads >= 0, got {block}, {dil}, {stride} and {pad}")
    grid = _block_grid(image, block, dil, pad, stride)
    k, channels = int(np.prod(block)), o.shape[1]
    if min(grid) < 1 or a.shape[1] != channels * k or a.shape[2] != int(np.prod(grid)):
        raise ArgumentError(f"col2im: x must be [{o.shape[0]}, {channels} * {k}, "
                            f"{int(np.prod(grid))}] for blocks {block} on a {grid} grid, "
                            f"got {list(a.shape)}")
    wd = work_dtype(a.dtype) if a.dtype.kind == "f" else a.dtype
    cols = a.astype(wd).reshape(a.shape[0], channels, k, *grid)
    padded = xp.zeros((*o.shape[:2], *[image[d] + pad[d] + pad[d + n] for d in range(n)]), wd)
    for offset, index in enumerate(np.ndindex(*block)):
        window = tuple(slice(i * dil[d], i * dil[d] + (grid[d] - 1) * stride[d] + 1, stride[d])
                       for d, i in enumerate(index))
        padded[(slice(None), slice(None)) + window] += cols[:, :, offset]
    crop = tuple(slice(pad[d], pad[d] + image[d]) for d in range(n))
    o[...] = padded[(slice(None), slice(None)) + crop]
