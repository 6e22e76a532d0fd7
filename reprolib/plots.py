"""Figures the notebooks share: sample grids, contingency heatmaps, score bars, learning curves."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

# Inline figures in JupyterLab at default zoom: 100 dpi (72 made the tick labels unreadably small), and
# no text below 7 pt. The saved PNGs under results/figures use the same dpi (results.save_figure).
FIGURE_DPI = 100
MIN_FONT = 7


def _seaborn():
    """seaborn, imported on first use: it pulls in pandas and SciPy, about 1.5 s of every kernel's start."""
    import seaborn

    return seaborn


def notebook_style() -> None:
    """The figure settings every notebook starts with (one place for them)."""
    plt.rcParams.update({"figure.dpi": FIGURE_DPI, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
                         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8})


def show_views(dataset, indices: Sequence[int], views=("image", "subject", "context"), class_names=None,
               label_key: str = "label"):
    """One row per sample, one column per view: what each stream of a model actually sees."""
    fig, axes = plt.subplots(len(indices), len(views), figsize=(1.6 * len(views), 1.6 * len(indices)),
                             squeeze=False)
    for r, idx in enumerate(indices):
        item = dataset[idx]
        for c, view in enumerate(views):
            ax = axes[r, c]
            img = item[view].permute(1, 2, 0).clamp(0, 1).numpy()
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(view, fontsize=9)
            if c == 0 and class_names is not None:
                ax.set_ylabel(class_names[int(item[label_key])], fontsize=8)
    fig.tight_layout()
    return fig


