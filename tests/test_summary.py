"""The results summary (reprolib.summary, reprolib.published) on hand-made results folders."""

import json
import os
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("agg")

from reprolib import paths, plots, published, summary  # noqa: E402
from reprolib.published import Published  # noqa: E402


def _write(folder, name, metrics, data=None, **parameters):
    """A results file; ``data`` = dataset -> "synthetic" / "real", the record of what the run read."""
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {"parameters": parameters}
    if data:
        provenance["data"] = {kind: {"dataset": kind, "data": what, "root": f"/{kind}", "fingerprint": "0" * 12,
                                     "files": 1} for kind, what in data.items()}
    (folder / f"{name}.json").write_text(json.dumps({"metrics": metrics, "provenance": provenance}))


def _runs(values):
    return [{"seed": s, "test": t, "test_ood": o} for s, (t, o) in values.items()]


@pytest.fixture
def clef_folder(tmp_path):
    """09 at smoke size (seed 0) and a 3-seed CLEF sweep whose method lacks seed 2."""
    _write(tmp_path, "09_clef", {"scores": {"caernet": {"baseline": {"test": 0.9, "test_ood": 0.2},
                                                       "clef": {"test": 0.8, "test_ood": 0.5}}}},
           data={"caer_s": "synthetic"}, size="smoke", seed=0, data_root=None)
    _write(tmp_path, "sweep_clef_medium", {"caernet": {"dataset": "caer_s", "metric": "accuracy", "chance": 1 / 7, "variants": {
        "baseline": {"runs": _runs({0: (0.5, 0.1), 1: (0.6, 0.2), 2: (0.7, 0.3)})},
        "clef": {"runs": _runs({0: (0.6, 0.4), 1: (0.8, 0.4)})}}}}, size="medium", seeds=[0, 1, 2])
    return tmp_path


def test_published_values_need_a_status_and_unknown_ones_none():
    with pytest.raises(ValueError, match="status"):
        Published(31.67)
    with pytest.raises(ValueError, match="status"):
        Published(None, "verified")
    with pytest.raises(ValueError, match="not one of"):
        Published(1.0, "guessed")
    assert Published(83.4, "verified").label() == "83.4"
    assert Published(75.86, "quoted").label() == "75.86 (quoted)"
    assert published.UNKNOWN.label() == "unknown" and not published.UNKNOWN.known


def test_published_table_holds_only_what_the_notes_found():
    known = {key: {w: p.value for w, p in pair.items() if p.known} for key, pair in published.PUBLISHED.items()}
    assert known["causalmer", "mult", "iemocap"] == {"baseline": 84.3, "method": 83.4}
    assert known["causalmer", "mult", "mosei"] == {"baseline": 51.8, "method": 50.1}
    assert known["ccim", "emoticon", "emotic"] == {"baseline": 35.28, "method": 39.13}  # CCIM Table 1
    assert known["clef", "caernet", "caer_s"] == {"baseline": 73.47, "method": 75.86}   # CLEF Table 3
    assert known["ccim", "cdnet", "caer_s"] == {"baseline": 85.33}                      # CD-Net is not in CCIM
    assert all(p.status == "verified" for (paper, _, _), pair in published.PUBLISHED.items() if paper != "causalmer"
               for p in pair.values() if p.known)
    assert all(p.source for pair in published.PUBLISHED.values() for p in pair.values() if p.known)
    assert published.published("ccim", "nomodel", "nodata") == {"baseline": published.UNKNOWN, "method": published.UNKNOWN}


