"""The papers' published numbers, as far as the reference notes could establish them.

One place for every published figure the summary notebook (11) puts beside this repo's results. A
number the notes could not find is ``None`` and shows as "unknown": nothing here is guessed. Each value
carries how it is known:

* ``verified``   read in the paper itself (or its abstract);
* ``quoted``     read second-hand, in a third party's write-up that quotes the paper;
* ``unverified`` recalled in the notes but not checked against the paper's tables.

Scores are in percent (accuracy, mAP, mean accuracy, acc7), as the papers print them. The sources are
``shared/reference/published-tables.md`` (every main-results, per-category, ablation and dictionary-size
number of the CCIM and CLEF CVPR papers, read from their camera-ready PDFs, with table or figure),
``shared/reference/ccim-clef.md`` (§1.6, §2.7, §2.8, §3) and ``shared/reference/causalmer.md`` (§4).
CausalMER's tables are still out of reach: beyond its abstract, its numbers stay unknown.

The reference names each paper's page range, not the page of each table, so a source string reads
"CCIM (CVPR 2023), Table 1, pp. 19005-19015". In CCIM a † marks a baseline the authors re-ran and a *
a number copied from a method's own paper; both papers use the re-run baselines, CLEF reusing CCIM's.

Besides :data:`PUBLISHED` (the pairs notebook 11 and :mod:`reprolib.summary` read) the module holds
:data:`PER_CATEGORY_AP` (EMOTIC's 26 and GroupWalk's 4 categories), :data:`OTHER_METHODS` (the
comparison tables' methods without a causal module), :data:`ABLATIONS`, :data:`DICTIONARY_SIZE`
(CCIM Figure 6), :data:`ORIGINAL_PAPER_BASELINES` and :data:`IMPLEMENTATION`.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("verified", "quoted", "unverified")


@dataclass(frozen=True)
class Published:
    """One published score: ``value`` in percent, or None when the notes could not find it."""

    value: float | None = None
    status: str | None = None
    source: str = ""

    def __post_init__(self):
        if (self.value is None) != (self.status is None):
            raise ValueError("a published value needs a status, and an unknown one has none")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {STATUSES}")

    @property
    def known(self) -> bool:
        return self.value is not None

    def label(self) -> str:
        """'75.86 (quoted)', '83.4', 'unknown': the value as the source prints it."""
        if self.value is None:
            return "unknown"
        text = f"{self.value:g}"
        return text if self.status == "verified" else f"{text} ({self.status})"


UNKNOWN = Published()

CCIM_PAPER = "Yang et al., Context De-confounded Emotion Recognition, CVPR 2023"
CLEF_PAPER = "Yang et al., Robust Emotion Recognition in Context Debiasing, CVPR 2024"
CAUSALMER_PAPER = "Kim, Hong, Choi, CausalMER, Applied Sciences 14(23):11397, 2024"

PAPER_PAGES = {"ccim": "CCIM (CVPR 2023), {what}, pp. 19005-19015",
               "clef": "CLEF (CVPR 2024), {what}, pp. 12447-12457"}


def _source(paper: str, what: str) -> str:
    """'CCIM (CVPR 2023), Table 1, pp. 19005-19015': paper, table (or figure) and pages as the reference gives them."""
    return PAPER_PAGES[paper].format(what=what)


def _v(value: float | None, paper: str, what: str) -> Published:
    """A verified number read in ``paper``'s ``what`` (Table N, Figure N); None stays unknown."""
    return UNKNOWN if value is None else Published(value, "verified", _source(paper, what))


