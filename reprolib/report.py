"""What a method notebook's run shows, written out as Markdown (notebooks 08 CCIM, 09 CLEF, 10 CausalMER).

Each method notebook ends with the numbers of its own run in a table and in sentences, then the
committed medium-size sweep of the same method. The notebooks display these texts; the arithmetic and
wording live here so the notebooks keep only what teaches the method, and so the three notebooks say
"not measured" the same way. Every number is read from the run's variables or the committed sweep
file passed in: nothing here is a result.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from reprolib import sweeps
from reprolib.experiments import DECOMPOSITION_GROUPS
from reprolib.paths import committed_results_dir
from reprolib.summary import MODEL_NAMES, PAPERS, read_result, rows_for


# --- the shared formatting -------------------------------------------------------------------------------

def fmt(x: float | None, digits: int = 2, sign: bool = False, missing: str = "n/a") -> str:
    """A measured value as text; ``missing`` where it was not measured (real data have no test_ood) or is
    undefined (NaN)."""
    return missing if x is None or x != x else f"{x:{'+' if sign else ''}.{digits}f}"


def minus(a: float | None, b: float | None) -> float | None:
    """a - b, or None where either was not measured."""
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None where either was not measured or b is 0."""
    return None if a is None or b is None or b == 0 else a / b


def paired(delta: Mapping[str, float]) -> str:
    """A paired difference over seeds (a sweep's {'mean', 'std'}) as '+0.123 ± 0.045'."""
    return f"{delta['mean']:+.3f} ± {delta['std']:.3f}"


def escape(text: str) -> str:
    """Markdown-safe symbol names: the * of Y_e* is not an emphasis mark."""
    return text.replace("*", "\\*")


def pretty(name: str) -> str:
    """A baseline's published name (EMOT-Net for 'emotnet')."""
    return MODEL_NAMES.get(name, name)


def bullets(lines: list[str], facts: list[str]) -> str:
    """Table lines, a blank line, then the facts as a bulleted list."""
    return "\n".join(lines) + "\n\n" + "\n".join(f"* {f}" for f in facts)


def run_header(seed: int, cfg: Any, data: Mapping[str, Any]) -> str:
    """The first line of an image notebook's run text: seed, size, epochs, data kind, each metric with its chance."""
    synthetic = all(d.synthetic for d in data.values())
    return (f"Seed {seed}, size `{cfg.size}`, {cfg.epochs} epochs, {'synthetic' if synthetic else 'real'} data. Scores: "
            + "; ".join(f"{data[k].metric_name} on {k} data (chance {data[k].chance():.2f})" for k in data) + ".")


def missing_sweep(name: str, command: str) -> str:
    return f"*No `results/{name}` here: `{command}` writes it.*"


def sweep_header(name: str, setup: Mapping[str, Any]) -> str:
    return (f"`results/{name}`: size `{setup['size']}` ({setup['scale']}× the smoke data, {setup['epochs']} epochs), "
            f"seeds {', '.join(map(str, setup['seeds']))}; mean ± std over seeds.")


# --- 08: CCIM --------------------------------------------------------------------------------------------

CCIM_LABELS = {"baseline": "without CCIM", "dot_product": "+ CCIM, dot product", "additive": "+ CCIM, additive"}


