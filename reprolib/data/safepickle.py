"""A pickle reader for data files from third-party mirrors that cannot run code or corrupt memory.

``pickle.load`` runs whatever callable a file names. Restricting the callables to numpy's own array
builders (what an allow-listing ``Unpickler.find_class`` does) is not enough: numpy's
``_reconstruct`` / ``ndarray.__setstate__`` / ``dtype.__setstate__`` trust their arguments, so a file
that uses only them can forge a dtype's flags (numpy then frees an attacker-chosen pointer), run a
second ``__setstate__`` on an array a view still points into, declare an array with no data (numpy
serves uninitialised heap memory), or call ``ndarray(shape, dtype, buffer, offset, strides)`` to
make a zero-stride view that grows 4 bytes into gigabytes.

So this module interprets the pickle opcodes itself and never hands data from the file to numpy's
pickle support. The globals a numpy pickle names are mapped to markers, and the arrays and dtypes
are built here from checked values:

* a dtype is built from its type string (bool, signed/unsigned integers, floats, complex, and the
  fixed-size ``U``/``S`` strings and ``O`` objects an ``id`` array needs) and its byte order; the
  flags, fields and subarray parts of the state are refused or ignored, never passed on;
* an array is built with ``numpy.frombuffer`` over a bytes block read from the file, whose length
  must equal shape x itemsize exactly; an object array only from a list of str / bytes / numbers;
  each array and dtype gets its state once, and one data block serves one array (no views);
* containers nest at most :data:`MAX_DEPTH` deep and may not be filled after they were put into
  another one (which also rules out cycles); dict keys are plain scalars, so hashing is cheap;
* every length the file declares is checked against the bytes left in it, and everything built is
  charged to a budget of :data:`BUDGET_SLACK` plus :data:`BUDGET_FACTOR` times the file's size.

Every refusal is a :class:`~reprolib.data.errors.DataFormatError` (:class:`UnsafePickleError` for a
global outside the allow-list) naming the file, the byte offset and the reason.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from reprolib.data.errors import DataFormatError

MAX_DEPTH = 32                   # a MulT pickle nests about 5 deep (dict, dict, array state, id list)
MAX_NDIM = 32
BUDGET_SLACK = 64 << 20          # bytes every file may build beyond BUDGET_FACTOR times its own size
BUDGET_FACTOR = 3
LARGE_BLOCK = 1 << 20            # raw blocks from this size on are read into a bytearray (no copy)
OBJECT_OVERHEAD = 64             # what one built Python object is charged, on top of its payload
DTYPE_KINDS = "biufc"            # numeric kinds (bool, int, unsigned, float, complex)
STRING_KINDS = "US"              # fixed-size unicode / bytes, as an ``id`` array may use
OBJECT_ITEM_TYPES = (str, bytes, int, float, bool, type(None))
KEY_TYPES = (str, bytes, int, float, bool, type(None))


class UnsafePickleError(DataFormatError):
    """A pickle asked for a global outside the allow-list; nothing from it was called."""


# ---------------------------------------------------------------------------------------------------
# What the globals of a numpy pickle stand for
# ---------------------------------------------------------------------------------------------------

class _Marker:
    """A global the file may name; it is only a name here, never numpy's own function or class."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


RECONSTRUCT = _Marker("numpy _reconstruct")
NDARRAY = _Marker("numpy.ndarray")
DTYPE = _Marker("numpy.dtype")
SCALAR = _Marker("numpy scalar")
FROMBUFFER = _Marker("numpy _frombuffer")
ORDERED_DICT = _Marker("collections.OrderedDict")
CODECS_ENCODE = _Marker("_codecs.encode")
EMPTY_BYTES = _Marker("bytes")  # protocols 0-2 write b"" as a call of bytes() with no arguments

_GLOBALS: dict[tuple[str, str], _Marker] = {
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): DTYPE,
    ("collections", "OrderedDict"): ORDERED_DICT,
    ("_codecs", "encode"): CODECS_ENCODE,
    ("builtins", "bytes"): EMPTY_BYTES,
    ("__builtin__", "bytes"): EMPTY_BYTES,
}
for _package in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x module names
    _GLOBALS[(f"{_package}.multiarray", "_reconstruct")] = RECONSTRUCT
    _GLOBALS[(f"{_package}.multiarray", "scalar")] = SCALAR
    _GLOBALS[(f"{_package}.numeric", "_frombuffer")] = FROMBUFFER
