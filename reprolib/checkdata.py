"""Check a real dataset folder before a long run: ``python -m reprolib check-data <dataset> <folder>``.

A night of GPU time should not end at epoch 3 on a corrupt JPEG, or train on a copy that lost a class
folder. :func:`check` reads the folder through the loaders the notebooks use (:class:`~reprolib.data.
caers.CAERS`, :class:`~reprolib.data.emotic.Emotic`, :func:`~reprolib.data.mult.load_mult`), so the
checker and the notebooks can never disagree on the format, and then goes further than a training
run's first minutes would:

* every image is opened and decoded, and every subject box cleaned, as an item is served (a bar
  from :func:`reprolib.progress.progress` shows the way on large folders); EMOTIC depth maps too;
* problems are collected, not fatal: a split the loader refuses is reported and the other splits are
  still checked; a CAER-S split whose face-box file is refused is checked again without boxes; a
  refused EMOTIC CSV is read again row by row through the loader's own row checks so that every bad
  row is listed, not only the first;
* loader warnings are captured into the report, errors (the folder will not train) are kept apart
  from warnings (it will, but look at this);
* the report ends with what each numbered notebook will read from the folder (preset sizes, splits,
  the ``data_root`` form), from the presets the notebooks resolve (:mod:`reprolib.presets`).

Kept free of torch at import time, like the rest of the command line: the loaders are imported when a
check runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

DATASETS = ("caer_s", "emotic", "iemocap", "mosei")
IMAGE_DATASETS = DATASETS[:2]
REQUIRED_SPLITS = {"caer_s": ("train", "test"),          # open_caers_splits refuses a folder without them
                   "emotic": ("train", "val", "test")}    # the notebooks select checkpoints on val
TINY_VIEWS = dict(subject_size=8, context_size=8, image_size=8)  # decoding is the check; resizing is not
PROGRESS_MIN = 500   # items from which a split gets a progress bar
SHOWN = 40           # problems printed per list by Report.format (the JSON keeps all)
EXAMPLES = 3         # file names quoted in a warning that counts many
PER_CLASS_TITLE = {"caer_s": "class (images)", "emotic": "category (persons labelled)",
                   "iemocap": "emotion (samples present)", "mosei": "acc7 class (samples)"}
# What a notebook that trains no baseline does with a dataset (the others: the baselines they train on it).
NOTEBOOK_TASK = {"01_context_bias": "context-bias probes", "02_confounder_dictionary": "confounder dictionaries",
                 "10_causalmer_missing_modality": "MulT, MulT+CausalMER"}
T = TypeVar("T")


@dataclass
class Report:
    """What :func:`check` found: errors (the folder will not train as it is), warnings (it will, but
    look), ``counts`` (``splits``: one row of figures per split; ``per_class``: split -> name ->
    count) and ``usage`` (what the notebooks will read)."""

    dataset: str
    folder: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    usage: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, message: str) -> None:
        self._add(self.errors, message)

    def warn(self, message: str) -> None:
        self._add(self.warnings, message)

    def _add(self, items: list[str], message: str) -> None:
        """Each message once (an image shared by several EMOTIC persons fails once), in a set: a
        corrupt copy of CAER-S can give tens of thousands."""
        if message not in self._seen:
            self._seen.add(message)
            items.append(message)

    def split_row(self, split: str) -> dict[str, Any]:
        return self.counts.setdefault("splits", {}).setdefault(split, {})

    def as_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "folder": self.folder, "ok": self.ok, "errors": self.errors,
                "warnings": self.warnings, "counts": self.counts, "usage": self.usage}

    def format(self) -> str:
        """The report as text: verdict, a table per split, a table per class, the problems, the usage."""
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"check-data {self.dataset}: {self.folder}",
                 f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        if "file" in self.counts:
            lines.append(f"file: {self.counts['file']}")
        splits = self.counts.get("splits", {})
        if splits:
            lines += ["", "splits", *_indent(_split_table(splits))]
        per_class = self.counts.get("per_class", {})
        if per_class:
            names = list(dict.fromkeys(n for row in per_class.values() for n in row))
            rows = [[PER_CLASS_TITLE[self.dataset], *per_class]]
            rows += [[n, *(row.get(n, 0) for row in per_class.values())] for n in names]
            lines += ["", "per " + PER_CLASS_TITLE[self.dataset].split(" (")[0], *_indent(_table(rows))]
        for title, items in (("errors", self.errors), ("warnings", self.warnings)):
            if items:
                lines += ["", f"{title} ({len(items)})", *(f"  - {m}" for m in items[:SHOWN])]
                if len(items) > SHOWN:
                    lines.append(f"  ... and {len(items) - SHOWN} more (all of them in --json)")
        if self.usage:
            lines += ["", "what each notebook will use", *_indent(self.usage)]
        return "\n".join(lines)


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return "/".join(str(v) for v in value.values())
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _table(rows: list[list[Any]]) -> list[str]:
    """A header row and rows of cells as aligned text: columns of figures right-aligned, text left."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    figures = [all(isinstance(r[i], (int, float, dict)) for r in rows[1:]) for i in range(len(widths))]
    return ["  ".join(c.rjust(w) if right else c.ljust(w) for c, w, right in zip(r, widths, figures)).rstrip()
            for r in cells]


