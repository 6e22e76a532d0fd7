"""Multi-seed runs behind the closing tables: every baseline, several seeds, one JSON.

``python -m reprolib sweep --size medium --seeds 0 1 2`` trains each baseline on its home dataset
(the one its notebook uses at smoke size) with the notebooks' own code path
(:func:`reprolib.experiments.train_and_score`) and writes ``results/sweep_baselines_<size>.json``
with per-seed scores and mean ± std of test, test_ood and the gap. ``--method ccim`` does the same
for each baseline without and with CCIM (both strategies, notebook 02's dictionary) and writes
``results/sweep_ccim_<size>.json``; ``--method clef`` the same with and without CLEF
(``results/sweep_clef_<size>.json``), plus, for the baselines with a published loss of their own
(EMOT-Net, EmotiCon), the baseline trained on CLEF's task loss (cross-entropy / BCE) as a control.

Sizes: ``smoke`` is the notebooks' default; ``medium`` doubles the synthetic data and trains 15
epochs (CPU, minutes per run); ``full`` uses ResNet-18 encoders, larger views and more data (GPU).

A crash does not lose the finished runs: each one is appended to a journal as soon as it ends
(:class:`Journal`, under ``<results>/checkpoints/sweeps/``, git-ignored), and the same command run
again skips them. Every run seeds itself, so skipping some does not change the others; the final
table equals an uninterrupted sweep's (wall-clock ``seconds`` are those of the original runs).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from reprolib import atomic, distributed, experiments, presets, runstore
from reprolib.paths import results_dir
from reprolib.progress import progress
from reprolib.results import write_metrics

# The presets live in reprolib.presets; these names are the sweeps' own view of them.
VIEWS, FULL_VIEWS, SMOKE_SIZES = presets.VIEWS, presets.FULL_VIEWS, presets.SMOKE_SIZES
SIZES = presets.SWEEP_SIZES


EXTRA_VIEWS = {"emoticon": ("pose", "depth")}  # the EMOTIC views beyond body and context a baseline reads


def extra_views(kind: str, names) -> tuple[str, ...]:
    """The extra EMOTIC views (pose, depth) that the named baselines read; none on other data.
    Opening only what is read keeps the dataset of notebooks 03, 08 and 09 the same, so that a
    run one of them trained is found and reused by the others (:mod:`reprolib.runstore`)."""
    if kind != "emotic":
        return ()
    return tuple(dict.fromkeys(view for name in names for view in EXTRA_VIEWS.get(name, ())))


def baseline_builders(size: str) -> dict[str, tuple[str, Callable]]:
    """name -> (home dataset, build(data, backbone)); the same constructors the notebooks call."""
    from reprolib.models.caernet import CAERNetS
    from reprolib.models.cdnet import CDNet
    from reprolib.models.emoticon import EmotiCon
    from reprolib.models.emotnet import EMOTNet
    from reprolib.models.gnncnn import GNNCNN

    small = size != "full"
    home = presets.HOME_DATASET
    return {
        "emotnet": (home["emotnet"], lambda d, b: EMOTNet(d.num_classes, multilabel=d.multilabel, body_backbone=b,
                                                   context_backbone=b)),
        "caernet": (home["caernet"], lambda d, b: CAERNetS(d.num_classes, multilabel=d.multilabel, encoder="caer",
                                                    widths=(16, 32, 64, 64, 64) if small else (32, 64, 128, 256, 256))),
        "gnncnn": (home["gnncnn"], lambda d, b: GNNCNN(d.num_classes, multilabel=d.multilabel, backbone=b)),
        "cdnet": (home["cdnet"], lambda d, b: CDNet(d.num_classes, multilabel=d.multilabel, backbone=b)),
        "emoticon": (home["emoticon"], lambda d, b: EmotiCon(d.num_classes, multilabel=d.multilabel, backbone=b,
                                                     use_pose=d.kind == "emotic", use_depth=d.kind == "emotic")),
    }


def summarise(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


METHODS = ("baselines", "ccim", "clef", "ccim_ablations", "clef_ablations")
OWN_LOSS_CONTROL = "baseline_default_loss"  # CLEF sweep: the baseline on CE/BCE, for baselines with a loss of their own
DICTIONARY_SIZE = 16  # prototypes in the CCIM sweep's dictionaries (notebook 02's main N at smoke size)
# CCIM Figure 6 tries N = 64 ... 1024 around its default 256 (x 1/4 ... x 4); the same ratios around ours.
ABLATION_DICTIONARY_SIZES = (4, 8, 32, 64)

# The papers' ablation tables (CCIM Table 4, CLEF Table 4) on our data: variant -> the paper's row
# (the setting of :data:`reprolib.published.ABLATIONS`). The paper's ablated baselines are the default
# selection: EMOT-Net and EmotiCon for CCIM, CD-Net and EmotiCon for CLEF.
ABLATION_ROWS = {
    "ccim_ablations": {
        "baseline": None,
        "ccim": "default (dot product, Places365 ResNet-152, N = 256 / 128 / 256)",
        "random_dictionary": "random dictionary Z (same size)",
        "additive": "additive attention",
        "no_lambda": "without lambda_i (no attention weights)",
        "no_prior": "without P(z_i) (no prior)",
        "no_mask": "without masking the subject",
        **{f"N{n}": None for n in ABLATION_DICTIONARY_SIZES},  # CCIM Figure 6, beside the N of "ccim"
    },
    "clef_ablations": {
        "baseline": "vanilla",
        "clef": "+ CLEF",
        "context_alone": "without the CAER model (context branch alone)",
        "no_context_branch": "without the extra context branch",
        "no_kl": "without the KL regularisation",
        "no_mask": "without masking the subject",
        "star_average": "Y_e* = average feature embedding (instead of the learned uniform-initialised vector)",
        "star_random": "Y_e* = random feature embedding",
    },
}
ABLATION_BASELINES = {"ccim_ablations": ("emotnet", "emoticon"), "clef_ablations": ("cdnet", "emoticon")}
# Rows of the papers' tables our data cannot express: the dictionary comes from a label-free colour
# layout (no ImageNet / Places365 / ResNet-50 / VGG-16 extractor to swap), the context branch is trained
# from scratch (no pre-training to change).
NOT_EXPRESSIBLE = {
    "ccim_ablations": ("ImageNet instead of Places365 pre-training", "ResNet-50 feature extractor",
                       "VGG-16 feature extractor"),
    "clef_ablations": ("ImageNet instead of Places365 pre-training (context branch)", "ResNet-50 context branch",
                       "VGG-16 context branch"),
}


def _ccim_variants(ablations: bool) -> dict[str, Callable | None]:
    from reprolib.causal.ccim import with_ccim

    if not ablations:
        return {"baseline": None,
                "ccim_dot_product": lambda model, d, dictionary, backbone: with_ccim(model, dictionary, "dot_product"),
                "ccim_additive": lambda model, d, dictionary, backbone: with_ccim(model, dictionary, "additive")}

    def with_size(n):
        return lambda model, d, dictionary, backbone: with_ccim(model, experiments.dictionary_for(d, n))

    return {"baseline": None,
            "ccim": lambda model, d, dictionary, backbone: with_ccim(model, dictionary),
            "random_dictionary": lambda model, d, dictionary, backbone: with_ccim(model, dictionary.randomised(seed=0)),
            "additive": lambda model, d, dictionary, backbone: with_ccim(model, dictionary, "additive"),
            "no_lambda": lambda model, d, dictionary, backbone: with_ccim(model, dictionary, attention=False),
            "no_prior": lambda model, d, dictionary, backbone: with_ccim(model, dictionary, uniform_prior=True),
            "no_mask": lambda model, d, dictionary, backbone: with_ccim(
                model, experiments.dictionary_for(d, dictionary.size, view="image")),
            **{f"N{n}": with_size(n) for n in ABLATION_DICTIONARY_SIZES}}


def _clef_variants(ablations: bool) -> dict[str, Callable | None]:
    from reprolib.causal.clef import ContextOnly, NoContext, clef_around, context_branch
    from reprolib.engine import WithDefaultLoss

    def clef(context=None, **options):
        return lambda model, d, dictionary, backbone: clef_around(model, d, backbone, context=context, **options)

    if not ablations:
        return {"baseline": None,
                OWN_LOSS_CONTROL: lambda model, d, dictionary, backbone: WithDefaultLoss(model),
                "clef": clef()}
    return {"baseline": None, "clef": clef(),
            "context_alone": lambda model, d, dictionary, backbone: ContextOnly(context_branch(d.num_classes, backbone)),
            "no_context_branch": clef(NoContext), "no_kl": clef(kl=False), "no_mask": clef(mask_context=False),
            "star_average": clef(star="average"), "star_random": clef(star="random")}


def _variants(method: str) -> dict[str, Callable | None]:
    """variant -> wrap(model, data, dictionary, backbone) around a freshly built baseline (None: the
    plain baseline). ``dictionary`` is the dataset's confounder dictionary (CCIM only, else None)."""
    if method == "baselines":
        return {"baseline": None}
    if method.startswith("clef"):
        return _clef_variants(method == "clef_ablations")
    return _ccim_variants(method == "ccim_ablations")