def test_deltas_are_paired_by_seed(clef_folder):
    rows = summary.collect(clef_folder, papers=["clef"])["clef"]
    assert [r.setting.label for r in rows] == ["smoke · seed 0 · synthetic", "medium · 3 seeds · synthetic"]
    smoke, medium = rows
    assert smoke.scores["test_ood"]["delta"] == pytest.approx({"mean": 0.3, "std": 0.0, "n": 1})
    # baseline over seeds 0-2, CLEF over 0-1, the delta only over the seeds both have: 0.3 and 0.2
    assert medium.scores["test_ood"]["baseline"] == pytest.approx({"mean": 0.2, "std": 0.1, "n": 3})
    assert medium.scores["test_ood"]["delta"] == pytest.approx({"mean": 0.25, "std": 0.0707107, "n": 2})
    assert medium.scores["test"]["delta"]["mean"] == pytest.approx(0.15)
    assert medium.chance == pytest.approx(1 / 7) and smoke.chance is None
    assert summary.delta(rows, "caernet", "CLEF", "test_ood", "medium") is medium.scores["test_ood"]["delta"]
    assert summary.delta(rows, "caernet", "CLEF", "test_ood", "full") is None


def test_clef_is_compared_with_the_default_loss_control_where_the_baseline_has_its_own_loss(tmp_path):
    _write(tmp_path, "09_clef", {"scores": {"emotnet": {"baseline": {"test": 0.30, "test_ood": 0.15},
                                                       "baseline_default_loss": {"test": 0.50, "test_ood": 0.40},
                                                       "clef": {"test": 0.45, "test_ood": 0.45}}}},
           data={"emotic": "synthetic"}, size="smoke", seed=0, data_root=None)
    fair, own = summary.collect(tmp_path, papers=["clef"])["clef"]
    assert (fair.method, fair.against) == ("CLEF", "baseline_default_loss")
    assert fair.scores["test_ood"]["delta"]["mean"] == pytest.approx(0.05)  # the headline: over the fair control
    assert (own.method, own.against) == (f"CLEF {summary.AGAINST_OWN_LOSS}", "baseline")
    assert own.scores["test_ood"]["delta"]["mean"] == pytest.approx(0.30)
    table = summary.own_loss_table([fair, own])
    assert "| EMOT-Net (smoke · seed 0 · synthetic) | test_ood | 15.0 | 40.0 | 45.0 | +30.0 | +5.0 |" in table
    emotic = summary.paper_table([fair, own], "clef", "emotic")
    assert "| EMOT-Net | 27.93 | 31.67 | +3.74 | 50.0 (CE/BCE control) | 45.0 | -5.0 | +5.0 |" in emotic


def test_table_prints_percent_published_and_spread(clef_folder):
    text = summary.format_rows(summary.collect(clef_folder, papers=["clef"])["clef"])
    assert "CAER-Net-S on CAER-S (accuracy, %)" in text
    assert "without 73.47 | with CLEF 75.86" in text
    assert "+30.0" in text and "+25.0 ± 7.1" in text and "20.0 ± 10.0" in text
    assert summary.format_rows([]).startswith("(no results")


def test_real_data_rows_are_labelled_and_have_no_ood(tmp_path):
    _write(tmp_path, "09_clef", {"scores": {"caernet": {"baseline": {"test": 0.74}, "clef": {"test": 0.76}}}},
           data={"caer_s": "real"}, size="full", seed=3, data_root={"caer_s": "/data/CAER-S"})
    _write(tmp_path, "10_causalmer_missing_modality", {"iemocap": {
        "chance": None, "mult": {"test": 0.80, "study": {"summary": {"std_drop": 0.05}}},
        "causalmer": {"test": 0.82, "study": {"summary": {"std_drop": 0.01}}}}},
        data={"iemocap": "real"}, size="full", seed=0, data_root={"iemocap": "/data/iemocap_data.pkl"})
    found = summary.collect(tmp_path)
    assert found["ccim"] == []
    (clef,), (mer,) = found["clef"], found["causalmer"]
    assert clef.setting.label == "full · seed 3 · real" and clef.scores["test_ood"]["delta"] is None
    assert mer.setting.data == "real" and mer.scores["std_drop"]["delta"]["mean"] == pytest.approx(-0.04)
    text = summary.format_rows(found["clef"])
    assert "n/a" in text and "+2.0" in text
    assert "std of drops: without unknown | with CausalMER unknown" in summary.format_rows(found["causalmer"])
    for paper in ("clef", "causalmer"):
        fig = plots.paper_summary(found[paper], title=paper)
        assert len(fig.axes) == 2
        matplotlib.pyplot.close(fig)