def _split_table(splits: dict[str, dict[str, Any]]) -> list[str]:
    """One row per split that was read; a split that was not (absent, refused) is a line of its own."""
    read = {s: row for s, row in splits.items() if "status" not in row}
    columns = list(dict.fromkeys(k for row in read.values() for k in row))
    lines: list[str] = []
    if read:
        def header(key: str) -> str:
            sample = next((row[key] for row in read.values() if isinstance(row.get(key), dict)), None)
            return key if sample is None else f"{key} " + "/".join(k if len(k) <= 2 else k[0] for k in sample)
        lines = _table([["split", *map(header, columns)],
                        *([s, *(row.get(k, "") for k in columns)] for s, row in read.items())])
    return lines + [f"{s}: {row['status']}" for s, row in splits.items() if "status" in row]


# ---------------------------------------------------------------------------------------------------
# Shared steps
# ---------------------------------------------------------------------------------------------------

@contextmanager
def _loader_warnings(report: Report) -> Iterator[None]:
    """Put what the loaders warn about (user warnings, each once) into the report instead of stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            report.warn(str(w.message))


def _attempt(report: Report, make: Callable[[], T]) -> T | None:
    """``make()``, or None with the loader's refusal (which names the file) added as an error."""
    from reprolib.data.safepickle import UnsafePickleError
    from reprolib.data.views import DataFormatError

    try:
        with _loader_warnings(report):
            return make()
    except UnsafePickleError as err:
        report.error(f"{err}; refused without running any of it (never open this file with pickle.load)")
    except DataFormatError as err:
        report.error(str(err))
    except OSError as err:
        report.error(f"{err.filename or report.folder}: cannot read ({err.strerror or err})")
    return None


def _examples(items: list[str]) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > EXAMPLES else ""
    return ", ".join(items[:EXAMPLES]) + more


def _check_items(report: Report, ds: Any, split: str, show_progress: bool, *, cite_row: bool) -> dict[str, int]:
    """Serve every item of a subject/context dataset, as training will: each image decoded, each box
    cleaned (counted in the loader's ``box_stats``), each depth map read when the dataset serves one.

    Every failure is an error naming the file (prefixed with the CSV line when ``cite_row``); boxes the
    loader had to repair are counted in one warning per kind, with examples. Returns the counts."""
    from reprolib.data.views import DataFormatError
    from reprolib.progress import progress

    bar = {} if show_progress and len(ds) >= PROGRESS_MIN else {"disable": True}
    stats = ds.box_stats
    unreadable: set[Path] = set()
    depth_failed = 0
    repaired: dict[str, list[str]] = {"reversed": [], "clipped": []}
    for index in progress(range(len(ds)), desc=f"{report.dataset} {split}", unit="item", **bar):
        rec = ds.records[index]
        before = {kind: stats[kind] for kind in repaired}
        try:
            ds[index]
        except DataFormatError as err:
            message = str(err)
            report.error(f"{rec.source}: {message}" if cite_row and not message.startswith(rec.source) else message)
            if message.startswith(str(rec.path)):
                unreadable.add(rec.path)
            elif "depth map" in message:
                depth_failed += 1
            continue
        for kind, names in repaired.items():
            if stats[kind] != before[kind]:
                names.append(rec.source if cite_row else str(rec.path))
    for kind, names in repaired.items():
        if names:
            what = "had reversed corners (swapped)" if kind == "reversed" else "reach past the image border (clipped)"
            report.warn(f"{split}: {len(names)} subject box(es) {what}, e.g. {_examples(names)}")
    return {"unreadable": len(unreadable), "reversed": len(repaired["reversed"]),
            "clipped": len(repaired["clipped"]), "depth failed": depth_failed}


