"""Scientific claims a notebook makes, checked where they were measured and reported everywhere else.

A trained number belongs to a seed *and* a machine (CPU kernels, thread count, library versions), so
a claim such as "the plain model loses at least 0.30 on test_ood" is worth asserting only where it
was shown to hold over several seeds. That evidence is ``results/seeds_smoke.json``, written by
``python -m reprolib seeds`` (:mod:`reprolib.seeds`): for each notebook, the parameters of the runs
(seed aside) and every claim's value for seeds 0, 1 and 2.

The rule, in one place:

* a claim is **asserted** when the run's parameters, seed aside, equal the recorded ones and its seed
  is one of the recorded seeds: the smoke defaults on the synthetic data;
* otherwise (``-p bias=0.5``, ``-p epochs=3``, a real ``data_root``, ``size="full"``) it is an
  experiment: each claim prints *holds* or *does not hold* and nothing is raised, so the notebook goes
  on and writes its results.

A claim is one number compared with one threshold (``value >= threshold`` or ``value <= threshold``);
a relation such as "CLEF's test_ood is 0.15 above the baseline's" is the difference compared with 0.15.
Its *margin* is how far the value is on the right side of the threshold (negative when it fails).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprolib.paths import repo_root

SEEDS_FILE = "seeds_smoke.json"
#: Every claim must clear its threshold in every recorded seed by a tenth of the threshold's size, and
#: never by less than MIN_MARGIN (claims are in their own units; accuracies are fractions, 0.01 = 1 point).
RELATIVE_MARGIN = 0.1
MIN_MARGIN = 0.01
#: The seeds a claim must hold for before it is asserted.
REQUIRED_SEEDS = (0, 1, 2)


def required_margin(threshold: float) -> float:
    """How far every seed must be on the right side of ``threshold`` before a claim is asserted:
    ``max(MIN_MARGIN, RELATIVE_MARGIN * |threshold|)`` (0.05 for a threshold of 0.5, 0.01 for 0)."""
    return max(MIN_MARGIN, RELATIVE_MARGIN * abs(threshold))


class ClaimFailed(AssertionError):
    """A claim asserted at the setting where it was measured over seeds did not hold."""


@dataclass(frozen=True)
class Claim:
    name: str
    value: float
    threshold: float
    direction: str  # ">=" or "<="

    def __post_init__(self) -> None:
        if self.direction not in (">=", "<="):
            raise ValueError(f"claim {self.name!r}: direction must be '>=' or '<=', got {self.direction!r}")

    @property
    def margin(self) -> float:
        """Distance on the right side of the threshold; negative when the claim fails."""
        diff = self.value - self.threshold
        return diff if self.direction == ">=" else -diff

    @property
    def holds(self) -> bool:
        return math.isfinite(self.value) and self.margin >= 0

    def as_json(self) -> dict[str, Any]:
        return {"value": float(self.value), "threshold": self.threshold, "direction": self.direction,
                "margin": float(self.margin), "holds": self.holds}


def load_evidence(folder: Path | None = None) -> dict[str, Any]:
    """The committed multi-seed file (``results/seeds_smoke.json``); empty when there is none."""
    path = (folder or repo_root() / "results") / SEEDS_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def comparable(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON would hold them, without the seed: what "the same setting" compares."""
    return {k: v for k, v in json.loads(json.dumps(dict(parameters), sort_keys=True, default=float)).items()
            if k != "seed"}


def measured_setting(notebook: str, parameters: Mapping[str, Any], evidence: Mapping[str, Any] | None = None
                     ) -> bool:
    """True when ``parameters`` are the ones the claims were measured with over seeds (seed aside)
    and the seed is one of the measured seeds."""
    entry = (load_evidence() if evidence is None else evidence).get("notebooks", {}).get(notebook)
    if not entry:
        return False
    seeds = {int(s) for s in entry.get("seeds", {})}
    return int(parameters.get("seed", -1)) in seeds and comparable(parameters) == entry.get("parameters")