del _package
ALLOWED_GLOBALS = tuple(sorted(f"{m}.{n}" for m, n in _GLOBALS))


class _Pending:
    """An array or dtype that was declared (REDUCE) but has not had its state (BUILD) yet.

    It may sit on the stack and in the memo only; it cannot go into a container or an argument, so
    no array without data ever reaches the caller.
    """

    def __init__(self, kind: str, typestr: str | None = None):
        self.kind = kind            # "array" or "dtype"
        self.typestr = typestr      # dtype only: the type string from the REDUCE arguments
        self.memo_keys: list[int] = []


class _Refused(Exception):
    """Internal: a reason to refuse the file; :func:`restricted_load` adds the file name and offset."""


def _plain_dtype(typestr: Any, state: Any) -> np.dtype:
    """A numpy dtype from the REDUCE type string and the BUILD state, built here from checked parts."""
    if not isinstance(typestr, str) or not typestr or len(typestr) > 16:
        raise _Refused(f"dtype type string must be a short str, got {typestr!r}")
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise _Refused(f"dtype state must be a tuple of 8 or 9 items, got {_brief(state)}")
    version, order, subarray, names, fields, elsize, alignment = state[:7]
    if version not in (3, 4):
        raise _Refused(f"dtype state version {version!r} is not 3 or 4")
    if subarray is not None or names is not None or fields is not None:
        raise _Refused("structured and subarray dtypes are refused; a MulT pickle holds plain arrays")
    if len(state) == 9 and state[8] is not None:
        raise _Refused("dtype metadata is refused; a MulT pickle holds plain arrays")
    if order not in ("<", ">", "|", "="):
        raise _Refused(f"dtype byte order {order!r} is not one of < > | =")
    kind = typestr[0]
    if kind in STRING_KINDS:
        unit = 4 if kind == "U" else 1
        if not isinstance(elsize, int) or isinstance(elsize, bool) or elsize <= 0 or elsize % unit or elsize > 1 << 16:
            raise _Refused(f"{kind} dtype with item size {elsize!r}: expected a positive multiple of {unit} up to 65536")
        dtype = np.dtype(f"{kind}{elsize // unit}")
    elif kind == "O":
        if typestr not in ("O", "O8", "O4"):
            raise _Refused(f"object dtype type string {typestr!r}")
        dtype = np.dtype(object)
    else:
        if kind not in DTYPE_KINDS or not typestr[1:].isdigit():
            raise _Refused(f"dtype {typestr!r} is refused; admitted are bool, integers, floats, complex, "
                           f"U/S strings and objects")
        try:
            dtype = np.dtype(typestr)
        except TypeError:
            raise _Refused(f"dtype {typestr!r} is not a numpy type") from None
        if dtype.kind not in DTYPE_KINDS:
            raise _Refused(f"dtype {typestr!r} is not numeric")
    # numpy writes these parts itself; anything else was forged (numpy would trust forged flags)
    flexible = kind in STRING_KINDS
    if state[7] != dtype.flags or (not flexible and elsize != -1) or alignment not in (-1, dtype.alignment):
        raise _Refused(f"dtype {typestr!r} with forged state (item size {_brief(elsize)}, alignment "
                       f"{_brief(alignment)}, flags {_brief(state[7])}; numpy writes -1, -1 or "
                       f"{dtype.alignment}, {dtype.flags})")
    if order in "<>" and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(order)
    return dtype


def _brief(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, bool, type(None))) else type(value).__name__
    return text[:80]


def _as_raw(data: Any, what: str) -> bytes | bytearray:
    if isinstance(data, str):  # Python-2 era pickles carry raw data as str decoded with latin-1
        try:
            return data.encode("latin1")
        except UnicodeEncodeError:
            raise _Refused(f"{what}: raw data given as a str with characters beyond latin-1") from None
    if not isinstance(data, (bytes, bytearray)):
        raise _Refused(f"{what}: raw data must be bytes, got {_brief(data)}")
    return data


