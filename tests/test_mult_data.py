"""MulT pickle loader on hand-written fixtures in the release format, its safety, and make_mult."""

from __future__ import annotations

import os
import pickle
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reprolib.data import synthetic
from reprolib.data.mult import (IEMOCAP_EMOTIONS, MulTDataset, NonFiniteWarning, UnsafePickleError, load_mult,
                                mult_filename, restricted_load)
from reprolib.data.views import DataFormatError

SIZES = {"train": 6, "valid": 3, "test": 4}
DIMS = {"text": 7, "audio": 5, "vision": 3}  # small stand-ins for GloVe 300, COVAREP 74, FACET 35
LENGTHS = {True: {"text": 6, "audio": 6, "vision": 6}, False: {"text": 6, "audio": 11, "vision": 9}}


def _split(rng: np.random.Generator, dataset: str, n: int, aligned: bool) -> dict:
    """One split exactly as the MulT files hold it, built with plain numpy (independent of make_mult)."""
    out = {m: rng.normal(size=(n, LENGTHS[aligned][m], DIMS[m])).astype(np.float32) for m in DIMS}
    out["text"][0, :2] = 0.0  # left padding, as the real files have
    if dataset == "iemocap":
        present = rng.integers(0, 2, size=(n, 4))
        present[0] = [1, 0, 0, 0]
        out["labels"] = np.stack([1 - present, present], axis=-1).astype(np.float32)  # [1,0] absent, [0,1] present
    else:
        y = np.round(rng.uniform(-3, 3, size=n) * 3) / 3
        y[0] = 0.0  # exact zeros occur in MOSEI
        y[1] = -3.0
        out["labels"] = y.astype(np.float32).reshape(n, 1, 1)
        out["id"] = np.array([[f"vid{i}", f"{i}.5", f"{i}.9"] for i in range(n)], dtype=object)
    return out