def expect_trained(ok: bool, message: str) -> None:
    """An exercise's check of what training produced (a gap that shrinks with the bias, a score above
    chance): an AssertionError with ``message`` when it fails, except in a dry run
    (:mod:`reprolib.dryrun`), whose models took two steps and whose scores mean nothing; there it
    says that it was not checked."""
    from reprolib import dryrun

    if dryrun.active():
        print(f"dry run: not checked ({'holds' if ok else 'does not hold'} after two training steps)")
        return
    assert ok, message


class Claims:
    """The claims of one notebook run, collected in order, then checked once.

    >>> c = Claims("01_context_bias")
    >>> c.at_least("probe above chance on test", 0.78, 0.50)
    >>> c.at_most("probe distance from chance on test_ood", 0.01, 0.10)

    ``over_seeds=True`` is for claims whose values are already statistics over seeds read from committed
    files (notebook 11 reads the multi-seed sweeps): they are asserted whenever they are stated.
    """

    def __init__(self, notebook: str, over_seeds: bool = False) -> None:
        self.notebook = notebook
        self.over_seeds = over_seeds
        self.items: list[Claim] = []
        self.enforced: bool | None = None

    def _add(self, name: str, value: float, threshold: float, direction: str) -> None:
        if any(c.name == name for c in self.items):
            raise ValueError(f"{self.notebook}: claim {name!r} is stated twice")
        self.items.append(Claim(name, float(value), float(threshold), direction))

    def at_least(self, name: str, value: float, threshold: float) -> None:
        self._add(name, value, threshold, ">=")

    def at_most(self, name: str, value: float, threshold: float) -> None:
        self._add(name, value, threshold, "<=")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def all_hold(self) -> bool:
        return all(c.holds for c in self.items)

    def check(self, parameters: Mapping[str, Any], evidence: Mapping[str, Any] | None = None) -> None:
        """Print each claim with holds / does not hold (no values: this printout is the same on every
        machine where the claims hold) and decide whether they are asserted; :meth:`raise_if_failed`
        raises later, after the results are written. The values are printed by :meth:`table`.

        Returns None on purpose: nbval runs cells without storing history, so IPython's trailing-``;``
        rule does not hide a returned object there, and a repr would be an output nbval compares."""
        self.enforced = self.over_seeds or measured_setting(self.notebook, parameters, evidence)
        if not self.items:
            print("no claims apply to this run (they are stated for the synthetic data)")
            return
        mode = ("asserted (statistics over seeds)" if self.over_seeds
                else "asserted (the setting measured over seeds)" if self.enforced
                else "reported, not asserted (not the setting they were measured at over seeds)")
        print(f"{len(self.items)} claims, {mode}:")
        for c in self.items:
            print(f"  {'holds        ' if c.holds else 'DOES NOT HOLD'}  {c.name} {c.direction} {c.threshold:g}")
        if self.all_hold:
            print("all claims hold")
        else:
            failed = [c.name for c in self.items if not c.holds]
            print(f"{len(failed)} of {len(self.items)} claims do not hold")

    def raise_if_failed(self) -> None:
        """At the measured setting, a failed claim is an error (after the results were written)."""
        failed = [c for c in self.items if not c.holds]
        if self.enforced and failed:
            raise ClaimFailed(f"{self.notebook}: " + "; ".join(
                f"{c.name}: {c.value:.3f}, expected {c.direction} {c.threshold:g}" for c in failed))

    def table(self) -> str:
        """The values behind the verdicts, with their margins (machine-dependent: not compared by nbval)."""
        width = max((len(c.name) for c in self.items), default=10)
        lines = [f"{'claim':{width}s}  {'value':>7s}  {'needs':>9s}  {'margin':>7s}"]
        lines += [f"{c.name:{width}s}  {c.value:7.3f}  {c.direction + ' ' + format(c.threshold, 'g'):>9s}  "
                  f"{c.margin:7.3f}" for c in self.items]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {c.name: c.as_json() for c in self.items}
