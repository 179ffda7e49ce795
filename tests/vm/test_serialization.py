"""The binary executable format: round trips, fuzzing, and every validation rule.

Corrupt files are written by an independent encoder in this file that follows
docs/executable-format.md, with a correct CRC32, so each one reaches the rule it targets.
"""

from __future__ import annotations

import contextlib
import signal
import struct
import threading
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from test_executable import branchy_program, every_constant_program

from relaxvm.errors import ArgumentError, ExecutableFormatError
from relaxvm.objects import DataType, Shape
from relaxvm.vm.builder import ExecBuilder
from relaxvm.vm.bytecode import Goto
from relaxvm.vm.executable import Executable, FuncKind, FunctionInfo, load_executable
from relaxvm.vm.serialization import load_from_bytes, save_to_bytes

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is a test dependency
    ml_dtypes = None

MAGIC = b"RVXEXE\x00\x01"
REG, IMM, CONST, FUNC = 0, 1 << 56, 2 << 56, 3 << 56
VOID, VM = 1 << 54, (1 << 54) + 1


# -- an independent encoder, written from the format document -----------------------------

def u8(v): return struct.pack("<B", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v & (2**64 - 1))
def i64(v): return struct.pack("<q", v)


def string(v):
    raw = v.encode() if isinstance(v, str) else v
    return u64(len(raw)) + raw


def func(kind, name, start=0, end=0, nargs=-2, nregs=0, params=()):
    return (u8(kind) + string(name) + i64(start) + i64(end) + i64(nargs) + i64(nregs)
            + u64(len(params)) + b"".join(string(p) for p in params))


def section(tag, body):
    return u32(tag) + u64(len(body)) + body


def envelope(sections, version=1, count=3, magic=MAGIC):
    data = magic + u32(version) + u32(count) + sections
    return data + u32(zlib.crc32(data))


def code(instrs, offsets=None, extra_words=()):
    words, starts = [], []
    for ins in instrs:
        starts.append(len(words))
        words.extend(ins)
    words.extend(extra_words)
    offsets = starts if offsets is None else offsets
    return (u64(len(offsets)) + b"".join(i64(o) for o in offsets)
            + u64(len(words)) + b"".join(u64(w) for w in words))


def tensor(dtype, shape, data, nbytes=None, ndim=None):
    return (u8(7) + string(dtype) + u32(len(shape) if ndim is None else ndim)
            + b"".join(i64(d) for d in shape) + u64(len(data) if nbytes is None else nbytes)
            + data)


# Baseline: main(x) { %1 = k(%0, c[0]); if %1 else +3; %2 = k(%1, i5); ret %2; ret %1 }
BASE_FUNCS = [func(1, "main", 0, 5, 1, 3, ["x"]), func(0, "k")]
BASE_CONSTS = [u8(4) + string("s")]
BASE_CODE = [[1, 1, 1, 2, 0, CONST | 0], [4, 1, 3], [1, 2, 1, 2, 1, IMM | 5], [2, 2], [2, 1]]


def make_file(funcs=None, consts=None, instrs=None, code_body=None, functions_body=None,
              constants_body=None, **env):
    funcs = BASE_FUNCS if funcs is None else funcs
    consts = BASE_CONSTS if consts is None else consts
    fbody = u64(len(funcs)) + b"".join(funcs) if functions_body is None else functions_body
    cbody = u64(len(consts)) + b"".join(consts) if constants_body is None else constants_body
    body = code(BASE_CODE if instrs is None else instrs) if code_body is None else code_body
    return envelope(section(1, fbody) + section(2, cbody) + section(3, body), **env)


def with_instr(i, words):
    instrs = [list(x) for x in BASE_CODE]
    instrs[i] = words
    return instrs


def base_program() -> Executable:
    ib = ExecBuilder()
    with ib.function("main", num_inputs=1, param_names=["x"]):
        ib.emit_call("k", args=[ib.r(0), "s"], dst=ib.r(1))
        ib.emit_if(ib.r(1), 3)
        ib.emit_call("k", args=[ib.r(1), ib.imm(5)], dst=ib.r(2))
        ib.emit_ret(ib.r(2))
        ib.emit_ret(ib.r(1))
    ib.declare_function("k")  # declared after use, so the table order stays main, k
    return ib.get()


def test_independent_encoder_and_writer_agree_byte_for_byte():
    assert base_program().save_to_bytes() == make_file()
    assert load_executable(make_file()) == base_program()