def ccim_run(*, seed: int, cfg: Any, data: Mapping[str, Any], variants: tuple[str, ...], scores: Mapping[str, Any],
             diagnostics: Mapping[str, Any], ablation: Mapping[str, Any], main_key: str, ablated: str,
             ablation_kind: str, base: Mapping[str, Any], dictionary_size: int, own_share: Mapping[str, float],
             attention_maps: Mapping[str, np.ndarray], row_label: str, exact_scores: Mapping[str, Any]) -> str:
    """Notebook 08's run: each baseline with and without CCIM, the ablations on one baseline, and what they show.

    ``scores[name][variant]`` are score rows (test, test_ood, gap), ``diagnostics['name variant']`` the g share
    and the attention entropy / log N, ``ablation[key]`` both for each ablation run (``main_key`` is the main
    run), ``base`` the ablated baseline without CCIM, ``attention_maps[split]`` the attention rows of the
    figure, ``own_share[scene]`` how often the relative-prior model attends most to the image's own scene."""
    lines = [run_header(seed, cfg, data), "",
             "| baseline | variant | test | test_ood | gap | g share | attention entropy / log N |",
             "|---|---|---|---|---|---|---|"]
    for name, per in scores.items():
        for v, s in ((v, per[v]) for v in variants if v in per):
            dg = diagnostics.get(f"{name} {v}")
            lines.append(f"| {pretty(name)} | {CCIM_LABELS[v]} | {fmt(s['test'])} | {fmt(s.get('test_ood'))} | "
                         f"{fmt(s.get('gap'))} | {fmt(dg['g_share'], 3) if dg else ''} | {fmt(dg['entropy']) if dg else ''} |")
    lines += ["", f"Ablations on {pretty(ablated)} ({ablation_kind} data; without CCIM: test {fmt(base['test'])}, "
              f"test_ood {fmt(base.get('test_ood'))}, gap {fmt(base.get('gap'))}):", "",
              "| variant | test | test_ood | gap | g share | attention entropy / log N |", "|---|---|---|---|---|---|"]
    lines += [f"| {key} | {fmt(a['test'])} | {fmt(a.get('test_ood'))} | {fmt(a.get('gap'))} | {fmt(a['g_share'], 3)} | "
              f"{fmt(a['entropy'])} |" for key, a in ablation.items()]

    ood = base.get("test_ood") is not None  # real data have no test_ood, so no gap
    facts = []
    if ood:
        facts.append("**Gap kept with CCIM**, gap / baseline gap: " + "; ".join(
            f"{pretty(name)} " + " and ".join(
                f"{fmt(ratio(per[v]['gap'], per['baseline']['gap']))} ({v.replace('_', ' ')})" for v in variants[1:])
            + f" of a gap of {fmt(per['baseline']['gap'])}" for name, per in scores.items()) + ".")
    if diagnostics:
        shares = [dg["g_share"] for dg in diagnostics.values()]
        uniform = [key for key, dg in diagnostics.items() if dg["entropy"] >= 0.95]
        facts.append(f"**Size of g**: the g share runs from {min(shares):.3f} to {max(shares):.3f} over the {len(shares)} "
                     f"CCIM models. Attention entropy is at least 0.95 of log N (near "
                     f"uniform) in {len(uniform)} of them" + (f" ({', '.join(uniform)})." if uniform else "."))
    main_run = ablation[main_key]
    others = {k: a for k, a in ablation.items() if k != main_key and "relative" not in k}
    if others and ood:
        facts.append(f"**N and prior**: against the main run's test_ood of {fmt(main_run['test_ood'])}, " + ", ".join(
            f"{k} gives {fmt(a['test_ood'])} ({fmt(minus(a['test_ood'], main_run['test_ood']), sign=True)}, "
            f"g share {fmt(a['g_share'], 3)})" for k, a in others.items()) + ".")
    facts.append("**Relative prior**: " + "; ".join(
        f"{k.rsplit(', ', 1)[-1].replace('_', ' ')}: g share {fmt(a['g_share'], 3)}, "
        f"{fmt(ratio(a['g_share'], main_run['g_share']), 1)} times the main run's, entropy "
        f"{fmt(a['entropy'])}" + (f", test_ood {fmt(a['test_ood'])}, gap {fmt(a['gap'])} "
                                  f"({fmt(ratio(a['gap'], base['gap']))} of the baseline's)" if ood else "")
        for k, a in ablation.items() if "relative" in k) + ".")
    facts.append("**Own context**: the relative-prior dot-product model attends most to the image's own context prototype for "
                 + " and ".join(f"{fmt(v)} of the `{s}` images" for s, v in own_share.items())
                 + f"; a random pick among the N = {dictionary_size} prototypes would give {1 / dictionary_size:.2f}.")
    for split, per_row in attention_maps.items():
        mean_attention = per_row.mean(axis=0)
        top = np.argsort(mean_attention)[::-1][:3]
        facts.append(f"**Attention on `{split}`**: prototypes {', '.join(str(int(i)) for i in top)} take "
                     f"{mean_attention[top].sum():.2f} of it (mean over the {len(per_row)} {row_label} rows of the figure); "
                     f"prototype {int(top[0])} is the most attended in {int((per_row.argmax(axis=1) == top[0]).sum())} of those rows.")
    facts.append(f"**Exact backdoor adjustment** ({ablation_kind} data): test {fmt(exact_scores['test'])}" + (
        f", test_ood {fmt(exact_scores['test_ood'])}, gap {fmt(exact_scores['gap'])}; test_ood "
        f"{fmt(minus(exact_scores['test_ood'], base['test_ood']), sign=True)} against {pretty(ablated)} "
        f"without CCIM" if ood else
        f" against {fmt(base['test'])} for {pretty(ablated)} without CCIM") + ".")
    return bullets(lines, facts)