# ------------------------------------------------------------------------------------- main results
# model -> (baseline, + CCIM, + CLEF), the main tables of published-tables.md. None: CD-Net is not in CCIM.
# The baselines are the papers' re-runs (CCIM's †); CLEF prints the same four shared ones.
MAIN_EMOTIC = {  # mAP % over 26 categories; CCIM Table 1, CLEF Table 2
    "emotnet": (27.93, 30.88, 31.67),
    "gnncnn": (28.16, 31.72, 32.18),   # CCIM's GCN-CNN, CLEF's GNN-CNN: the same model
    "caernet": (23.85, 26.51, 27.44),
    "cdnet": (28.87, None, 32.51),
    "emoticon": (35.28, 39.13, 38.05),
}
MAIN_CAER_S = {  # accuracy %; CCIM Table 3, CLEF Table 3
    "emotnet": (74.51, 75.82, 77.03),
    "gnncnn": (77.21, 78.66, 79.53),
    "caernet": (73.47, 74.81, 75.86),
    "cdnet": (85.33, None, 88.41),
    "emoticon": (88.65, 91.17, 90.62),
}
MAIN_GROUPWALK = {  # mAP % over 4 categories; CCIM Table 2 (CLEF has no GroupWalk)
    "emotnet": (58.33, 60.74),
    "gnncnn": (53.43, 56.42),
    "caernet": (48.51, 50.76),
    "emoticon": (65.58, 69.31),
}
_TABLES = {("ccim", "emotic"): "Table 1", ("ccim", "caer_s"): "Table 3", ("ccim", "groupwalk"): "Table 2",
           ("clef", "emotic"): "Table 2", ("clef", "caer_s"): "Table 3"}


def _main_pairs() -> dict[tuple[str, str, str], dict[str, Published]]:
    pairs = {}
    for dataset, table in (("emotic", MAIN_EMOTIC), ("caer_s", MAIN_CAER_S)):
        for model, (base, ccim, clef) in table.items():
            if ccim is not None:
                pairs["ccim", model, dataset] = {"baseline": _v(base, "ccim", _TABLES["ccim", dataset]),
                                                 "method": _v(ccim, "ccim", _TABLES["ccim", dataset])}
            pairs["clef", model, dataset] = {"baseline": _v(base, "clef", _TABLES["clef", dataset]),
                                             "method": _v(clef, "clef", _TABLES["clef", dataset])}
    for model, (base, ccim) in MAIN_GROUPWALK.items():
        pairs["ccim", model, "groupwalk"] = {"baseline": _v(base, "ccim", "Table 2"),
                                             "method": _v(ccim, "ccim", "Table 2")}
    return pairs


# (paper, model, dataset) -> {"baseline": Published, "method": Published}. The baseline entry is the
# number for the model without the causal module; it may come from another paper (source says so).
# Before published-tables.md: EmotiCon's baseline on EMOTIC was 35.48, from the EmotiCon paper itself (now
# in ORIGINAL_PAPER_BASELINES); both papers print their re-run, 35.28. EMOT-Net + CLEF 31.67 and
# CAER-Net-S + CLEF 75.86 were quoted second-hand (CENG501 README); the paper prints the same numbers.
PUBLISHED: dict[tuple[str, str, str], dict[str, Published]] = {
    **_main_pairs(),
    # CD-Net is not in CCIM: its baseline is CLEF's, its "+ CCIM" does not exist (unknown, not missing data).
    ("ccim", "cdnet", "caer_s"): {"baseline": _v(MAIN_CAER_S["cdnet"][0], "clef", "Table 3 (CD-Net is not in CCIM)"),
                                  "method": UNKNOWN},
    ("causalmer", "mult", "iemocap"): {
        "baseline": Published(84.3, "unverified", "MulT paper (Tsai et al., ACL 2019), word-aligned, mean of the "
                                                  "four emotions' accuracies as recalled in the notes"),
        "method": Published(83.4, "verified", "CausalMER abstract: average accuracy with the MulT backbone")},
    ("causalmer", "mult", "mosei"): {
        "baseline": Published(51.8, "unverified", "MulT paper (Tsai et al., ACL 2019), aligned acc7 as recalled in "
                                                  "the notes"),
        "method": Published(50.1, "verified", "CausalMER abstract: average accuracy with MulT (acc7 in its code)")},
}

# The baselines' own papers, where CCIM's re-run (†) differs from them. Not used as the baseline of any pair.
_EMOTICON_AP = Published(35.48, "verified", "EmotiCon paper (Mittal et al., CVPR 2020): EMOTIC AP over 26 classes")
ORIGINAL_PAPER_BASELINES: dict[tuple[str, str], Published] = {
    ("emoticon", "emotic"): _EMOTICON_AP,
    ("caernet", "caer_s"): Published(73.51, "quoted", "CAER-Net's own paper, as published-tables.md gives it "
                                                      "beside CCIM's re-run 73.47"),
}