def _missing_split(report: Report, split: str, where: Path, required: bool, carved: int | None = None) -> None:
    row = report.split_row(split)
    if required:
        row["status"] = "missing (required)"
        report.error(f"{where}: required split is missing; the notebooks train on train, select on val "
                     "and score on test")
    elif split == "test_ood":
        row["status"] = "absent, as in the real dataset: scores on it show as n/a (gap '–')"
    else:
        row["status"] = ("absent: the notebooks carve it from train" if carved is None else
                         f"absent: the notebooks carve {carved} image(s) from train (seeded)")


# ---------------------------------------------------------------------------------------------------
# CAER-S
# ---------------------------------------------------------------------------------------------------

def _check_caer_s(root: Path, report: Report, show_progress: bool) -> None:
    import inspect

    import numpy as np

    from reprolib.data.base import carve_validation
    from reprolib.data.caers import CAERS, CLASSES, find_face_boxes, open_caers_splits
    from reprolib.data.synthetic import SPLITS

    opened: dict[str, Any] = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        boxes = find_face_boxes(root, split)
        ds = _attempt(report, lambda: CAERS(root, split, **TINY_VIEWS))
        boxed = ds is not None
        if ds is None:  # the box file or the folder was refused: try once more without boxes
            ds = _attempt(report, lambda: CAERS(root, split, face_boxes=False, **TINY_VIEWS))
        row = report.split_row(split)
        if ds is None:
            row["status"] = "refused by the loader (see errors)"
            continue
        opened[split] = ds
        row["images"] = len(ds)
        row["box file"] = (str(boxes.relative_to(root)) if boxed else "refused") if boxes else "missing"
        report.counts.setdefault("per_class", {})[split] = dict(
            zip(CLASSES, np.bincount(ds.labels.numpy(), minlength=len(CLASSES)).tolist()))
        counted = ds.box_counts
        row.update({"with box": counted["given"], "zero box": counted["zero"], "no box": counted["none"],
                    "unmatched": counted["unmatched_in_file"]})
        unboxed = [str(r.path.relative_to(root)) for r in ds.records if r.box is None]
        if boxed and unboxed:
            report.warn(f"{boxes}: no face box for {_examples(unboxed)}")
        if counted["zero"]:
            report.warn(f"{split}: {counted['zero']} all-zero face box(es) (no face found): served as whole frames")
        items = _check_items(report, ds, split, show_progress, cite_row=False)
        row.update({k: items[k] for k in ("unreadable", "reversed", "clipped")})

    fraction = inspect.signature(open_caers_splits).parameters["val_fraction"].default
    carved = len(carve_validation(opened["train"], fraction, 0)[1]) if "train" in opened else None
    for split in SPLITS:
        if split not in report.counts.get("splits", {}):
            _missing_split(report, split, root / split, split in REQUIRED_SPLITS["caer_s"], carved)
    if "val" not in opened and "train" in opened:
        report.counts["carved_val_fraction"] = fraction


# ---------------------------------------------------------------------------------------------------
# EMOTIC
# ---------------------------------------------------------------------------------------------------

