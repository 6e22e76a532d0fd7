"""MulT preprocessed pickles (IEMOCAP, CMU-MOSEI, CMU-MOSI): a safe loader and a torch Dataset per split.

Format (the files of the Multimodal Transformer release; synthetic data from
:func:`reprolib.data.synthetic.make_mult` is written the same way)::

    iemocap_data.pkl            word-aligned            iemocap_data_noalign.pkl       unaligned
    mosei_senti_data.pkl        word-aligned            mosei_senti_data_noalign.pkl   unaligned
    mosi_data.pkl               word-aligned            mosi_data_noalign.pkl          unaligned

Each file is one pickled ``dict``::

    {"train": split, "valid": split, "test": split}
    split = {"text": [N, T_t, d_t], "audio": [N, T_a, d_a], "vision": [N, T_v, d_v],
             "labels": ..., "id": [N, >=3] (optional, MOSEI/MOSI only)}

* ``text`` is GloVe (d_t = 300), ``audio`` COVAREP (d_a = 74 for IEMOCAP/MOSEI), ``vision`` FACET
  (d_v = 35); widths and lengths are read from the data, never hard-coded. Shorter utterances are
  left-padded with zeros. In the aligned files all three lengths are equal (IEMOCAP 20, MOSEI 50); in
  the unaligned ones audio and vision are longer (hundreds of steps).
* IEMOCAP ``labels`` are ``[N, 4, 2]``: for each emotion (Neutral, Happy, Sad, Angry, in that order)
  a one-hot pair, ``[1, 0]`` = absent, ``[0, 1]`` = present. Each emotion is a binary task; the
  loader serves a float multi-hot ``labels`` ``[4]`` (arg-max over the pair, 1 = present).
* MOSEI / MOSI ``labels`` are ``[N, 1, 1]`` float sentiment in [-3, 3]; the loader serves a float32
  scalar ``label`` and, for the 7-class variant, ``label_cls`` = round(clip(y, -3, 3)) + 3 in 0..6
  (numpy rounding, half to even).
* ``id`` (MOSEI/MOSI) holds (video id, start, end) strings or bytes; it is kept as ``ids`` and not
  served (a batch of strings is of no use to a model).

The split ``valid`` is served under the repo's split name ``val``.

**Cleaning decision.** The real files contain non-finite values (audio ``-inf`` at least). The MulT
reference loader replaces only audio ``-inf``; here NaN, +inf and -inf are replaced by 0 in **all three
modalities**, since a single NaN anywhere poisons a whole batch. The replacements are counted per
split and modality, reported in one :class:`NonFiniteWarning` per file and kept in
:attr:`MulTDataset.nonfinite`. Labels are never cleaned: a non-finite label is an error.

**Security decision.** ``pickle.load`` on an untrusted file runs whatever code the file names, and
even numpy's own array rebuilding can be made to corrupt memory by a forged state. These files come
from third-party mirrors, so they are read with :func:`reprolib.data.safepickle.restricted_load`, which
interprets the pickle itself: only plain containers, scalars and numpy arrays / dtypes built by the
repo from checked parts (data length = shape x itemsize, plain dtypes, no views, bounded nesting,
memory bounded by the file's size). Anything else is refused with :class:`UnsafePickleError` or
:class:`~reprolib.data.views.DataFormatError` naming the file and the byte offset; nothing in a
hostile file runs.

Bad layout is a :class:`~reprolib.data.views.DataFormatError` naming the file and the problem:
missing file, not a pickle, top level not a dict, missing split, missing modality or labels, an array
that is not a numeric numpy array, a modality that is not 3-D, N that differs between modalities and
labels, a label shape wrong for the dataset, non-finite or out-of-range labels, feature widths that
differ between splits.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from reprolib.data.safepickle import ALLOWED_GLOBALS, UnsafePickleError, restricted_load  # noqa: F401 - re-exported
from reprolib.data.views import DataFormatError

MODALITIES = ("text", "audio", "vision")
FILE_SPLITS = ("train", "valid", "test")                        # split names inside the pickle
SPLIT_NAMES = {"train": "train", "valid": "val", "test": "test"}  # file split -> repo split
IEMOCAP_EMOTIONS = ("Neutral", "Happy", "Sad", "Angry")         # order of the label axis
SENTIMENT_RANGE = (-3.0, 3.0)
DATASETS = ("iemocap", "mosei", "mosi")
DATASET_ALIASES = {"mosei_senti": "mosei"}
FILE_PREFIX = {"iemocap": "iemocap", "mosei": "mosei_senti", "mosi": "mosi"}


class NonFiniteWarning(UserWarning):
    """Non-finite feature values were replaced by 0 while loading a MulT pickle."""


def mult_filename(dataset: str, aligned: bool = True) -> str:
    """The file name the MulT release uses, e.g. ``iemocap_data.pkl`` / ``mosei_senti_data_noalign.pkl``."""
    return f"{FILE_PREFIX[canonical_dataset(dataset)]}_data{'' if aligned else '_noalign'}.pkl"


def canonical_dataset(dataset: str) -> str:
    """``iemocap``, ``mosei`` (also spelled ``mosei_senti``) or ``mosi``; anything else is an error."""
    name = DATASET_ALIASES.get(str(dataset).lower(), str(dataset).lower())
    if name not in DATASETS:
        raise ValueError(f"unknown MulT dataset {dataset!r}; expected one of {DATASETS} (or 'mosei_senti')")
    return name


# ---------------------------------------------------------------------------------------------------
# Layout checks and cleaning
# ---------------------------------------------------------------------------------------------------

def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _numeric_array(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise DataFormatError(f"{where}: expected a numpy array, got {type(value).__name__}")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise DataFormatError(f"{where}: expected a numeric array, got dtype {value.dtype}")
    return value


def _float32_writable(a: np.ndarray) -> np.ndarray:
    out = a.astype(np.float32, copy=False)
    if not out.flags.writeable or not out.flags.c_contiguous:
        out = np.array(out, dtype=np.float32, order="C", copy=True)
    return out


def _clean(a: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, int]:
    """Replace NaN / +inf / -inf by 0 in place (on a float32 copy when needed); return the count.

    Works ``chunk`` samples at a time, so the boolean mask stays small for the multi-GB real files.
    """
    a = _float32_writable(a)
    count = 0
    for start in range(0, a.shape[0], chunk):
        block = a[start:start + chunk]
        bad = ~np.isfinite(block)
        n_bad = int(bad.sum())
        if n_bad:
            block[bad] = 0.0
            count += n_bad
    return a, count


def _labels(value: Any, dataset: str, n: int, where: str) -> np.ndarray:
    labels = _numeric_array(value, where)
    expected = (n, 4, 2) if dataset == "iemocap" else (n, 1, 1)
    if labels.shape != expected:
        what = ("one-hot (absent, present) pairs for 4 emotions" if dataset == "iemocap"
                else "one sentiment score per sample")
        raise DataFormatError(f"{where}: {dataset} labels must have shape (N, {expected[1]}, {expected[2]}) "
                              f"[{what}], got {_shape(labels.shape)}")
    labels = labels.astype(np.float32)
    if not np.all(np.isfinite(labels)):
        raise DataFormatError(f"{where}: {int((~np.isfinite(labels)).sum())} non-finite label value(s)")
    if dataset == "iemocap":
        one_hot = np.all((labels == 0) | (labels == 1), axis=-1) & (labels.sum(axis=-1) == 1)
        if not np.all(one_hot):
            sample, emotion = (int(i) for i in np.argwhere(~one_hot)[0])
            raise DataFormatError(f"{where}: {int((~one_hot).sum())} label pair(s) are not one-hot [1, 0] (absent) "
                                  f"or [0, 1] (present), e.g. sample {sample}, {IEMOCAP_EMOTIONS[emotion]}: "
                                  f"{labels[sample, emotion].tolist()}")
    else:
        lo, hi = SENTIMENT_RANGE
        out = (labels < lo - 1e-4) | (labels > hi + 1e-4)
        if np.any(out):
            raise DataFormatError(f"{where}: {int(out.sum())} sentiment label(s) outside [{lo:g}, {hi:g}], "
                                  f"e.g. {float(labels[out][0]):g}")
    return labels


def check_split(split: Any, dataset: str, where: str) -> tuple[dict[str, np.ndarray], np.ndarray, Any, dict[str, int]]:
    """Validate one split dict; return (cleaned modalities, float32 labels, ids or None, non-finite counts)."""
    if not isinstance(split, dict):
        raise DataFormatError(f"{where}: expected a dict with keys {MODALITIES + ('labels',)}, "
                              f"got {type(split).__name__}")
    missing = [k for k in MODALITIES + ("labels",) if k not in split]
    if missing:
        raise DataFormatError(f"{where}: missing {', '.join(repr(k) for k in missing)}; a split needs "
                              f"'text', 'audio', 'vision' and 'labels' (and optionally 'id'), "
                              f"found {sorted(map(str, split))}")
    arrays: dict[str, np.ndarray] = {}
    for m in MODALITIES:
        a = _numeric_array(split[m], f"{where}[{m!r}]")
        if a.ndim != 3:
            raise DataFormatError(f"{where}[{m!r}]: expected a 3-D array (N, time steps, features), "
                                  f"got shape {_shape(a.shape)}")
        arrays[m] = a
    counts = {m: int(arrays[m].shape[0]) for m in MODALITIES}
    labels_raw = split["labels"]
    if isinstance(labels_raw, np.ndarray) and labels_raw.ndim >= 1:
        counts["labels"] = int(labels_raw.shape[0])
    if len(set(counts.values())) != 1:
        raise DataFormatError(f"{where}: the number of samples N differs between arrays: "
                              + ", ".join(f"{k} {v}" for k, v in counts.items()))
    n = counts["text"]
    if n == 0:
        raise DataFormatError(f"{where}: split has no samples")
    labels = _labels(labels_raw, dataset, n, f"{where}['labels']")
    ids = split.get("id")
    if ids is not None:
        if not isinstance(ids, np.ndarray) or ids.ndim < 1 or ids.shape[0] != n:
            shape = _shape(ids.shape) if isinstance(ids, np.ndarray) else type(ids).__name__
            raise DataFormatError(f"{where}['id']: expected an array with N = {n} rows, got {shape}")
        if ids.dtype.kind not in "OUS" or (ids.dtype.kind == "O" and not all(
                isinstance(v, (str, bytes)) for v in ids.reshape(-1))):
            raise DataFormatError(f"{where}['id']: expected (video id, start, end) strings or bytes, "
                                  f"got dtype {ids.dtype}")
    nonfinite = {}
    for m in MODALITIES:
        arrays[m], nonfinite[m] = _clean(arrays[m])
    return arrays, labels, ids, nonfinite


# ---------------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------------

class MulTDataset(Dataset):
    """One split of a MulT pickle; items are dicts of float32 tensors.

    Each item: ``text`` [T_t, d_t], ``audio`` [T_a, d_a], ``vision`` [T_v, d_v], the target and
    ``index``. IEMOCAP: ``labels`` float multi-hot [4] (Neutral, Happy, Sad, Angry; 1 = present),
    ``target_key = "labels"``. MOSEI / MOSI: ``label`` float32 scalar sentiment in [-3, 3] and
    ``label_cls`` (int64, round(y) + 3 in 0..6), ``target_key = "label"``.

    Attributes: ``dataset``, ``split`` (repo name: train / val / test), ``source`` (file),
    ``target_key``, ``dims`` and ``lengths`` (per modality), ``aligned`` (all three lengths equal),
    ``nonfinite`` (values replaced by 0, per modality), ``ids`` (the file's ``id`` array or None),
    ``emotions`` (IEMOCAP) and the full tensors ``text``, ``audio``, ``vision``, ``targets_tensor``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], labels: np.ndarray, dataset: str, *, split: str = "train",
                 source: str = "<memory>", ids: Any = None, nonfinite: dict[str, int] | None = None):
        self.dataset = canonical_dataset(dataset)
        self.split = split
        self.source = source
        self.ids = ids
        self.nonfinite = dict(nonfinite or {m: 0 for m in MODALITIES})
        self.text, self.audio, self.vision = (torch.from_numpy(_float32_writable(arrays[m])) for m in MODALITIES)
        self.dims = {m: int(getattr(self, m).shape[2]) for m in MODALITIES}
        self.lengths = {m: int(getattr(self, m).shape[1]) for m in MODALITIES}
        self.aligned = len(set(self.lengths.values())) == 1
        if self.dataset == "iemocap":
            self.target_key = "labels"
            self.emotions = IEMOCAP_EMOTIONS
            self.targets_tensor = torch.from_numpy(labels.argmax(axis=-1).astype(np.float32))
        else:
            self.target_key = "label"
            self.emotions = ()
            y = labels.reshape(-1).astype(np.float32)
            self.targets_tensor = torch.from_numpy(y)
            self.label_cls = torch.from_numpy(
                (np.round(np.clip(y, *SENTIMENT_RANGE)) + 3).astype(np.int64))

    def __len__(self) -> int:
        return int(self.text.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        item: dict[str, Any] = {"text": self.text[index], "audio": self.audio[index],
                                "vision": self.vision[index], self.target_key: self.targets_tensor[index]}
        if self.target_key == "label":
            item["label_cls"] = self.label_cls[index]
        item["index"] = index
        return item

    def targets(self, key: str | None = None) -> torch.Tensor:
        """All targets stacked (``labels`` [N, 4] or ``label`` [N], or ``label_cls``), as ``targets_of`` expects."""
        key = key or self.target_key
        if key == self.target_key:
            return self.targets_tensor
        if key == "label_cls" and self.target_key == "label":
            return self.label_cls
        raise KeyError(f"{self.source} [{self.split}]: no target {key!r}; this dataset serves {self.target_key!r}")

    def __repr__(self) -> str:
        return (f"MulTDataset({self.dataset}, {self.split}, n={len(self)}, dims={self.dims}, "
                f"lengths={self.lengths}, aligned={self.aligned})")


# ---------------------------------------------------------------------------------------------------
# Top level
# ---------------------------------------------------------------------------------------------------

def resolve_mult_path(path: str | Path, dataset: str, aligned: bool = True) -> Path:
    """A file path as given, or the release file name inside a folder (``aligned`` picks which)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / mult_filename(dataset, aligned)
        if not candidate.is_file():
            others = sorted(p.name for p in path.glob("*.pkl"))
            raise DataFormatError(f"{candidate}: MulT pickle is missing (pickles in the folder: {others or 'none'})")
        return candidate
    if not path.is_file():
        raise DataFormatError(f"{path}: MulT pickle is missing; expected a file such as {mult_filename(dataset, aligned)}")
    return path


def load_mult(path: str | Path, dataset: str = "iemocap", *, aligned: bool = True) -> dict[str, MulTDataset]:
    """Read a MulT pickle safely and return ``{"train", "val", "test"}`` -> :class:`MulTDataset`.

    ``path``: the pickle, or a folder holding the release file (``aligned`` chooses
    ``<prefix>_data.pkl`` or ``<prefix>_data_noalign.pkl`` there; ignored for a file path).
    ``dataset``: ``"iemocap"``, ``"mosei"`` (or ``"mosei_senti"``) or ``"mosi"``; it fixes the label
    layout that is checked. Non-finite features are replaced by 0 with one :class:`NonFiniteWarning`.
    """
    name = canonical_dataset(dataset)
    file = resolve_mult_path(path, name, aligned)
    data = restricted_load(file)
    if not isinstance(data, dict):
        raise DataFormatError(f"{file}: expected a dict with splits {FILE_SPLITS} at the top level, "
                              f"got {type(data).__name__}")
    missing = [s for s in FILE_SPLITS if s not in data]
    if missing:
        raise DataFormatError(f"{file}: missing split(s) {missing}; a MulT pickle has {list(FILE_SPLITS)}, "
                              f"found {sorted(map(str, data))}")
    out: dict[str, MulTDataset] = {}
    replaced: dict[str, dict[str, int]] = {}
    dims: dict[str, int] | None = None
    for split in FILE_SPLITS:
        arrays, labels, ids, nonfinite = check_split(data[split], name, f"{file} [{split!r}]")
        split_dims = {m: int(arrays[m].shape[2]) for m in MODALITIES}
        if dims is None:
            dims = split_dims
        elif split_dims != dims:
            raise DataFormatError(f"{file} [{split!r}]: feature widths {split_dims} differ from train's {dims}")
        out[SPLIT_NAMES[split]] = MulTDataset(arrays, labels, name, split=SPLIT_NAMES[split], source=str(file),
                                              ids=ids, nonfinite=nonfinite)
        replaced[split] = nonfinite
        data[split] = None  # let the raw arrays go as soon as they are converted
    total = sum(sum(c.values()) for c in replaced.values())
    if total:
        detail = "; ".join(f"{s}: " + ", ".join(f"{m} {c[m]}" for m in MODALITIES)
                           for s, c in replaced.items() if sum(c.values()))
        warnings.warn(f"{file}: replaced {total} non-finite feature value(s) (NaN, +inf, -inf) with 0 "
                      f"[{detail}]", NonFiniteWarning, stacklevel=2)
    return out