def ccim_sweep(name: str = "sweep_ccim_medium.json") -> str:
    """The committed CCIM sweep (read from the repository's results/, whichever folder this run writes to): its table, CCIM minus the baseline paired by seed, the clear gains, the least gap kept."""
    path = committed_results_dir() / name
    if not path.exists():
        return missing_sweep(path.name, "python -m reprolib sweep --method ccim --size medium --reuse-baselines")
    sweep = read_result(path)
    spec = PAPERS["ccim"]
    sweep_rows = rows_for(spec, sweep, path.name, from_sweep=True)
    variant_of = {label: spec.sweep_prefix + v for v, label in spec.methods.items()}

    def gap_kept(r):
        entry = sweep["metrics"][r.model]["variants"]
        return entry[variant_of[r.method]]["gap"]["mean"] / entry["baseline"]["gap"]["mean"]

    deltas = ["| baseline | variant | Δ test | Δ test_ood | gap / baseline gap |", "|---|---|---|---|---|"]
    deltas += [f"| {pretty(r.model)} | {r.method} | {paired(r.scores['test']['delta'])} | "
               f"{paired(r.scores['test_ood']['delta'])} | {gap_kept(r):.2f} |" for r in sweep_rows]
    clear = [f"{pretty(r.model)} {r.method} ({paired(r.scores['test_ood']['delta'])})"
             for r in sweep_rows if r.scores["test_ood"]["delta"]["mean"] > 2 * r.scores["test_ood"]["delta"]["std"]]
    least = min(sweep_rows, key=gap_kept)
    return (sweep_header(path.name, sweep["provenance"]["parameters"]) + "\n\n" + sweeps.format_table(sweep["metrics"])
            + "\n\nCCIM minus the baseline, paired by seed (mean ± std of the per-seed differences):\n\n" + "\n".join(deltas)
            + "\n\n* Gains on `test_ood` larger than twice their spread over seeds: " + (", ".join(clear) or "none") + "."
            + f"\n* Smallest share of its baseline's gap that a CCIM variant keeps: {gap_kept(least):.2f} "
            f"({pretty(least.model)}, {least.method}).")


# --- 09: CLEF --------------------------------------------------------------------------------------------

CLEF_LABELS = {"baseline": "", sweeps.OWN_LOSS_CONTROL: " (default loss)", "clef": " + CLEF"}
MAIN_ABLATION = "end to end (main)"
SUGGESTED, TRUE = DECOMPOSITION_GROUPS  # the scene suggests k wrongly; k is a label the scene does not suggest