def emotic_row_problems(path: Path, image_root: Path) -> list[str]:
    """Every bad row of an EMOTIC CSV, each checked by the loader's own row checks (cells, image
    path, box against Image Size), so that one run lists them all; [] when the file itself (not a
    row) is what the loader refused."""
    import csv

    from reprolib.data.emotic import HEADER, image_path, parse_row
    from reprolib.data.views import DataFormatError, normalise_box

    problems = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            if tuple(h.strip() for h in next(reader, ())) != HEADER:
                return []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                where = f"{path}:{reader.line_num}"
                try:
                    row = parse_row(fields, where)
                    image_path(image_root, row["folder"], row["filename"], where)
                    normalise_box(row["box"], row["size"][0], row["size"][1], where)
                except DataFormatError as err:
                    problems.append(str(err))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return problems


def _size_mismatches(ds: Any) -> list[str]:
    """CSV rows whose ``Image Size`` is not the size of the stored image: their boxes are in the
    pixels of another copy of the image, and the loader cannot tell."""
    from PIL import Image

    found, sizes = [], {}
    for rec in ds.records:
        if rec.path not in sizes:
            try:
                with Image.open(rec.path) as im:  # the header only; decoding was checked already
                    sizes[rec.path] = im.size
            except OSError:
                sizes[rec.path] = None
        actual = sizes[rec.path]
        declared = tuple(int(round(v)) for v in rec.meta["image_size"])
        if actual is not None and tuple(actual) != declared:
            found.append(f"{rec.source} (Image Size {list(declared)}, {rec.path.name} is {actual[0]}x{actual[1]})")
    return found


def _check_emotic(root: Path, report: Report, show_progress: bool) -> None:
    from reprolib.data.emotic import CATEGORIES, Emotic
    from reprolib.data.synthetic import EMOTIC_DEPTH_FOLDER, EMOTIC_POSE_FOLDER, SPLITS

    has = {"pose": (root / EMOTIC_POSE_FOLDER).is_dir(), "depth": (root / EMOTIC_DEPTH_FOLDER).is_dir()}
    for view, present in has.items():
        if not present:
            needing = {nb: [s for s, (_, views) in cells.items() if view in views]
                       for nb, cells in notebook_use("emotic").items()}
            report.warn(f"{root / view}: absent; needed by " + ", ".join(
                f"notebook {nb[:2]} ({', '.join(sizes)})" for nb, sizes in needing.items() if sizes)
                + " (the EmotiCon runs), not by the others")
    for split in SPLITS:
        csv_path = root / f"{split}.csv"
        if not csv_path.is_file():
            _missing_split(report, split, csv_path, split in REQUIRED_SPLITS["emotic"])
            continue
        row = report.split_row(split)
        ds = _attempt(report, lambda: Emotic(root, split, check_files=False,
                                             extra_views=("depth",) if has["depth"] else (), **TINY_VIEWS))
        if ds is None:
            for problem in emotic_row_problems(csv_path, root):
                report.error(problem)
            row["status"] = "refused by the loader (see errors); its images were not checked"
            continue
        labels = ds.labels
        per_person = Counter(min(int(n), 3) for n in labels.sum(dim=1).tolist())
        vad = ds.vad * 10
        row.update({"persons": len(ds), "images": len(ds.image_groups()),
                    "labels/person": {"1": per_person[1], "2": per_person[2], "3+": per_person[3]},
                    "VAD range": {c: f"{float(lo):g}-{float(hi):g}" for c, lo, hi
                                  in zip("VAD", vad.min(dim=0).values, vad.max(dim=0).values)}})
        counts = dict(zip(CATEGORIES, labels.sum(dim=0).int().tolist()))
        report.counts.setdefault("per_class", {})[split] = counts
        unseen = [c for c, n in counts.items() if n == 0]
        if unseen:
            report.warn(f"{csv_path}: no person labelled with {len(unseen)} of {len(CATEGORIES)} categories "
                        f"({', '.join(unseen)}): their AP is undefined on this split")
        items = _check_items(report, ds, split, show_progress, cite_row=True)
        row.update({k: items[k] for k in ("unreadable", "reversed", "clipped")})
        mismatched = _size_mismatches(ds)
        row["size mismatch"] = len(mismatched)
        if mismatched:
            report.warn(f"{split}: Image Size disagrees with the stored image for {_examples(mismatched)}; "
                        "boxes are in the CSV's pixels")
        if has["depth"]:
            row["depth"] = f"{len(ds) - items['depth failed']}/{len(ds)}"
        if has["pose"]:
            posed = _attempt(report, lambda: Emotic(root, split, check_files=False, extra_views=("pose",)))
            row["pose"] = ("refused" if posed is None else
                           f"{len(posed)}x{posed.records[0].target['pose'].shape[0]} joints")


