"""relaxvm's own versioned binary format for executables (not TVM's).

Layout (all integers little-endian; docs/executable-format.md has it byte by byte)::

    magic b"RVXEXE\\0\\1" | u32 version | u32 section count (3)
    section: u32 tag | u64 body length | body          tags: 1 functions, 2 constants, 3 code
    u32 CRC32 (zlib) of every byte before it

Loading trusts nothing: every length is checked against the bytes that remain before
anything is allocated, every tag, dtype, UTF-8 string and count is checked, and the result
goes through :func:`relaxvm.vm.executable.check_executable`. Every defect raises
:class:`~relaxvm.errors.ExecutableFormatError`; nothing in a file is ever unpickled,
evaluated or executed.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np

from relaxvm.errors import ArgumentError, ExecutableFormatError
from relaxvm.objects import DataType, Shape, numpy_dtype
from relaxvm.vm.bytecode import WORD_MASK, Opcode
from relaxvm.vm.executable import (
    MAX_NESTING,
    Executable,
    FuncKind,
    FunctionInfo,
    check_executable,
    tensor_dtype_supported,
)

MAGIC = b"RVXEXE\x00\x01"
FORMAT_VERSION = 1
SECTION_FUNCTIONS, SECTION_CONSTANTS, SECTION_CODE = 1, 2, 3
SECTION_ORDER = (SECTION_FUNCTIONS, SECTION_CONSTANTS, SECTION_CODE)
SECTION_NAMES = {SECTION_FUNCTIONS: "functions", SECTION_CONSTANTS: "constants",
                 SECTION_CODE: "code"}
HEADER_SIZE = 16            # magic + version + section count
SECTION_HEADER_SIZE = 12    # tag + body length
CRC_SIZE = 4
MAX_TENSOR_NDIM = 64        # NumPy's limit

# constant tags
T_NONE, T_BOOL, T_INT, T_FLOAT, T_STR, T_DTYPE, T_SHAPE, T_TENSOR, T_TUPLE = range(9)
_MIN_FUNCTION_BYTES = 1 + 8 + 4 * 8 + 8   # kind, empty name, four i64, param count
_WHERE = "load_executable"


# -- writing ------------------------------------------------------------------------------

class _Writer:
    """Appends little-endian fields to a bytearray."""

    def __init__(self) -> None:
        self.out = bytearray()

    def pack(self, fmt: str, *values: Any) -> None:
        self.out += struct.pack("<" + fmt, *values)

    def string(self, text: str, what: str) -> None:
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ExecutableFormatError(f"save_to_bytes: {what} {text!r} cannot be encoded "
                                        f"as UTF-8: {exc.reason}") from None
        self.pack("Q", len(raw))
        self.out += raw


def _write_functions(w: _Writer, exe: Executable) -> None:
    w.pack("Q", len(exe.func_table))
    for f in exe.func_table:
        w.pack("B", int(f.kind))
        w.string(f.name, "function name")
        w.pack("4q", f.start_instr, f.end_instr, f.num_args, f.register_file_size)
        w.pack("Q", len(f.param_names))
        for p in f.param_names:
            w.string(p, f"parameter name of {f.name!r}")


def _write_tensor(w: _Writer, arr: np.ndarray) -> None:
    w.pack("B", T_TENSOR)
    w.string(arr.dtype.name, "tensor dtype")
    w.pack("I", arr.ndim)
    w.pack(f"{arr.ndim}q", *arr.shape)
    if arr.dtype.kind in "iufc" and arr.dtype.byteorder not in ("<", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    raw = arr.tobytes(order="C")
    w.pack("Q", len(raw))
    w.out += raw


def _write_constant(w: _Writer, c: Any) -> None:
    if isinstance(c, np.ndarray):
        _write_tensor(w, c)
    elif c is None:
        w.pack("B", T_NONE)
    elif isinstance(c, bool):
        w.pack("BB", T_BOOL, int(c))
    elif isinstance(c, int):
        w.pack("Bq", T_INT, c)
    elif isinstance(c, float):
        w.pack("Bd", T_FLOAT, c)
    elif isinstance(c, DataType):
        w.pack("B", T_DTYPE)
        w.string(str(c), "dtype constant")
    elif isinstance(c, str):
        w.pack("B", T_STR)
        w.string(c, "string constant")
    elif isinstance(c, Shape):
        w.pack(f"BQ{len(c)}q", T_SHAPE, len(c), *c)
    else:  # a tuple; check_executable has ruled out everything else
        w.pack("BQ", T_TUPLE, len(c))
        for item in c:
            _write_constant(w, item)


def _write_code(w: _Writer, exe: Executable) -> None:
    w.pack(f"Q{len(exe.instr_offset)}q", len(exe.instr_offset), *exe.instr_offset)
    words = [word & WORD_MASK for word in exe.instr_data]
    w.pack(f"Q{len(words)}Q", len(words), *words)


def save_to_bytes(exe: Executable) -> bytes:
    """``exe`` in the binary format. Validates first (ExecutableFormatError on a defect),
    so a file that was written can always be read back."""
    if not isinstance(exe, Executable):
        raise ArgumentError(f"save_to_bytes: exe must be an Executable, got "
                            f"{type(exe).__name__}")
    check_executable(exe, "save_to_bytes")
    out = _Writer()
    out.out += MAGIC
    out.pack("II", FORMAT_VERSION, len(SECTION_ORDER))
    for tag in SECTION_ORDER:
        start = len(out.out)
        out.pack("IQ", tag, 0)              # body length patched below, saving a copy
        if tag == SECTION_FUNCTIONS:
            _write_functions(out, exe)
        elif tag == SECTION_CONSTANTS:
            out.pack("Q", len(exe.constants))
            for c in exe.constants:
                _write_constant(out, c)
        else:
            _write_code(out, exe)
        length = len(out.out) - start - SECTION_HEADER_SIZE
        struct.pack_into("<Q", out.out, start + 4, length)
    out.pack("I", zlib.crc32(out.out))
    return bytes(out.out)


# -- reading ------------------------------------------------------------------------------

def _fail(message: str) -> ExecutableFormatError:
    return ExecutableFormatError(f"{_WHERE}: {message}")


class _Reader:
    """Reads little-endian fields from ``data[pos:end]``, refusing to read past ``end``."""

    def __init__(self, data: memoryview, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n > self.remaining:
            raise _fail(f"truncated data: {what} needs {n} bytes at offset {self.pos}, "
                        f"only {self.remaining} remain")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))

    def u(self, fmt: str, what: str) -> Any:
        return self.unpack(fmt, what)[0]

    def count(self, what: str, min_item_bytes: int) -> int:
        """A u64 element count, refused if the remaining bytes cannot possibly hold it."""
        n = self.u("Q", f"{what} count")
        if n * min_item_bytes > self.remaining:
            raise _fail(f"{what} count {n} needs at least {n * min_item_bytes} bytes, only "
                        f"{self.remaining} remain in the section")
        return n

    def string(self, what: str) -> str:
        n = self.count(f"{what} length", 1)
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})") \
                from None

    def finish(self, what: str) -> None:
        if self.pos != self.end:
            raise _fail(f"{what} has {self.end - self.pos} unexpected trailing bytes")


def _read_functions(r: _Reader) -> list[FunctionInfo]:
    table = []
    for i in range(r.count("function", _MIN_FUNCTION_BYTES)):
        what = f"function {i}"
        kind = r.u("B", f"{what} kind")
        if kind not in (FuncKind.PACKED_FUNC, FuncKind.VM_FUNC):
            raise _fail(f"{what} has unknown kind {kind} (expected 0 packed or 1 VM)")
        name = r.string(f"{what} name")
        start, end, nargs, nregs = r.unpack("4q", f"{what} ({name!r}) fields")
        params = [r.string(f"parameter {k} name of {name!r}")
                  for k in range(r.count(f"param_names of {name!r}", 8))]
        table.append(FunctionInfo(FuncKind(kind), name, start, end, nargs, nregs, params))
    return table


def _read_dtype(r: _Reader, what: str, tensor: bool) -> np.dtype:
    name = r.string(what)
    try:
        dtype = numpy_dtype(name)
    except Exception:  # NumPy's parser raises several types for odd strings
        raise _fail(f"{what} {name!r} is not a known dtype name") from None
    if dtype.name != name:
        raise _fail(f"{what} {name!r} is not canonical (expected {dtype.name!r})")
    if tensor and not tensor_dtype_supported(dtype):
        raise _fail(f"{what} {name!r} is not a supported tensor dtype")
    return dtype


def _read_tensor(r: _Reader, what: str) -> np.ndarray:
    dtype = _read_dtype(r, f"{what} dtype", tensor=True)
    ndim = r.u("I", f"{what} ndim")
    if ndim > MAX_TENSOR_NDIM:
        raise _fail(f"{what} has ndim {ndim}, more than {MAX_TENSOR_NDIM}")
    shape = r.unpack(f"{ndim}q", f"{what} shape")
    if any(d < 0 for d in shape):
        raise _fail(f"{what} has a negative dimension in shape {list(shape)}")
    nbytes = r.u("Q", f"{what} byte count")
    expected = math.prod(shape) * dtype.itemsize
    if nbytes != expected:
        raise _fail(f"{what} has {nbytes} data bytes, but {dtype.name}{list(shape)} needs "
                    f"{expected}")
    raw = bytearray(r.take(nbytes, f"{what} data"))
    stored = dtype.newbyteorder("<") if dtype.kind in "iufc" else dtype
    try:
        arr = np.frombuffer(raw, dtype=stored).reshape(shape)
    except (ValueError, OverflowError) as exc:
        raise _fail(f"{what} with shape {list(shape)} cannot be built: {exc}") from None
    return arr if arr.dtype.isnative else arr.astype(dtype)


def _read_constant(r: _Reader, what: str, depth: int = 0) -> Any:
    tag = r.u("B", f"{what} type tag")
    if tag == T_NONE:
        return None
    if tag == T_BOOL:
        value = r.u("B", f"{what} bool")
        if value > 1:
            raise _fail(f"{what} bool byte is {value}, expected 0 or 1")
        return bool(value)
    if tag == T_INT:
        return r.u("q", f"{what} int")
    if tag == T_FLOAT:
        return r.u("d", f"{what} float")
    if tag == T_STR:
        return r.string(f"{what} string")
    if tag == T_DTYPE:
        return DataType(_read_dtype(r, f"{what} dtype", tensor=False))
    if tag == T_SHAPE:
        n = r.count(f"{what} shape", 8)
        return Shape(r.unpack(f"{n}q", f"{what} shape"))
    if tag == T_TENSOR:
        return _read_tensor(r, what)
    if tag == T_TUPLE:
        if depth >= MAX_NESTING:
            raise _fail(f"{what} nests Arrays deeper than {MAX_NESTING} levels")
        return tuple(_read_constant(r, f"{what}[{k}]", depth + 1)
                     for k in range(r.count(f"{what} Array", 1)))
    raise _fail(f"{what} has unknown type tag {tag} (expected 0..8)")


def _read_code(r: _Reader) -> tuple[list[int], list[int]]:
    n = r.count("instruction offset", 8)
    offsets = list(r.unpack(f"{n}q", "instruction offsets"))
    m = r.count("instruction word", 8)
    words = list(r.unpack(f"{m}Q", "instruction words"))
    # Jump offsets are signed; every other word is a register, index or arg word.
    for off in offsets:
        if 0 <= off < m and words[off] in (Opcode.GOTO, Opcode.IF):
            field = off + 1 if words[off] == Opcode.GOTO else off + 2
            if field < m and words[field] >= 1 << 63:
                words[field] -= 1 << 64
    return offsets, words


def _check_envelope(data: memoryview) -> int:
    """Check magic, version, size and CRC; return the section count."""
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise _fail(f"truncated data: {len(data)} bytes is shorter than the "
                    f"{HEADER_SIZE + CRC_SIZE}-byte header and checksum")
    if bytes(data[:8]) != MAGIC:
        raise _fail(f"not a relaxvm executable: magic is {bytes(data[:8])!r}, expected "
                    f"{MAGIC!r}")
    version, sections = struct.unpack_from("<II", data, 8)
    if version != FORMAT_VERSION:
        raise _fail(f"format version {version} is not supported (this relaxvm reads "
                    f"version {FORMAT_VERSION})")
    stored = struct.unpack_from("<I", data, len(data) - CRC_SIZE)[0]
    actual = zlib.crc32(data[:len(data) - CRC_SIZE])
    if stored != actual:
        raise _fail(f"CRC32 mismatch: the file says {stored:#010x}, the data gives "
                    f"{actual:#010x} (corrupted or truncated file)")
    if sections != len(SECTION_ORDER):
        raise _fail(f"section count is {sections}, expected {len(SECTION_ORDER)}")
    return sections


def load_from_bytes(data: bytes | bytearray | memoryview) -> Executable:
    """Parse and fully validate an executable; ExecutableFormatError on any defect."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentError(f"load_from_bytes: data must be bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    _check_envelope(view)
    outer = _Reader(view, HEADER_SIZE, len(view) - CRC_SIZE)
    parts: dict[int, Any] = {}
    for expected in SECTION_ORDER:
        tag, length = outer.unpack("IQ", "section header")
        if tag != expected:
            raise _fail(f"expected section {expected} ({SECTION_NAMES[expected]}), found "
                        f"tag {tag}")
        outer.take(length, f"{SECTION_NAMES[tag]} section")
        r = _Reader(view, outer.pos - length, outer.pos)
        if tag == SECTION_FUNCTIONS:
            parts[tag] = _read_functions(r)
        elif tag == SECTION_CONSTANTS:
            parts[tag] = [_read_constant(r, f"constant {i}") for i in range(r.count("constant", 1))]
        else:
            parts[tag] = _read_code(r)
        r.finish(f"{SECTION_NAMES[tag]} section")
    outer.finish("file")
    offsets, words = parts[SECTION_CODE]
    exe = Executable(parts[SECTION_FUNCTIONS], parts[SECTION_CONSTANTS], offsets, words)
    check_executable(exe, _WHERE)
    return exe