JOURNAL_FOLDER = ("checkpoints", "sweeps")


class Journal:
    """The finished runs of one sweep, one JSON line each, appended as each run ends.

    The file is named by the sweep and a hash of what its runs' numbers depend on: the sweep's
    arguments (method, size and its preset, seeds, selection), the package's code digest
    (:func:`reprolib.runstore.code_digest`), torch's version, thread count, device and world size. A
    re-run with all of these the same reads it back and skips the runs in it; any difference gives
    another file, so no run is kept across a change that could alter it. A torn last line
    (the process was killed while appending) and any unreadable line are ignored. Under torchrun every
    rank reads it and rank 0 alone writes it."""

    def __init__(self, name: str, arguments: dict[str, Any], log: Callable[[str], None] = print,
                 path: Path | None = None):
        import torch

        self.description = {"sweep": name, "arguments": arguments, "code": runstore.code_digest(),
                            "torch": torch.__version__, "threads": torch.get_num_threads(),
                            "device": "cuda" if torch.cuda.is_available() else "cpu",
                            "world_size": distributed.world_size()}
        text = json.dumps(self.description, sort_keys=True, default=str)
        self.key = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.path: Path = path or results_dir().joinpath(*JOURNAL_FOLDER, f"{name}-{self.key}.jsonl")
        if path is not None:  # a given journal (sweep(from_journal=...)): its own key, one per file
            keys = {json.loads(line).get("key") for line in atomic.read_lines(path) if line.strip().startswith("{")}
            if len(keys) != 1:
                raise ValueError(f"{path}: not one sweep's journal (keys {sorted(map(str, keys))})")
            self.key = keys.pop()
        self.done: dict[str, dict] = {}
        for line in atomic.read_lines(self.path):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("key") == self.key and isinstance(record.get("run"), str) \
                    and isinstance(record.get("row"), dict):
                self.done[record["run"]] = record["row"]
        if self.done:
            log(f"{name}: {len(self.done)} run(s) finished by an interrupted sweep with the same arguments and "
                f"code are kept from {self.path}, not trained again")

    @staticmethod
    def _id(parts: tuple) -> str:
        return json.dumps(list(parts))

    def get(self, *parts) -> dict | None:
        """The row of a finished run (e.g. ``get(name, variant, seed)``), or None."""
        return self.done.get(self._id(parts))

    def add(self, parts: tuple, row: dict[str, Any]) -> dict[str, Any]:
        """Record a finished run at once; returns the row as the journal gives it back (JSON-plain), so
        that a table built from fresh and from journalled rows is the same."""
        row = json.loads(json.dumps(row, default=float))
        self.done[self._id(parts)] = row
        if distributed.is_main():
            atomic.append_line(self.path, json.dumps({"key": self.key, "run": self._id(parts), "row": row},
                                                     default=float))
        return row

    def close(self) -> None:
        """Remove the journal (the final JSON holds every run now)."""
        if distributed.is_main():
            self.path.unlink(missing_ok=True)


