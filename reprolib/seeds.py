"""Multi-seed evidence for the notebooks: ``python -m reprolib seeds`` and ``results/seeds_smoke.json``.

One smoke run is one trajectory of one machine: rounding differences between CPUs, thread counts and
library versions grow during training until a run on another machine is, in effect, another seed.
So the notebooks' trained numbers are judged against their spread over seeds, measured here:

1. ``run`` executes the notebooks with ``-p seed=N`` for each extra seed (1 and 2 by default), each
   seed in its own process and results folder under ``results/executed/seeds/seed_N/``;
2. ``collect`` reads those results and the committed ``results/<notebook>.json`` (seed 0, the
   notebooks' defaults) and writes ``results/seeds_smoke.json``: per notebook, the parameters (seed
   aside), and per seed every claim and every *headline metric* (:func:`headline_metrics`).

Two things read that file. :mod:`reprolib.claims` asserts a notebook's claims only at the setting it
records. ``tests/test_seed_evidence.py`` checks that every claim holds for seeds 0, 1 and 2 with a
margin (:func:`reprolib.claims.required_margin`), and ``tests/test_fresh_results.py`` checks a fresh run's headline metrics against the bands
of :func:`band`.

The band rule, in one place: a fresh value must lie in ``[min - pad, max + pad]`` of the recorded
seeds' values, with ``pad = max(FLOOR, max - min)``. The seed range alone is too narrow (a fourth
draw falls outside the range of three about half the time); padding by the range again covers the
spread the seeds show, and the floor keeps a band from collapsing where three seeds happened to agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reprolib import claims as claims_module
from reprolib.paths import repo_root

#: The numeric leaves that are a notebook's results, by the last key of their path; everything else
#: (histories, best epochs, per-class values, counts) is left to the claims and the figures.
HEADLINE_KEYS = frozenset({"test", "test_ood", "gap", "val", "train", "std_drop", "ari", "purity",
                           "mean_acc", "acc7", "g_share", "shortcut_rate"})
#: Subtrees that are never banded (training curves, configuration echoes).
SKIPPED_KEYS = frozenset({"history", "best_epoch", "dictionary", "claims", "attribution"})
#: Smallest half-width added to the seed range (metrics are fractions: 0.05 = 5 points). Measured:
#: on one machine, a one-ulp difference in one prototype of notebook 08's N=64 dictionary (k-means at
#: one thread instead of two) moved that ablation's gap by 0.040, while seeds 0-2 spread by 0.009; a
#: floor of 0.03 failed it. Rounding moves a trained number more than the seed range can show.
FLOOR = 0.05
EXTRA_SEEDS = (1, 2)
#: Notebooks that train nothing of their own: their metrics are read from the others' results.
DERIVED = frozenset({"11_summary"})


def evidence_path() -> Path:
    return repo_root() / "results" / claims_module.SEEDS_FILE


def _leaves(node: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], float]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key not in SKIPPED_KEYS:
                yield from _leaves(value, path + (str(key),))
    elif isinstance(node, (int, float)) and not isinstance(node, bool) and path:
        yield path, float(node)


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``{"scores/subject + context/test_ood": 0.2, ...}``: the banded numbers of one results file."""
    return {"/".join(p): v for p, v in _leaves(metrics) if p[-1] in HEADLINE_KEYS}


def band(values: Sequence[float]) -> tuple[float, float]:
    """The interval a fresh run's value must fall in, from the recorded seeds' values."""
    lo, hi = min(values), max(values)
    pad = max(FLOOR, hi - lo)
    return lo - pad, hi + pad


def _seed_record(payload: Mapping[str, Any]) -> dict[str, Any]:
    prov = payload.get("provenance", {})
    return {"claims": {name: c["value"] for name, c in (payload["metrics"].get("claims") or {}).items()},
            "metrics": headline_metrics(payload["metrics"]),
            "machine": prov.get("machine"), "versions": prov.get("versions"), "created": prov.get("created")}


def read_results(folder: Path, notebook: str) -> dict[str, Any]:
    path = folder / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no results for {notebook} (did the notebook run?)")
    return json.loads(path.read_text())


def collect(notebooks: Sequence[str], folders: Mapping[int, Path]) -> dict[str, Any]:
    """The evidence file's content, from one results folder per seed. Every seed must have run with
    the same parameters, seed aside; a notebook whose runs differ is an error, not a silent mix."""
    entries: dict[str, Any] = {}
    for notebook in notebooks:
        seeds, setting = {}, None
        for seed, folder in sorted(folders.items()):
            payload = read_results(folder, notebook)
            params = payload["provenance"]["parameters"]
            if int(params.get("seed", -1)) != seed:
                raise ValueError(f"{folder / notebook}.json: ran with seed {params.get('seed')}, expected {seed}")
            here = claims_module.comparable(params)
            if setting is None:
                setting = here
            elif here != setting:
                diff = sorted(k for k in set(here) | set(setting) if here.get(k) != setting.get(k))
                raise ValueError(f"{notebook}: seed {seed} ran with other parameters than seed "
                                 f"{min(folders)} ({', '.join(diff)})")
            seeds[str(seed)] = _seed_record(payload)
        entries[notebook] = {"parameters": setting, "seeds": seeds}
    return {
        "about": ("Per notebook: the parameters of its smoke runs (seed aside) and, per seed, each claim's "
                  "value and the headline metrics. Written by `python -m reprolib seeds`; read by "
                  "reprolib.claims and tests/test_seed_evidence.py, tests/test_fresh_results.py."),
        "rule": {"band": f"[min - pad, max + pad], pad = max({FLOOR}, max - min)",
                 "claims": (f"every claim clears its threshold in every seed by at least max({claims_module.MIN_MARGIN}, "
                            f"{claims_module.RELATIVE_MARGIN} * |threshold|)"),
                 "floor": FLOOR, "min_margin": claims_module.MIN_MARGIN,
                 "relative_margin": claims_module.RELATIVE_MARGIN},
        "notebooks": entries,
    }


