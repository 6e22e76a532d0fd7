"""Results summary against the papers (notebook 11): collect what the runs wrote, pair it, tabulate it.

The method notebooks (08 CCIM, 09 CLEF, 10 CausalMER) write one seed at their size; the sweeps write
several seeds at theirs (``sweep_<method>_<size>.json``). This module reads both from a results folder,
turns every (model, data set, causal module, setting) into a :class:`Row` of baseline, method and delta
(method − baseline, paired by seed so the spread is the spread of the delta itself), and prints them
beside the published numbers of :mod:`reprolib.published`. A setting knows its size, its seeds and
whether the data were synthetic or real (from what the run recorded it read), so a user's real-data runs are
summarised by the same code, with the synthetic-only ``test_ood`` shown as n/a.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib import presets
from reprolib.published import (ABLATIONS, DICTIONARY_SIZE, DICTIONARY_SIZES, PUBLISHED, PUBLISHED_DROP_STD, UNKNOWN,
                                Published, published)
from reprolib.sweeps import ABLATION_ROWS, OWN_LOSS_CONTROL, summarise
from reprolib.sweeps import DICTIONARY_SIZE as OUR_DICTIONARY_SIZE

MODEL_NAMES = {"emotnet": "EMOT-Net", "gnncnn": "GNN-CNN", "caernet": "CAER-Net-S", "cdnet": "CD-Net",
               "emoticon": "EmotiCon", "mult": "MulT"}
DATASET_NAMES = {"emotic": "EMOTIC", "caer_s": "CAER-S", "groupwalk": "GroupWalk", "iemocap": "IEMOCAP", "mosei": "CMU-MOSEI"}
METRIC_NAMES = {"emotic": "mAP", "caer_s": "accuracy", "groupwalk": "mAP", "iemocap": "mean accuracy", "mosei": "acc7"}
HOME_DATASET = presets.HOME_DATASET  # where the notebooks and sweeps train each image baseline
SIZE_ORDER = ("smoke", "medium", "full")
AGAINST_OWN_LOSS = "(against its own loss)"  # the label suffix of a row compared with the baseline's own loss
SCORE_LABELS = {"test": "test", "test_ood": "test_ood", "std_drop": "std of drops"}


@dataclass(frozen=True)
class PaperSpec:
    """Where one paper's results live and how its variants are named in them."""

    key: str
    title: str
    notebook: str              # results/<notebook>.json: one seed at the notebook's size
    sweep: str                 # results/sweep_<sweep>_<size>.json: several seeds
    baseline: str              # variant name of the model without the causal module
    methods: dict[str, str]    # variant name in the notebook's JSON -> label
    sweep_prefix: str = ""     # the sweep names a method variant <prefix><name>
    scores: tuple[str, ...] = ("test", "test_ood")
    by_dataset: bool = False   # results keyed by data set (CausalMER) rather than by model
    control: str | None = None  # variant: the baseline on the method's own task loss, where it has another


PAPERS = {
    "ccim": PaperSpec("ccim", "CCIM (CVPR 2023)", "08_ccim", "ccim", "baseline",
                      {"dot_product": "CCIM dot-product", "additive": "CCIM additive"}, sweep_prefix="ccim_"),
    # CLEF trains on CE / BCE; EMOT-Net and EmotiCon have losses of their own, so their fair "without"
    # is the same baseline on CE / BCE (notebook 09's default-loss control): the CLEF row compares with
    # it, and a second row keeps the comparison with the baseline's own loss.
    "clef": PaperSpec("clef", "CLEF (CVPR 2024)", "09_clef", "clef", "baseline", {"clef": "CLEF"},
                      control=OWN_LOSS_CONTROL),
    "causalmer": PaperSpec("causalmer", "CausalMER (Appl. Sci. 2024)", "10_causalmer_missing_modality", "causalmer",
                           "mult", {"causalmer": "CausalMER"}, scores=("test", "std_drop"), by_dataset=True),
}


