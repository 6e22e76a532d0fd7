"""The papers' published numbers, as far as the reference notes could establish them.

One place for every published figure the summary notebook (11) puts beside this repo's results. A
number the notes could not find is ``None`` and shows as "unknown": nothing here is guessed. Each value
carries how it is known:

* ``verified``   read in the paper itself (or its abstract);
* ``quoted``     read second-hand, in a third party's write-up that quotes the paper;
* ``unverified`` recalled in the notes but not checked against the paper's tables.

Scores are in percent (accuracy, mAP, mean accuracy, acc7), as the papers print them. The notes are
``shared/reference/ccim-clef.md`` (§1.6, §2.7, §2.8, §3) and ``shared/reference/causalmer.md`` (§4).
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

# (paper, model, dataset) -> {"baseline": Published, "method": Published}. The baseline entry is the
# number for the model without the causal module; it may come from the baseline's own paper (source says so).
_EMOTICON_AP = Published(35.48, "verified", "EmotiCon paper (Mittal et al., CVPR 2020): EMOTIC AP over 26 classes")
_CENG501 = "CENG501 re-implementation README quoting the CLEF paper"

PUBLISHED: dict[tuple[str, str, str], dict[str, Published]] = {
    **{("ccim", model, dataset): {"baseline": _EMOTICON_AP if model == "emoticon" else UNKNOWN, "method": UNKNOWN}
       for model, dataset in (("emotnet", "emotic"), ("gnncnn", "emotic"), ("emoticon", "emotic"),
                              ("caernet", "caer_s"), ("cdnet", "caer_s"))},
    ("clef", "emotnet", "emotic"): {"baseline": UNKNOWN, "method": Published(31.67, "quoted", _CENG501)},
    ("clef", "gnncnn", "emotic"): {"baseline": UNKNOWN, "method": UNKNOWN},
    ("clef", "emoticon", "emotic"): {"baseline": _EMOTICON_AP, "method": UNKNOWN},
    ("clef", "caernet", "caer_s"): {"baseline": UNKNOWN, "method": Published(75.86, "quoted", _CENG501)},
    ("clef", "cdnet", "caer_s"): {"baseline": UNKNOWN, "method": UNKNOWN},
    ("causalmer", "mult", "iemocap"): {
        "baseline": Published(84.3, "unverified", "MulT paper (Tsai et al., ACL 2019), word-aligned, mean of the "
                                                  "four emotions' accuracies as recalled in the notes"),
        "method": Published(83.4, "verified", "CausalMER abstract: average accuracy with the MulT backbone")},
    ("causalmer", "mult", "mosei"): {
        "baseline": Published(51.8, "unverified", "MulT paper (Tsai et al., ACL 2019), aligned acc7 as recalled in "
                                                  "the notes"),
        "method": Published(50.1, "verified", "CausalMER abstract: average accuracy with MulT (acc7 in its code)")},
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


def published(paper: str, model: str, dataset: str) -> dict[str, Published]:
    """The published pair for one row, or two unknowns when the notes hold nothing for it."""
    return PUBLISHED.get((paper, model, dataset), {"baseline": UNKNOWN, "method": UNKNOWN})