# ---------------------------------------------------------------------------------------------------
# MulT pickles
# ---------------------------------------------------------------------------------------------------

def _check_mult(dataset: str, folder: Path, report: Report) -> None:
    import numpy as np

    from reprolib.data.mult import load_mult, mult_filename, resolve_mult_path

    file = _attempt(report, lambda: resolve_mult_path(folder, dataset, aligned=True))
    if file is None:
        return
    report.counts["file"] = str(file)
    other = file.with_name(mult_filename(dataset, aligned=False))
    if folder.is_dir() and other.is_file():
        report.warn(f"{other}: also here, not read: notebook 10 reads the word-aligned {file.name}")
    splits = _attempt(report, lambda: load_mult(file, dataset))
    if splits is None:
        return
    for split, ds in splits.items():
        report.split_row(split).update({"N": len(ds), "lengths": ds.lengths, "widths": ds.dims,
                                        "aligned": "yes" if ds.aligned else "no",
                                        "non-finite features": sum(ds.nonfinite.values())})
        if dataset == "iemocap":
            present = ds.targets().sum(dim=0).int().tolist()
            counts = dict(zip(ds.emotions, present))
            degenerate = [e for e, n in counts.items() if n in (0, len(ds))]
            if degenerate:
                report.warn(f"{file} [{split}]: {', '.join(degenerate)} is present in none or all of the "
                            f"{len(ds)} samples: that emotion's binary task is degenerate here")
        else:
            classes = np.bincount(ds.label_cls.numpy(), minlength=7).tolist()
            counts = {f"{c - 3:+d}" if c != 3 else "0": n for c, n in enumerate(classes)}
            empty = [k for k, n in counts.items() if n == 0]
            if empty:
                report.warn(f"{file} [{split}]: no sample in acc7 class(es) {', '.join(empty)}")
        report.counts.setdefault("per_class", {})[split] = counts


# ---------------------------------------------------------------------------------------------------
# What the notebooks will read
# ---------------------------------------------------------------------------------------------------

def notebook_use(dataset: str) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """notebook -> size -> (what it does with ``dataset``, the extra views it reads), for every
    numbered notebook that reads ``dataset`` at some size, from the presets the notebooks resolve
    (:data:`reprolib.presets.PRESETS`, :func:`~reprolib.presets.datasets_read`)."""
    from reprolib.parameters import BASELINES
    from reprolib.presets import HOME_DATASET, PRESETS, datasets_read
    from reprolib.sweeps import extra_views

    out: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for notebook, sizes in PRESETS.items():
        for size, preset in sizes.items():
            if dataset not in datasets_read(notebook, preset):
                continue
            models = [b for b in preset.get("baselines", ()) if HOME_DATASET[b] == dataset] or \
                [b for b in BASELINES if notebook.endswith(f"_baseline_{b}")]
            task = ", ".join(models) if models else NOTEBOOK_TASK.get(notebook, "reads it")
            out.setdefault(notebook, {})[size] = (task, extra_views(dataset, models))
    return out