# Other methods of the comparison tables, without a causal module (* in CCIM: copied from their papers).
OTHER_METHODS: dict[tuple[str, str], Published] = {
    **{(name, "emotic"): _v(value, "ccim", "Table 1") for name, value in (
        ("rrla", 32.41), ("vrd", 35.16), ("hlcr", 30.02), ("tekg", 31.36), ("sibnet", 35.41), ("mca", 37.73))},
    **{(name, "caer_s"): _v(value, "ccim", "Table 3") for name, value in (
        ("sibnet", 74.56), ("grern", 81.31), ("rrla", 84.82), ("vrd", 90.49), ("mca", 79.57),
        ("vggnet_finetuned", 64.85), ("resnet_finetuned", 68.46))},
}
OTHER_METHOD_NAMES = {"rrla": "RRLA", "vrd": "VRD", "hlcr": "HLCR", "tekg": "TEKG", "sibnet": "SIB-Net",
                      "mca": "MCA", "grern": "GRERN", "vggnet_finetuned": "fine-tuned VGGNet",
                      "resnet_finetuned": "fine-tuned ResNet"}

# ------------------------------------------------------------------------------- per-category AP
EMOTIC_CATEGORIES = ("Affection", "Anger", "Annoyance", "Anticipation", "Aversion", "Confidence", "Disapproval",
                     "Disconnection", "Disquietment", "Doubt/Confusion", "Embarrassment", "Engagement", "Esteem",
                     "Excitement", "Fatigue", "Fear", "Happiness", "Pain", "Peace", "Pleasure", "Sadness",
                     "Sensitivity", "Suffering", "Surprise", "Sympathy", "Yearning")
GROUPWALK_CATEGORIES = ("Angry", "Happy", "Neutral", "Sad")

# The tables as the papers print them: one row per category, one column per (model, variant). RRLA and
# VRD are CCIM Table 1's other methods (variant "baseline": no causal module).
_CCIM_TABLE_1_COLUMNS = (("emotnet", "baseline"), ("emotnet", "method"), ("gnncnn", "baseline"), ("gnncnn", "method"),
                         ("caernet", "baseline"), ("caernet", "method"), ("rrla", "baseline"), ("vrd", "baseline"),
                         ("emoticon", "baseline"), ("emoticon", "method"))
_CCIM_TABLE_2_COLUMNS = (("emotnet", "baseline"), ("emotnet", "method"), ("gnncnn", "baseline"), ("gnncnn", "method"),
                         ("caernet", "baseline"), ("caernet", "method"), ("emoticon", "baseline"),
                         ("emoticon", "method"))
_CLEF_TABLE_1_COLUMNS = (("emotnet", "baseline"), ("emotnet", "method"), ("caernet", "baseline"),
                         ("caernet", "method"), ("gnncnn", "baseline"), ("gnncnn", "method"), ("cdnet", "baseline"),
                         ("cdnet", "method"), ("emoticon", "baseline"), ("emoticon", "method"))