def test_negative_jump_offsets_are_stored_as_u64_and_read_back_signed():
    instrs = [[1, 1, 1, 2, 0, CONST | 0], [4, 1, 3], [1, 2, 1, 2, 1, IMM | 5], [3, -3], [2, 1]]
    exe = load_executable(make_file(instrs=instrs))
    assert exe.get_instruction(3) == Goto(-3)
    start = exe.instr_offset[3]
    assert exe.instr_data[start:start + 2] == [3, -3]


# -- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [base_program, branchy_program, every_constant_program])
def test_save_and_load_file_round_trip_is_equal(make, tmp_path):
    exe = make()
    path = tmp_path / "prog.rvx"
    exe.save(path)
    assert Executable.load(path) == exe
    assert load_executable(str(path)) == exe
    assert load_executable(path.read_bytes()) == exe
    assert Executable.load_from_bytes(exe.save_to_bytes()) == exe


def test_loaded_constants_have_the_right_python_and_numpy_types():
    exe = every_constant_program()
    back = load_executable(bytearray(exe.save_to_bytes()))
    for before, after in zip(exe.constants, back.constants, strict=True):
        assert type(after) is type(before)
        if isinstance(before, np.ndarray):
            assert after.dtype == before.dtype and after.shape == before.shape
            np.testing.assert_array_equal(after, before)
            assert after.flags.writeable and after.flags.c_contiguous
        elif isinstance(before, float) and before != before:
            assert after != after
        else:
            assert after == before
    negative_zero = [c for c in back.constants if isinstance(c, float) and c == 0.0]
    assert [str(c) for c in negative_zero] == ["-0.0"]


def test_save_refuses_an_invalid_executable():
    exe = Executable([FunctionInfo(FuncKind.VM_FUNC, "main", 0, 1, 0, 0, [])], [], [0], [2, 5])
    with pytest.raises(ExecutableFormatError, match=r"save_to_bytes: function 'main', "
                                                    r"instruction 0 \(ret\): returns register 5"):
        exe.save_to_bytes()
    exe = Executable([], [object()], [], [])
    with pytest.raises(ExecutableFormatError, match=r"save_to_bytes: constant c\[0\]: object "
                                                    r"is not a constant-pool type"):
        save_to_bytes(exe)
    exe = Executable([FunctionInfo(FuncKind.PACKED_FUNC, "bad\udcff")])
    with pytest.raises(ExecutableFormatError, match=r"save_to_bytes: function name "
                                                    r"'bad\\udcff' cannot be encoded as UTF-8"):
        save_to_bytes(exe)


def test_save_and_load_reject_wrong_argument_types():
    with pytest.raises(ArgumentError, match=r"save_to_bytes: exe must be an Executable, got "
                                            r"dict"):
        save_to_bytes({})
    with pytest.raises(ArgumentError, match=r"load_from_bytes: data must be bytes, got str"):
        load_from_bytes("RVXEXE")


# -- hypothesis: random valid programs survive save/load ------------------------------------

TENSOR_DTYPES = ["float32", "float64", "float16", "int8", "int64", "uint16", "bool",
                 "complex64"]


def tensors():
    plain = st.sampled_from(TENSOR_DTYPES).flatmap(lambda dt: arrays(
        dt, array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
    if ml_dtypes is None:
        return plain
    bf16 = arrays("float32", array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
                  elements=st.floats(-1e4, 1e4, width=32)).map(
        lambda a: a.astype(ml_dtypes.bfloat16))
    return st.one_of(plain, bf16)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=6),
    st.lists(st.integers(0, 2**40), max_size=4).map(Shape),
    st.sampled_from(["float32", "int8", "bool", "bfloat16", "uint64"]).map(DataType),
    tensors())
CONSTANTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3).map(tuple),
                         max_leaves=6)


def _arg(draw, ib, readable, vm_names):
    choice = draw(st.sampled_from(["reg", "imm", "const", "func", "special"]))
    if choice == "reg" and readable:
        return ib.r(draw(st.sampled_from(readable)))
    if choice == "func" and vm_names:
        return ib.f(draw(st.sampled_from(vm_names)))
    if choice == "special":
        return draw(st.sampled_from([ib.void_arg(), ib.vm_state()]))
    if choice == "const":
        return ib.convert_constant(draw(CONSTANTS))
    return ib.imm(draw(st.integers(-2**55 + 1, 2**55 - 1)))