def clef_run(*, seed: int, cfg: Any, data: Mapping[str, Any], kind_of: Mapping[str, str], scores: Mapping[str, Any],
             subject_only: Mapping[str, Any], ablated: str, base: Mapping[str, Any], ablation: Mapping[str, Any],
             decisions: Mapping[str, Any], decomposition: Mapping[str, Any], cues: Mapping[str, np.ndarray]) -> str:
    """Notebook 09's run: each baseline with and without CLEF (and its default-loss control), subject only,
    the ablations, the shortcut rates, the decomposition of the scores and the bystander cue.

    ``kind_of[name]`` is the data kind baseline ``name`` trains on, ``scores[name][variant]`` score rows,
    ``subject_only[kind]`` the subject-only probe's, ``ablation[key]`` each ablation's score row with its
    shortcut rate and the spread of Y_e*; ``decisions[name][rule]`` :func:`experiments.decision_measures`
    per decision rule, ``decomposition[name][group][score]`` mean scores over classes, and
    ``cues[name]`` which test_ood images have a bystander showing their label (:func:`experiments.bystander_cue`)."""
    lines = [run_header(seed, cfg, data), "", "| model | test | test_ood | gap |", "|---|---|---|---|"]
    for kind in data:
        for name in (n for n in scores if kind_of[n] == kind):
            lines += [f"| {pretty(name)}{CLEF_LABELS[v]} | {fmt(s['test'])} | {fmt(s.get('test_ood'))} | {fmt(s.get('gap'))} |"
                      for v, s in scores[name].items()]
        lines.append(f"| subject only ({kind}) | {fmt(subject_only[kind]['test'])} | {fmt(subject_only[kind].get('test_ood'))} | "
                     f"{fmt(subject_only[kind].get('gap'))} |")
    ood = all(per["baseline"].get("test_ood") is not None for per in scores.values())
    lines += ["", f"Ablations on {pretty(ablated)} (without CLEF: test {fmt(base['test'])}, test_ood {fmt(base.get('test_ood'))}):",
              "", "| variant | test | test_ood | gap | test_ood − main | test_ood − baseline | shortcut rate | std of Y_e\\* |",
              "|---|---|---|---|---|---|---|---|"]
    main_ood = ablation[MAIN_ABLATION].get("test_ood")
    lines += [f"| {key} | {fmt(a['test'])} | {fmt(a.get('test_ood'))} | {fmt(a.get('gap'))} | "
              f"{fmt(minus(a.get('test_ood'), main_ood), sign=True) if key != MAIN_ABLATION else ''} | "
              f"{fmt(minus(a.get('test_ood'), base.get('test_ood')), sign=True)} | {fmt(a.get('shortcut_rate'))} | "
              f"{fmt(a['y_e_star_spread'], 3)} |" for key, a in ablation.items()]

    facts = []
    if ood:
        for name, per in scores.items():
            control = per.get(sweeps.OWN_LOSS_CONTROL)
            facts.append(f"**{pretty(name)}**: `test_ood` {fmt(per['baseline']['test_ood'])} → {fmt(per['clef']['test_ood'])} "
                         f"with CLEF ({fmt(minus(per['clef']['test_ood'], per['baseline']['test_ood']), sign=True)})"
                         + (f"; the default-loss control reaches {fmt(control['test_ood'])}, CLEF "
                            f"{fmt(minus(per['clef']['test_ood'], control['test_ood']), sign=True)} over it" if control else "")
                         + f". `test`: {fmt(per['baseline']['test'])} → {fmt(per['clef']['test'])}"
                         + (f" (control {fmt(control['test'])})" if control else "") + ".")
    for name, rules in decisions.items():
        rates = ", ".join(f"{rule} {fmt(m['shortcut_rate'])}" for rule, m in rules.items())
        facts.append(f"**Shortcut rate on `test_ood`, {pretty(name)}** (share of the images whose scene suggests a wrong "
                     f"emotion that are predicted as that emotion): {rates}. TIE / baseline: "
                     f"{fmt(ratio(rules['CLEF TIE']['shortcut_rate'], rules['baseline']['shortcut_rate']))}.")
    for name, groups in decomposition.items():
        wrong_k, true_k = groups[SUGGESTED], groups[TRUE]
        order = lambda q: "higher at the suggested class" if wrong_k[q] > true_k[q] else "higher at the true class"
        facts.append(f"**Decomposition, {pretty(name)}** (mean over classes): at a class the scene suggests wrongly, "
                     + ", ".join(f"{escape(q)} {fmt(v)}" for q, v in wrong_k.items())
                     + "; at a true class the scene does not suggest, "
                     + ", ".join(f"{escape(q)} {fmt(v)}" for q, v in true_k.items())
                     + f". The fused score is {order('fused Y_ce')}, TIE is {order('TIE')}.")
    if ood:
        facts.append("**Subject only against CLEF** on `test_ood`: " + "; ".join(
            f"{kind}: subject only {fmt(subject_only[kind]['test_ood'])}, " + ", ".join(
                f"{pretty(n)} + CLEF {fmt(scores[n]['clef']['test_ood'])}" for n in scores if kind_of[n] == kind)
            for kind in data) + ".")
    for name, rules in decisions.items():
        n_with, n_without = int(cues[name].sum()), int((~cues[name]).sum())
        errors = [np.sqrt(m["with_cue"] * (1 - m["with_cue"]) / max(n_with, 1)
                          + m["without_cue"] * (1 - m["without_cue"]) / max(n_without, 1)) for m in rules.values()]
        facts.append(f"**Bystander cue, {pretty(name)}**: accuracy with − without a cue, per decision rule: "
                     + ", ".join(f"{rule} {fmt(m['gain'], sign=True)}" for rule, m in rules.items())
                     + f" ({n_with + n_without} images, {n_with} with a cue; one standard error of that difference is "
                     f"{min(errors):.2f} to {max(errors):.2f}).")
    spreads = [a["y_e_star_spread"] for a in ablation.values()]
    facts.append(f"**Y_e\\***: its standard deviation over classes is {min(spreads):.3f} to {max(spreads):.3f} over the "
                 f"ablation table's {len(spreads)} run{'s' if len(spreads) > 1 else ''} (it starts at 0, uniform).")
    return bullets(lines, facts)