def contingency_heatmaps(tables: dict[str, np.ndarray], row_names, col_label: str = "context group",
                         nmi: dict[str, float] | None = None, row_label: str = "emotion"):
    """Side-by-side heatmaps of P(context group | label), one per split: a diagonal means a shortcut."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.6), squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        rows = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        _seaborn().heatmap(rows, ax=ax, vmin=0, vmax=1, cmap="rocket_r", cbar=ax is axes[0, -1],
                    cbar_kws={"label": f"P({col_label} | {row_label})"},
                    yticklabels=list(row_names), xticklabels=list(range(table.shape[1])))
        title = name if nmi is None else f"{name} (NMI {nmi[name]:.2f})"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        ax.tick_params(labelsize=MIN_FONT)
        ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


def score_bars(scores: dict[str, dict[str, float]], chance: float | None = None, ylabel: str = "accuracy"):
    """Grouped bars: model x split. ``scores[model][split]`` in [0, 1]."""
    models = list(scores)
    splits = list(next(iter(scores.values())))
    width = 0.8 / len(splits)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(models), 3.2))
    x = np.arange(len(models))
    for i, split in enumerate(splits):
        vals = [scores[m][split] for m in models]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, vals, width, label=split)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(x, models)
    ax.set_ylim(0, 1.22)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="upper center", ncol=len(splits) + 1, frameon=False)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict[str, list[dict]], val_metric: str | dict[str, str] = "validation score"):
    """Training loss and validation score per epoch for each run (selection uses val, never a test split).

    ``val_metric`` names the validation score, one name or one per run: runs scored by different
    metrics (IEMOCAP mean accuracy, MOSEI acc7) get one validation panel each, so that no axis mixes
    two metrics. Epochs are whole numbers on every axis."""
    metric_of = {name: val_metric if isinstance(val_metric, str) else val_metric[name] for name in histories}
    metrics = list(dict.fromkeys(metric_of.values()))
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(4 + 3.6 * len(metrics), 3.2), squeeze=False)
    loss_ax, val_axes = axes[0][0], dict(zip(metrics, axes[0][1:]))
    colours = dict(zip(histories, _seaborn().color_palette("tab10", len(histories))))
    for name, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        loss_ax.plot(epochs, [h["train_loss"] for h in hist], marker="o", ms=3, color=colours[name], label=name)
        val_axes[metric_of[name]].plot(epochs, [h["val"] for h in hist], marker="o", ms=3, color=colours[name],
                                       label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    for metric, ax in val_axes.items():
        ax.set(xlabel="epoch", ylabel=f"validation {metric}" if metric != "validation score" else metric)
        ax.legend(fontsize=MIN_FONT + 1)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(metrics) > 1:
        loss_ax.legend(fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


def _class_bars(ax, values: dict[str, np.ndarray], class_names, ylabel: str, legend: bool = True) -> None:
    width = 0.8 / len(values)
    x = np.arange(len(class_names))
    for i, (name, vals) in enumerate(values.items()):
        ax.bar(x + (i - (len(values) - 1) / 2) * width, np.nan_to_num(vals), width, label=name)
    ax.set_xticks(x, class_names, rotation=75 if len(class_names) > 8 else 30, fontsize=MIN_FONT,
                  ha="right" if len(class_names) <= 8 else "center")
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def per_class_bars(values: dict[str, np.ndarray], class_names, ylabel: str = "AP"):
    """One bar group per class, one bar per split (e.g. AP on test and test_ood)."""
    fig, ax = plt.subplots(figsize=(min(10, max(6, 0.2 * len(class_names) * len(values))), 3.2))
    _class_bars(ax, values, class_names, ylabel)
    fig.tight_layout()
    return fig


def per_class_panels(panels: dict[str, dict[str, np.ndarray]], class_names, ylabel: str, title: str = ""):
    """Side-by-side :func:`per_class_bars` panels with a shared y axis, one per title (e.g. one
    group of images each), so that the same quantities can be compared across the groups; ``title``
    goes above them all, clear of the panel titles."""
    width = min(14, len(panels) * max(4.2, 0.25 * len(class_names)))
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), sharey=True, squeeze=False)
    for ax, (panel, values) in zip(axes[0], panels.items()):
        _class_bars(ax, values, class_names, ylabel if ax is axes[0][0] else "", legend=False)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_title(panel, fontsize=9)
    # one legend for all panels, above them: inside a panel it covered the bars
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 0.92 if title else 1.0))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.87 if title else 0.9))
    return fig


def confusion(cm: np.ndarray, class_names):
    """Row-normalised confusion matrix (rows: true class, columns: predicted)."""
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    _seaborn().heatmap(rows, ax=ax, vmin=0, vmax=1, cmap="rocket_r", annot=True, fmt=".2f", annot_kws={"size": MIN_FONT},
                xticklabels=list(class_names), yticklabels=list(class_names),
                cbar_kws={"label": "share of the true class"})
    ax.set(xlabel="predicted", ylabel="true")
    ax.tick_params(labelsize=MIN_FONT)
    ax.tick_params(axis="y", rotation=0)  # class names read across, not up the axis
    fig.tight_layout()
    return fig


def prior_bars(priors: dict[str, np.ndarray]):
    """P(z) of each dictionary, prototypes sorted by share: how evenly the contexts spread."""
    fig, axes = plt.subplots(1, len(priors), figsize=(2.6 * len(priors), 2.4), squeeze=False)
    for ax, (name, prior) in zip(axes[0], priors.items()):
        p = np.sort(np.asarray(prior).reshape(-1))[::-1]
        ax.bar(np.arange(len(p)), p, width=0.9)
        ax.axhline(1 / len(p), color="grey", ls="--", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("prototype rank (by share)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # prototypes are counted, not measured
        ax.set_xlim(-0.6, len(p) - 0.4)
        ax.tick_params(labelsize=MIN_FONT)
    axes[0, 0].set_ylabel("P(z)")
    fig.tight_layout()
    return fig


def feature_projection(points: np.ndarray, colourings: dict[str, np.ndarray], centres: np.ndarray | None = None,
                       axis_labels: tuple[str, str] = ("principal component 1", "principal component 2")):
    """A 2-D projection of features, once per colouring (e.g. k-means cluster, true scene); black
    crosses mark the ``centres`` (the dictionary's prototypes)."""
    fig, axes = plt.subplots(1, len(colourings), figsize=(3.8 * len(colourings), 3.4), squeeze=False)
    for ax, (name, colour) in zip(axes[0], colourings.items()):
        ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="tab20", s=4, alpha=0.7, linewidths=0)
        if centres is not None:
            ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="black", s=25, linewidths=1,
                       label="prototype")
            ax.legend(fontsize=MIN_FONT, loc="best", frameon=True)
        ax.set_title(f"coloured by {name}", fontsize=9)
        ax.set_xlabel(axis_labels[0], fontsize=8)
        ax.set_ylabel(axis_labels[1], fontsize=8)
        ax.tick_params(labelsize=MIN_FONT)
    fig.tight_layout()
    return fig