def _shape_of(shape: Any, what: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > MAX_NDIM or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise _Refused(f"{what}: shape must be a tuple of at most {MAX_NDIM} non-negative ints, got {_brief(shape)}")
    return shape


# ---------------------------------------------------------------------------------------------------
# The opcode interpreter
# ---------------------------------------------------------------------------------------------------

class _Reader:
    """Interprets one pickle, opcode by opcode, building only plain containers and checked arrays."""

    def __init__(self, fh: BinaryIO, size: int | None):
        self.fh = fh
        self.size = size
        self.pos = 0
        self.stack: list[Any] = []
        self.marks: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.depth: dict[int, int] = {}      # id(container) -> nesting depth
        self.sealed: set[int] = set()        # ids of containers already inside another one
        self.keep: list[Any] = []            # keeps containers alive so their ids stay theirs
        self.used_blocks: set[int] = set()   # ids of raw blocks that already back an array
        self.marker_tuples: set[int] = set()  # ids of tuples that hold a global (REDUCE arguments)
        self.budget = BUDGET_SLACK + BUDGET_FACTOR * (size if size is not None else 0)
        self.spent = 0
        self.opcode = "?"

    # ---- bytes -----------------------------------------------------------------------------------

    def read(self, n: int, what: str) -> bytes:
        if n < 0:
            raise _Refused(f"{what}: negative length {n}")
        if self.size is not None and n > self.size - self.pos:
            raise _Refused(f"{what} declares {n:,} bytes but the file has {self.size - self.pos:,} left "
                           f"(truncated or forged)")
        self.charge(n)
        data = self.fh.read(n)
        if len(data) != n:
            raise _Refused(f"{what}: the file ends {n - len(data):,} bytes early")
        self.pos += n
        return data

    def read_block(self, n: int, what: str) -> bytes | bytearray:
        """A raw block; large ones are read straight into a bytearray, so an array built on it is no copy."""
        if n < LARGE_BLOCK:
            return self.read(n, what)
        if self.size is not None and n > self.size - self.pos:
            raise _Refused(f"{what} declares {n:,} bytes but the file has {self.size - self.pos:,} left "
                           f"(truncated or forged)")
        self.charge(n)
        block = bytearray(n)
        view = memoryview(block)
        got = 0
        while got < n:
            k = self.fh.readinto(view[got:])
            if not k:
                raise _Refused(f"{what}: the file ends {n - got:,} bytes early")
            got += k
        self.pos += n
        return block

    def line(self, what: str) -> bytes:
        limit = (self.size - self.pos) if self.size is not None else 1 << 20
        data = self.fh.readline(limit + 1)
        if not data.endswith(b"\n"):
            raise _Refused(f"{what}: line not terminated")
        self.pos += len(data)
        self.charge(len(data))
        return data[:-1]

    def unpack(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def charge(self, n: int) -> None:
        self.spent += n
        if self.spent > self.budget:
            raise _Refused(f"building this file would take more than {self.budget:,} bytes of memory "
                           f"({BUDGET_SLACK >> 20} MiB plus {BUDGET_FACTOR} times the file's size); a data pickle never "
                           f"needs that")

    # ---- stack -----------------------------------------------------------------------------------

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Refused("MARK missing")
        items, self.stack = self.stack, self.marks.pop()
        return items

    def pop(self) -> Any:
        if not self.stack:
            raise _Refused("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise _Refused("stack underflow")
        return self.stack[-1]

    def item(self, value: Any, in_tuple: bool = False) -> int:
        """Check that ``value`` may go into a container or an argument list; return its depth.

        A global may only sit in a tuple (the arguments of a REDUCE), and such a tuple only be called with.
        """
        if isinstance(value, _Pending):
            raise _Refused(f"a {'dtype or array' if value.kind == 'built' else value.kind} is used before its "
                           f"state was given, or given twice")
        if isinstance(value, _Marker):
            if in_tuple:
                return 0
            raise _Refused(f"{value} used as a value")
        if isinstance(value, tuple) and id(value) in self.marker_tuples:
            raise _Refused("a tuple holding a global is used as a value")
        if isinstance(value, (list, dict, tuple)):
            self.sealed.add(id(value))
            return self.depth.get(id(value), 1)
        return 0

    def container(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Refused(f"containers nest more than {MAX_DEPTH} deep")
        self.depth[id(value)] = depth
        self.keep.append(value)
        self.charge(OBJECT_OVERHEAD)
        return value

    def make_tuple(self, items: list[Any]) -> tuple:
        depth = 1 + max((self.item(v, in_tuple=True) for v in items), default=0)
        self.charge(8 * len(items))
        value = self.container(tuple(items), depth)
        if any(isinstance(v, _Marker) for v in items):
            self.marker_tuples.add(id(value))
        return value

    def fill(self, target: Any, values: list[Any], pairs: bool) -> None:
        if isinstance(target, _Pending) or not isinstance(target, dict if pairs else list):
            raise _Refused(f"{'SETITEM' if pairs else 'APPEND'} on a {type(target).__name__}")
        if id(target) in self.sealed:
            raise _Refused("a container is filled after it was put into another one")
        if pairs and len(values) % 2:
            raise _Refused("odd number of items for a dict")
        depth = self.depth.get(id(target), 1)
        for v in values:
            if v is target:
                raise _Refused("a container holds itself")
            depth = max(depth, 1 + self.item(v))
        if depth > MAX_DEPTH:
            raise _Refused(f"containers nest more than {MAX_DEPTH} deep")
        self.depth[id(target)] = depth
        self.charge(8 * len(values) * (2 if pairs else 1))
        if pairs:
            for k, v in zip(values[::2], values[1::2]):
                if not isinstance(k, KEY_TYPES):
                    raise _Refused(f"dict key of type {type(k).__name__}; keys must be plain scalars")
                target[k] = v
        else:
            target.extend(values)

    def new(self, value: Any, payload: int = 0) -> Any:
        self.charge(OBJECT_OVERHEAD + payload)
        self.stack.append(value)
        return value

    # ---- memo ------------------------------------------------------------------------------------

    def put(self, key: int) -> None:
        if key < 0:
            raise _Refused(f"negative memo index {key}")
        value = self.top()
        self.memo[key] = value
        if isinstance(value, _Pending):
            value.memo_keys.append(key)
        self.charge(16)

    def get(self, key: int) -> None:
        if key not in self.memo:
            raise _Refused(f"memo index {key} was never stored")
        self.stack.append(self.memo[key])
        self.charge(8)

    # ---- calls -----------------------------------------------------------------------------------

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Marker):
            raise _Refused(f"REDUCE on a {type(func).__name__}; only the admitted numpy builders can be called")
        if not isinstance(args, tuple):
            raise _Refused(f"{func}: arguments must be a tuple")
        if func is RECONSTRUCT:
            if len(args) != 3 or args[0] is not NDARRAY or args[1] != (0,) or args[2] not in (b"b", "b"):
                raise _Refused(f"{func}: expected (numpy.ndarray, (0,), b'b'), got "
                               f"({', '.join(_brief(a) for a in args)})")
            return _Pending("array")
        for a in args:
            self.item(a)
        if func is DTYPE:
            if len(args) != 3 or not isinstance(args[0], str):
                raise _Refused(f"{func}: expected (type string, align, copy)")
            return _Pending("dtype", args[0])
        if func is SCALAR:
            if len(args) != 2 or not isinstance(args[0], np.dtype) or args[0].kind == "O":
                raise _Refused(f"{func}: expected (numeric dtype, raw bytes)")
            raw = _as_raw(args[1], "numpy scalar")
            if len(raw) != args[0].itemsize:
                raise _Refused(f"numpy scalar of {args[0]} needs {args[0].itemsize} bytes, got {len(raw)}")
            return np.frombuffer(bytes(raw), dtype=args[0], count=1)[0]
        if func is FROMBUFFER:
            if len(args) != 4:
                raise _Refused(f"{func}: expected (buffer, dtype, shape, order)")
            buf, dtype, shape, order = args
            if order not in ("C", "F"):
                raise _Refused(f"{func}: order {order!r} is not 'C' or 'F'")
            return self.array(dtype, shape, order == "F", buf)
        if func is ORDERED_DICT:
            if args:
                raise _Refused(f"{func}: expected no arguments")
            return self.container(OrderedDict(), 1)
        if func is CODECS_ENCODE:
            if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str) or \
                    args[1].replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
                raise UnsafePickleError(f"_codecs.encode is admitted only as (str, 'latin1'), got "
                                        f"{', '.join(_brief(a) for a in args)}")
            return _as_raw(args[0], "_codecs.encode")
        if func is EMPTY_BYTES:
            if args:
                raise _Refused(f"{func} is admitted only with no arguments (b'')")
            return b""
        raise _Refused(f"{func} cannot be called")  # NDARRAY: calling it would make a view of any buffer

    def array(self, dtype: Any, shape: Any, fortran: Any, data: Any) -> np.ndarray:
        if not isinstance(dtype, np.dtype):
            raise _Refused(f"array dtype must be a dtype built from this file, got {_brief(dtype)}")
        shape = _shape_of(shape, "array")
        if not isinstance(fortran, bool):
            raise _Refused(f"array order flag must be a bool, got {_brief(fortran)}")
        count = math.prod(shape)
        order = "F" if fortran else "C"
        if dtype.kind == "O":
            if not isinstance(data, list) or len(data) != count:
                raise _Refused(f"object array of shape {shape} needs a list of {count} items, got {_brief(data)}")
            bad = next((v for v in data if not isinstance(v, OBJECT_ITEM_TYPES)), None)
            if bad is not None:
                raise _Refused(f"object array item of type {type(bad).__name__}; admitted are str, bytes and numbers")
            out = np.empty(count, dtype=object)
            out[:] = data
            self.charge(8 * count)
            return out.reshape(shape, order=order)
        raw = _as_raw(data, f"array of shape {shape} and dtype {dtype}")
        if len(raw) != count * dtype.itemsize:
            raise _Refused(f"array of shape {shape} and dtype {dtype} needs {count * dtype.itemsize:,} bytes, "
                           f"the file gives {len(raw):,}")
        if count == 0:
            return np.zeros(shape, dtype=dtype, order=order)
        if id(raw) in self.used_blocks:
            raise _Refused("one data block is given to two arrays (a view); refused")
        self.used_blocks.add(id(raw))
        self.keep.append(raw)
        if isinstance(raw, bytes):  # small blocks: a writable copy, as numpy's own unpickling gives
            raw = bytearray(raw)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order=order)

    def build(self, obj: Any, state: Any) -> Any:
        if not isinstance(obj, _Pending) or obj.kind == "built":
            what = ("an array or dtype that has its state" if isinstance(obj, _Pending) else
                    repr(obj) if isinstance(obj, _Marker) else f"a {type(obj).__name__}")
            raise _Refused(f"BUILD on {what}; state is only given once, to a new array or dtype")
        self.item(state)
        if obj.kind == "dtype":
            built: Any = _plain_dtype(obj.typestr, state)
        else:
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise _Refused(f"array state must be a tuple of 4 or 5 items, got {_brief(state)}")
            if len(state) == 5:
                if state[0] != 1:
                    raise _Refused(f"array state version {state[0]!r} is not 1")
                state = state[1:]
            built = self.array(state[1], state[0], state[2], state[3])
        obj.kind = "built"
        for key in obj.memo_keys:
            if self.memo.get(key) is obj:
                self.memo[key] = built
        return built

    # ---- the loop --------------------------------------------------------------------------------

    def run(self) -> Any:
        ops = _OPS
        while True:
            if self.size is not None and self.pos >= self.size:
                raise _Refused("the file ends before the STOP opcode (truncated)")
            code = self.read(1, "opcode")
            self.charge(8)  # the stack slot an opcode may fill
            handler = ops.get(code)
            if handler is None:
                raise _Refused(f"opcode {code!r} is not admitted (a data pickle does not need it)")
            self.opcode = handler.__name__
            result = handler(self)
            if result is _STOP:
                value = self.pop()
                if isinstance(value, (_Pending, _Marker)) or id(value) in self.marker_tuples:
                    raise _Refused(f"the pickle's value is {_brief(value)}, not data")
                return value


_STOP = object()
_OPS: dict[bytes, Callable[[_Reader], Any]] = {}


def _op(code: bytes) -> Callable:
    def register(func: Callable[[_Reader], Any]) -> Callable[[_Reader], Any]:
        _OPS[code] = func
        return func
    return register


@_op(b"\x80")
def PROTO(r: _Reader) -> None:
    version = r.read(1, "PROTO")[0]
    if version > 5:
        raise _Refused(f"pickle protocol {version} is newer than 5")


@_op(b"\x95")
def FRAME(r: _Reader) -> None:
    r.unpack("<Q", "FRAME")  # frames only group the opcodes that follow; nothing to do


@_op(b".")
def STOP(r: _Reader) -> Any:
    return _STOP


@_op(b"(")
def MARK(r: _Reader) -> None:
    r.marks.append(r.stack)
    r.stack = []


@_op(b"0")
def POP(r: _Reader) -> None:
    if r.stack:
        r.stack.pop()
    else:
        r.pop_mark()


@_op(b"1")
def POP_MARK(r: _Reader) -> None:
    r.pop_mark()


@_op(b"2")
def DUP(r: _Reader) -> None:
    r.stack.append(r.top())


# -- scalars

@_op(b"N")
def NONE(r: _Reader) -> None:
    r.stack.append(None)


@_op(b"\x88")
def NEWTRUE(r: _Reader) -> None:
    r.stack.append(True)


@_op(b"\x89")
def NEWFALSE(r: _Reader) -> None:
    r.stack.append(False)


@_op(b"K")
def BININT1(r: _Reader) -> None:
    r.new(r.read(1, "BININT1")[0])


@_op(b"M")
def BININT2(r: _Reader) -> None:
    r.new(r.unpack("<H", "BININT2"))


@_op(b"J")
def BININT(r: _Reader) -> None:
    r.new(r.unpack("<i", "BININT"))


@_op(b"\x8a")
def LONG1(r: _Reader) -> None:
    n = r.read(1, "LONG1")[0]
    r.new(int.from_bytes(r.read(n, "LONG1"), "little", signed=True))


@_op(b"\x8b")
def LONG4(r: _Reader) -> None:
    n = r.unpack("<i", "LONG4")
    if n > 64:
        raise _Refused(f"LONG4 integer of {n} bytes; a data pickle has no such numbers")
    r.new(int.from_bytes(r.read(n, "LONG4"), "little", signed=True))


@_op(b"G")
def BINFLOAT(r: _Reader) -> None:
    r.new(r.unpack(">d", "BINFLOAT"))


def _text_number(r: _Reader, what: str, parse: Callable[[str], Any]) -> None:
    text = r.line(what)
    if len(text) > 100:
        raise _Refused(f"{what}: a number of {len(text)} characters")
    try:
        r.new(parse(text.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        raise _Refused(f"{what}: {text[:40]!r} is not a number") from None


@_op(b"I")
def INT(r: _Reader) -> None:
    _text_number(r, "INT", lambda s: {"00": False, "01": True}.get(s) if s in ("00", "01") else int(s))


@_op(b"L")
def LONG(r: _Reader) -> None:
    _text_number(r, "LONG", lambda s: int(s[:-1] if s.endswith("L") else s))


@_op(b"F")
def FLOAT(r: _Reader) -> None:
    _text_number(r, "FLOAT", float)


# -- strings and bytes (py2 ``str`` is decoded with latin-1, as pickle's encoding="latin1" does)

def _utf8(r: _Reader, data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as err:
        raise _Refused(f"{what}: not valid UTF-8 ({err.reason})") from None


@_op(b"X")
def BINUNICODE(r: _Reader) -> None:
    data = r.read(r.unpack("<I", "BINUNICODE"), "BINUNICODE")
    r.new(_utf8(r, data, "BINUNICODE"), len(data))


@_op(b"\x8c")
def SHORT_BINUNICODE(r: _Reader) -> None:
    data = r.read(r.read(1, "SHORT_BINUNICODE")[0], "SHORT_BINUNICODE")
    r.new(_utf8(r, data, "SHORT_BINUNICODE"), len(data))


@_op(b"\x8d")
def BINUNICODE8(r: _Reader) -> None:
    data = r.read(r.unpack("<Q", "BINUNICODE8"), "BINUNICODE8")
    r.new(_utf8(r, data, "BINUNICODE8"), len(data))


@_op(b"V")
def UNICODE(r: _Reader) -> None:
    data = r.line("UNICODE")
    try:
        r.new(data.decode("raw-unicode-escape"), len(data))
    except UnicodeDecodeError as err:
        raise _Refused(f"UNICODE: bad escape ({err.reason})") from None


@_op(b"B")
def BINBYTES(r: _Reader) -> None:
    r.new(r.read_block(r.unpack("<I", "BINBYTES"), "BINBYTES"))


@_op(b"C")
def SHORT_BINBYTES(r: _Reader) -> None:
    r.new(r.read(r.read(1, "SHORT_BINBYTES")[0], "SHORT_BINBYTES"))


@_op(b"\x8e")
def BINBYTES8(r: _Reader) -> None:
    r.new(r.read_block(r.unpack("<Q", "BINBYTES8"), "BINBYTES8"))


@_op(b"\x96")
def BYTEARRAY8(r: _Reader) -> None:
    block = r.read_block(r.unpack("<Q", "BYTEARRAY8"), "BYTEARRAY8")
    r.new(block if isinstance(block, bytearray) else bytearray(block))


@_op(b"T")
def BINSTRING(r: _Reader) -> None:
    n = r.unpack("<i", "BINSTRING")
    r.new(r.read(n, "BINSTRING").decode("latin1"), n)


@_op(b"U")
def SHORT_BINSTRING(r: _Reader) -> None:
    n = r.read(1, "SHORT_BINSTRING")[0]
    r.new(r.read(n, "SHORT_BINSTRING").decode("latin1"), n)


@_op(b"S")
def STRING(r: _Reader) -> None:
    data = r.line("STRING")
    if len(data) < 2 or data[:1] != data[-1:] or data[:1] not in (b"'", b'"'):
        raise _Refused("STRING: not a quoted string")
    try:
        value = codecs.escape_decode(data[1:-1])[0]
    except ValueError as err:
        raise _Refused(f"STRING: bad escape ({err})") from None
    r.new(value.decode("latin1"), len(value))


# -- containers

@_op(b")")
def EMPTY_TUPLE(r: _Reader) -> None:
    r.stack.append(())


@_op(b"\x85")
def TUPLE1(r: _Reader) -> None:
    r.stack.append(r.make_tuple([r.pop()]))


@_op(b"\x86")
def TUPLE2(r: _Reader) -> None:
    b, a = r.pop(), r.pop()
    r.stack.append(r.make_tuple([a, b]))


@_op(b"\x87")
def TUPLE3(r: _Reader) -> None:
    c, b, a = r.pop(), r.pop(), r.pop()
    r.stack.append(r.make_tuple([a, b, c]))


@_op(b"t")
def TUPLE(r: _Reader) -> None:
    items = r.pop_mark()
    r.stack.append(r.make_tuple(items))


@_op(b"]")
def EMPTY_LIST(r: _Reader) -> None:
    r.stack.append(r.container([], 1))


@_op(b"l")
def LIST(r: _Reader) -> None:
    items = r.pop_mark()
    target = r.container([], 1)
    r.fill(target, items, pairs=False)
    r.stack.append(target)


@_op(b"}")
def EMPTY_DICT(r: _Reader) -> None:
    r.stack.append(r.container({}, 1))


@_op(b"d")
def DICT(r: _Reader) -> None:
    items = r.pop_mark()
    target = r.container({}, 1)
    r.fill(target, items, pairs=True)
    r.stack.append(target)


@_op(b"a")
def APPEND(r: _Reader) -> None:
    value = r.pop()
    r.fill(r.top(), [value], pairs=False)


@_op(b"e")
def APPENDS(r: _Reader) -> None:
    items = r.pop_mark()
    r.fill(r.top(), items, pairs=False)


@_op(b"s")
def SETITEM(r: _Reader) -> None:
    value, key = r.pop(), r.pop()
    r.fill(r.top(), [key, value], pairs=True)


@_op(b"u")
def SETITEMS(r: _Reader) -> None:
    items = r.pop_mark()
    r.fill(r.top(), items, pairs=True)


# -- memo

@_op(b"p")
def PUT(r: _Reader) -> None:
    _text_index(r, "PUT", r.put)


@_op(b"g")
def GET(r: _Reader) -> None:
    _text_index(r, "GET", r.get)


def _text_index(r: _Reader, what: str, use: Callable[[int], None]) -> None:
    text = r.line(what)
    if not text.isdigit() or len(text) > 12:
        raise _Refused(f"{what}: memo index {text[:20]!r} is not a number")
    use(int(text))


@_op(b"q")
def BINPUT(r: _Reader) -> None:
    r.put(r.read(1, "BINPUT")[0])


@_op(b"r")
def LONG_BINPUT(r: _Reader) -> None:
    r.put(r.unpack("<I", "LONG_BINPUT"))


@_op(b"\x94")
def MEMOIZE(r: _Reader) -> None:
    r.put(len(r.memo))


@_op(b"h")
def BINGET(r: _Reader) -> None:
    r.get(r.read(1, "BINGET")[0])


@_op(b"j")
def LONG_BINGET(r: _Reader) -> None:
    r.get(r.unpack("<I", "LONG_BINGET"))


# -- globals and calls

def _global(r: _Reader, module: str, name: str) -> None:
    marker = _GLOBALS.get((module, name))
    if marker is None:
        raise UnsafePickleError(f"refused to load global {module}.{name}; a MulT data pickle holds only numpy "
                                f"arrays and plain containers, so this file may try to run code and is not "
                                f"loaded (admitted: {', '.join(ALLOWED_GLOBALS)})")
    r.stack.append(marker)


@_op(b"c")
def GLOBAL(r: _Reader) -> None:
    module = r.line("GLOBAL").decode("latin1")
    name = r.line("GLOBAL").decode("latin1")
    _global(r, module, name)


@_op(b"\x93")
def STACK_GLOBAL(r: _Reader) -> None:
    name, module = r.pop(), r.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise _Refused("STACK_GLOBAL needs two strings")
    _global(r, module, name)


@_op(b"R")
def REDUCE(r: _Reader) -> None:
    args, func = r.pop(), r.pop()
    r.stack.append(r.reduce(func, args))


@_op(b"b")
def BUILD(r: _Reader) -> None:
    state = r.pop()
    r.stack[-1:] = [r.build(r.top(), state)]


def _refuse_opcode(name: str, why: str) -> Callable[[_Reader], None]:
    def refuse(r: _Reader) -> None:
        raise UnsafePickleError(f"refused opcode {name}: {why}")
    refuse.__name__ = name
    return refuse


for _code, _name, _why in [
        (b"P", "PERSID", "persistent ids point outside the file"),
        (b"Q", "BINPERSID", "persistent ids point outside the file"),
        (b"i", "INST", "it builds an instance of any class"),
        (b"o", "OBJ", "it builds an instance of any class"),
        (b"\x81", "NEWOBJ", "it builds an instance of any class"),
        (b"\x92", "NEWOBJ_EX", "it builds an instance of any class"),
        (b"\x82", "EXT1", "extension registry codes name arbitrary globals"),
        (b"\x83", "EXT2", "extension registry codes name arbitrary globals"),
        (b"\x84", "EXT4", "extension registry codes name arbitrary globals"),
        (b"\x97", "NEXT_BUFFER", "out-of-band buffers come from outside the file"),
        (b"\x98", "READONLY_BUFFER", "out-of-band buffers come from outside the file"),
        (b"\x8f", "EMPTY_SET", "a MulT data pickle holds no sets"),
        (b"\x90", "ADDITEMS", "a MulT data pickle holds no sets"),
        (b"\x91", "FROZENSET", "a MulT data pickle holds no sets")]:
    _OPS[_code] = _refuse_opcode(_name, _why)
del _code, _name, _why


# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------

def _size_of(fh: BinaryIO) -> int | None:
    try:
        return os.fstat(fh.fileno()).st_size - fh.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        here = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        fh.seek(here)
        return end - here
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def restricted_load(file: str | Path | BinaryIO | bytes, *, source: str | None = None) -> Any:
    """Read a data pickle (a path, an open binary file or bytes) with the checks of this module.

    Raises :class:`UnsafePickleError` for a global or opcode that could run code, and
    :class:`~reprolib.data.errors.DataFormatError` for anything else that is not a plain data pickle;
    both name ``source`` (default: the path or the file's name) and the byte offset.
    """
    if isinstance(file, (bytes, bytearray)):
        return restricted_load(io.BytesIO(bytes(file)), source=source or "<bytes>")
    if isinstance(file, (str, Path)):
        path = Path(file)
        if not path.is_file():
            raise DataFormatError(f"{path}: pickle file is missing")
        with open(path, "rb") as fh:
            return restricted_load(fh, source=source or str(path))
    where = str(source or getattr(file, "name", "<pickle>"))
    reader = _Reader(file, _size_of(file))
    try:
        return reader.run()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{where}: {err} (at byte {reader.pos})") from None
    except _Refused as err:
        raise DataFormatError(f"{where}: not a readable pickle: {err} (opcode {reader.opcode} at byte "
                              f"{reader.pos})") from None
    except MemoryError:
        raise DataFormatError(f"{where}: out of memory at byte {reader.pos} while reading the pickle "
                              f"(the machine lacks the memory this file's arrays need)") from None