def clef_sweep(name: str = "sweep_clef_medium.json") -> str:
    """The committed CLEF sweep (the repository's results/): its table, CLEF minus the baseline and minus the default-loss control paired by
    seed, and CLEF's test_ood per seed with its best validation epoch."""
    path = committed_results_dir() / name
    if not path.exists():
        return missing_sweep(path.name, "python -m reprolib sweep --method clef --size medium --reuse-baselines")
    sweep = read_result(path)
    setup = sweep["provenance"]["parameters"]
    # one row per baseline against the plain baseline; for EMOT-Net and EmotiCon also against the control
    rows = rows_for(PAPERS["clef"], sweep, path.name, from_sweep=True)
    deltas = ["| baseline | CLEF minus | Δ test | Δ test_ood |", "|---|---|---|---|"]
    deltas += [f"| {pretty(r.model)} | "
               f"{'the default-loss control' if r.against == sweeps.OWN_LOSS_CONTROL else 'the baseline'} | "
               f"{paired(r.scores['test']['delta'])} | {paired(r.scores['test_ood']['delta'])} |"
               for r in sorted(rows, key=lambda r: r.against != "baseline")]
    per_seed = ["| baseline + CLEF | " + " | ".join(f"seed {s}" for s in setup["seeds"]) + " | best epoch per seed |",
                "|---|" + "---|" * (len(setup["seeds"]) + 1)]
    for name, entry in sweep["metrics"].items():
        runs_by_seed = {r["seed"]: r for r in entry["variants"]["clef"]["runs"]}
        per_seed.append(f"| {pretty(name)} | " + " | ".join(
            f"{runs_by_seed[s]['test_ood']:.3f}" if s in runs_by_seed else "" for s in setup["seeds"]) + " | "
            + ", ".join(str(runs_by_seed[s]["best_epoch"]) for s in setup["seeds"] if s in runs_by_seed)
            + f" of {setup['epochs']} |")
    return (sweep_header(path.name, setup) + " The plain baseline rows are those of "
            "`results/sweep_baselines_medium.json`.\n\n" + sweeps.format_table(sweep["metrics"])
            + "\n\nCLEF minus the baseline and minus the default-loss control, paired by seed (mean ± std of the "
            "per-seed differences):\n\n" + "\n".join(deltas)
            + "\n\nCLEF's `test_ood` per seed and its best validation epoch:\n\n" + "\n".join(per_seed))