def _body(draw, ib, arity, vm_names, arities):
    readable = list(range(arity))
    calls = draw(st.integers(0, 5))
    for _ in range(calls):
        callee = draw(st.sampled_from(["pk.a", "pk.b", *vm_names]))
        nargs = arities[callee] if callee in arities else draw(st.integers(0, 4))
        args = [_arg(draw, ib, readable, vm_names) for _ in range(nargs)]
        dst = draw(st.one_of(st.none(), st.integers(0, 500)))
        ib.emit_call(callee, args=args, dst=None if dst is None else ib.r(dst))
        if dst is not None:
            readable.append(dst)
    if draw(st.booleans()):   # loop tail: [calls] If c, +2; Goto back into the calls; Ret
        cond = ib.r(draw(st.sampled_from(readable))) if readable else ib.void_arg()
        ib.emit_if(cond, 2)
        ib.emit_goto(-draw(st.integers(1, calls + 1)))
    ib.emit_ret(ib.r(draw(st.sampled_from(readable))) if readable else ib.void_arg())


@st.composite
def programs(draw) -> Executable:
    ib = ExecBuilder()
    count = draw(st.integers(1, 3))
    names = [f"fn{i}" for i in range(count)]
    arities = {n: draw(st.integers(0, 3)) for n in names}
    for n in names:
        if draw(st.booleans()):
            ib.declare_function(n, FuncKind.VM_FUNC)
    for n in draw(st.permutations(names)):
        with ib.function(n, num_inputs=arities[n], param_names=[f"{n}_p{k}" for k in
                                                                  range(arities[n])]):
            _body(draw, ib, arities[n], names, arities)
    for packed in ("pk.a", "pk.b"):   # external packed functions: declared, never run
        if packed in ib._map:
            ib.declare_function(packed)
    return ib.get()


@given(programs())
@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_random_valid_programs_survive_save_and_load_unchanged(exe):
    data = exe.save_to_bytes()
    back = load_executable(data)
    assert back == exe
    assert back.save_to_bytes() == data
    assert back.as_text() == exe.as_text()
    namespace: dict = {}
    exec(exe.as_python(), namespace)
    assert namespace["ib"].get() == exe


# -- fuzzing: mutated files load or raise ExecutableFormatError, nothing else ------------------

BASES = [make_file(), branchy_program().save_to_bytes(), every_constant_program().save_to_bytes()]


def mutate(draw, data: bytes) -> bytes:
    op = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
    if op == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    at = draw(st.integers(0, len(data)))
    if op == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=9)) + data[at:]
    at = min(at, len(data) - 1)
    if op == "overwrite":    # e.g. a count or length replaced by a huge value
        chunk = draw(st.sampled_from([b"\xff" * 8, b"\x00" * 8, u64(2**62), i64(-1)]))
        return data[:at] + chunk + data[at + len(chunk):]
    return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1:]


class Hang(BaseException):
    """Raised by :func:`time_limit`; a BaseException so no ``except Exception`` masks it."""


LOAD_TIME_LIMIT_S = 5.0   # a load takes milliseconds; only a hang gets near this


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise Hang in the block after ``seconds`` of wall time (SIGALRM; POSIX main thread).

    Hypothesis' ``deadline`` only complains after an example finishes, so it cannot catch
    a loader that never returns; this can."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not \
            threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise Hang(f"load_from_bytes ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_or_format_error(data: bytes, crc_ok: bool = False) -> None:
    """``data`` loads as a consistent executable or raises ExecutableFormatError, within
    the time limit; with ``crc_ok`` the failure must come from past the CRC check."""
    try:
        with time_limit(LOAD_TIME_LIMIT_S):
            exe = load_from_bytes(data)
    except ExecutableFormatError as exc:
        assert not (crc_ok and "CRC32 mismatch" in str(exc)), str(exc)
        return
    assert isinstance(exe, Executable)
    assert load_from_bytes(exe.save_to_bytes()) == exe   # whatever loads is consistent


def test_time_limit_stops_a_hang():
    with pytest.raises(Hang, match="more than 0.05 s"):
        with time_limit(0.05):
            while True:
                pass


def test_recomputing_the_crc_gets_mutations_past_the_crc_check():
    payload = make_file()[:-4]
    mutated = payload[:60] + bytes([payload[60] ^ 0x10]) + payload[61:]
    with pytest.raises(ExecutableFormatError, match="CRC32 mismatch"):
        load_from_bytes(mutated + make_file()[-4:])   # the original file's CRC
    with pytest.raises(ExecutableFormatError) as info:
        load_from_bytes(mutated + u32(zlib.crc32(mutated)))
    assert "CRC32" not in str(info.value)