def group_label_heatmaps(tables: dict[str, np.ndarray], class_names, title_suffix: dict[str, str] | None = None,
                         ylabel: str = "prototype", row_names=None, value_label: str = "P(emotion | prototype)",
                         xlabel: str = "emotion"):
    """Row-stochastic tables side by side per split, e.g. P(label | prototype) (rows: prototypes,
    columns: labels) or mean attention per true scene (rows: scenes, columns: prototypes);
    ``value_label`` labels the colour bar."""
    fig, axes = plt.subplots(1, len(tables), figsize=(max(3.6, 0.22 * len(class_names) + 1.6) * len(tables), 3.6),
                             squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items()):
        _seaborn().heatmap(table, ax=ax, vmin=0, vmax=max(0.5, float(table.max())), cmap="rocket_r",
                    cbar=ax is axes[0, -1], xticklabels=list(class_names), cbar_kws={"label": value_label},
                    yticklabels=list(row_names) if row_names is not None else list(range(len(table))))
        ax.set_title(name + ((title_suffix or {}).get(name, "")), fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        ax.tick_params(labelsize=MIN_FONT)
        ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


def scenario_drops(studies: dict[str, dict], title: str = "", ylabel: str = "drop"):
    """Grouped bars: the drop (full - scenario) of each missing-modality scenario, one bar per model;
    the legend gives each model's std of the drops. ``studies[model]`` is a
    :func:`reprolib.causal.modalities.missing_modality_study` result."""
    models = list(studies)
    scenarios = [s for s in next(iter(studies.values()))["scenarios"] if s != "full"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    x = np.arange(len(scenarios))
    for i, model in enumerate(models):
        study = studies[model]
        drops = [study["scenarios"][s]["drop"] for s in scenarios]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, drops, width,
               label=f"{model} (std {study['summary']['std_drop']:.3f})")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(x, scenarios, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def modality_shares(shares: dict[str, dict[str, float]], title: str = ""):
    """Horizontal stacked bars: each row's split of a contribution over text / audio / vision
    (shares summing to 1; a row of NaN, i.e. nothing to share, is drawn empty)."""
    rows = list(shares)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(rows) + 1.0))
    left = np.zeros(len(rows))
    for modality, colour in zip(("text", "audio", "vision"), _seaborn().color_palette("Set2", 3)):
        vals = np.nan_to_num([shares[r][modality] for r in rows])
        ax.barh(rows, vals, left=left, color=colour, label=modality)
        for y, (l, v) in enumerate(zip(left, vals)):
            if v >= 0.08:
                ax.text(l + v / 2, y, f"{v:.2f}", ha="center", va="center", fontsize=7)
        left += vals
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, ncol=3, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0 if not title else 1.08))
    fig.tight_layout()
    return fig