# --- 10: CausalMER ---------------------------------------------------------------------------------------

FOLLOWS_UNIT = {"iemocap": "agreement of the most-present emotion", "mosei": "correlation of the prediction"}
KEY_METRICS = ("mean_acc", "mean_f1", "acc7", "acc2_nonzero", "f1_nonzero", "mae", "corr")


def follows_text(f: Mapping[str, float]) -> str:
    return f"{f['shortcut']:.2f} with the shortcut vs {f['label']:.2f} with the label"


def causalmer_run(*, seed: int, cfg: Any, data: Mapping[str, Any], records: Mapping[tuple[str, str], Any],
                  moved: Mapping[str, Any], attributions: Mapping[tuple[str, str], Any], model_names: Mapping[str, str], fusion: str, constant_lr: float | None) -> str:
    """Notebook 10's run: MulT and CausalMER per data set, the shortcut, inside CausalMER, the constant
    learning-rate ablation, the missing-modality study and the contributions of the modalities.

    ``records[name, model]`` is what :func:`reprolib.mer.train_and_study` returned, ``moved[name]`` the
    CausalMER record trained with its constants at ``constant_lr``, ``attributions[name, model]`` the
    integrated-gradients shares and completeness."""
    from reprolib.mer import MODELS as models

    synthetic = {name: d.synthetic for name, d in data.items()}
    kind = "synthetic" if all(synthetic.values()) else "real" if not any(synthetic.values()) else "mixed synthetic and real"
    out = [f"**This run:** size `{cfg.size}`, seed {seed}, {kind} data ({', '.join(data)}), {cfg.epochs} epochs at "
           f"lr {cfg.lr:g}, fusion `{fusion}`. Scores on `test` unless said otherwise.", "",
           "| data (metric) | model | chance | valid | test | best epoch | std of drops | mean drop | largest drop | "
           "test follows shortcut / label |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, d in data.items():
        for model in models:
            r, s = records[name, model], records[name, model]["study"]
            drops = {k: v["drop"] for k, v in s["scenarios"].items() if k != "full"}
            worst = max(drops, key=lambda k: drops[k])
            f = r["follows"]
            out.append(f"| {name} ({d.metric_name}) | {model_names[model]} | {d.chance():.3f} | {r['val']:.3f} | {r['test']:.3f} | "
                       f"{r['best_epoch']} | {s['summary']['std_drop']:.3f} | {s['summary']['mean_drop']:+.3f} | "
                       f"{drops[worst]:+.3f} ({worst}) | " + (f"{f['shortcut']:.2f} / {f['label']:.2f}" if f else "n/a") + " |")

    out += ["", "**The shortcut.**" if all(synthetic.values()) else "**The shortcut** (synthetic data only; real data has no known one)."]
    for name, d in data.items():
        m, c = records[name, "mult"], records[name, "causalmer"]
        line = (f"- {name} ({d.metric_name}), `valid` → `test`: MulT {m['val']:.3f} → {m['test']:.3f}, "
                f"CausalMER {c['val']:.3f} → {c['test']:.3f} (chance {d.chance():.3f}).")
        if d.synthetic:
            takes = [model_names[k] for k in models if records[name, k]["follows"]["shortcut"] > records[name, k]["follows"]["label"]]
            line += (f" On `test`, {FOLLOWS_UNIT.get(name, 'agreement')}: MulT {follows_text(m['follows'])}, CausalMER "
                     f"{follows_text(c['follows'])}; following the shortcut more than the label: "
                     f"{' and '.join(takes) if takes else 'neither model'}.")
        out.append(line)

    out += ["", "**Inside CausalMER** (TIE is the inference output, Z_fact the factual fusion)."]
    for name, d in data.items():
        diag = records[name, "causalmer"]["causalmer"]
        consts = {k: diag["constants"][k] for k in "tav" if k in diag["constants"]}
        steps = records[name, "causalmer"]["best_epoch"] * (len(d.splits["train"]) // cfg.batch_size)
        line = (f"- {name}: constants " + ", ".join(f"c_{k} {v:+.3f}" for k, v in consts.items())
                + f", from the checkpoint of epoch {records[name, 'causalmer']['best_epoch']}, about {steps} Adam steps at "
                f"lr {cfg.lr:g} (at most about {steps * cfg.lr:.2f} of travel); |TIE − Z_fact| is "
                f"{100 * diag['relative_correction']:.1f} % of |Z_fact|"
                + (f" (the mask fusion's bound 3 Σ|c_k| = {3 * sum(abs(v) for v in consts.values()):.3f} per logit)"
                   if fusion == "mask" else "")
                + f"; the scores of TIE and Z_fact differ by "
                f"{abs(diag['scores']['tie'] - diag['scores']['z_fact']):.3f}.")
        fol = diag.get("follows")
        if fol:
            branches = {k: v for k, v in fol.items() if k.endswith("_branch") and v}
            lead = max(branches, key=lambda k: branches[k]["shortcut"] - branches[k]["label"])
            line += (f" The branch that follows the shortcut most (over the label) is the {lead.replace('_branch', '')} branch: "
                     f"{follows_text(branches[lead])}.")
        out.append(line)
    if moved:
        out += ["", f"**Constants at lr {constant_lr:g}** (the ablation, on {', '.join(moved)}; the rest at lr {cfg.lr:g})."]
        for name, rec in moved.items():
            free, base = rec["causalmer"], records[name, "causalmer"]
            line = (f"- {name}: constants " + ", ".join(f"c_{k} {free['constants'][k]:+.2f}" for k in "tav" if k in free["constants"])
                    + f"; correction {100 * free['relative_correction']:.0f} % of |Z_fact| (was "
                    f"{100 * base['causalmer']['relative_correction']:.1f} %); test {base['test']:.3f} → {rec['test']:.3f} "
                    f"(change {rec['test'] - base['test']:+.3f})")
            if rec.get("follows") and base.get("follows"):
                line += (f"; follows the shortcut {base['follows']['shortcut']:.2f} → {rec['follows']['shortcut']:.2f}, "
                         f"the label {base['follows']['label']:.2f} → {rec['follows']['label']:.2f}")
            out.append(line + ".")
    else:
        out += ["", "The constant learning-rate ablation did not run (`constant_lr=None`)."]

    out += ["", "**Missing modalities** (std of the six drops; test − chance)."]
    for name, d in data.items():
        sm, sc = (records[name, m]["study"]["summary"]["std_drop"] for m in ("mult", "causalmer"))
        spread_ratio = f"{sc / sm:.2f}" if sm > 0 else "undefined (MulT's drops do not spread)"
        out.append(f"- {name}: std of drops MulT {sm:.3f}, CausalMER {sc:.3f} (ratio {spread_ratio}); test − chance: MulT "
                   f"{records[name, 'mult']['test'] - d.chance():+.3f}, CausalMER {records[name, 'causalmer']['test'] - d.chance():+.3f}.")
    for name in data:
        keys = [k for k in KEY_METRICS if k in records[name, "mult"]["metrics"]]
        out += ["", f"| {name} | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        out += [f"| {model_names[m]} | " + " | ".join(f"{records[name, m]['metrics'][k]:.3f}" for k in keys) + " |" for m in models]

    out += ["", "**Contributions** (shares of text / audio / vision; a drop share is undefined when no single removal "
            "lowers the score).", "", "| data | model | drop share | integrated gradients | IG completeness gap |",
            "|---|---|---|---|---|"]
    for (name, model), att in attributions.items():
        share = records[name, model]["drop_share"]
        out.append(f"| {name} | {model_names[model]} | " + " / ".join(fmt(share[k], missing="undefined") for k in ("text", "audio", "vision"))
                   + " | " + " / ".join(f"{att['shares'][k]:.2f}" for k in ("text", "audio", "vision"))
                   + (f" | {100 * att['completeness_gap'] / att['mean_abs_delta']:.1f} % |" if att["mean_abs_delta"] > 0 else " | n/a |"))
    out.append("")
    for name in data:
        spread = {m: max(attributions[name, m]["shares"].values()) - min(attributions[name, m]["shares"].values()) for m in models}
        verdict = ("more" if spread["causalmer"] < spread["mult"] else "less" if spread["causalmer"] > spread["mult"] else "as")
        out.append(f"- {name}: by integrated gradients CausalMER is {verdict} balanced than MulT (largest − smallest share "
                   f"{spread['causalmer']:.2f} vs {spread['mult']:.2f}).")
    return "\n".join(out)


def causalmer_sweep(model_names: Mapping[str, str], name: str = "sweep_causalmer_medium.json") -> str:
    """The committed CausalMER sweep (the repository's results/): its table, and per data set whether CausalMER's drops spread less than MulT's
    by more than the seeds do, the mean test − chance, and how many runs follow the shortcut."""
    from reprolib import mer
    from reprolib.mer import MODELS as models

    path = committed_results_dir() / name
    if not path.exists():
        return (f"No `{path.name}` in `{path.parent}`: run "
                "`python -m reprolib sweep --method causalmer --size medium --seeds 0 1 2`.")
    sweep = read_result(path)
    p = sweep["provenance"].get("parameters", {})
    table = {name: {**row, "variants": {model_names.get(m, m): row["variants"][m] for m in models if m in row["variants"]}}
             for name, row in sweep["metrics"].items()}
    out = [f"**Medium size** (`results/{path.name}`): mean ± sample std over seeds "
           f"{', '.join(map(str, p.get('seeds', [])))}; {p.get('epochs')} epochs, {p.get('mult', {}).get('layers')} MulT layers, "
           f"splits {p.get('splits')}; training recipe "
           f"{p.get('recipe', {}).get('name', 'engine (the file records none: it was written before the official recipe existed)')}.",
           "", mer.format_table(table), ""]
    for name, row in sweep["metrics"].items():
        v = row["variants"]
        if not {"mult", "causalmer"} <= set(v):
            continue
        m, c = v["mult"], v["causalmer"]
        d_std = c["std_drop"]["mean"] - m["std_drop"]["mean"]
        spread = max(c["std_drop"]["std"], m["std_drop"]["std"])
        runs = [r for k in models for r in v[k]["runs"] if r.get("follows")]
        took = sum(r["follows"]["shortcut"] > r["follows"]["label"] for r in runs)
        out.append(f"- {name}: CausalMER's mean std of drops is {'lower' if d_std < 0 else 'not lower'} than MulT's "
                   f"({d_std:+.3f}), {'less' if abs(d_std) < spread else 'more'} than the larger seed-to-seed std "
                   f"({spread:.3f}). Mean test − chance: MulT {m['test']['mean'] - row['chance']:+.3f}, CausalMER "
                   f"{c['test']['mean'] - row['chance']:+.3f}."
                   + (f" In {took} of {len(runs)} runs (both models, every seed) the test predictions follow the "
                      "shortcut more than the label." if runs else ""))
    return "\n".join(out)