def _data(dataset: str, aligned: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {split: _split(rng, dataset, n, aligned) for split, n in SIZES.items()}


def _write(path: Path, obj, protocol: int = 4) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


# ------------------------------------------------------------------------------------------ loading

@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
@pytest.mark.parametrize("aligned", [True, False])
def test_loads_both_datasets_and_alignments(tmp_path, dataset, aligned):
    data = _data(dataset, aligned)
    path = _write(tmp_path / mult_filename(dataset, aligned), data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean data: no warning at all
        splits = load_mult(path, dataset)
    assert set(splits) == {"train", "val", "test"}
    for name, file_split in (("train", "train"), ("val", "valid"), ("test", "test")):
        ds = splits[name]
        raw = data[file_split]
        assert isinstance(ds, MulTDataset) and ds.split == name and len(ds) == SIZES[file_split]
        assert ds.dims == DIMS and ds.lengths == LENGTHS[aligned] and ds.aligned is aligned
        item = ds[1]
        for m in DIMS:
            assert item[m].dtype == torch.float32
            assert item[m].shape == (LENGTHS[aligned][m], DIMS[m])
            np.testing.assert_array_equal(item[m].numpy(), raw[m][1])
        assert item["index"] == 1 and ds[-1]["index"] == len(ds) - 1
        if dataset == "iemocap":
            assert ds.target_key == "labels" and ds.emotions == IEMOCAP_EMOTIONS
            assert item["labels"].dtype == torch.float32 and item["labels"].shape == (4,)
            np.testing.assert_array_equal(ds.targets().numpy(), raw["labels"][:, :, 1])  # 1 = present
            assert "label" not in item
        else:
            assert ds.target_key == "label"
            assert item["label"].dtype == torch.float32 and item["label"].shape == ()
            np.testing.assert_allclose(ds.targets().numpy(), raw["labels"].reshape(-1))
            # round(clip(y)) + 3, half to even: 0 -> 3, -3 -> 0
            assert ds[0]["label_cls"].item() == 3 and ds[1]["label_cls"].item() == 0
            assert ds.ids.shape == (SIZES[file_split], 3) and ds.ids[2, 0] == "vid2"
    batch = next(iter(DataLoader(splits["train"], batch_size=4)))
    assert batch["audio"].shape == (4, LENGTHS[aligned]["audio"], DIMS["audio"])
    assert batch[splits["train"].target_key].shape == ((4, 4) if dataset == "iemocap" else (4,))


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_other_pickle_protocols_load(tmp_path, protocol):
    """Protocol 2 stores raw bytes through _codecs.encode; protocol 5 uses numpy's _frombuffer."""
    path = _write(tmp_path / "iemocap_data.pkl", _data("iemocap"), protocol=protocol)
    splits = load_mult(path, "iemocap")
    assert len(splits["val"]) == SIZES["valid"]


def test_folder_is_resolved_to_the_release_file_name(tmp_path):
    _write(tmp_path / "mosei_senti_data_noalign.pkl", _data("mosei", aligned=False))
    splits = load_mult(tmp_path, "mosei_senti", aligned=False)
    assert splits["test"].aligned is False
    with pytest.raises(DataFormatError, match=r"mosei_senti_data\.pkl: MulT pickle is missing"):
        load_mult(tmp_path, "mosei")
    with pytest.raises(DataFormatError, match="missing"):
        load_mult(tmp_path / "nowhere.pkl", "mosei")
    with pytest.raises(ValueError, match="unknown MulT dataset"):
        load_mult(tmp_path, "meld")


# ------------------------------------------------------------------------------------------ safety

class _Payload:
    """An object whose unpickling would call ``func(*args)``: the classic pickle attack."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attacks(marker: Path) -> dict:
    return {
        "os.system": _Payload(os.system, (f"touch '{marker}'",)),
        "builtins.open": _Payload(open, (str(marker), "w")),
        "subprocess.Popen": _Payload(subprocess.Popen, (["touch", str(marker)],)),
        "builtins.eval": _Payload(eval, (f"open({str(marker)!r}, 'w').close()",)),
    }


@pytest.mark.parametrize("attack", ["os.system", "builtins.open", "subprocess.Popen", "builtins.eval"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, attack):
    # Control: the payload really does create the file when a plain pickle.load reads it.
    control = tmp_path / "control-marker"
    blob = pickle.dumps(_attacks(control)[attack], protocol=4)
    result = pickle.loads(blob)
    if isinstance(result, subprocess.Popen):
        result.wait()
    elif hasattr(result, "close"):
        result.close()
    assert control.exists()

    marker = tmp_path / "marker"
    data = _data("iemocap")
    data["train"]["labels"] = _attacks(marker)[attack]  # hidden inside an otherwise valid file
    path = _write(tmp_path / "iemocap_data.pkl", data)
    with pytest.raises(UnsafePickleError) as info:
        load_mult(path, "iemocap")
    module, name = {"os.system": (os.system.__module__, "system"), "builtins.open": ("io", "open"),
                    "subprocess.Popen": ("subprocess", "Popen"), "builtins.eval": ("builtins", "eval")}[attack]
    message = str(info.value)
    assert f"{module}.{name}" in message and str(path) in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataFormatError)
    assert not marker.exists()


def test_restricted_load_refuses_any_class_and_odd_codecs():
    with pytest.raises(UnsafePickleError, match=r"collections\.Counter"):
        restricted_load(pickle.dumps(__import__("collections").Counter(a=1)))
    evil = _Payload(__import__("_codecs").encode, ("abc", "rot13"))
    with pytest.raises(UnsafePickleError, match="latin1"):
        restricted_load(pickle.dumps(evil))
    from collections import OrderedDict
    arrays = {"a": np.arange(3, dtype=np.float32), "s": np.float32(2.5), "o": OrderedDict(x=[1, "b", None])}
    out = restricted_load(pickle.dumps(arrays, protocol=2))
    np.testing.assert_array_equal(out["a"], arrays["a"])
    assert out["s"] == np.float32(2.5) and out["o"] == arrays["o"]


def test_a_pickle_cannot_set_state_on_the_admitted_globals():
    """BUILD would setattr on whatever a global resolved to; the reader hands out inert markers and
    gives state only to arrays and dtypes it is building, so both files are refused."""
    # PROTO 2, GLOBAL numpy._core.numeric._frombuffer, state (None, {"__defaults__": (1,)}), BUILD, STOP
    blob = b"\x80\x02cnumpy._core.numeric\n_frombuffer\nN}X\x0c\x00\x00\x00__defaults__K\x01\x85s\x86b."
    with pytest.raises(DataFormatError, match="BUILD on numpy _frombuffer"):
        restricted_load(blob)
    blob = b"\x80\x02ccollections\nOrderedDict\nN}X\x07\x00\x00\x00__doc__K\x01s\x86b."
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        restricted_load(blob)


@pytest.mark.parametrize("content", [b"text,audio,vision\n1,2,3\n", b"", b"\x80\x04\x95"])
def test_a_file_that_is_not_a_pickle_is_a_clear_error(tmp_path, content):
    path = tmp_path / "iemocap_data.pkl"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"iemocap_data\.pkl: not a readable pickle"):
        load_mult(path, "iemocap")


# ------------------------------------------------------------------------------------------ cleaning

def test_non_finite_values_are_zeroed_in_every_modality_with_one_warning(tmp_path):
    data = _data("mosei")
    data["train"]["audio"][0, 0, :3] = -np.inf       # 3 in train audio
    data["train"]["text"][1, 2, 0] = np.nan           # 1 in train text
    data["train"]["vision"][2, 1, 1] = np.inf         # 1 in train vision
    data["test"]["vision"][3, 0, :2] = [np.nan, -np.inf]  # 2 in test vision
    path = _write(tmp_path / "mosei_senti_data.pkl", data)
    with pytest.warns(NonFiniteWarning) as record:
        splits = load_mult(path, "mosei")
    assert len(record) == 1
    message = str(record[0].message)
    assert str(path) in message and "replaced 7 non-finite" in message
    assert "train: text 1, audio 3, vision 1" in message and "test: text 0, audio 0, vision 2" in message
    assert "valid:" not in message  # a clean split is not listed
    assert splits["train"].nonfinite == {"text": 1, "audio": 3, "vision": 1}
    assert splits["val"].nonfinite == {"text": 0, "audio": 0, "vision": 0}
    for ds in splits.values():
        for m in DIMS:
            assert torch.isfinite(getattr(ds, m)).all()
    assert (splits["train"][0]["audio"][0, :3] == 0).all() and splits["train"][1]["text"][2, 0] == 0
    assert (splits["test"][3]["vision"][0, :2] == 0).all()
    assert splits["train"][0]["audio"][0, 3] == data["train"]["audio"][0, 0, 3]  # neighbours untouched


# ------------------------------------------------------------------------------------------ bad layout

def _break(kind: str):
    """(dataset, mutated data, expected message fragment) for each bad layout."""
    dataset = "mosei" if kind.startswith("mosei") else "iemocap"
    data = _data(dataset)
    tr = data["train"]
    if kind == "missing_split":
        del data["valid"]
        return dataset, data, r"missing split\(s\) \['valid'\]"
    if kind == "missing_modality":
        del data["test"]["vision"]
        return dataset, data, r"\['test'\]: missing 'vision'"
    if kind == "missing_labels":
        del tr["labels"]
        return dataset, data, r"\['train'\]: missing 'labels'"
    if kind == "n_mismatch_modality":
        tr["audio"] = tr["audio"][:-1]
        return dataset, data, r"number of samples N differs.*audio 5"
    if kind == "n_mismatch_labels":
        tr["labels"] = tr["labels"][:-2]
        return dataset, data, r"number of samples N differs.*labels 4"
    if kind == "iemocap_label_shape":
        tr["labels"] = tr["labels"][:, :, :1]
        return dataset, data, r"iemocap labels must have shape \(N, 4, 2\).*got \(6, 4, 1\)"
    if kind == "mosei_label_shape":
        tr["labels"] = np.zeros((6, 4, 2), np.float32)
        return dataset, data, r"mosei labels must have shape \(N, 1, 1\).*got \(6, 4, 2\)"
    if kind == "mosei_label_range":
        tr["labels"][2, 0, 0] = 4.0
        return dataset, data, r"outside \[-3, 3\]"
    if kind == "label_nan":
        tr["labels"][0, 0, 0] = np.nan
        return dataset, data, "non-finite label"
    if kind == "modality_2d":
        tr["text"] = tr["text"].mean(axis=1)
        return dataset, data, r"\['text'\]: expected a 3-D array.*got shape \(6, 7\)"
    if kind == "modality_4d":
        tr["vision"] = tr["vision"][..., None]
        return dataset, data, r"\['vision'\]: expected a 3-D array"
    if kind == "modality_list":
        tr["audio"] = tr["audio"].tolist()
        return dataset, data, r"\['audio'\]: expected a numpy array, got list"
    if kind == "modality_strings":
        tr["audio"] = np.full((6, 6, 5), "x", dtype=object)
        return dataset, data, "expected a numeric array, got dtype object"
    if kind == "width_mismatch":
        data["test"]["audio"] = data["test"]["audio"][:, :, :4]
        return dataset, data, r"\['test'\]: feature widths .* differ from train"
    if kind == "split_not_dict":
        data["valid"] = [1, 2, 3]
        return dataset, data, r"\['valid'\]: expected a dict"
    if kind == "top_level_list":
        return dataset, [data["train"], data["valid"], data["test"]], "expected a dict with splits"
    if kind == "empty_split":
        data["test"] = {k: v[:0] for k, v in data["test"].items()}
        return dataset, data, "split has no samples"
    raise AssertionError(kind)


BAD = ["missing_split", "missing_modality", "missing_labels", "n_mismatch_modality", "n_mismatch_labels",
       "iemocap_label_shape", "mosei_label_shape", "mosei_label_range", "label_nan", "modality_2d",
       "modality_4d", "modality_list", "modality_strings", "width_mismatch", "split_not_dict",
       "top_level_list", "empty_split"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_layout_is_a_clear_error_naming_the_file(tmp_path, kind):
    dataset, data, fragment = _break(kind)
    path = _write(tmp_path / "fixture.pkl", data)
    with pytest.raises(DataFormatError, match=fragment) as info:
        load_mult(path, dataset)
    assert str(path) in str(info.value)


def test_labels_of_the_other_dataset_are_refused(tmp_path):
    path = _write(tmp_path / "iemocap_data.pkl", _data("iemocap"))
    with pytest.raises(DataFormatError, match=r"mosei labels must have shape \(N, 1, 1\)"):
        load_mult(path, "mosei")


# ------------------------------------------------------------------------------------------ make_mult

SMALL = {"sizes": {"train": 200, "valid": 60, "test": 400}}


def test_make_mult_is_byte_identical_for_the_same_arguments(tmp_path):
    a = synthetic.make_mult(tmp_path / "a.pkl", "iemocap", seed=3, **SMALL)
    b = synthetic.make_mult(tmp_path / "b.pkl", "iemocap", seed=3, **SMALL)
    c = synthetic.make_mult(tmp_path / "c.pkl", "iemocap", seed=4, **SMALL)
    assert a == tmp_path / "a.pkl" and a.read_bytes() == b.read_bytes() != c.read_bytes()
    m1 = synthetic.make_mult(tmp_path / "m1.pkl", "mosei", seed=0, aligned=False, **SMALL)
    m2 = synthetic.make_mult(tmp_path / "m2.pkl", "mosei", seed=0, aligned=False, **SMALL)
    assert m1.read_bytes() == m2.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    # A folder gets the release file name inside a cache folder keyed by the arguments, reused later.
    f1 = synthetic.make_mult(tmp_path / "cache", "mosei", seed=0, aligned=False, **SMALL)
    assert f1.name == "mosei_senti_data_noalign.pkl" and f1.read_bytes() == m1.read_bytes()
    assert synthetic.make_mult(tmp_path / "cache", "mosei", seed=0, aligned=False, **SMALL) == f1


@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
@pytest.mark.parametrize("aligned", [True, False])
def test_make_mult_round_trip_through_the_loader(tmp_path, dataset, aligned):
    path = synthetic.make_mult(tmp_path, dataset, aligned=aligned, **SMALL)
    assert path.name == mult_filename(dataset, aligned)
    raw = restricted_load(path)
    assert list(raw) == ["train", "valid", "test"]
    assert all(raw["train"][m].dtype == np.float32 for m in ("text", "audio", "vision", "labels"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # audio_nonfinite defaults to 0: clean data
        splits = load_mult(path, dataset)
    expected = {"text": 20, "audio": 20, "vision": 20} if aligned else {"text": 20, "audio": 50, "vision": 50}
    assert splits["train"].lengths == expected and splits["train"].aligned is aligned
    assert splits["train"].dims == {"text": 32, "audio": 74, "vision": 35}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [200, 60, 400]
    if dataset == "iemocap":
        assert torch.all(splits["train"].targets().sum(dim=1) == 1)  # one emotion per sample, as the real data
    else:
        y = splits["train"].targets()
        assert y.min() >= -3 and y.max() <= 3 and (y == 0).any()


def _shortcut_correlation(data: dict, split: str, dataset: str) -> float:
    """Correlation between the dominant (text) modality's shortcut columns and the label, on the arrays."""
    text = data[split]["text"]
    cols = synthetic.mult_shortcut_columns(dataset, text.shape[2])
    feature = text[:, :, cols].mean(axis=1)  # time-averaged shortcut columns
    if dataset == "iemocap":
        present = data[split]["labels"][:, :, 1]
        return float(np.mean([np.corrcoef(feature[:, e], present[:, e])[0, 1] for e in range(4)]))
    return float(np.corrcoef(feature[:, 0], data[split]["labels"].reshape(-1))[0, 1])


@pytest.mark.parametrize("dataset", ["iemocap", "mosei"])
def test_the_shortcut_is_present_in_train_and_valid_and_absent_in_test(tmp_path, dataset):
    path = synthetic.make_mult(tmp_path / "d.pkl", dataset, **SMALL)
    data = restricted_load(path)
    assert _shortcut_correlation(data, "train", dataset) > 0.6
    assert _shortcut_correlation(data, "valid", dataset) > 0.6
    assert abs(_shortcut_correlation(data, "test", dataset)) < 0.15
    # With bias 0 the shortcut is gone from training too.
    data0 = restricted_load(synthetic.make_mult(tmp_path / "d0.pkl", dataset, bias=0.0, **SMALL))
    assert abs(_shortcut_correlation(data0, "train", dataset)) < 0.2


def test_make_mult_reliability_order_and_ground_truth():
    data, truth = synthetic.generate_mult("iemocap", seed=1, sizes={"train": 2000})
    train = truth["splits"]["train"]
    agree = {m: float(np.mean(train["expressed"][m] == train["y"])) for m in ("text", "audio", "vision")}
    assert agree["text"] > agree["audio"] > agree["vision"]  # text cleanest, vision noisiest
    assert float(np.mean(train["shortcut"] == train["y"])) > agree["text"]  # the shortcut is the easier cue
    np.testing.assert_array_equal(data["train"]["labels"][:, :, 1].argmax(axis=1), train["y"])


def test_make_mult_injects_audio_non_finite_values_only_on_request(tmp_path):
    path = synthetic.make_mult(tmp_path / "nf.pkl", "iemocap", audio_nonfinite=5, **SMALL)
    raw = restricted_load(path)
    assert int(np.isneginf(raw["train"]["audio"]).sum()) == 5
    assert all(np.isfinite(raw[s][m]).all() for s in raw for m in ("text", "vision"))
    with pytest.warns(NonFiniteWarning, match=r"replaced 15 non-finite.*train: text 0, audio 5, vision 0"):
        splits = load_mult(path, "iemocap")
    assert torch.isfinite(splits["train"].audio).all()
    clean = restricted_load(synthetic.make_mult(tmp_path / "clean.pkl", "iemocap", **SMALL))
    changed = raw["train"]["audio"] != clean["train"]["audio"]
    assert int(changed.sum()) == 5  # only the injected entries differ
    np.testing.assert_array_equal(raw["train"]["text"], clean["train"]["text"])


def test_make_mult_refuses_bad_knobs(tmp_path):
    with pytest.raises(TypeError, match="unknown knob"):
        synthetic.make_mult(tmp_path, "iemocap", sentiment_std=1.0)
    with pytest.raises(ValueError, match="aligned=False"):
        synthetic.make_mult(tmp_path, "mosei", aligned=False, lengths=20)
    with pytest.raises(ValueError, match="bias must lie"):
        synthetic.make_mult(tmp_path, "mosei", bias=1.5)
    with pytest.raises(ValueError, match="dominant"):
        synthetic.make_mult(tmp_path, "mosei", dominant="smell")
    with pytest.raises(ValueError, match="sizes names unknown split"):
        synthetic.make_mult(tmp_path, "mosei", sizes={"test_ood": 3})
    assert not any(tmp_path.iterdir())  # nothing written for refused arguments