@dataclass(frozen=True)
class Setting:
    """How a set of runs was made: size preset, seeds, synthetic or real data, and which file."""

    size: str
    seeds: tuple[int, ...]
    data: str   # "synthetic" or "real"
    source: str

    @property
    def label(self) -> str:
        seeds = f"seed {self.seeds[0]}" if len(self.seeds) == 1 else f"{len(self.seeds)} seeds"
        return f"{self.size} · {seeds} · {self.data}"

    def order(self) -> tuple:
        size = SIZE_ORDER.index(self.size) if self.size in SIZE_ORDER else len(SIZE_ORDER)
        return (self.data != "synthetic", size, self.size, len(self.seeds), self.source)


@dataclass
class Row:
    """One model ± one causal module in one setting: per score, baseline / method / gain over seeds."""

    paper: str
    model: str
    dataset: str
    method: str
    setting: Setting
    chance: float | None
    scores: dict[str, dict[str, dict[str, float] | None]] = field(default_factory=dict)
    against: str = "baseline"  # the variant "baseline" means in ``scores``: the baseline or its control

    def published(self, score: str = "test") -> dict[str, Published] | None:
        return published_for(self.paper, self.model, self.dataset, score)


# ---------------------------------------------------------------------------------------------- reading

def read_result(path: Path) -> dict[str, Any]:
    """One results JSON; a clear error naming the file when it is not one of ours."""
    try:
        payload = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
        raise ValueError(f"{path}: expected an object with 'metrics' and 'provenance' (see reprolib.results)")
    payload.setdefault("provenance", {})
    return payload


def data_kind(provenance: dict[str, Any], dataset: str, *, from_sweep: bool = False) -> str:
    """'synthetic' or 'real' from what the run recorded it read (``provenance["data"]``, see
    :func:`reprolib.results.write_metrics`), never from its ``data_root`` parameter. A sweep file from
    before sweeps kept the record is synthetic: sweeps take no ``data_root`` and generate their data.
    Anything else without a record is 'unrecorded'."""
    record = provenance.get("data", {}).get(dataset)
    if record:
        return record["data"]
    return "synthetic" if from_sweep else "unrecorded"


def _score(record: dict[str, Any], key: str) -> float | None:
    if key == "std_drop":
        return record.get("study", {}).get("summary", {}).get("std_drop")
    value = record.get(key)
    return None if value is None else float(value)


def _compare(runs_base: dict[int, dict], runs_method: dict[int, dict], keys) -> dict[str, dict | None]:
    """Per score: baseline and method over their seeds, and the delta (method − baseline) over the seeds both have."""
    out = {}
    for key in keys:
        base = {s: _score(r, key) for s, r in runs_base.items()}
        meth = {s: _score(r, key) for s, r in runs_method.items()}
        base = {s: v for s, v in base.items() if v is not None}
        meth = {s: v for s, v in meth.items() if v is not None}
        shared = sorted(set(base) & set(meth))
        out[key] = {"baseline": summarise(list(base.values())) if base else None,
                    "method": summarise(list(meth.values())) if meth else None,
                    "delta": summarise([meth[s] - base[s] for s in shared]) if shared else None}
    return out


def _groups(spec: PaperSpec, metrics: dict[str, Any], from_sweep: bool):
    """(model, data set, variant -> {seed: record}, chance) for each group in one results file."""
    for name, entry in metrics.items():
        if not isinstance(entry, dict):
            continue
        variants = entry.get("variants", {}) if from_sweep else entry
        if spec.by_dataset:
            yield spec.baseline, name, variants, entry.get("chance")
        else:
            yield name, entry.get("dataset", HOME_DATASET.get(name)), variants, entry.get("chance")


def rows_for(spec: PaperSpec, payload: dict[str, Any], source: str, from_sweep: bool) -> list[Row]:
    """Every (model, method) row of one notebook or sweep JSON."""
    params = payload["provenance"].get("parameters", {})
    size = params.get("size", "unknown")
    metrics = payload["metrics"] if from_sweep or spec.by_dataset else payload["metrics"].get("scores", {})
    rows = []
    for model, dataset, variants, chance in _groups(spec, metrics, from_sweep):
        if dataset is None or spec.baseline not in variants:
            continue

        def by_seed(variant):
            if from_sweep:
                return {int(r["seed"]): r for r in variants[variant].get("runs", [])}
            return {int(params.get("seed", 0)): variants[variant]}

        own = by_seed(spec.baseline)
        fair = spec.control if spec.control in variants else spec.baseline
        for variant, label in spec.methods.items():
            name = spec.sweep_prefix + variant if from_sweep else variant
            if name not in variants:
                continue
            method = by_seed(name)
            setting = Setting(size, tuple(sorted(set(own) | set(method))),
                              data_kind(payload["provenance"], dataset, from_sweep=from_sweep), source)
            base = by_seed(fair)
            rows.append(Row(spec.key, model, dataset, label, setting, chance, _compare(base, method, spec.scores), fair))
            if fair != spec.baseline:
                rows.append(Row(spec.key, model, dataset, f"{label} {AGAINST_OWN_LOSS}", setting, chance,
                                _compare(own, method, spec.scores), spec.baseline))
    return rows