def keep_other_seeds(recorded: Mapping[str, Any], collected: Mapping[str, Any]) -> dict[str, Any]:
    """``collected`` (a :func:`collect`) with, for each of its notebooks, the seeds ``recorded`` holds
    that it did not collect now (seeds run on another machine, say): the bands and the claims'
    margins then cover both. The recorded seeds must have run with the same parameters."""
    out = json.loads(json.dumps(collected))
    for notebook, entry in out["notebooks"].items():
        kept = recorded.get("notebooks", {}).get(notebook)
        if kept is None:
            continue
        if kept["parameters"] != entry["parameters"]:
            diff = sorted(k for k in set(kept["parameters"]) | set(entry["parameters"])
                          if kept["parameters"].get(k) != entry["parameters"].get(k))
            raise ValueError(f"{notebook}: the recorded seeds ran with other parameters ({', '.join(diff)}); "
                             "run them again instead of keeping them")
        entry["seeds"] = {**kept["seeds"], **entry["seeds"]}
    return out


def seed_folder(workdir: Path, seed: int) -> Path:
    return workdir / f"seed_{seed}"


def clear_outputs(folder: Path, notebooks: Sequence[str]) -> None:
    """Remove what an earlier run of these notebooks left in a seed's folder (their results JSON and
    executed copies), and nothing else: rerunning one notebook keeps the other notebooks' seed
    results, which the evidence may still be collected from."""
    for name in notebooks:
        for path in (folder / "results" / f"{name}.json", folder / "executed" / f"{name}.ipynb"):
            path.unlink(missing_ok=True)


def run(seeds: Sequence[int], only: Sequence[str] | None, workdir: Path, jobs: int = 1,
        log: Callable[[str], None] = print) -> int:
    """Execute the notebooks once per seed, ``jobs`` seeds at a time, each in its own process with
    ``cores / jobs`` threads and its own, initially empty, results folder. Returns the number of
    seeds whose run failed."""
    procs: list[tuple[int, subprocess.Popen]] = []
    failed = 0
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    pending = list(seeds)
    while pending or procs:
        while pending and len(procs) < jobs:
            seed = pending.pop(0)
            folder = seed_folder(workdir, seed)
            clear_outputs(folder, only)
            (folder / "results").mkdir(parents=True, exist_ok=True)
            env = dict(os.environ, REPROLIB_RESULTS=str(folder / "results"), OMP_NUM_THREADS=str(threads),
                       MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1", MPLBACKEND="agg")
            cmd = [sys.executable, "-m", "reprolib", "reproduce", "--no-progress", "--jobs", "1", "-p", f"seed={seed}",
                   "--output", str(folder / "executed")] + (["--only", *only] if only else [])
            log(f"seed {seed}: {' '.join(cmd[2:])} ({threads} thread(s), log {folder / 'run.log'})")
            with open(folder / "run.log", "a") as out:
                procs.append((seed, subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)))
        seed, proc = procs.pop(0)
        code = proc.wait()
        failed += code != 0
        log(f"seed {seed}: {'done' if code == 0 else f'FAILED (exit {code})'}")
    return failed


def write(evidence: Mapping[str, Any], path: Path | None = None) -> Path:
    from reprolib.results import atomic_write_text

    path = path or evidence_path()
    atomic_write_text(path, json.dumps(evidence, indent=1, sort_keys=True) + "\n")
    return path


def seed_values(notebook: str, evidence: Mapping[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """``{metric path or "claim: <name>": {seed: value}}`` for one notebook; empty without evidence."""
    entry = (claims_module.load_evidence() if evidence is None else evidence).get("notebooks", {}).get(notebook)
    out: dict[str, dict[str, float]] = {}
    for seed, rec in (entry or {}).get("seeds", {}).items():
        for key, value in rec["metrics"].items():
            out.setdefault(key, {})[seed] = value
        for key, value in rec["claims"].items():
            out.setdefault(f"claim: {key}", {})[seed] = value
    return out


def spread_table(notebook: str, metrics: Mapping[str, Any], evidence: Mapping[str, Any] | None = None) -> str:
    """A Markdown table of this run's headline metrics beside their mean ± sample std over the recorded
    seeds (``results/seeds_smoke.json``) and the band a fresh run is tested against."""
    import statistics

    recorded = seed_values(notebook, evidence)
    rows = ["| metric | this run | seeds (mean ± std) | band |", "|---|---|---|---|"]
    for key, value in headline_metrics(metrics).items():
        per_seed = recorded.get(key)
        if per_seed and len(per_seed) >= 2:
            vals = list(per_seed.values())
            lo, hi = band(vals)
            seeds_txt = f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f} ({', '.join(sorted(per_seed))})"
            band_txt = f"[{lo:.3f}, {hi:.3f}]"
        else:
            seeds_txt, band_txt = "not recorded", ""
        rows.append(f"| `{key}` | {value:.3f} | {seeds_txt} | {band_txt} |")
    if len(rows) == 2:
        return "*(no headline metrics in this run)*"
    source = f"`results/{claims_module.SEEDS_FILE}`" if recorded else "no multi-seed file yet"
    return "\n".join(rows) + f"\n\nSeeds: {source}, written by `python -m reprolib seeds`."