_CCIM_TABLE_1_ROWS = (
    ("Affection", (26.47, 34.87, 47.52, 36.18, 22.36, 23.08, 37.93, 44.48, 38.55, 40.77)),
    ("Anger", (11.24, 13.05, 11.27, 12.53, 12.88, 12.99, 13.73, 30.71, 14.69, 15.48)),
    ("Annoyance", (15.26, 18.04, 12.33, 13.73, 14.42, 15.28, 20.87, 26.47, 24.68, 24.47)),
    ("Anticipation", (57.31, 94.19, 63.20, 92.32, 52.85, 90.03, 61.08, 59.89, 60.73, 95.15)),
    ("Aversion", (7.44, 13.41, 6.81, 15.41, 3.26, 12.96, 9.61, 12.43, 11.33, 19.38)),
    ("Confidence", (80.33, 74.90, 74.83, 75.01, 72.68, 73.24, 80.08, 79.24, 68.12, 75.81)),
    ("Disapproval", (16.14, 19.87, 12.64, 14.45, 15.37, 16.38, 21.54, 24.54, 18.55, 23.65)),
    ("Disconnection", (20.64, 27.72, 23.17, 30.52, 22.01, 23.39, 28.32, 34.24, 28.73, 31.93)),
    ("Disquietment", (19.57, 19.12, 17.66, 20.85, 10.84, 18.10, 22.57, 24.23, 22.14, 26.84)),
    ("Doubt/Confusion", (31.88, 19.35, 19.67, 20.43, 26.07, 17.66, 33.50, 25.42, 38.43, 34.28)),
    ("Embarrassment", (3.05, 6.23, 1.58, 9.21, 1.88, 5.86, 4.16, 4.26, 10.31, 16.73)),
    ("Engagement", (86.69, 88.93, 87.31, 96.88, 73.71, 70.04, 88.12, 88.71, 86.23, 97.41)),
    ("Esteem", (17.86, 21.69, 12.05, 22.72, 15.38, 16.67, 20.50, 17.99, 25.75, 27.44)),
    ("Excitement", (78.05, 73.81, 72.68, 73.21, 70.42, 71.08, 80.11, 74.21, 80.75, 81.59)),
    ("Fatigue", (8.87, 9.96, 12.93, 12.66, 6.29, 9.73, 17.51, 22.62, 19.35, 15.53)),
    ("Fear", (15.70, 9.04, 6.15, 10.31, 7.47, 6.61, 15.56, 13.92, 16.99, 15.37)),
    ("Happiness", (58.92, 78.09, 72.90, 75.64, 53.73, 62.34, 76.01, 83.02, 80.45, 83.55)),
    ("Pain", (9.46, 14.71, 8.22, 15.36, 8.16, 9.43, 14.56, 16.68, 14.68, 17.76)),
    ("Peace", (22.35, 22.79, 30.68, 23.88, 19.55, 20.21, 26.76, 28.91, 35.72, 38.94)),
    ("Pleasure", (46.72, 46.59, 48.37, 45.52, 34.12, 35.37, 55.64, 55.47, 67.31, 64.57)),
    ("Sadness", (18.69, 17.47, 23.90, 22.08, 17.75, 13.24, 30.80, 42.87, 40.26, 45.63)),
    ("Sensitivity", (9.05, 7.91, 4.74, 8.02, 6.94, 4.74, 9.59, 15.89, 13.94, 17.04)),
    ("Suffering", (17.67, 15.35, 23.71, 18.45, 14.85, 11.89, 30.70, 46.23, 48.05, 21.52)),
    ("Surprise", (22.38, 13.12, 8.44, 13.93, 17.46, 11.70, 17.92, 16.27, 19.60, 26.81)),
    ("Sympathy", (15.23, 32.60, 19.45, 33.95, 14.89, 28.59, 15.26, 15.37, 16.74, 47.60)),
    ("Yearning", (9.22, 10.08, 9.86, 11.58, 4.84, 8.61, 10.11, 10.04, 15.08, 12.25)),
)
_CCIM_TABLE_2_ROWS = (
    ("Angry", (57.65, 62.41, 51.92, 54.07, 45.18, 50.43, 68.85, 75.93)),
    ("Happy", (71.32, 75.68, 63.37, 70.25, 56.59, 60.71, 72.31, 79.15)),
    ("Neutral", (43.10, 41.03, 40.26, 39.49, 39.32, 37.84, 50.34, 48.66)),
    ("Sad", (61.24, 63.84, 58.15, 61.85, 52.96, 54.06, 70.80, 73.48)),
)
_CLEF_TABLE_1_ROWS = (
    ("Affection", (26.47, 35.28, 22.36, 28.62, 47.52, 61.84, 28.44, 35.51, 38.55, 43.72)),
    ("Anger", (11.24, 11.76, 12.88, 14.01, 11.27, 16.37, 12.12, 14.60, 14.69, 17.09)),
    ("Annoyance", (15.26, 17.46, 14.42, 12.85, 12.33, 11.08, 19.71, 16.94, 24.68, 25.40)),
    ("Anticipation", (57.31, 94.29, 52.85, 82.27, 63.20, 93.25, 57.65, 89.05, 60.73, 92.24)),
    ("Aversion", (7.44, 13.14, 3.26, 10.23, 6.81, 10.30, 9.94, 16.83, 11.33, 15.51)),
    ("Confidence", (80.33, 74.48, 72.68, 73.18, 74.83, 69.02, 69.26, 73.11, 68.12, 65.90)),
    ("Disapproval", (16.14, 19.73, 15.37, 17.04, 12.64, 15.16, 22.78, 27.45, 18.55, 21.47)),
    ("Disconnection", (20.64, 30.66, 22.01, 24.76, 23.17, 28.35, 27.55, 31.70, 28.73, 33.31)),
    ("Disquietment", (19.57, 19.73, 10.84, 13.47, 17.66, 20.11, 21.04, 23.37, 22.14, 24.56)),
    ("Doubt/Confusion", (31.88, 19.81, 26.07, 22.15, 19.67, 16.57, 24.23, 19.55, 38.43, 32.87)),
    ("Embarrassment", (3.05, 6.53, 1.88, 5.31, 1.58, 4.08, 4.50, 7.24, 10.31, 12.98)),
    ("Engagement", (86.69, 97.39, 73.71, 90.46, 87.31, 92.88, 85.32, 94.38, 86.23, 92.75)),
    ("Esteem", (17.86, 22.30, 15.38, 17.91, 12.05, 18.69, 18.66, 23.01, 25.75, 29.13)),
    ("Excitement", (78.05, 73.36, 70.42, 63.01, 72.68, 65.21, 70.07, 60.42, 80.75, 72.64)),
    ("Fatigue", (8.87, 10.34, 6.29, 8.66, 12.93, 17.67, 11.56, 14.67, 19.35, 22.34)),
    ("Fear", (15.70, 8.46, 7.47, 10.12, 6.15, 10.34, 10.38, 11.23, 16.99, 18.71)),
    ("Happiness", (58.92, 77.89, 53.73, 72.37, 72.90, 81.79, 68.46, 84.24, 80.45, 87.06)),
    ("Pain", (9.46, 13.97, 8.16, 10.32, 8.22, 11.94, 13.82, 16.44, 14.68, 15.45)),
    ("Peace", (22.35, 23.23, 19.55, 20.05, 30.68, 31.56, 28.18, 26.05, 35.72, 35.96)),
    ("Pleasure", (46.72, 45.92, 34.12, 34.46, 48.37, 51.73, 47.64, 50.92, 67.31, 68.42)),
    ("Sadness", (18.69, 27.19, 17.75, 23.06, 23.90, 33.28, 32.99, 37.43, 40.26, 45.25)),
    ("Sensitivity", (9.05, 7.84, 6.94, 8.12, 4.74, 5.14, 7.21, 10.70, 13.94, 15.07)),
    ("Suffering", (17.67, 18.05, 14.85, 15.63, 23.71, 25.60, 35.19, 30.85, 48.05, 43.16)),
    ("Surprise", (22.38, 12.27, 17.46, 14.70, 8.44, 6.01, 7.42, 7.21, 19.60, 20.18)),
    ("Sympathy", (15.23, 30.15, 14.89, 15.53, 19.45, 25.13, 10.33, 13.66, 16.74, 20.64)),
    ("Yearning", (9.22, 12.13, 4.84, 5.16, 9.86, 13.64, 6.24, 8.63, 15.08, 17.39)),
)