def _usage(dataset: str, folder: Path, report: Report) -> list[str]:
    """The notebooks that will read this folder, at which size and for what, and how to pass it."""
    from reprolib.presets import PRESETS, datasets_read

    use = notebook_use(dataset)
    sizes = list(dict.fromkeys(s for cells in use.values() for s in cells))
    rows = [["notebook", *sizes]]
    for notebook, cells in use.items():
        rows.append([notebook, *(cells[s][0] + (f" (+ {', '.join(cells[s][1])})" if cells[s][1] else "")
                                 if s in cells else "-" for s in sizes)])
    lines = _table(rows)
    read = [s for s, row in report.counts.get("splits", {}).items() if "status" not in row]
    if dataset in IMAGE_DATASETS:
        scored = "test and test_ood" if "test_ood" in read else "test"
        lines.append(f"splits: train (training), val (checkpoint selection), {scored} (scores)"
                     + ("" if "test_ood" in read else "; no test_ood here, so the test_ood scores and the "
                        "test - test_ood gap show as n/a"))
        if "carved_val_fraction" in report.counts:
            lines.append(f"val: none here; every notebook carves {report.counts['carved_val_fraction']:.1%} "
                         "of train off as val (seeded), never from test")
    else:
        lines.append("splits: train, valid (served as val, for checkpoint selection), test; no test_ood")
    path = report.counts.get("file", str(folder))
    alone = [nb[:2] for nb, p in PRESETS.items() if datasets_read(nb, p.get("smoke", {})) == [dataset]]
    beside = sorted({k for nb in use for p in PRESETS[nb].values() for k in datasets_read(nb, p)} - {dataset})
    example = "{" + ", ".join([f'"{dataset}": "{path}"', *(f'"{k}": None' for k in beside)]) + "}"
    lines.append(f"data_root: a dict naming every dataset the notebook reads, e.g. -p 'data_root={example}' "
                 f"(None: synthetic data for that one); this path alone where it reads only {dataset} ("
                 + (f"{', '.join(alone)} at smoke size" if alone else f"-p 'datasets=[\"{dataset}\"]'") + ")")
    return lines


# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------

def _not_there(dataset: str, folder: Path) -> str | None:
    """Why ``folder`` cannot be checked at all, or None (a MulT pickle may be given as the file)."""
    if not folder.exists():
        return f"{folder}: no such folder"
    if dataset in IMAGE_DATASETS and not folder.is_dir():
        return f"{folder}: is a file; {dataset} needs its dataset folder"
    return None


def check(dataset: str, folder: str | Path, *, progress: bool = True) -> Report:
    """Check one dataset folder (for ``iemocap`` / ``mosei`` also the pickle itself) with the loaders'
    own parsing; every problem found is in the returned :class:`Report`, none is raised."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    folder = Path(folder)
    report = Report(dataset, str(folder))
    missing = _not_there(dataset, folder)
    if missing:
        report.error(missing)
        return report
    if dataset == "caer_s":
        _check_caer_s(folder, report, progress)
    elif dataset == "emotic":
        _check_emotic(folder, report, progress)
    else:
        _check_mult(dataset, folder, report)
    report.usage = _usage(dataset, folder, report)
    return report


def run(args: argparse.Namespace) -> int:
    """``check-data``: print the report; 0 without errors, 1 with errors, 2 for a folder that is not there."""
    folder = Path(args.folder)
    missing = _not_there(args.dataset, folder)
    if missing:
        print(f"reprolib check-data: error: {missing}", file=sys.stderr)
        return 2
    report = check(args.dataset, folder, progress=not args.no_progress)
    print(report.format())
    if args.json:
        from reprolib import atomic

        try:
            atomic.write_text(Path(args.json), json.dumps(report.as_json(), indent=2, allow_nan=False) + "\n")
        except OSError as err:
            print(f"reprolib check-data: error: cannot write {args.json} ({err.strerror or err})", file=sys.stderr)
            return 2
    return 0 if report.ok else 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``check-data`` on the ``reprolib`` command line."""
    p = subparsers.add_parser(
        "check-data",
        help="check a real dataset folder (every image decoded, boxes, labels, pose/depth) before a long run",
        description="Read a CAER-S or EMOTIC folder, or an IEMOCAP / MOSEI MulT pickle (or its folder), "
        "with the loaders the notebooks use; decode every image; report counts per split and class, "
        "errors apart from warnings, and what each notebook will read. Exit status 0 without errors, 1 "
        "with errors, 2 for a folder that is not there.")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("folder", help="the dataset folder (MulT: the folder holding the release pickle, or the file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    p.set_defaults(func=run)

