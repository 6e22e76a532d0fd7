"""The restricted pickle reader rebuilds every genuine numpy pickle exactly, under every protocol.

Its refusals are in ``tests/hostile/cases_pickle.py``; here: what must keep loading, and that the arrays
it builds own their memory (writable, no view into a shared block) and cost no second copy.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict

import numpy as np
import pytest

from reprolib.data.safepickle import LARGE_BLOCK, restricted_load

VALUES = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "big_endian": np.linspace(0, 1, 7).astype(">f8"),
    "ids": np.array([["vid", "1.5", "2.0"], ["other", "3", "4"]], dtype=object),
    "unicode": np.array(["ab", "c"]),
    "bytes": np.array([b"ab", b"c"]),
    "bool": np.array([True, False]),
    "ints": np.array([-3, 2**40], dtype=np.int64),
    "u8": np.array([0, 255], dtype=np.uint8),
    "half": np.array([1.5], dtype=np.float16),
    "complex": np.array([1 + 2j], dtype=np.complex64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "scalar": np.float32(2.5),
    "plain": [1, 2.5, "s", b"raw", b"", None, True, 2**100, (1, (2, 3))],
    "ordered": OrderedDict(x=[1, "b", None]),
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_round_trips(protocol):
    out = restricted_load(pickle.dumps(VALUES, protocol=protocol))
    assert list(out) == list(VALUES)
    for key, value in VALUES.items():
        got = out[key]
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype and got.shape == value.shape, key
            np.testing.assert_array_equal(got, value)
            assert got.flags.writeable and got.flags.f_contiguous == value.flags.f_contiguous, key
        else:
            assert got == value and type(got) is type(value), key


def test_python2_era_pickle_with_latin1_strings_loads():
    # protocol 2 as Python 2 wrote it: the raw data is a py2 str (SHORT_BINSTRING), the dtype args ints
    blob = (b"\x80\x02}q\x00U\x01aq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85"
            b"U\x01b\x87Rq\x04(K\x01K\x02\x85cnumpy\ndtype\nq\x05U\x02f4K\x00K\x01\x87Rq\x06(K\x03U\x01<NNNJ\xff\xff"
            b"\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x08\x00\x00\x80?\x00\x00\x00@tbs.")
    out = restricted_load(blob)
    np.testing.assert_array_equal(out["a"], np.array([1.0, 2.0], dtype=np.float32))


def test_large_blocks_are_read_without_a_second_copy():
    value = np.random.default_rng(0).random(LARGE_BLOCK // 4 + 10).astype(np.float32)
    out = restricted_load(pickle.dumps({"x": value}, protocol=4))["x"]
    np.testing.assert_array_equal(out, value)
    owner = out
    while isinstance(owner, np.ndarray):
        owner = owner.base
    owner = owner.obj if isinstance(owner, memoryview) else owner
    assert isinstance(owner, bytearray) and len(owner) == value.nbytes


def test_each_array_owns_its_block():
    out = restricted_load(pickle.dumps({"a": np.ones(3), "b": np.ones(3)}, protocol=4))
    out["a"][0] = 5
    assert out["b"][0] == 1


def test_the_hostile_cases_base_file_is_valid(tmp_path):
    """The valid file the hostile MulT cases hide their junk in loads, so their refusals come from the junk."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from hostile.cases_pickle import valid_iemocap_with

    from reprolib.data.mult import load_mult

    path = tmp_path / "iemocap_data.pkl"
    path.write_bytes(valid_iemocap_with(b"N"))
    data = load_mult(path, "iemocap")
    assert len(data["train"]) == 2 and data["test"].dims == {"text": 4, "audio": 5, "vision": 2}