def _per_category(paper: str, dataset: str, table: str, columns, rows) -> dict:
    out = {}
    for j, (model, variant) in enumerate(columns):
        out[paper, model, dataset, variant] = {cat: _v(values[j], paper, table) for cat, values in rows}
    return out


# (paper, model, dataset, variant) -> {category: Published}; variant "baseline" (no causal module) or "method".
# The baseline columns of CCIM Table 1 and CLEF Table 1 are the same numbers.
PER_CATEGORY_AP: dict[tuple[str, str, str, str], dict[str, Published]] = {
    **_per_category("ccim", "emotic", "Table 1", _CCIM_TABLE_1_COLUMNS, _CCIM_TABLE_1_ROWS),
    **_per_category("ccim", "groupwalk", "Table 2", _CCIM_TABLE_2_COLUMNS, _CCIM_TABLE_2_ROWS),
    **_per_category("clef", "emotic", "Table 1", _CLEF_TABLE_1_COLUMNS, _CLEF_TABLE_1_ROWS),
}

# ------------------------------------------------------------------------------------------ ablations


@dataclass(frozen=True)
class AblationRow:
    """One cell of an ablation table: a setting (row label), the model and data set, and its score."""

    table: str
    setting: str
    model: str
    dataset: str
    value: Published


# CCIM Table 4: setting -> EMOT-Net + CCIM (EMOTIC mAP, CAER-S acc, GroupWalk mAP), EmotiCon + CCIM (same).
_CCIM_TABLE_4 = (
    ("default (dot product, Places365 ResNet-152, N = 256 / 128 / 256)", (30.88, 75.82, 60.74), (39.13, 91.17, 69.31)),
    ("random dictionary Z (same size)", (26.56, 73.36, 57.45), (35.12, 87.34, 65.62)),
    ("ImageNet instead of Places365 pre-training", (28.72, 74.75, 58.96), (37.48, 90.46, 68.28)),
    ("ResNet-50 feature extractor", (29.53, 75.34, 59.92), (38.86, 90.41, 68.85)),
    ("VGG-16 feature extractor", (28.78, 74.95, 59.47), (37.93, 89.82, 68.11)),
    ("additive attention", (30.79, 75.64, 60.85), (39.16, 91.08, 69.26)),
    ("without lambda_i (no attention weights)", (30.05, 75.21, 59.83), (38.53, 89.67, 68.75)),
    ("without P(z_i) (no prior)", (30.63, 75.59, 59.94), (39.05, 90.06, 69.15)),
    ("without masking the subject", (29.86, 74.84, 59.22), (38.06, 90.57, 67.79)),
)
# CLEF Table 4: setting -> (EMOTIC mAP CD-Net, EmotiCon, CAER-S acc CD-Net, EmotiCon).
_CLEF_TABLE_4 = (
    ("vanilla", (28.87, 35.28, 85.33, 88.65)),
    ("+ CLEF", (32.51, 38.05, 88.41, 90.62)),
    ("without the CAER model (context branch alone)", (19.64, 19.64, 62.87, 62.87)),
    ("without the extra context branch", (28.55, 35.43, 85.54, 88.28)),
    ("without the KL regularisation", (32.26, 37.44, 88.09, 90.36)),
    ("without masking the subject", (31.38, 36.95, 87.68, 89.85)),
    ("ImageNet instead of Places365 pre-training (context branch)", (30.74, 36.62, 87.35, 89.27)),
    ("ResNet-50 context branch", (31.45, 37.54, 87.83, 90.04)),
    ("VGG-16 context branch", (29.93, 36.48, 86.76, 89.39)),
    ("Y_e* = average feature embedding (instead of the learned uniform-initialised vector)",
     (27.85, 33.18, 83.06, 85.67)),
    ("Y_e* = random feature embedding", (24.61, 28.77, 76.43, 78.25)),
)
# CLEF Table 5, CCIM against CLEF: (model, dataset) -> (vanilla, + CCIM, + CLEF).
_CLEF_TABLE_5 = (
    ("emotnet", "emotic", (27.93, 30.88, 31.67)), ("caernet", "emotic", (23.85, 26.51, 27.44)),
    ("emotnet", "caer_s", (74.51, 75.82, 77.03)), ("caernet", "caer_s", (73.47, 74.81, 75.86)),
)