@given(st.data())
@settings(deadline=None, max_examples=200)
def test_mutations_with_recomputed_crc_load_or_raise_format_error(data):
    payload = data.draw(st.sampled_from(BASES))[:-4]
    mutated = mutate(data.draw, payload)
    load_or_format_error(mutated + u32(zlib.crc32(mutated)), crc_ok=True)


@given(st.data())
@settings(deadline=None, max_examples=200)
def test_mutations_of_whole_file_load_or_raise_format_error(data):
    load_or_format_error(mutate(data.draw, data.draw(st.sampled_from(BASES))))


def test_every_single_byte_change_and_truncation_of_a_file_is_handled():
    payload = make_file()[:-4]
    for at in range(len(payload)):
        for value in (payload[at] ^ 0xFF, payload[at] ^ 0x01):
            mutated = payload[:at] + bytes([value]) + payload[at + 1:]
            load_or_format_error(mutated + u32(zlib.crc32(mutated)), crc_ok=True)
        load_or_format_error(payload[:at] + u32(zlib.crc32(payload[:at])), crc_ok=True)


# -- hand-crafted corrupt files: one per validation rule ---------------------------------------

def nested_array(depth):
    return b"".join(u8(8) + u64(1) for _ in range(depth)) + u8(0)


CASES = {
    # envelope
    "short file": (b"RVX", r"truncated data: 3 bytes is shorter than the 20-byte header"),
    "magic": (make_file(magic=b"NOTMAGIC"), r"not a relaxvm executable: magic is "
                                            r"b'NOTMAGIC', expected b'RVXEXE\\x00\\x01'"),
    "version": (make_file(version=2), r"format version 2 is not supported \(this relaxvm "
                                      r"reads version 1\)"),
    "crc": (make_file()[:-1] + bytes([make_file()[-1] ^ 1]), r"CRC32 mismatch: the file says"),
    "section count": (make_file(count=4), r"section count is 4, expected 3"),
    "section order": (envelope(section(2, u64(0)) + section(1, u64(0)) + section(3, code([]))),
                      r"expected section 1 \(functions\), found tag 2"),
    "section past end": (envelope(u32(1) + u64(2**40)), r"truncated data: functions section "
                                                        r"needs 1099511627776 bytes"),
    "missing section": (envelope(section(1, u64(0)) + section(2, u64(0))),
                        r"truncated data: section header needs 12 bytes"),
    "section trailing bytes": (make_file(functions_body=u64(0) + b"\x00"),
                               r"functions section has 1 unexpected trailing bytes"),
    "file trailing bytes": (envelope(section(1, u64(0)) + section(2, u64(0))
                                     + section(3, code([])) + b"abc"),
                            r"file has 3 unexpected trailing bytes"),
    # fields
    "function count": (make_file(functions_body=u64(2**60)), r"function count "
                        r"1152921504606846976 needs at least .* bytes, only 0 remain"),
    "function kind": (make_file(funcs=[func(5, "main", 0, 5, 1, 3, ["x"]), func(0, "k")]),
                      r"function 0 has unknown kind 5 \(expected 0 packed or 1 VM\)"),
    "name utf8": (make_file(funcs=[BASE_FUNCS[0], func(0, b"\xff\xfe")]),
                  r"function 1 name is not valid UTF-8 \(invalid start byte at byte 0\)"),
    "function truncated": (make_file(functions_body=u64(2) + BASE_FUNCS[0]
                                     + BASE_FUNCS[1][:20] + b"\x00" * 29),
                           r"truncated data: param_names of 'k' count needs 8 bytes"),
    "constant count": (make_file(constants_body=u64(2**50)), r"constant count "
                       r"1125899906842624 needs at least 1125899906842624 bytes"),
    "constant tag": (make_file(consts=[u8(9)]), r"constant 0 has unknown type tag 9 "
                                                r"\(expected 0..8\)"),
    "bool byte": (make_file(consts=[u8(1) + u8(2)]), r"constant 0 bool byte is 2, expected 0 "
                                                     r"or 1"),
    "string utf8": (make_file(consts=[u8(4) + string(b"a\xc3")]),
                    r"constant 0 string is not valid UTF-8"),
    "dtype unknown": (make_file(consts=[u8(5) + string("float33")]),
                      r"constant 0 dtype 'float33' is not a known dtype name"),
    "dtype alias": (make_file(consts=[u8(5) + string("float")]),
                    r"constant 0 dtype 'float' is not canonical \(expected 'float32'\)"),
    "tensor dtype": (make_file(consts=[tensor("object", [1], b"\x00" * 8)]),
                     r"constant 0 dtype 'object' is not a supported tensor dtype"),
    "tensor bytes": (make_file(consts=[tensor("float32", [2], b"\x00" * 4)]),
                     r"constant 0 has 4 data bytes, but float32\[2\] needs 8"),
    "tensor data missing": (make_file(consts=[tensor("float32", [2], b"\x00" * 4, nbytes=8)]),
                            r"truncated data: constant 0 data needs 8 bytes"),
    "tensor negative dim": (make_file(consts=[tensor("int8", [-1], b"")]),
                            r"constant 0 has a negative dimension in shape \[-1\]"),
    "tensor ndim": (make_file(consts=[tensor("int8", [1] * 65, b"\x00")]),
                    r"constant 0 has ndim 65, more than 64"),
    "tensor too big": (make_file(consts=[tensor("int8", [0, 2**62, 2**62], b"")]),
                       r"constant 0 with shape \[0, 4611686018427387904, 4611686018427387904\] "
                       r"cannot be built"),
    "shape count": (make_file(consts=[u8(6) + u64(2**40)]),
                    r"constant 0 shape count 1099511627776 needs at least"),
    "array nesting": (make_file(consts=[nested_array(33)]),
                      r"constant 0\[0\]\[0\].* nests Arrays deeper than 32 levels"),
    # code layout
    "opcode": (make_file(instrs=with_instr(3, [9, 2])),
               r"instruction 3: unknown opcode 9 at word 15 \(expected 1..4\)"),
    "call nargs": (make_file(instrs=[[1, 1, 1, 100, 0]]),
                   r"instruction 0: Call at word 0 has 100 arguments but only 1 words remain"),
    "offsets": (make_file(code_body=code(BASE_CODE, offsets=[0, 7, 9, 15, 17])),
                r"instruction 1 starts at word 7; expected 6 \(instructions must be stored "
                r"back to back\)"),
    "leftover words": (make_file(code_body=code(BASE_CODE, extra_words=[2])),
                       r"instr_data has 20 words but its instructions use 19"),
    "offset count": (make_file(code_body=u64(2**61)), r"instruction offset count "
                     r"2305843009213693952 needs at least"),
    # function table
    "duplicate name": (make_file(funcs=[BASE_FUNCS[0], func(0, "k"), func(0, "k")]),
                       r"function name 'k' appears more than once in the function table"),
    "empty name": (make_file(funcs=[BASE_FUNCS[0], func(0, "")]),
                   r"func_table\[1\] has name ''; expected a non-empty str"),
    "packed fields": (make_file(funcs=[BASE_FUNCS[0], func(0, "k", nargs=3)]),
                      r"function 'k' \(func_table\[1\]\) is a packed function and must have "
                      r"start_instr=0, end_instr=0, num_args=-2"),
    "range outside code": (make_file(funcs=[func(1, "main", 0, 9, 1, 3, ["x"]), func(0, "k")]),
                           r"function 'main' \(func_table\[0\]\) spans instructions \[0, 9\); "
                           r"expected a non-empty range inside the code \[0, 5\)"),
    "empty range": (make_file(funcs=[func(1, "main", 2, 2, 1, 1, ["x"]), func(0, "k")]),
                    r"function 'main' \(func_table\[0\]\) spans instructions \[2, 2\)"),
    "num_args over registers": (make_file(funcs=[func(1, "main", 0, 5, 1, 0, ["x"]),
                                                 func(0, "k")]),
                                r"has register_file_size=0; expected between num_args=1 and "
                                r"num_args \+ its instruction count = 6"),
    "huge register file": (make_file(funcs=[func(1, "main", 0, 5, 1, 2**40, ["x"]),
                                            func(0, "k")]),
                           r"has register_file_size=1099511627776; expected between"),
    "param_names count": (make_file(funcs=[func(1, "main", 0, 5, 1, 3, []), func(0, "k")]),
                          r"function 'main' \(func_table\[0\]\) has num_args=1 and 0 "
                          r"param_names; expected num_args >= 0 and one name per parameter"),
    "overlap": (make_file(funcs=[*BASE_FUNCS, func(1, "g", 3, 5, 0, 0)]),
                r"functions 'main' and 'g' have overlapping instruction ranges"),
    # instructions
    "arg register": (make_file(instrs=with_instr(0, [1, 1, 1, 2, 7, CONST | 0])),
                     r"function 'main', instruction 0 \(call k\): argument 0 reads register "
                     r"7, outside the register file \[0, 3\) and not %void or %vm"),
    "negative register": (make_file(instrs=with_instr(0, [1, 1, 1, 1, 2**56 - 1])),
                          r"instruction 0 \(call k\): argument 0 reads register -1"),
    "dst register": (make_file(instrs=with_instr(0, [1, 3, 1, 0])),
                     r"instruction 0 \(call k\): writes register 3, outside the register file "
                     r"\[0, 3\) and not %void"),
    "dst vm register": (make_file(instrs=with_instr(0, [1, VM, 1, 0])),
                        r"instruction 0 \(call k\): writes register 18014398509481985"),
    "ret register": (make_file(instrs=with_instr(3, [2, 5])),
                     r"instruction 3 \(ret\): returns register 5, outside the register file"),
    "if register": (make_file(instrs=with_instr(1, [4, 9, 3])),
                    r"instruction 1 \(if\): condition reads register 9"),
    "const index": (make_file(instrs=with_instr(0, [1, 1, 1, 2, 0, CONST | 1])),
                    r"instruction 0 \(call k\): argument 1 uses constant c\[1\], but the pool "
                    r"has 1 constants"),
    "call func index": (make_file(instrs=with_instr(0, [1, 1, 2, 0])),
                        r"instruction 0 \(call \?\): calls function index 2, but the function "
                        r"table has 2 entries"),
    "arg func index": (make_file(instrs=with_instr(0, [1, 1, 1, 2, 0, FUNC | 5])),
                       r"argument 1 uses function index 5, but the function table has 2 "
                       r"entries"),
    "arg kind": (make_file(instrs=with_instr(0, [1, 1, 1, 2, 0, 5 << 56])),
                 r"argument 1: decode_arg: word 0x0500000000000000 has unknown kind 5"),
    "goto zero": (make_file(instrs=with_instr(3, [3, 0])),
                  r"instruction 3 \(goto\): goto offset must not be 0"),
    "if offset one": (make_file(instrs=with_instr(1, [4, 1, 1])),
                      r"instruction 1 \(if\): if false_offset must be greater than 1 \(1 is "
                      r"the fall-through instruction\), got 1"),
    "if target": (make_file(instrs=with_instr(1, [4, 1, 9])),
                  r"instruction 1 \(if\): if jumps to instruction 10, outside the function's "
                  r"instructions \[0, 5\)"),
    "goto target": (make_file(instrs=with_instr(3, [3, -9])),
                    r"instruction 3 \(goto\): goto jumps to instruction -6"),
    "no ret": (make_file(funcs=[func(1, "main", 0, 2, 1, 2, ["x"]), func(0, "k")],
                         instrs=[[1, 1, 1, 1, 0], [3, -1]]),
               r"function 'main' has no Ret instruction"),
    "falls off the end": (make_file(funcs=[func(1, "main", 0, 2, 1, 2, ["x"]), func(0, "k")],
                                    instrs=[[2, 0], [1, 1, 1, 1, 0]]),
                          r"function 'main', instruction 1 \(call k\): the last instruction "
                          r"must be Ret or Goto"),
    "vm arity": (make_file(funcs=[func(1, "main", 0, 2, 1, 2, ["x"]),
                                  func(1, "g", 2, 3, 2, 2, ["a", "b"])],
                           instrs=[[1, 1, 1, 1, 0], [2, 1], [2, 0]]),
                 r"instruction 0 \(call g\): calls VM function 'g' with 1 arguments, but it "
                 r"takes 2"),
}


@pytest.mark.parametrize("data, message", list(CASES.values()), ids=list(CASES))
def test_corrupt_file_raises_format_error_naming_the_defect(data, message):
    with pytest.raises(ExecutableFormatError, match=r"^load_executable: .*" + message):
        load_executable(data)


def test_corrupt_cases_start_from_a_baseline_that_loads():
    # Guard for the table above: each case changes one thing in a file that is valid.
    exe = load_executable(make_file())
    assert [f.name for f in exe.func_table] == ["main", "k"] and exe.num_instructions == 5
    assert load_executable(make_file(funcs=[*BASE_FUNCS, func(0, "g")])).has_function("g")