def _method_order(spec: PaperSpec, method: str) -> tuple[int, bool]:
    """The paper's methods in their order, each row against the fair baseline before its own-loss twin."""
    plain = method.removesuffix(f" {AGAINST_OWN_LOSS}")
    return list(spec.methods.values()).index(plain), plain != method


def find_file(folders, name: str) -> Path | None:
    """``name`` in the first of ``folders`` (one folder or several, in order of preference) that has it."""
    for folder in [folders] if isinstance(folders, (str, Path)) else folders:
        if (Path(folder) / name).exists():
            return Path(folder) / name
    return None


def collect(folders, papers=tuple(PAPERS)) -> dict[str, list[Row]]:
    """paper -> rows from every notebook and sweep JSON of that paper, settings in order. ``folders``:
    one results folder, or several in order of preference (each file is read from the first that
    has it: a JupyterLab run's own folder, then the committed results)."""
    listed = [folders] if isinstance(folders, (str, Path)) else list(folders)
    if not any(Path(f).is_dir() for f in listed):
        raise FileNotFoundError(f"results folder {listed[0]} does not exist; run `make reproduce` first")
    out = {}
    for key in papers:
        spec = PAPERS[key]
        rows = []
        notebook = find_file(listed, f"{spec.notebook}.json")
        if notebook is not None:
            rows += rows_for(spec, read_result(notebook), notebook.name, from_sweep=False)
        for size in SIZE_ORDER:  # sweep_<method>_<size>.json only: the ablation sweeps are read by ablation_table
            path = find_file(listed, f"sweep_{spec.sweep}_{size}.json")
            if path is not None:
                rows += rows_for(spec, read_result(path), path.name, from_sweep=True)
        out[key] = sorted(rows, key=lambda r: (_model_order(r.model), r.dataset,
                                               r.setting.order(), _method_order(spec, r.method)))
    return out


def settings(rows: list[Row]) -> list[Setting]:
    """The distinct settings of some rows, in display order."""
    return sorted({r.setting for r in rows}, key=Setting.order)


# ---------------------------------------------------------------------------------------------- printing

def percent(cell: dict[str, float] | None, signed: bool = False) -> str:
    """A 0–1 summary in percent: '90.9 ± 0.2' (several seeds), '92.1' (one), 'n/a' (not measured)."""
    if cell is None:
        return "n/a"
    mean = f"{100 * cell['mean']:+.1f}" if signed else f"{100 * cell['mean']:.1f}"
    return f"{mean} ± {100 * cell['std']:.1f}" if cell["n"] > 1 else mean


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def published_for(paper: str, model: str, dataset: str, score: str) -> dict[str, Published] | None:
    """The published pair behind one score; None where the papers have no such score (``test_ood`` is the
    synthetic data's shifted split)."""
    if score == "test":
        return published(paper, model, dataset)
    if score == "std_drop":
        return PUBLISHED_DROP_STD.get(dataset, {"baseline": UNKNOWN, "method": UNKNOWN})
    return None


def published_line(paper: str, model: str, dataset: str, methods, score: str = "test") -> str:
    """'published (real data), test: without 35.48 | with CLEF unknown' (one method label per method)."""
    pub = published_for(paper, model, dataset, score)
    with_method = (lambda m: published_method(paper, model, dataset, m)) if score == "test" else (lambda m: pub["method"])
    return (f"published (real data), {SCORE_LABELS[score]}: without {pub['baseline'].label()} | "
            + " | ".join(f"with {m} {with_method(m).label()}" for m in methods))


