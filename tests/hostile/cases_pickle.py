"""Hostile MulT pickles: files that use only the globals a numpy pickle names, written opcode by opcode.

Each case is one file an attacker could put on a mirror. Against numpy's own unpickling these
segfault, hang, serve freed or uninitialised memory, or allocate gigabytes; the reader of
``reprolib.data.safepickle`` must refuse each with an error naming the file and the reason. The
structural cases run in a child process (a crash there is counted, not suffered); the layout cases
(labels, ids) go through ``load_mult`` in-process, where nothing can crash.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from .harness import Attempt, case

NAME = "iemocap_data.pkl"
PRELUDE = "from reprolib.data.safepickle import restricted_load"
LOAD = "restricted_load(ARGS['path'])"
MULT_PRELUDE = "from reprolib.data.mult import load_mult"


# ------------------------------------------------------------------------------- a tiny assembler

def unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def raw(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def small_int(n: int) -> bytes:
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def tup(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def dtype(typestr: str, elsize: int = -1, alignment: int = -1, flags: int = 0, order: str = "<",
          fields: bytes = b"N") -> bytes:
    state = tup(small_int(3), unicode(order), b"N", fields, fields, small_int(elsize) if elsize >= 0 else b"J\xff\xff\xff\xff",
                small_int(alignment) if alignment >= 0 else b"J\xff\xff\xff\xff", small_int(flags))
    return glob("numpy", "dtype") + unicode(typestr) + b"\x89\x88\x87R" + state + b"b"


def pending_array() -> bytes:
    """``_reconstruct(ndarray, (0,), b'b')``: an array without its state yet."""
    return glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + b"K\x00\x85" + \
        b"C\x01b" + b"\x87R"


def array(shape: tuple[int, ...], dtype_code: bytes, data: bytes) -> bytes:
    shape_code = tup(*(small_int(s) for s in shape))
    return pending_array() + tup(small_int(1), shape_code, dtype_code, b"\x89", data) + b"b"


def f32(values) -> bytes:
    arr = np.asarray(values, dtype="<f4")
    return array(arr.shape, dtype("f4"), raw(arr.tobytes()))


def in_dict(key: str, value: bytes) -> bytes:
    return b"}" + unicode(key) + value + b"s"


def program(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def write(tmp: Path, blob: bytes, name: str = NAME) -> dict:
    path = tmp / name
    path.write_bytes(blob)
    return {"path": str(path)}


def structural(tmp: Path, blob: bytes, *words: str, name: str = NAME) -> Attempt:
    return Attempt(LOAD, (name, *words), args=write(tmp, blob, name), prelude=PRELUDE)


def ignored_key(value: bytes) -> bytes:
    """A valid-looking dict whose extra key ``junk`` (which load_mult never reads) holds ``value``."""
    return program(b"}" + unicode("ok") + f32([1.0, 2.0]) + b"s" + unicode("junk") + value + b"s")


# ------------------------------------------------------------------------------- memory safety

@case("pickle", "float dtype with forged flags under an ignored key", isolate=True)
def forged_flags(tmp: Path) -> Attempt:
    return structural(tmp, ignored_key(array((2,), dtype("f4", flags=63), raw(b"\0" * 8))), "forged")


@case("pickle", "object dtype with forged flags (as an id array uses)", isolate=True)
def forged_object_flags(tmp: Path) -> Attempt:
    items = b"]" + b"(" + unicode("a") + unicode("b") + b"e"
    return structural(tmp, ignored_key(array((2,), dtype("O8", order="|", flags=1), items)), "forged")


@case("pickle", "second BUILD on a memoised array (frees data under a view)", isolate=True)
def second_build(tmp: Path) -> Attempt:
    first = pending_array() + b"q\x05" + tup(small_int(1), tup(small_int(2)), dtype("f4"), b"\x89", raw(b"\0" * 8)) + b"b"
    again = b"0h\x05" + tup(small_int(1), tup(small_int(1)), dtype("f4"), b"\x89", raw(b"\0" * 4)) + b"b"
    return structural(tmp, program(first + again), "BUILD")


@case("pickle", "array declared with no data (uninitialised memory)", isolate=True)
def no_data(tmp: Path) -> Attempt:
    return structural(tmp, program(in_dict("text", pending_array())), "before its state")


@case("pickle", "array whose data is shorter than its shape", isolate=True)
def short_data(tmp: Path) -> Attempt:
    return structural(tmp, program(in_dict("text", array((250, 250, 250), dtype("f4"), raw(b"\0" * 4)))), "needs")


@case("pickle", "ndarray called with a zero-stride buffer (4 bytes grow to 3.4 GB)", isolate=True)
def zero_stride(tmp: Path) -> Attempt:
    call = glob("numpy", "ndarray") + tup(tup(b"J\x00\x00\x00\x20"), dtype("f4"), raw(b"\0" * 4),
                                          small_int(0), tup(small_int(0))) + b"R"
    return structural(tmp, program(in_dict("text", call)), "cannot be called")


@case("pickle", "_reconstruct with a forged shape", isolate=True)
def reconstruct_shape(tmp: Path) -> Attempt:
    call = glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + \
        tup(b"J\x00\x00\x00\x40") + b"C\x01b\x87R"
    return structural(tmp, program(call), "_reconstruct")


@case("pickle", "one data block given to two arrays (a view)", isolate=True)
def shared_block(tmp: Path) -> Attempt:
    block = raw(b"\0" * 8) + b"q\x09"
    a = array((2,), dtype("f4"), block)
    b = array((2,), dtype("f4"), b"h\x09")
    return structural(tmp, program(b"}(" + unicode("a") + a + unicode("b") + b + b"u"), "two arrays")


# ------------------------------------------------------------------------------- bounded sizes

@case("pickle", "14-byte file declaring a 100 GB block", isolate=True)
def huge_block(tmp: Path) -> Attempt:
    return structural(tmp, b"\x80\x04\x8e" + struct.pack("<Q", 100 << 30) + b"abc", "declares")


@case("pickle", "bytearray declaring 1 TB", isolate=True)
def huge_bytearray(tmp: Path) -> Attempt:
    return structural(tmp, b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b".", "declares")


@case("pickle", "string declaring 4 GB", isolate=True)
def huge_string(tmp: Path) -> Attempt:
    return structural(tmp, b"\x80\x04X\xff\xff\xff\xff" + b"a" * 10, "declares")


@case("pickle", "tuple nested 300,000 deep", isolate=True)
def deep_tuple(tmp: Path) -> Attempt:
    return structural(tmp, program(b"N" + b"\x85" * 300_000), "nest more than")


@case("pickle", "list nested 100,000 deep", isolate=True)
def deep_list(tmp: Path) -> Attempt:
    return structural(tmp, program(b"]" * 100_000 + b"a" * 99_999), "nest more than")


@case("pickle", "60-level tuple DAG as a dict key (hashing never ends)", isolate=True)
def dag_key(tmp: Path) -> Attempt:
    dag = b"N" + b"2\x86" * 60
    return structural(tmp, program(b"}" + dag + b"Ns"), "nest more than")


@case("pickle", "20-level tuple DAG as a dict key", isolate=True)
def dag_key_shallow(tmp: Path) -> Attempt:
    dag = b"N" + b"2\x86" * 20
    return structural(tmp, program(b"}" + dag + b"Ns"), "dict key")


@case("pickle", "5 MB of None opcodes into one list (memory 17x the file)", isolate=True)
def amplification(tmp: Path) -> Attempt:
    return structural(tmp, program(b"](" + b"N" * (5 << 20) + b"e"), "memory")


@case("pickle", "LONG4 integer of 1 MB", isolate=True)
def huge_long(tmp: Path) -> Attempt:
    return structural(tmp, program(b"\x8b" + struct.pack("<i", 1 << 20) + b"\x01" * (1 << 20)), "LONG4")


# ------------------------------------------------------------------------------- structure

@case("pickle", "a list that holds itself", isolate=True)
def self_cycle(tmp: Path) -> Attempt:
    return structural(tmp, program(b"]q\x00h\x00a"), "holds itself")


@case("pickle", "a container filled after it went into another one (cycle)", isolate=True)
def late_fill(tmp: Path) -> Attempt:
    return structural(tmp, program(b"]q\x00]q\x01h\x00a0h\x01a"), "after it was put")


@case("pickle", "memo index never stored", isolate=True)
def bad_memo(tmp: Path) -> Attempt:
    return structural(tmp, program(b"j\xff\xff\xff\x7f"), "never stored")


@case("pickle", "structured dtype", isolate=True)
def structured(tmp: Path) -> Attempt:
    return structural(tmp, program(dtype("V8", elsize=8, alignment=1, order="|", fields=b")")), "structured")


@case("pickle", "datetime dtype", isolate=True)
def datetime_dtype(tmp: Path) -> Attempt:
    return structural(tmp, program(dtype("M8")), "refused")


@case("pickle", "object array holding a dict", isolate=True)
def object_item(tmp: Path) -> Attempt:
    items = b"](" + b"}" + b"e"
    return structural(tmp, program(array((1,), dtype("O8", order="|", flags=63), items)), "object array item")


@case("pickle", "numpy scalar with too few bytes", isolate=True)
def short_scalar(tmp: Path) -> Attempt:
    return structural(tmp, program(glob("numpy.core.multiarray", "scalar") + tup(dtype("f8"), raw(b"\0")) + b"R"), "needs")


@case("pickle", "_frombuffer with a shape larger than its buffer", isolate=True)
def short_frombuffer(tmp: Path) -> Attempt:
    call = glob("numpy.core.numeric", "_frombuffer") + tup(raw(b"\0" * 4), dtype("f4"), tup(b"J\x00\x00\x00\x10"),
                                                           unicode("C")) + b"R"
    return structural(tmp, program(call), "needs")


@case("pickle", "a pickle truncated inside an array's data", isolate=True)
def truncated(tmp: Path) -> Attempt:
    blob = pickle.dumps({"train": {"text": np.zeros((4, 5, 6), np.float32)}}, protocol=4)
    return structural(tmp, blob[: len(blob) // 2], "declares")


@case("pickle", "a pickle cut before STOP", isolate=True)
def no_stop(tmp: Path) -> Attempt:
    blob = pickle.dumps({"train": [1, 2, 3]}, protocol=4)
    return structural(tmp, blob[:-1], "STOP")


@case("pickle", "a zip archive renamed .pkl", isolate=True)
def renamed_zip(tmp: Path) -> Attempt:
    np.savez(tmp / "x.npz", a=np.zeros(3))
    return structural(tmp, (tmp / "x.npz").read_bytes(), "PERSID")


@case("pickle", "a gzip file renamed .pkl", isolate=True)
def renamed_gzip(tmp: Path) -> Attempt:
    import gzip
    return structural(tmp, gzip.compress(pickle.dumps({"a": 1})), "not admitted")


# ------------------------------------------------------------------------------- code execution

@case("pickle", "os.system under an ignored key", isolate=True)
def os_system(tmp: Path) -> Attempt:
    marker = tmp / "ran"
    call = glob("os", "system") + tup(unicode(f"touch {marker}")) + b"R"
    return structural(tmp, ignored_key(call), "os.system")


@case("pickle", "builtins.getattr chain", isolate=True)
def getattr_chain(tmp: Path) -> Attempt:
    call = glob("builtins", "getattr") + tup(glob("numpy", "ndarray"), unicode("__setstate__")) + b"R"
    return structural(tmp, program(call), "builtins.getattr")


@case("pickle", "INST opcode", isolate=True)
def inst(tmp: Path) -> Attempt:
    return structural(tmp, program(b"(" + b"icollections\nOrderedDict\n"), "INST")


@case("pickle", "OBJ opcode", isolate=True)
def obj(tmp: Path) -> Attempt:
    return structural(tmp, program(b"(" + glob("collections", "OrderedDict") + b"o"), "OBJ")


@case("pickle", "persistent id", isolate=True)
def persistent(tmp: Path) -> Attempt:
    return structural(tmp, program(unicode("x") + b"Q"), "BINPERSID")


@case("pickle", "extension registry code", isolate=True)
def ext(tmp: Path) -> Attempt:
    return structural(tmp, program(b"\x82\x01"), "EXT1")


@case("pickle", "_codecs.encode with another codec", isolate=True)
def codec(tmp: Path) -> Attempt:
    call = glob("_codecs", "encode") + tup(unicode("abc"), unicode("rot13")) + b"R"
    return structural(tmp, program(call), "latin1")


@case("pickle", "BUILD on an admitted global (tampering with numpy)", isolate=True)
def build_global(tmp: Path) -> Attempt:
    state = b"N}" + unicode("__defaults__") + tup(small_int(1)) + b"s\x86"
    return structural(tmp, program(glob("numpy.core.numeric", "_frombuffer") + state + b"b"), "BUILD")


# ------------------------------------------------------------------------------- layout, through load_mult

def _iemocap(labels: np.ndarray, n: int = 2, ids=None) -> dict:
    split = {"text": np.zeros((n, 3, 4), np.float32), "audio": np.zeros((n, 3, 5), np.float32),
             "vision": np.zeros((n, 3, 2), np.float32), "labels": labels}
    if ids is not None:
        split["id"] = ids
    return {s: dict(split) for s in ("train", "valid", "test")}


def _good_iemocap_labels(n: int = 2) -> np.ndarray:
    """(absent, present) one-hot pairs: every emotion absent."""
    labels = np.zeros((n, 4, 2), np.float32)
    labels[..., 0] = 1
    return labels


def _load(tmp: Path, data: dict, dataset: str, *words: str, name: str = NAME) -> Attempt:
    from reprolib.data.mult import load_mult

    path = tmp / name
    path.write_bytes(pickle.dumps(data, protocol=4))
    return Attempt(lambda: load_mult(path, dataset), (name, *words))


for _pair in ([0, 0], [1, 1], [5, -7]):
    def _make(tmp: Path, pair=_pair) -> Attempt:
        labels = _good_iemocap_labels()
        labels[1, 2] = pair
        return _load(tmp, _iemocap(labels), "iemocap", "one-hot", "Sad")
    case("mult", f"IEMOCAP label pair {_pair}")(_make)
del _pair


@case("mult", "MOSEI label NaN")
def mosei_nan(tmp: Path) -> Attempt:
    data = _iemocap(np.array([[[0.5]], [[np.nan]]], np.float32))
    return _load(tmp, data, "mosei", "non-finite", name="mosei_senti_data.pkl")


@case("mult", "MOSEI id of numbers")
def mosei_id_numbers(tmp: Path) -> Attempt:
    data = _iemocap(np.array([[[0.5]], [[1.0]]], np.float32), ids=np.zeros((2, 3)))
    return _load(tmp, data, "mosei", "'id'", "strings", name="mosei_senti_data.pkl")


@case("mult", "top level is a list")
def top_list(tmp: Path) -> Attempt:
    return _load(tmp, [1, 2], "iemocap", "expected a dict")


@case("mult", "a modality that is 2-D")
def flat_modality(tmp: Path) -> Attempt:
    data = _iemocap(_good_iemocap_labels())
    data["train"]["audio"] = np.zeros((2, 5), np.float32)
    return _load(tmp, data, "iemocap", "'audio'", "3-D")


def valid_iemocap_with(junk: bytes) -> bytes:
    """A complete, valid IEMOCAP-layout file (two samples per split) with ``junk`` under an extra key."""
    labels = _good_iemocap_labels()
    split = b"}(" + b"".join(unicode(m) + f32(np.zeros((2, 3, d))) for m, d in (("text", 4), ("audio", 5), ("vision", 2)))
    split += unicode("labels") + f32(labels) + b"u"
    body = b"}(" + b"".join(unicode(s) + split for s in ("train", "valid", "test")) + unicode("junk") + junk + b"u"
    return program(body)


@case("mult", "valid file with a forged-flags dtype under a key load_mult ignores", isolate=True)
def mult_forged(tmp: Path) -> Attempt:
    blob = valid_iemocap_with(array((2,), dtype("f4", flags=63), raw(b"\0" * 8)))
    return Attempt("load_mult(ARGS['path'], 'iemocap')", (NAME, "forged"), args=write(tmp, blob), prelude=MULT_PRELUDE)


@case("mult", "valid file with os.system under a key load_mult ignores", isolate=True)
def mult_os_system(tmp: Path) -> Attempt:
    blob = valid_iemocap_with(glob("os", "system") + tup(unicode(f"touch {tmp / 'ran'}")) + b"R")
    return Attempt("load_mult(ARGS['path'], 'iemocap')", (NAME, "os.system"), args=write(tmp, blob),
                   prelude=MULT_PRELUDE)