def test_data_kind_reads_the_record_of_what_was_read_never_the_parameter():
    real = {"data": {"caer_s": {"dataset": "caer_s", "data": "real", "root": "/c", "fingerprint": "ab", "files": 3}}}
    assert summary.data_kind(real, "caer_s") == "real"
    synthetic = {"data": {"emotic": {"dataset": "emotic", "data": "synthetic"}}}
    assert summary.data_kind(synthetic, "emotic") == "synthetic"
    # a data_root parameter alone proves nothing: the run may not have read it
    assert summary.data_kind({"parameters": {"data_root": "/data"}}, "emotic") == "unrecorded"
    assert summary.data_kind({}, "emotic") == "unrecorded"
    assert summary.data_kind({}, "emotic", from_sweep=True) == "synthetic"  # sweeps take no data_root
    assert summary.data_kind(real, "emotic") == "unrecorded"


def test_bad_results_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="make reproduce"):
        summary.collect(tmp_path / "missing")
    (tmp_path / "08_ccim.json").write_text("{not json")
    with pytest.raises(ValueError, match="08_ccim.json: not valid JSON"):
        summary.collect(tmp_path)
    (tmp_path / "08_ccim.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="08_ccim.json: expected an object"):
        summary.collect(tmp_path)


def test_committed_results_summarise():
    """The repository's own results: every paper has smoke and medium rows on synthetic data."""
    found = summary.collect(paths.repo_root() / "results")
    for paper, rows in found.items():
        sizes = {r.setting.size for r in rows}
        assert {"smoke", "medium"} <= sizes, (paper, sizes)


def test_notebook_runs_on_real_data_results(tmp_path):
    """Notebook 11 end to end (papermill) on a folder holding only real-data results."""
    results = tmp_path / "in"
    _write(results, "08_ccim", {"scores": {"emotnet": {"baseline": {"test": 0.27}, "dot_product": {"test": 0.28},
                                                      "additive": {"test": 0.26}}}},
           data={"emotic": "real"}, size="full", seed=0, data_root={"emotic": "/data/emotic"})
    out = tmp_path / "out"
    env = dict(os.environ, REPROLIB_RESULTS=str(out), TQDM_DISABLE="1", MPLBACKEND="agg")
    nb = paths.notebooks_dir() / "11_summary.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(nb), str(tmp_path / "run.ipynb"), "-p", "results_from",
                    str(results), "-p", "size", "full", "--cwd", str(nb.parent), "-k", "python3"],
                   check=True, env=env, capture_output=True)
    written = json.loads((out / "11_summary.json").read_text())["metrics"]
    assert [r["data"] for r in written["ccim"]] == ["real", "real"]
    assert written["clef"] == [] and written["causalmer"] == []
    assert (out / "figures" / "11_summary_ccim.png").exists()
    executed = (tmp_path / "run.ipynb").read_text()
    assert "nothing yet" in executed and "no claims apply to this run" in executed


# --------------------------------------------------------------------------- the papers' layout


def test_each_ccim_form_gets_its_own_published_number():
    dot = summary.published_method("ccim", "emotnet", "emotic", "CCIM dot-product")
    additive = summary.published_method("ccim", "emotnet", "emotic", "CCIM additive")
    assert (dot.value, additive.value) == (30.88, 30.79)  # main table; Table 4's "additive attention" row
    assert "Table 4" in additive.source
    # Table 4 covers EMOT-Net and EmotiCon only: the main table never stands in for another form
    assert not summary.published_method("ccim", "caernet", "caer_s", "CCIM additive").known
    assert "additive 30.79" in summary.published_line("ccim", "emotnet", "emotic", ["CCIM dot-product", "CCIM additive"])