def cue_scatter(points: dict[str, tuple[np.ndarray, np.ndarray]], xlabel: str = "cue", ylabel: str = "target"):
    """One scatter per split of a scalar cue against a scalar target, titled with their correlation."""
    fig, axes = plt.subplots(1, len(points), figsize=(2.8 * len(points), 2.6), sharey=True, squeeze=False)
    for ax, (name, (x, y)) in zip(axes[0], points.items()):
        ax.scatter(x, y, s=4, alpha=0.4)
        ax.set_title(f"{name} (r = {np.corrcoef(x, y)[0, 1]:.2f})", fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(ylabel, fontsize=8)
    fig.tight_layout()
    return fig


def paper_summary(rows, title: str = ""):
    """One paper against this repo: a column per (model, data set), a row per score; in each panel the
    published pair (hatched when second-hand or unverified, '?' when unknown, 'n/a' when the papers have
    no such score) beside each setting's baseline and method bars (mean over seeds, error bar = seed
    std; dotted line = chance). ``rows`` are :class:`reprolib.summary.Row` of one paper."""
    from reprolib.summary import DATASET_NAMES, MODEL_NAMES, SCORE_LABELS, settings

    groups = list(dict.fromkeys((r.model, r.dataset) for r in rows))
    scores = list(rows[0].scores)
    methods = list(dict.fromkeys(r.method for r in rows))
    columns = ["published"] + settings(rows)
    colours = ["0.65"] + _seaborn().color_palette("deep", len(methods))
    width = 0.8 / (len(methods) + 1)
    fig, axes = plt.subplots(len(scores), len(groups), figsize=(2.9 * len(groups) + 0.4, 2.5 * len(scores) + 0.8),
                             squeeze=False, sharey="row")
    for col, (model, dataset) in enumerate(groups):
        mine = [r for r in rows if (r.model, r.dataset) == (model, dataset)]
        for row_i, score in enumerate(scores):
            ax = axes[row_i][col]
            for x, column in enumerate(columns):
                offsets = {who: x + (j - len(methods) / 2) * width for j, who in enumerate(["baseline", *methods])}
                if column == "published":
                    _published_bars(ax, x, mine[0].published(score), offsets, colours, width)
                    continue
                for j, who in enumerate(["baseline", *methods]):
                    match = [r for r in mine if r.setting == column and (who == "baseline" or r.method == who)]
                    cell = match[0].scores[score]["baseline" if who == "baseline" else "method"] if match else None
                    if cell is not None:
                        ax.bar(offsets[who], 100 * cell["mean"], width, color=colours[j], capsize=2,
                               yerr=100 * cell["std"] if cell["n"] > 1 else None, error_kw={"lw": 0.8})
                chance = [r.chance for r in mine if r.setting == column and r.chance]
                if chance and score == "test":
                    ax.hlines(100 * chance[0], x - 0.45, x + 0.45, colors="k", linestyles=":", lw=0.8)
            ax.set_xticks(range(len(columns)), ["published\n(real data)" if c == "published"
                                               else c.label.replace(" · ", "\n") for c in columns], fontsize=MIN_FONT)
            ax.tick_params(axis="y", labelsize=7)
            if row_i == 0:
                ax.set_title(f"{MODEL_NAMES.get(model, model)}, {DATASET_NAMES.get(dataset, dataset)}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{SCORE_LABELS[score]} (%)", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    labels = ["without", *[f"with {m}" for m in methods]]
    handles += [plt.Rectangle((0, 0), 1, 1, facecolor="0.8", hatch="///", edgecolor="white"),
                plt.Line2D([], [], color="k", ls=":", lw=0.8)]
    labels += ["published, second-hand or unverified", "chance"]
    if title:
        fig.suptitle(title, fontsize=10)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.96))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _published_bars(ax, x: float, pair, offsets: dict, colours, width: float) -> None:
    """The published column of :func:`paper_summary`: bars for known values, '?' for unknown ones."""
    trans = ax.get_xaxis_transform()  # x in data units, y in axes fraction
    if pair is None:
        ax.text(x, 0.02, "n/a", transform=trans, ha="center", va="bottom", fontsize=7, color="0.4")
        return
    # the papers publish one "with" number: it goes on the first method's slot
    for j, (who, entry) in enumerate(zip(list(offsets)[:2], (pair["baseline"], pair["method"]))):
        if entry.known:
            ax.bar(offsets[who], entry.value, width, color=colours[j], edgecolor="white",
                   hatch=None if entry.status == "verified" else "///")
        else:
            ax.text(offsets[who], 0.02, "?", transform=trans, ha="center", va="bottom", fontsize=9, color="0.3")