def _ablations() -> dict[str, list[AblationRow]]:
    ccim = [AblationRow("Table 4", setting, model, dataset, _v(value, "ccim", "Table 4"))
            for setting, *per_model in _CCIM_TABLE_4
            for model, values in zip(("emotnet", "emoticon"), per_model)
            for dataset, value in zip(("emotic", "caer_s", "groupwalk"), values)]
    clef = [AblationRow("Table 4", setting, model, dataset, _v(value, "clef", "Table 4"))
            for setting, values in _CLEF_TABLE_4
            for (dataset, model), value in zip((("emotic", "cdnet"), ("emotic", "emoticon"),
                                                ("caer_s", "cdnet"), ("caer_s", "emoticon")), values)]
    clef += [AblationRow("Table 5", setting, model, dataset, _v(value, "clef", "Table 5"))
             for model, dataset, values in _CLEF_TABLE_5
             for setting, value in zip(("vanilla", "+ CCIM", "+ CLEF"), values)]
    return {"ccim": ccim, "clef": clef}


# paper -> its ablation cells (CCIM: Table 4, on the + CCIM models; CLEF: Tables 4 and 5).
ABLATIONS: dict[str, list[AblationRow]] = _ablations()

# CCIM Figure 6: (model + CCIM, dataset) -> {dictionary size N: score}. Chart labels, matched to N by position.
DICTIONARY_SIZES = (64, 128, 256, 512, 1024)
_FIGURE_6 = {
    ("emotnet", "emotic"): (28.35, 30.23, 30.88, 30.52, 28.79),
    ("emoticon", "emotic"): (36.14, 37.81, 39.13, 38.56, 37.24),
    ("emotnet", "caer_s"): (75.25, 75.82, 75.56, 75.80, 75.46),
    ("emoticon", "caer_s"): (89.49, 91.17, 91.15, 90.52, 89.78),
    ("emotnet", "groupwalk"): (58.85, 59.56, 60.74, 60.75, 59.37),
    ("emoticon", "groupwalk"): (66.73, 68.34, 69.31, 69.12, 67.86),
}
DICTIONARY_SIZE: dict[tuple[str, str], dict[int, Published]] = {
    key: {n: _v(value, "ccim", "Figure 6 (chart labels, matched to N by position)")
          for n, value in zip(DICTIONARY_SIZES, values)}
    for key, values in _FIGURE_6.items()}