def _reusable_baseline_runs(size: str, seeds) -> dict[str, list[dict]]:
    """Per-seed baseline runs from ``sweep_baselines_<size>.json`` when it used these seeds (the CCIM
    sweep's baseline rows come from the same code path, so re-training them would repeat the numbers)."""
    from reprolib.paths import results_dir

    path = results_dir() / f"sweep_baselines_{size}.json"
    if not path.exists():
        return {}
    import json

    saved = json.loads(path.read_text())
    if saved["provenance"]["parameters"].get("seeds") != list(seeds):
        return {}
    return {name: row["runs"] for name, row in saved["metrics"].items()}


def sweep(method: str = "baselines", size: str = "medium", seeds=(0, 1, 2), only=None, log=print,
          reuse_baselines: bool = False, from_journal: str | Path | None = None) -> dict[str, Any]:
    """Train every (selected) baseline, plain or with each variant of ``method``, for every seed;
    return and save ``results/sweep_<method>_<size>.json`` (per-seed rows and mean ± std).

    ``reuse_baselines`` (CCIM and CLEF sweeps): take the plain baselines' rows from an existing
    ``sweep_baselines_<size>.json`` with the same seeds instead of training them again.

    ``from_journal``: train nothing; write the table from the finished runs in that journal (a sweep
    with these arguments that was stopped for good, perhaps by older code). A variant missing any seed
    is left out, and the provenance names the journal and the variants left out."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    spec = SIZES[size]
    baselines = baseline_builders(size)
    unknown = sorted(set(only or ()) - set(baselines))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {sorted(baselines)}")
    only = only or ABLATION_BASELINES.get(method)
    names = [n for n in baselines if not only or n in only]
    variants = _variants(method)
    reused = _reusable_baseline_runs(size, seeds) if reuse_baselines and method != "baselines" else {}
    journal = Journal(f"sweep_{method}_{size}", {"method": method, "size": size, "seeds": list(seeds),
                                                 "only": names, "reuse_baselines": bool(reuse_baselines),
                                                 "spec": spec, "sizes": SMOKE_SIZES}, log,
                      path=Path(from_journal) if from_journal else None)
    left_out: list[str] = []
    data: dict[str, experiments.DataBundle] = {}
    dictionaries: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for name in progress(names, desc=f"sweep {method} {size}"):
        kind, build = baselines[name]
        if kind not in data:
            subject, context, image = spec["views"][kind]
            sizes = {s: n * spec["scale"] for s, n in SMOKE_SIZES[kind].items()}
            data[kind] = experiments.open_data(
                kind, seed=0, synthetic_knobs={"sizes": sizes}, subject_size=subject, context_size=context,
                image_size=image, extra_views=extra_views(kind, names))
            if method.startswith("ccim"):
                dictionaries[kind] = experiments.dictionary_for(data[kind], DICTIONARY_SIZE)
        d = data[kind]
        rows: dict[str, Any] = {}
        own_loss = hasattr(build(d, spec["backbone"]), "training_loss")
        for variant, wrap in variants.items():
            if variant == OWN_LOSS_CONTROL and not own_loss:
                continue  # the baseline already trains on the default loss: this row would repeat it
            if wrap is None and name in reused:
                runs = reused[name]
                log(f"{name:9s} {variant}: reused from sweep_baselines_{size}.json")
            elif from_journal and any(journal.get(name, variant, seed) is None for seed in seeds):
                left_out.append(f"{name} {variant}")
                log(f"{name:9s} {variant}: not finished in {from_journal}, left out")
                continue
            else:
                runs = []
                for seed in seeds:
                    row = journal.get(name, variant, seed)
                    if row is None:
                        started = time.perf_counter()
                        make = (lambda: build(d, spec["backbone"])) if wrap is None else (
                            lambda: wrap(build(d, spec["backbone"]), d, dictionaries.get(kind), spec["backbone"]))
                        run = experiments.train_and_score(make, d, seed=seed, epochs=spec["epochs"], lr=spec["lr"],
                                                          batch_size=64, desc=f"{name} {variant} seed {seed}")
                        row = journal.add((name, variant, seed), {
                            "seed": seed, **run.scores, "gap": run.gap, "best_epoch": run.fit.best_epoch,
                            "seconds": time.perf_counter() - started})
                        note = f"({row['seconds']:.0f} s)"
                    else:
                        note = f"(kept from the journal, trained in {row['seconds']:.0f} s before the interruption)"
                    runs.append(row)
                    scores = [k for k in row if k not in ("seed", "gap", "best_epoch", "seconds")]
                    log(f"{name:9s} {variant} seed {seed}: " + ", ".join(f"{k} {row[k]:.3f}" for k in scores)
                        + f", gap {row['gap']:.3f} {note}")
            rows[variant] = {"runs": runs, **{key: summarise([r[key] for r in runs]) for key in ("test", "test_ood", "gap")}}
        if not rows or (method == "baselines" and "baseline" not in rows):
            continue  # from_journal: nothing of this baseline finished
        head = {"dataset": kind, "metric": d.metric_name, "chance": d.chance()}
        table[name] = {**head, **rows["baseline"]} if method == "baselines" else {**head, "variants": rows}
    params = {"size": size, "seeds": list(seeds), **{k: v for k, v in spec.items() if k != "views"},
              "views": {k: str(v) for k, v in spec["views"].items()}}
    if method in ABLATION_ROWS:
        params.update(paper_rows=ABLATION_ROWS[method], not_expressible=list(NOT_EXPRESSIBLE[method]))
    if from_journal:
        params.update(from_journal={"file": Path(from_journal).name, "key": journal.key, "left_out": left_out})
    if method.startswith("ccim"):
        params.update(dictionary_size=DICTIONARY_SIZE, dictionaries={k: v.provenance for k, v in dictionaries.items()},
                      baselines_reused=sorted(reused.keys() & set(names)))
    write_metrics(f"sweep_{method}_{size}", table, params, data=data)
    if not from_journal:
        journal.close()
    return table


def sweep_baselines(size: str = "medium", seeds=(0, 1, 2), only=None, log=print) -> dict[str, Any]:
    """The plain baselines only (``sweep("baselines", ...)``)."""
    return sweep("baselines", size, seeds, only, log)


def format_table(table: dict[str, Any]) -> str:
    """Markdown: (baseline, variant) x (test, test_ood, gap) as mean ± std over seeds."""
    lines = ["| baseline | variant | data (metric) | test | test_ood | gap | seeds |", "|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        for variant, cols in row.get("variants", {"baseline": row}).items():
            cells = [f"{cols[k]['mean']:.3f} ± {cols[k]['std']:.3f}" for k in ("test", "test_ood", "gap")]
            lines.append(f"| {name} | {variant} | {row['dataset']} ({row['metric']}) | " + " | ".join(cells)
                         + f" | {cols['test']['n']} |")
    return "\n".join(lines)