def test_paper_table_has_the_papers_rows_and_gains_beside_ours(clef_folder):
    found = summary.collect(clef_folder)
    lines = summary.paper_table(found["clef"], "clef", "caer_s")
    assert lines[0].startswith("| baseline | paper: w/o | paper: + CLEF | paper: gain | smoke · seed 0 · synthetic: w/o")
    rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert set(rows) == {"EMOT-Net", "GNN-CNN", "CAER-Net-S", "CD-Net", "EmotiCon"}  # every baseline of the table
    caer = rows["CAER-Net-S"].strip("| ").split(" | ")
    assert caer[1:4] == ["73.47", "75.86", "+2.39"]
    assert caer[4:8] == ["90.0", "80.0", "-10.0", "+30.0"]  # smoke: one seed
    assert caer[10] == "+15.0 ± 7.1"  # medium: paired over seeds 0 and 1 only: +10, +20
    assert "not run" in rows["EMOT-Net"]


def test_ccim_against_clef_is_table_5_beside_ours():
    found = summary.collect(paths.repo_root() / "results")
    lines = summary.ccim_against_clef(found["ccim"], found["clef"])
    cells = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ") for line in lines[2:]}
    assert cells["EMOT-Net (EMOTIC)"][1:4] == ["27.93", "30.88", "31.67"]
    assert cells["CAER-Net-S (CAER-S)"][1:4] == ["73.47", "74.81", "75.86"]
    assert cells["EMOT-Net (CAER-S)"][4].startswith("not run")
    medium = next(i for i, h in enumerate(lines[0].strip("| ").split(" | ")) if h.startswith("medium"))
    assert "±" in cells["CAER-Net-S (CAER-S)"][medium]


def test_gains_figure_draws_every_published_baseline(clef_folder):
    found = summary.collect(clef_folder)
    fig = plots.gains_against_published(found["clef"], "clef")
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["EMOTIC", "CAER-S"]
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["EMOT-Net", "GNN-CNN", "CAER-Net-S", "CD-Net", "EmotiCon"]
    plots.plt.close(fig)


# --------------------------------------------------------------------------- the papers' ablations

def _ablation_payload(method, model, dataset, variants, seeds=(0, 1, 2)):
    from reprolib import sweeps

    def runs(test, ood):
        return {"runs": [{"seed": s, "test": test + 0.01 * s, "test_ood": ood + 0.02 * s} for s in seeds]}

    return {"metrics": {model: {"dataset": dataset, "metric": "mAP", "chance": 0.1,
                                "variants": {v: runs(*scores) for v, scores in variants.items()}}},
            "provenance": {"parameters": {"paper_rows": sweeps.ABLATION_ROWS[method],
                                          "not_expressible": list(sweeps.NOT_EXPRESSIBLE[method])}}}


def test_ccim_ablation_table_puts_each_paper_row_beside_ours(tmp_path):
    payload = _ablation_payload("ccim_ablations", "emotnet", "emotic", {
        "baseline": (0.40, 0.30), "ccim": (0.45, 0.32), "random_dictionary": (0.41, 0.30), "no_prior": (0.44, 0.33)})
    (tmp_path / "sweep_ccim_ablations_medium.json").write_text(json.dumps(payload))
    read = summary.read_ablations(tmp_path, "ccim")
    lines = summary.ablation_table(read, "ccim", "emotnet")
    text = "\n".join(lines)
    row = next(l for l in lines if l.startswith("| random dictionary Z"))
    assert "| 26.56 | 73.36 | 57.45 | random_dictionary | 42.0 ± 1.0 | 32.0 ± 2.0 | -4.0 ± 0.0 | -2.0 ± 0.0 |" in row
    assert next(l for l in lines if l.startswith("| EMOT-Net without CCIM")).count("27.93") == 1
    assert "| ccim | 46.0 ± 1.0 | 34.0 ± 2.0 |  |  |" in text  # the full method: no Δ against itself
    assert "| additive attention | 30.79 | 75.64 | 60.85 | additive | not run |" in text
    imagenet = next(l for l in lines if l.startswith("| ImageNet instead of Places365"))
    assert "not expressible here" in imagenet
    assert summary.read_ablations(tmp_path, "clef") is None
    # the ablation sweep is not read as a second CCIM sweep
    assert summary.collect(tmp_path)["ccim"] == []


