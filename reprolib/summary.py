"""Results summary against the papers (notebook 11): collect what the runs wrote, pair it, tabulate it.

The method notebooks (08 CCIM, 09 CLEF, 10 CausalMER) write one seed at their size; the sweeps write
several seeds at theirs (``sweep_<method>_<size>.json``). This module reads both from a results folder,
turns every (model, data set, causal module, setting) into a :class:`Row` of baseline, method and delta
(method − baseline, paired by seed so the spread is the spread of the delta itself), and prints them
beside the published numbers of :mod:`reprolib.published`. A setting knows its size, its seeds and
whether the data were synthetic or real (from the run's ``data_root``), so a user's real-data runs are
summarised by the same code, with the synthetic-only ``test_ood`` shown as n/a.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib.published import ABLATIONS, PUBLISHED, PUBLISHED_DROP_STD, UNKNOWN, Published, published
from reprolib.sweeps import baseline_builders, summarise

MODEL_NAMES = {"emotnet": "EMOT-Net", "gnncnn": "GNN-CNN", "caernet": "CAER-Net-S", "cdnet": "CD-Net",
               "emoticon": "EmotiCon", "mult": "MulT"}
DATASET_NAMES = {"emotic": "EMOTIC", "caer_s": "CAER-S", "groupwalk": "GroupWalk", "iemocap": "IEMOCAP", "mosei": "CMU-MOSEI"}
METRIC_NAMES = {"emotic": "mAP", "caer_s": "accuracy", "groupwalk": "mAP", "iemocap": "mean accuracy", "mosei": "acc7"}
# Home data set of each image baseline, where the notebooks and sweeps train it.
HOME_DATASET = {name: kind for name, (kind, _) in baseline_builders("smoke").items()}
SIZE_ORDER = ("smoke", "medium", "full")
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


PAPERS = {
    "ccim": PaperSpec("ccim", "CCIM (CVPR 2023)", "08_ccim", "ccim", "baseline",
                      {"dot_product": "CCIM dot-product", "additive": "CCIM additive"}, sweep_prefix="ccim_"),
    "clef": PaperSpec("clef", "CLEF (CVPR 2024)", "09_clef", "clef", "baseline", {"clef": "CLEF"}),
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


def data_kind(provenance: dict[str, Any], dataset: str) -> str:
    """'real' when the run read ``dataset`` from a ``data_root`` (a folder, or a dict naming it), else 'synthetic'."""
    root = provenance.get("parameters", {}).get("data_root")
    if isinstance(root, dict):
        return "real" if root.get(dataset) else "synthetic"
    return "real" if root else "synthetic"


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

        base = by_seed(spec.baseline)
        for variant, label in spec.methods.items():
            name = spec.sweep_prefix + variant if from_sweep else variant
            if name not in variants:
                continue
            method = by_seed(name)
            seeds = tuple(sorted(set(base) | set(method)))
            setting = Setting(size, seeds, data_kind(payload["provenance"], dataset), source)
            rows.append(Row(spec.key, model, dataset, label, setting, chance, _compare(base, method, spec.scores)))
    return rows


def collect(folder: Path | str, papers=tuple(PAPERS)) -> dict[str, list[Row]]:
    """paper -> rows from every notebook and sweep JSON of that paper found in ``folder``, settings in order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist; run `make reproduce` first")
    out = {}
    for key in papers:
        spec = PAPERS[key]
        rows = []
        notebook = folder / f"{spec.notebook}.json"
        if notebook.exists():
            rows += rows_for(spec, read_result(notebook), notebook.name, from_sweep=False)
        for path in sorted(folder.glob(f"sweep_{spec.sweep}_*.json")):
            rows += rows_for(spec, read_result(path), path.name, from_sweep=True)
        out[key] = sorted(rows, key=lambda r: (_model_order(r.model), r.dataset,
                                               r.setting.order(), list(spec.methods.values()).index(r.method)))
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
            cells += [percent(t["baseline"]), percent(t["method"]), percent(t["delta"], signed=True),
                      percent(o.get("delta"), signed=True)]
        lines.append("| " + " | ".join(cells) + " |")
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
        head += [f"{s.size} · {len(s.seeds)} seed(s) · {s.data}: vanilla", "+ CCIM", "+ CLEF", "test_ood: vanilla", "+ CCIM", "+ CLEF"]
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
                row += ["not run (home data set only)"] + [""] * 5
                continue
            for score in ("test", "test_ood"):
                row += [percent(ccim.scores[score]["baseline"]), percent(ccim.scores[score]["method"]),
                        percent(clef.scores[score]["method"])]
        lines.append("| " + " | ".join(row) + " |")
    return lines