# ----------------------------------------------------------------------------- implementation facts
# What the papers state about their set-ups (published-tables.md, "Implementation facts"), as plain data.
IMPLEMENTATION = {
    "ccim": {
        "context_backbone": "Places365 ResNet-152, last pooling layer, on subject-masked training images",
        "context_feature_dim": 2048,
        "subject_boxes": {"emotic": "annotated boxes", "caer_s": "Faster R-CNN", "groupwalk": "Faster R-CNN"},
        "dictionary_size": {"emotic": 256, "caer_s": 128, "groupwalk": 256},
        "d_m": 128,
        "d_n": 256,
        "joint_feature_dim": {"emotnet": 256, "gnncnn": 1024, "caernet": 128, "emoticon": 78},
        "attention": "dot product",
        "baselines": "trained with their own papers' settings",
        "gpus": "four V100",
    },
    "clef": {
        "context_backbone": "Places365 ResNet-152, last linear layer replaced by a K-way layer, on subject-masked "
                            "images (Faster R-CNN boxes on CAER-S)",
        "fusion": "log sigmoid(Y_c + Y_e)",
        "counterfactual_context": "Y_e*: one trainable vector shared by all samples, initialised by the uniform "
                                  "distribution",
        "loss": "CE on the fused and the counterfactual scores + KL(Y_{c,e*}, Y_{c,e})",
        "inference": "TIE",
        "baselines": "trained with their own papers' settings",
        "gpus": "V100",
        "splits": {"emotic": (70, 10, 20), "caer_s": (7, 1, 2)},   # EMOTIC in percent, CAER-S as a ratio
    },
}

# The missing-modality study's published gaps (and their std) were not retrievable: unknown for both data sets.
PUBLISHED_DROP_STD: dict[str, dict[str, Published]] = {
    dataset: {"baseline": UNKNOWN, "method": UNKNOWN} for dataset in ("iemocap", "mosei")}

# Other backbones the CausalMER abstract reports on MOSEI (not built in this repo).
CAUSALMER_OTHER_BACKBONES = {"PMR + CausalMER": Published(48.8, "verified", "CausalMER abstract"),
                             "DMD + CausalMER": Published(48.8, "verified", "CausalMER abstract")}

# Third-party re-implementations: context for how hard the published numbers are to reach. Not the papers'.
THIRD_PARTY = [
    ("CENG501 (GokcenKaratas)", "CAER-Net-S on CAER-S, accuracy %", "59.68 -> 63.27 with CLEF (paper: 75.86)"),
    ("CENG501 (GokcenKaratas)", "EMOT-Net on EMOTIC, mAP %", "27.01 -> 23.23 with CLEF (paper: 31.67)"),
    ("ndkhanh360/CAER", "CAER-Net-S on CAER-S, accuracy %", "76.81"),
    ("larrylu0426", "CAER-Net-S on CAER-S, accuracy %", "62.84 to 84.78 depending on which stream is augmented"),
    ("Tandon-A/emotic Colab", "EMOT-Net on EMOTIC, test mAP %", "25.27"),
]

# Later papers that print the CCIM and CLEF numbers in their own comparison tables (confirmations, not runs).
THIRD_PARTY_CONFIRMATIONS = [
    ("AGCD-Net (arXiv 2507.09248), Table 1", "CAER-Net-S + CCIM on CAER-S, accuracy %", "74.81"),
    ("AGCD-Net (arXiv 2507.09248), Table 1", "CAER-Net-S + CLEF on CAER-S, accuracy %", "75.86"),
    ("DSCT (ACM MM 2024), Table 1", "EmotiCon + CCIM on CAER-S, accuracy %", "91.17"),
]


def published(paper: str, model: str, dataset: str) -> dict[str, Published]:
    """The published pair for one row, or two unknowns when the notes hold nothing for it."""
    return PUBLISHED.get((paper, model, dataset), {"baseline": UNKNOWN, "method": UNKNOWN})