def test_clef_ablation_table_and_ccim_dictionary_sizes(tmp_path):
    payload = _ablation_payload("clef_ablations", "cdnet", "caer_s", {
        "baseline": (0.90, 0.20), "clef": (0.80, 0.80), "context_alone": (0.30, 0.14), "star_random": (0.70, 0.60)})
    lines = summary.ablation_table(payload, "clef", "cdnet")
    assert any(l.startswith("| vanilla | 28.87 | 85.33 | baseline | 91.0 ± 1.0 | 22.0 ± 2.0 | +10.0 ± 0.0 | -60.0 ± 0.0 |")
               for l in lines)
    assert any(l.startswith("| without the CAER model (context branch alone) | 19.64 | 62.87 | context_alone |") for l in lines)

    sizes = _ablation_payload("ccim_ablations", "emotnet", "emotic", {
        "ccim": (0.45, 0.32), "N4": (0.40, 0.30), "N64": (0.42, 0.31)})
    table, curve = summary.dictionary_size_table(sizes, "emotnet")
    assert table[2] == "| ×0.25 | 64 | 28.35 | 75.25 | 4 | 41.0 ± 1.0 | 32.0 ± 2.0 |"
    assert table[3].startswith("| ×0.5 | 128 | 30.23 | 75.82 | not run | n/a")
    assert table[4].startswith("| ×1 | 256 | 30.88 | 75.56 | 16 | 46.0")
    assert curve["ratio"] == [0.25, 0.5, 1.0, 2.0, 4.0] and curve["test"][1] is None
    assert curve["paper"]["emotic"] == [28.35, 30.23, 30.88, 30.52, 28.79]
    fig = plots.dictionary_size_curve(curve, "EMOT-Net")
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel() == "mAP (%)"
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("paper", ["ccim", "clef", "causalmer"])
def test_causal_graphs_mark_the_removed_path_and_the_cut_edges(paper):
    panels = plots.CAUSAL_GRAPHS[paper]
    assert len(panels) == 2
    kinds = [{kind for _, _, kind in edges} for _, _, edges, _ in panels]
    assert "shortcut" in kinds[0] and "cut" not in kinds[0]  # the factual / observed graph
    assert "cut" in kinds[1]  # the intervened / counterfactual graph removes edges
    for _, nodes, edges, _ in panels:
        names = {label.split("\n")[0] for _, _, label in nodes.values()}
        assert {n for a, b, _ in edges for n in (a, b)} <= names | set(nodes)
    fig = plots.causal_graph(paper)
    assert len(fig.axes) == 2 and all(ax.get_title() for ax in fig.axes)
    matplotlib.pyplot.close(fig)


def test_collect_reads_each_file_from_the_first_folder_that_has_it(tmp_path, clef_folder):
    lab = tmp_path / "lab"
    _write(lab, "09_clef", {"scores": {"caernet": {"baseline": {"test": 0.5, "test_ood": 0.1},
                                                  "clef": {"test": 0.5, "test_ood": 0.4}}}},
           data={"caer_s": "synthetic"}, size="smoke", seed=0, data_root=None)
    rows = summary.collect([lab, clef_folder], papers=["clef"])["clef"]
    smoke = next(r for r in rows if r.setting.size == "smoke")
    assert smoke.setting.source == "09_clef.json" and smoke.scores["test_ood"]["delta"]["mean"] == pytest.approx(0.3)
    assert any(r.setting.size == "medium" for r in rows)  # the sweep comes from the second folder
    assert summary.collect([tmp_path / "missing", clef_folder], papers=["clef"])["clef"]
    with pytest.raises(FileNotFoundError):
        summary.collect([tmp_path / "missing"])