def format_rows(rows: list[Row], scores=None) -> str:
    """Fixed-width text, one block per (model, data set): the published pair, then each setting's row."""
    if not rows:
        return "(no results for this paper in the results folder)"
    scores = scores or list(rows[0].scores)
    blocks = []
    for model, dataset in dict.fromkeys((r.model, r.dataset) for r in rows):
        mine = [r for r in rows if (r.model, r.dataset) == (model, dataset)]
        head = f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(dataset, dataset)} ({METRIC_NAMES.get(dataset, '?')}, %)"
        lines = [head]
        methods = list(dict.fromkeys(r.method for r in mine))
        lines += ["  " + published_line(mine[0].paper, model, dataset, methods, k) for k in scores
                  if published_for(mine[0].paper, model, dataset, k) is not None]
        table = [["setting", "method", *[f"{w} {SCORE_LABELS[k]}" for k in scores for w in ("w/o", "with", "Δ")]]]
        for r in mine:
            cells = []
            for k in scores:
                c = r.scores[k]
                cells += [percent(c["baseline"]), percent(c["method"]), percent(c["delta"], signed=True)]
            table.append([r.setting.label, r.method, *cells])
        lines += ["  " + line for line in _columns(table).splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def delta(rows: list[Row], model: str, method: str, score: str, size: str, data: str = "synthetic") -> dict | None:
    """The delta summary of one row picked by model, method label, score, size and data (None if absent)."""
    for r in rows:
        if (r.model, r.method, r.setting.size, r.setting.data) == (model, method, size, data):
            return r.scores[score]["delta"]
    return None


def _model_order(model: str) -> int:
    names = list(MODEL_NAMES)
    return names.index(model) if model in names else len(names)


# ------------------------------------------------------------------------------ the papers' own layout

# The variant each paper's main table reports: CCIM's tables use the dot product (its additive form is
# a row of Table 4), CLEF has one form.
MAIN_METHOD = {"ccim": "CCIM dot-product", "clef": "CLEF"}
SHORT_METHOD = {"ccim": "CCIM", "clef": "CLEF", "causalmer": "CausalMER"}
_TABLE_4_ADDITIVE = "additive attention"


def published_method(paper: str, model: str, dataset: str, method: str) -> Published:
    """The published score of ``model`` + ``method`` on ``dataset``: the main table's for the method it
    reports, CCIM Table 4's "additive attention" row for CCIM's additive form (EMOT-Net and EmotiCon
    only), unknown otherwise. The main table never stands in for another form."""
    if paper == "ccim" and method == PAPERS["ccim"].methods["additive"]:
        for cell in ABLATIONS["ccim"]:
            if (cell.setting, cell.model, cell.dataset) == (_TABLE_4_ADDITIVE, model, dataset):
                return cell.value
        return UNKNOWN
    if method != MAIN_METHOD.get(paper, method):
        return UNKNOWN
    return published(paper, model, dataset)["method"]


def gain(baseline: Published, method: Published) -> float | None:
    """Published method − baseline in points, None unless both are known."""
    return method.value - baseline.value if baseline.known and method.known else None


def paper_table(rows: list[Row], paper: str, dataset: str) -> list[str]:
    """Markdown lines of one main table in the paper's layout, for one data set: rows = baselines;
    the paper's w/o, + method, gain; then ours per setting (w/o, + method, gain on ``test``, the papers'
    counterpart, and the gain on ``test_ood``), points, ± = seed std of the paired gain."""
    method = MAIN_METHOD[paper]
    mine = [r for r in rows if r.dataset == dataset and r.method == method]
    shown = settings(mine)
    short = SHORT_METHOD[paper]
    head = ["baseline", "paper: w/o", f"paper: + {short}", "paper: gain"]
    for s in shown:
        head += [f"{s.label}: w/o", f"+ {short}", "gain (test)", "gain (test_ood)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = sorted({m for (p, m, d) in PUBLISHED if p == paper and d == dataset} | {r.model for r in mine},
                    key=_model_order)
    for model in models:
        pub = published(paper, model, dataset)
        g = gain(pub["baseline"], pub["method"])
        cells = [MODEL_NAMES.get(model, model), pub["baseline"].label(), pub["method"].label(),
                 "unknown" if g is None else f"{g:+.2f}"]
        for s in shown:
            r = next((r for r in mine if r.model == model and r.setting == s), None)
            if r is None:
                cells += ["not run"] * 4
                continue
            t, o = r.scores["test"], r.scores.get("test_ood") or {}
            control = " (CE/BCE control)" if r.against != PAPERS[paper].baseline else ""
            cells += [percent(t["baseline"]) + control, percent(t["method"]), percent(t["delta"], signed=True),
                      percent(o.get("delta"), signed=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def own_loss_table(rows: list[Row]) -> list[str]:
    """For each baseline with a loss of its own (EMOT-Net, EmotiCon): its own loss and the CE / BCE
    control beside each other, + the method, and the method's gain over each (points, test and
    test_ood): how much of a gain over the baseline's own loss is the change of loss alone."""
    pairs = [(r, next((o for o in rows if o.model == r.model and o.dataset == r.dataset and o.setting == r.setting
                       and o.against == PAPERS[r.paper].baseline and o.method.endswith(AGAINST_OWN_LOSS)), None))
             for r in rows if r.against != PAPERS[r.paper].baseline]
    head = ["baseline (setting)", "score", "own loss", "CE/BCE control", "+ method", "gain over own loss",
            "gain over the control"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fair, own in pairs:
        if own is None:
            continue
        for score in ("test", "test_ood"):
            f, o = fair.scores.get(score), own.scores.get(score)
            if not f or not o:
                continue
            lines.append(f"| {MODEL_NAMES.get(fair.model, fair.model)} ({fair.setting.label}) | {score} | "
                         f"{percent(o['baseline'])} | {percent(f['baseline'])} | {percent(f['method'])} | "
                         f"{percent(o['delta'], signed=True)} | {percent(f['delta'], signed=True)} |")
    return lines



def ccim_against_clef(ccim_rows: list[Row], clef_rows: list[Row]) -> list[str]:
    """CLEF Table 5 (vanilla / + CCIM / + CLEF on EMOT-Net and CAER-Net, EMOTIC and CAER-S) with ours
    beside it per setting present in both papers' rows, on ``test`` and ``test_ood`` (points)."""
    cells = {(c.model, c.dataset, c.setting): c.value for c in ABLATIONS["clef"] if c.table == "Table 5"}
    pairs = list(dict.fromkeys((m, d) for (m, d, _) in cells))
    common = [s for s in settings(ccim_rows) if s.size in {t.size for t in settings(clef_rows)}
              and s.data in {t.data for t in settings(clef_rows)} and len(s.seeds) in {len(t.seeds) for t in settings(clef_rows)}]
    head = ["baseline (data)", "paper: vanilla", "+ CCIM", "+ CLEF"]
    for s in common:
        head += [f"{s.size} · {len(s.seeds)} seed(s) · {s.data}: vanilla", "CE/BCE control", "+ CCIM", "+ CLEF",
                 "test_ood: vanilla", "CE/BCE control", "+ CCIM", "+ CLEF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def find(rows, model, dataset, s, method):
        return next((r for r in rows if (r.model, r.dataset, r.method, r.setting.size, r.setting.data, len(r.setting.seeds))
                     == (model, dataset, method, s.size, s.data, len(s.seeds))), None)

    for model, dataset in pairs:
        row = [f"{MODEL_NAMES.get(model, model)} ({DATASET_NAMES.get(dataset, dataset)})",
               *(cells[model, dataset, k].label() for k in ("vanilla", "+ CCIM", "+ CLEF"))]
        for s in common:
            ccim, clef = find(ccim_rows, model, dataset, s, MAIN_METHOD["ccim"]), find(clef_rows, model, dataset, s, "CLEF")
            if ccim is None or clef is None:
                row += ["not run (home data set only)"] + [""] * 7
                continue
            for score in ("test", "test_ood"):  # the CLEF row's "baseline" is the control where there is one
                control = percent(clef.scores[score]["baseline"]) if clef.against != "baseline" else "= vanilla"
                row += [percent(ccim.scores[score]["baseline"]), control, percent(ccim.scores[score]["method"]),
                        percent(clef.scores[score]["method"])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


# ------------------------------------------------------------------------------------------ ablations

ABLATION_SWEEP = {"ccim": "ccim_ablations", "clef": "clef_ablations"}
FULL_METHOD = {"ccim_ablations": "ccim", "clef_ablations": "clef"}  # the variant every ablation is compared with
ABLATION_DATASETS = {"ccim": ("emotic", "caer_s", "groupwalk"), "clef": ("emotic", "caer_s")}
NOT_EXPRESSIBLE_WHY = {
    "ccim": "not expressible here: the dictionary comes from a label-free colour layout, no pre-trained extractor",
    "clef": "not expressible here: the context branch is trained from scratch, no pre-trained extractor",
}


def read_ablations(folders, paper: str, size: str = "medium") -> dict[str, Any] | None:
    """``sweep_<paper>_ablations_<size>.json`` from the first of ``folders`` that has it (None when none has)."""
    path = find_file(folders, f"sweep_{ABLATION_SWEEP[paper]}_{size}.json")
    return read_result(path) if path is not None else None


def _by_seed(variant: dict[str, Any]) -> dict[int, dict]:
    return {int(r["seed"]): r for r in variant.get("runs", [])}


def ablation_table(payload: dict[str, Any], paper: str, model: str) -> list[str]:
    """Markdown lines of the paper's ablation table (CCIM / CLEF Table 4) for one ablated baseline, each
    published row beside ours: test and test_ood (mean ± seed std, points) and the paired change from
    the full method over the seeds (Δ); rows our data cannot express say so; the dictionary-size rows
    of CCIM are :func:`dictionary_size_table`'s."""
    method = ABLATION_SWEEP[paper]
    entry = payload["metrics"][model]
    dataset, variants = entry["dataset"], entry["variants"]
    full = _by_seed(variants[FULL_METHOD[method]])
    datasets = ABLATION_DATASETS[paper]
    cells = {(c.setting, c.dataset): c.value for c in ABLATIONS[paper] if c.table == "Table 4" and c.model == model}
    settings = list(dict.fromkeys(c.setting for c in ABLATIONS[paper] if c.table == "Table 4"))
    named = {setting: variant for variant, setting in ABLATION_ROWS[method].items() if setting}
    extra = [v for v, setting in ABLATION_ROWS[method].items() if setting is None and not v.startswith("N")]
    not_expressible = set(payload["provenance"].get("parameters", {}).get("not_expressible", ()))
    head = ["setting"] + [f"paper: {DATASET_NAMES[d]}" for d in datasets] + [
        "ours: variant", "test", "test_ood", "Δ test", "Δ test_ood"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def ours(variant: str) -> list[str]:
        if variant not in variants:
            return [variant, "not run", "", "", ""]
        compared = _compare(full, _by_seed(variants[variant]), ("test", "test_ood"))
        same = variant == FULL_METHOD[method]
        return [variant, percent(compared["test"]["method"]), percent(compared["test_ood"]["method"]),
                "" if same else percent(compared["test"]["delta"], signed=True),
                "" if same else percent(compared["test_ood"]["delta"], signed=True)]

    for variant in extra:  # CCIM: the baseline without CCIM, for scale (its paper value is the main table's)
        pub = published(paper, model, dataset)["baseline"] if (paper, model, dataset) in PUBLISHED else UNKNOWN
        lines.append("| " + " | ".join([f"{MODEL_NAMES.get(model, model)} without {SHORT_METHOD[paper]}"]
                                       + [pub.label() if d == dataset else "" for d in datasets] + ours(variant)) + " |")
    for setting in settings:
        paper_cells = [cells[(setting, d)].label() if (setting, d) in cells else "" for d in datasets]
        if setting in named:
            row = ours(named[setting])
        elif setting in not_expressible:
            row = [NOT_EXPRESSIBLE_WHY[paper], "", "", "", ""]
        else:
            row = ["not run", "", "", "", ""]
        lines.append("| " + " | ".join([setting] + paper_cells + row) + " |")
    return lines


def dictionary_size_table(payload: dict[str, Any], model: str) -> tuple[list[str], dict[str, Any]]:
    """CCIM Figure 6 beside ours: N as a multiple of the default (the paper's 256 on EMOTIC, ours 16),
    the paper's N and scores, ours N, test and test_ood (points, mean ± seed std). Returns the markdown
    lines and the numbers for :func:`reprolib.plots.dictionary_size_curve`."""
    entry = payload["metrics"][model]
    variants = entry["variants"]
    ours_n = {int(v[1:]): v for v in variants if v.startswith("N") and v[1:].isdigit()}
    ours_n[OUR_DICTIONARY_SIZE] = FULL_METHOD["ccim_ablations"]
    paper_default = DICTIONARY_SIZES[len(DICTIONARY_SIZES) // 2]
    curve: dict[str, Any] = {"ratio": [], "paper": {d: [] for d in ("emotic", "caer_s")}, "test": [], "test_ood": []}
    head = ["N / default", "paper N", "paper: EMOTIC", "paper: CAER-S", "our N", "test", "test_ood"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for paper_n in DICTIONARY_SIZES:
        ratio = paper_n / paper_default
        n = round(OUR_DICTIONARY_SIZE * ratio)
        pub = {d: DICTIONARY_SIZE.get((model, d), {}).get(paper_n, UNKNOWN) for d in ("emotic", "caer_s")}
        mine = {k: summarise([r[k] for r in variants[ours_n[n]]["runs"]]) if n in ours_n else None
                for k in ("test", "test_ood")}
        curve["ratio"].append(ratio)
        for d in pub:
            curve["paper"][d].append(pub[d].value if pub[d].known else None)
        for k in mine:
            curve[k].append(mine[k])
        lines.append(f"| ×{ratio:g} | {paper_n} | {pub['emotic'].label()} | {pub['caer_s'].label()} | "
                     f"{n if n in ours_n else 'not run'} | {percent(mine['test'])} | {percent(mine['test_ood'])} |")
    return lines, curve


def ablation_findings(payload: dict[str, Any], paper: str, model: str) -> list[str]:
    """One line per ablation of one baseline: the paired change from the full method in test and
    test_ood (points, mean ± seed std) and whether it is beyond two seed std of the change, rendered
    from the sweep file (never typed in)."""
    method = ABLATION_SWEEP[paper]
    variants = payload["metrics"][model]["variants"]
    full = _by_seed(variants[FULL_METHOD[method]])
    lines = []
    for variant in ABLATION_ROWS[method]:
        if variant in (FULL_METHOD[method],) or variant not in variants:
            continue
        compared = _compare(full, _by_seed(variants[variant]), ("test", "test_ood"))
        parts = []
        for score in ("test", "test_ood"):
            d = compared[score]["delta"]
            if d is None:
                continue
            beyond = d["n"] > 1 and abs(d["mean"]) > 2 * d["std"]
            parts.append(f"{score} {percent(d, signed=True)} ({'beyond' if beyond else 'within'} two seed std)")
        lines.append(f"`{variant}` against {SHORT_METHOD[paper]}: " + ", ".join(parts))
    return lines


def ablation_markdown(payload: dict[str, Any], paper: str, source: str) -> str:
    """The ablation sweep of one paper rendered for a notebook: per ablated baseline its Table 4 beside
    ours, CCIM's dictionary sizes beside Figure 6, and the finding of each ablation."""
    setup = payload["provenance"].get("parameters", {})
    parts = [f"`{source}`: size `{setup.get('size')}` ({setup.get('scale')}× the smoke data, {setup.get('epochs')} "
             f"epochs), seeds {', '.join(map(str, setup.get('seeds', [])))}; ours in points, mean ± seed std; Δ is "
             f"the paired change from the full {SHORT_METHOD[paper]} row."]
    for model, entry in payload["metrics"].items():
        name, data = MODEL_NAMES.get(model, model), DATASET_NAMES.get(entry["dataset"], entry["dataset"])
        parts.append(f"**{name} + {SHORT_METHOD[paper]}**, ours on synthetic {data}-style data "
                     f"({METRIC_NAMES.get(entry['dataset'], entry['metric'])}):")
        parts.append("\n".join(ablation_table(payload, paper, model)))
        if paper == "ccim":
            parts.append(f"Dictionary size, CCIM Figure 6 beside ours ({name}; N as a multiple of the default N):")
            parts.append("\n".join(dictionary_size_table(payload, model)[0]))
        parts.append("\n".join(f"- {line}" for line in ablation_findings(payload, paper, model)))
    return "\n\n".join(parts)