def gains_against_published(rows, paper: str, title: str = ""):
    """Published gain beside ours, per baseline: one panel per data set; for each baseline the paper's
    gain (method − baseline on its real test set, grey; absent where unknown) and, per multi-seed
    setting, our gain on ``test`` (the papers' counterpart) and on ``test_ood``, mean ± seed std of the
    paired gain, in points; no bar of ours where the sweep did not run that pair (each baseline runs on
    its home data set only). ``rows`` are :class:`reprolib.summary.Row` of one paper."""
    from reprolib.summary import (AGAINST_OWN_LOSS, DATASET_NAMES, MAIN_METHOD, MODEL_NAMES, SHORT_METHOD, _model_order,
                                  gain, settings)
    from reprolib.published import PUBLISHED

    method = MAIN_METHOD[paper]
    mine = [r for r in rows if r.method == method and len(r.setting.seeds) > 1]
    # the gain over a baseline's own loss, beside the gain over its CE/BCE control (CLEF on EMOT-Net, EmotiCon)
    own = {(r.model, r.dataset, r.setting): r for r in rows
           if r.method == f"{method} {AGAINST_OWN_LOSS}" and len(r.setting.seeds) > 1}
    datasets = [d for d in ("emotic", "caer_s") if any(r.dataset == d for r in mine)
                or any(p == paper and dd == d for (p, _, dd) in PUBLISHED)]
    shown = settings(mine)
    bars = [("paper (real test)", None, None)] + [(f"ours, {s.label}: {k}", s, k) for s in shown for k in ("test", "test_ood")]
    if own:
        bars += [(f"ours, {s.label}: test_ood over the baseline's own loss", s, "own") for s in shown]
    colours = ["0.6"] + _seaborn().color_palette("deep", len(bars) - 1)
    width = 0.8 / len(bars)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        models = sorted({m for (p, m, d) in PUBLISHED if p == paper and d == dataset} | {r.model for r in mine if r.dataset == dataset},
                        key=_model_order)
        for x, model in enumerate(models):
            for j, (label, s, score) in enumerate(bars):
                pos = x + (j - (len(bars) - 1) / 2) * width
                if s is None:
                    pair = PUBLISHED.get((paper, model, dataset))
                    g = gain(pair["baseline"], pair["method"]) if pair else None
                    if g is None:
                        ax.text(pos, 0, "?", ha="center", va="bottom", fontsize=8)
                    else:
                        ax.bar(pos, g, width, color=colours[j])
                    continue
                if score == "own":
                    r, score = own.get((model, dataset, s)), "test_ood"
                else:
                    r = next((r for r in mine if r.model == model and r.dataset == dataset and r.setting == s), None)
                cell = (r.scores.get(score) or {}).get("delta") if r is not None else None
                if cell is not None:
                    ax.bar(pos, 100 * cell["mean"], width, color=colours[j], yerr=100 * cell["std"], capsize=2,
                           error_kw={"lw": 0.8})
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(models)), [MODEL_NAMES.get(m, m) for m in models], fontsize=8, rotation=20)
        ax.set_title(DATASET_NAMES.get(dataset, dataset), fontsize=10)
        ax.set_ylabel(f"gain of + {SHORT_METHOD[paper]} (points)", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    fig.legend(handles, [b[0] for b in bars], loc="lower center", ncol=min(2, len(bars)), fontsize=8, frameon=False)
    if own:
        title += ("\n" if title else "") + "ours: gains over the CE/BCE control where the baseline has a loss of its own"
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return fig


def dictionary_size_curve(curve: dict, model_name: str, title: str = ""):
    """CCIM Figure 6 beside ours: score against N as a multiple of the default N (log2 axis), one
    panel per metric so that no axis mixes two: the paper's EMOTIC mAP, its CAER-S accuracy, and our
    mAP on ``test`` and ``test_ood`` (mean ± seed std). ``curve`` is
    :func:`reprolib.summary.dictionary_size_table`'s second value."""
    ratios = np.asarray(curve["ratio"], dtype=float)
    panels = [("paper: EMOTIC", {"real test": curve["paper"]["emotic"]}, "mAP (%)"),
              ("paper: CAER-S", {"real test": curve["paper"]["caer_s"]}, "accuracy (%)"),
              ("ours: synthetic EMOTIC-style", {"test": curve["test"], "test_ood": curve["test_ood"]}, "mAP (%)")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (name, lines, ylabel) in zip(axes, panels):
        for label, values in lines.items():
            keep = [i for i, v in enumerate(values) if v is not None]
            if not keep:
                continue
            if isinstance(values[keep[0]], dict):  # ours: mean ± std over seeds
                mean = np.array([100 * values[i]["mean"] for i in keep])
                std = np.array([100 * values[i]["std"] for i in keep])
                ax.errorbar(ratios[keep], mean, yerr=std, marker="o", capsize=3, label=label)
            else:
                ax.plot(ratios[keep], [values[i] for i in keep], marker="o", color="0.4", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ratios, [f"×{r:g}" for r in ratios])
        ax.minorticks_off()
        ax.set_xlabel("N / default N")
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{model_name} + CCIM: dictionary size", fontsize=11)
    fig.tight_layout()
    return fig


# The three papers' causal graphs: node -> (x, y, label); edges as (tail, head, kind). Kinds: "path" an
# ordinary causal edge, "shortcut" the harmful path each method removes, "cut" an edge the intervention
# or counterfactual removes (drawn dashed). One panel per entry: (title, nodes, edges, note).
_X, _C, _Y = "X\nimage", "C\ncontext", "Y\nemotion"
CAUSAL_GRAPHS: dict[str, list[tuple[str, dict, list, str]]] = {
    "ccim": [
        ("observed: P(Y | X), Z confounds X and Y", {"C": (0.5, 1.0, "Z\ncontext"), "X": (0.0, 0.0, _X), "Y": (1.0, 0.0, _Y)},
         [("Z", "X", "shortcut"), ("Z", "Y", "shortcut"), ("X", "Y", "path")],
         "backdoor path X ← Z → Y (red)"),
        (r"intervened: $P(Y \mid do(X)) = \sum_z P(Y \mid X, z)\,P(z)$",
         {"C": (0.5, 1.0, "Z\ncontext"), "X": (0.0, 0.0, _X), "Y": (1.0, 0.0, _Y)},
         [("Z", "X", "cut"), ("Z", "Y", "path"), ("X", "Y", "path")],
         "do(X) cuts Z → X: the backdoor path is closed"),
    ],
    "clef": [
        (r"factual: $Y_{c,e}$", {"X": (0.0, 0.5, _X), "C": (0.9, 1.0, "C\ncontext"), "S": (0.9, 0.0, "S\nsubject"),
                              "E": (1.8, 0.5, "E\nensemble"), "Y": (2.7, 0.5, _Y)},
         [("X", "C", "path"), ("X", "S", "path"), ("C", "E", "path"), ("S", "E", "path"), ("E", "Y", "path"),
          ("C", "Y", "shortcut")],
         "C → Y (red): the direct context shortcut; C/S → E → Y: the indirect path"),
        (r"counterfactual: $Y_{c,e^*}$;  TIE $= Y_{c,e} - Y_{c,e^*}$",
         {"X": (0.0, 0.5, _X), "C": (0.9, 1.0, "C\ncontext"), "S": (0.9, 0.0, "S\nsubject"),
          "E": (1.8, 0.5, "e*\nvoid"), "Y": (2.7, 0.5, _Y)},
         [("X", "C", "path"), ("X", "S", "path"), ("C", "E", "cut"), ("S", "E", "cut"), ("E", "Y", "path"),
          ("C", "Y", "shortcut")],
         "E is set to the void e*: only the direct effect of C is left (NDE)"),
    ],
    "causalmer": [
        (r"factual: $Y_{m,t,a,v}$", {"T": (0.0, 1.4, "T\ntext"), "A": (0.0, 0.7, "A\naudio"), "V": (0.0, 0.0, "V\nvision"),
                                  "M": (1.1, -0.7, "M\nmultimodal"), "Y": (2.2, 0.7, _Y)},
         [("T", "M", "path"), ("A", "M", "path"), ("V", "M", "path"), ("M", "Y", "path"),
          ("T", "Y", "shortcut"), ("A", "Y", "shortcut"), ("V", "Y", "shortcut")],
         "T/A/V → Y (red): the three direct unimodal paths"),
        (r"counterfactual: $Y_{m^*,t,a,v}$;  TIE = factual $-$ counterfactual",
         {"T": (0.0, 1.4, "T\ntext"), "A": (0.0, 0.7, "A\naudio"), "V": (0.0, 0.0, "V\nvision"),
          "M": (1.1, -0.7, "m*\nvoid"), "Y": (2.2, 0.7, _Y)},
         [("T", "M", "cut"), ("A", "M", "cut"), ("V", "M", "cut"), ("M", "Y", "path"),
          ("T", "Y", "shortcut"), ("A", "Y", "shortcut"), ("V", "Y", "shortcut")],
         "M is set to the void m*: only the unimodal direct effects are left"),
    ],
}
_EDGE_STYLE = {"path": dict(edge_color="0.25", style="solid", width=1.6),
               "shortcut": dict(edge_color="tab:red", style="solid", width=2.2),
               "cut": dict(edge_color="0.7", style="dashed", width=1.4)}


def causal_graph(paper: str):
    """The causal graph of ``paper`` ("ccim", "clef" or "causalmer") drawn with networkx: the factual
    (or observed) graph beside the intervened (CCIM's do(X)) or counterfactual one (CLEF's e*,
    CausalMER's m*). Red: the path the method removes; dashed grey: the edges cut."""
    import networkx as nx

    panels = CAUSAL_GRAPHS[paper]
    heights = [y for _, nodes, _, _ in panels for (_, y, _) in nodes.values()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), max(3.4, 1.6 + 1.5 * (max(heights) - min(heights)))))
    for ax, (title, nodes, edges, note) in zip(np.atleast_1d(axes), panels):
        names = {key: label.split("\n")[0] for key, (_, _, label) in nodes.items()}
        pos = {names[k]: (x, y) for k, (x, y, _) in nodes.items()}
        graph = nx.DiGraph()
        graph.add_nodes_from(pos)
        named_edges = [(names.get(a, a), names.get(b, b), kind) for a, b, kind in edges]
        graph.add_edges_from((a, b) for a, b, _ in named_edges)
        nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=2600, node_color="#eef3fb", edgecolors="0.3")
        nx.draw_networkx_labels(graph, pos, ax=ax, labels={names[k]: label for k, (_, _, label) in nodes.items()},
                                font_size=8)
        for kind, style in _EDGE_STYLE.items():
            chosen = [(a, b) for a, b, k in named_edges if k == kind]
            if chosen:
                nx.draw_networkx_edges(graph, pos, edgelist=chosen, ax=ax, arrows=True, arrowsize=16,
                                       node_size=2600, connectionstyle="arc3,rad=0.0", **style)
        ax.set_title(title, fontsize=10)
        ax.text(0.5, -0.08, note, transform=ax.transAxes, ha="center", va="top", fontsize=8.5)
        ax.set_axis_off()
        ax.margins(0.18)
    fig.tight_layout()
    return fig
