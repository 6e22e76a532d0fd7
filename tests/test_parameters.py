"""The parameter rules of :mod:`reprolib.parameters` and the doors that apply them.

Every parameter of every notebook's parameters cell must have a rule, its default must pass it, and
the notebook's first code cell must hand it to ``config.resolve`` / ``config.check``: a parameter
added to a notebook without all three fails here."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

from reprolib import config, parameters, paths, runner
from reprolib.notebook_meta import cell_source, load_notebook, parameters_cell_indices, parse_parameters_source
from reprolib.parameters import RULES, ParameterError, check_value

NOTEBOOKS = sorted(paths.notebooks_dir().glob(runner.NOTEBOOK_GLOB))

# name -> (values that pass, values that must be refused)
CASES: dict[str, tuple[list, list]] = {
    "size": (["smoke", "full"], ["huge", None, 1, "Smoke"]),
    "seed": ([0, 7, np.int64(3), 2**32 - 1], [-1, 2**32, "x", True, 1.0, None]),
    "data_root": ([None, "/data/CAER-S", Path("/data"), {"caer_s": "/a", "emotic": None}, {}],
                  [123, "", "  ", {"nope": "/a"}, {"caer_s": 3}, ["/a"]]),
    "epochs": ([None, 1, 30, np.int32(2)], [0, -1, 2.5, "3", True, False, np.bool_(True)]),
    "lr": ([None, 1, 1e-3, np.float32(0.1)], [0, -1e-3, math.nan, math.inf, "abc", True]),
    "batch_size": ([None, 1, 64], [0, -4, 8.0, "64", True]),
    "bias": ([0, 0.9, 1, 1.0], [1.5, -0.1, math.nan, None, "0.9", True]),
    "prior_strength": ([0.4, 0], [1.01, None, "x"]),
    "expression_noise": ([0.2, 1], [-0.2, None]),
    "n_context_groups": ([None, 2, 16], [1, 0, 7.0]),
    "datasets": ([None, ["caer_s"], ("caer_s", "emotic"), ["iemocap", "mosei"]],
                 [[], ["nope"], "caer_s", ["caer_s", "caer_s"], [1], {"caer_s"}]),
    "backbone": ([None, "small", "caer", "resnet18"], ["resnet9", 18, ""]),
    "context_weights": ([None, "w.pth.tar", Path("w.pth")], [42, "", ["w"]]),
    "places365_weights": ([None, "places.pth.tar"], [0, ""]),
    "dictionary_sizes": ([None, [4, 8, 16, 32], (16,)], [[], [0, 8], [8, 8], [4.0], "4", [True, 4]]),
    "main_size": ([None, 16], [1, "16", 16.0]),
    "dictionary_size": ([None, 256], [0, "16"]),
    "ablation_sizes": ([None, [], [4, 64]], [[1], [64, 64], 64]),
    "baselines": ([None, ["caernet"], ["emotnet", "caernet", "gnncnn", "cdnet", "emoticon"]],
                  [[], "caernet", ["bogus"], ["caernet", "caernet"]]),
    "ablations": ([None, [], ["no_kl", "baseline_first"]], [["nope"], "no_kl"]),
    "text_weights": ([None, "albert"], [1, ""]),
    "fusion": (["mask", "tanh", "sum", "hm", "rubi"], ["bogus", None, "MASK"]),
    "kl": (["auto", "joint", "pairs", "bernoulli", "off"], ["on", None, False]),
    "constant_lr": ([None, 0.03, 1], [0, -0.03, math.nan, "0.03"]),
    "ig_steps": ([1, 16], [0, None, 16.0]),
    "ig_samples": ([None, 1, 150], [0, -1, 1.5]),
    "results_from": ([None, "/tmp/results", Path("r")], [123, ""]),
    "weight_decay": ([0, 1e-4], [-1.0, math.nan, None]),
    "momentum": ([0, 0.9, 1], [1.5, -0.1, None]),
    "lr_step": ([None, 1, 10], [0, 2.0]),
    "lr_gamma": ([0.1, 1, 2], [0, -0.1, None]),
    "clip_grad_norm": ([None, 0.8, 5], [0, -0.8, math.nan, "0.8"]),
    "plateau_patience": ([None, 1, 20], [0, 2.5, True]),
    "early_stopping": ([None, 0, 3], [-1, 3.0, True, "3"]),
    "recipe": (["official", "engine"], ["paper", None, 1]),
    "num_workers": ([None, 0, 4], [-1, 1.0]),
    "jobs": ([None, 1, 2], [0, -1, "2"]),
    "cell_timeout": ([None, 1, 0.5], [0, -5, math.nan, math.inf]),
    "seeds": ([[0], [0, 1, 2], (5,)], [[], [1, 1], [-1], [0.0], 0]),
    "repeats": ([1, 5], [0, None]),
    "device": ([None, "cpu", "cuda", "cuda:1", "mps"], ["gpu", "cuda:x", 0, ""]),
}


def test_every_rule_has_cases():
    assert sorted(CASES) == sorted(RULES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_good_values_pass_unchanged(name):
    for value in CASES[name][0]:
        assert check_value(name, value) is value


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_values_raise_naming_the_parameter(name):
    for value in CASES[name][1]:
        with pytest.raises(ParameterError) as err:
            check_value(name, value)
        message = str(err.value)
        assert message.startswith(f"{name} must be "), message
        assert "got " in message


def test_message_says_value_and_expectation():
    with pytest.raises(ParameterError, match=r"^batch_size must be an integer >= 1, or None \(the size preset\), "
                                             r"got 0$"):
        check_value("batch_size", 0)
    with pytest.raises(ParameterError, match="got 'abc'"):
        check_value("lr", "abc")


def test_parameter_error_is_one_class_everywhere():
    assert runner.ParameterError is parameters.ParameterError is config.ParameterError
    assert issubclass(ParameterError, ValueError)
    with pytest.raises(KeyError, match="no parameter rule for 'nonsense'"):
        check_value("nonsense", 1)


# --------------------------------------------------------------------------- the notebooks


def _cells(path: Path) -> tuple[dict, str]:
    """A notebook's parameters-cell values and the source of the code cell after it (the door)."""
    nb = load_notebook(path)
    first = parameters_cell_indices(nb)[0]
    door = next(c for c in nb["cells"][first + 1:] if c.get("cell_type") == "code")
    return parse_parameters_source(cell_source(nb["cells"][first])), cell_source(door)


def _parse(source: str) -> ast.Module:
    """A cell's code without its IPython magics (``%matplotlib inline``)."""
    return ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))


def _checked_at_the_door(source: str) -> set[str]:
    """Names the door cell passes to ``config.resolve`` (size, the given dict, keywords) or ``config.check``."""
    names: set[str] = set()
    for node in ast.walk(_parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "config"):
            continue
        if node.func.attr == "resolve":
            size, given = node.args[0], node.args[1]
            assert isinstance(size, ast.Name) and isinstance(given, ast.Call)
            names.add(size.id)
            names.update(k.arg for k in given.keywords if isinstance(k.value, ast.Name) and k.value.id == k.arg)
        if node.func.attr in ("resolve", "check"):
            names.update(k.arg for k in node.keywords if isinstance(k.value, ast.Name) and k.value.id == k.arg)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parameter_has_a_rule_and_its_default_passes(path):
    values, _ = _cells(path)
    missing = sorted(set(values) - set(RULES))
    assert not missing, f"{path.name}: no rule in reprolib.parameters.RULES for {missing}"
    for name, value in values.items():
        check_value(name, value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parameter_is_checked_at_the_door(path):
    values, door = _cells(path)
    unchecked = sorted(set(values) - _checked_at_the_door(door))
    assert not unchecked, f"{path.name}: the code cell after the parameters cell does not check {unchecked}"


def test_notebook_choices_mirror_the_library():
    from reprolib import experiments, mer, sweeps
    from reprolib.causal.causalmer import KL_MODES
    from reprolib.causal.fusion import FUSION_MODES
    from reprolib.models.backbones import ENCODER_NAMES

    assert parameters.FUSION_MODES == FUSION_MODES and parameters.KL_MODES == KL_MODES
    assert parameters.IMAGE_DATASETS == experiments.DATASETS
    assert parameters.MULT_DATASETS == experiments.MULT_DATASETS == mer.DATASETS
    assert set(parameters.BASELINES) == set(sweeps.baseline_builders("smoke"))
    assert set(parameters.BACKBONES) == set(ENCODER_NAMES) | {"caer"}
    assert config.SIZES == runner.SIZES == parameters.SIZES
    _, door = _cells(paths.notebooks_dir() / "09_clef.ipynb")
    ablations = next(n.value for n in ast.walk(_parse(door))
                     if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "ABLATIONS")
    assert tuple(k.value for k in ablations.keys) == parameters.ABLATIONS


# --------------------------------------------------------------------------- config.resolve

PRESETS = {"smoke": {"datasets": ["emotic"], "epochs": 2, "lr": 0.1, "views": (1, 2)},
           "full": {"datasets": ["caer_s", "emotic"], "epochs": 30, "lr": 0.01, "views": (3, 4)}}


def test_resolve_checks_given_others_and_presets():
    cfg = config.resolve("full", {"epochs": 3, "lr": None, "datasets": None}, PRESETS, seed=1, data_root=None)
    assert (cfg.size, cfg.epochs, cfg.lr, cfg.datasets) == ("full", 3, 0.01, ["caer_s", "emotic"])
    assert not hasattr(cfg, "seed")  # checked, not merged
    with pytest.raises(ParameterError, match="^epochs must be"):
        config.resolve("smoke", {"epochs": 0}, PRESETS)
    with pytest.raises(ParameterError, match="^seed must be"):
        config.resolve("smoke", {}, PRESETS, seed=-1)
    with pytest.raises(ParameterError, match="^lr must be"):
        config.resolve("smoke", {}, {**PRESETS, "smoke": {**PRESETS["smoke"], "lr": 0}})
    with pytest.raises(KeyError, match="no parameter rule"):
        config.resolve("smoke", {}, PRESETS, made_up=1)


def test_resolve_narrows_names_to_the_notebooks_presets():
    assert config.resolve("smoke", {"datasets": ["caer_s"]}, PRESETS).datasets == ["caer_s"]
    with pytest.raises(ParameterError, match=r"^datasets must be .* from 'caer_s', 'emotic', or None"):
        config.resolve("smoke", {"datasets": ["iemocap"]}, PRESETS)


def test_resolve_takes_a_notebooks_presets_by_name():
    from reprolib import presets

    cfg = config.resolve("smoke", {"epochs": 3}, "04_baseline_caernet", seed=0, data_root=None)
    assert cfg.epochs == 3 and cfg.datasets == ["caer_s"] and cfg.backbone == "caer"
    assert config.resolve("full", {}, "04_baseline_caernet").epochs == presets.PRESETS["04_baseline_caernet"]["full"]["epochs"]
    cfg.views["caer_s"] = None  # a notebook may change its config without touching the presets
    assert presets.PRESETS["04_baseline_caernet"]["smoke"]["views"]["caer_s"] is not None
    with pytest.raises(KeyError, match="no presets for notebook"):
        config.resolve("smoke", {}, "99_nothing")
    line = config.describe(cfg)
    assert line.startswith("size=smoke: datasets=['caer_s'], backbone=caer, epochs=3") and "views" not in line


@pytest.fixture()
def folders(tmp_path):
    for name in ("CAER-S", "emotic"):
        (tmp_path / name).mkdir()
    (tmp_path / "iemocap_data.pkl").write_bytes(b"")
    return tmp_path


def test_data_roots_one_path_serves_a_notebook_that_reads_one_dataset(folders):
    cfg = config.resolve("smoke", {}, "04_baseline_caernet")
    assert config.data_roots(None, "04_baseline_caernet", cfg) == {"caer_s": None}
    assert config.data_roots(str(folders / "CAER-S"), "04_baseline_caernet", cfg) == {"caer_s": folders / "CAER-S"}
    one = config.resolve("smoke", {}, "01_context_bias")
    assert config.data_roots(str(folders / "CAER-S"), "01_context_bias", one) == {"caer_s": folders / "CAER-S"}


def test_data_roots_refuses_one_path_where_several_datasets_are_read(folders):
    cfg = config.resolve("smoke", {}, "08_ccim")  # caernet on CAER-S and emotnet on EMOTIC
    with pytest.raises(ParameterError, match=r"one path .* but 08_ccim reads \['caer_s', 'emotic'\]: pass a dict"):
        config.data_roots(str(folders / "CAER-S"), "08_ccim", cfg)
    narrowed = config.resolve("smoke", {"baselines": ["caernet"]}, "08_ccim")
    assert config.data_roots(str(folders / "CAER-S"), "08_ccim", narrowed) == {"caer_s": folders / "CAER-S"}


def test_data_roots_dict_must_name_every_dataset_read_and_may_name_others(folders):
    cfg = config.resolve("smoke", {}, "02_confounder_dictionary")
    both = {"caer_s": str(folders / "CAER-S"), "emotic": str(folders / "emotic"), "iemocap": str(folders / "nope")}
    assert config.data_roots(both, "02_confounder_dictionary", cfg) == {
        "caer_s": folders / "CAER-S", "emotic": folders / "emotic"}  # iemocap is not read here: not checked
    assert config.data_roots({"caer_s": None, "emotic": str(folders / "emotic")}, "02_confounder_dictionary", cfg) == {
        "caer_s": None, "emotic": folders / "emotic"}  # None: synthetic on purpose
    with pytest.raises(ParameterError, match=r"names no folder for \['emotic'\].*'emotic': <folder>"):
        config.data_roots({"caer_s": str(folders / "CAER-S")}, "02_confounder_dictionary", cfg)


def test_data_roots_missing_folder_or_wrong_kind_is_an_error_before_any_data_is_read(folders):
    cfg = config.resolve("smoke", {}, "04_baseline_caernet")
    with pytest.raises(ParameterError, match="data_root for caer_s: '/nonexistent/CAER-S' does not exist"):
        config.data_roots("/nonexistent/CAER-S", "04_baseline_caernet", cfg)
    with pytest.raises(ParameterError, match="is a file; caer_s needs its dataset folder"):
        config.data_roots(str(folders / "iemocap_data.pkl"), "04_baseline_caernet", cfg)
    mer_cfg = config.resolve("smoke", {"datasets": ["iemocap"]}, "10_causalmer_missing_modality")
    assert config.data_roots(str(folders / "iemocap_data.pkl"), "10_causalmer_missing_modality", mer_cfg) == {
        "iemocap": folders / "iemocap_data.pkl"}  # a MulT pickle may be the file itself
    with pytest.raises(ParameterError, match="^data_root must be"):
        config.resolve("smoke", {}, "04_baseline_caernet", data_root={"cifar": "/x"})
    with pytest.raises(ParameterError, match="^data_root must be"):
        config.resolve("smoke", {}, "04_baseline_caernet", data_root=3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_reads_data_through_data_roots_and_records_what_it_read(path):
    """One shared function decides what data_root means; no notebook reads the parameter itself."""
    from reprolib import presets

    nb = load_notebook(path)
    if path.stem not in presets.PRESETS:
        assert "data_root" not in parse_parameters_source(cell_source(nb["cells"][parameters_cell_indices(nb)[0]]))
        return
    _, door = _cells(path)
    assert "roots = config.data_roots(data_root, NOTEBOOK, cfg)" in door
    later = "\n".join(cell_source(c) for c in nb["cells"][parameters_cell_indices(nb)[0] + 2:] if c.get("cell_type") == "code")
    assert "isinstance(data_root" not in later and not re.search(r"data_root=root\b", later)
    assert "roots[" in later
    assert re.search(r"write_metrics\(NOTEBOOK, metrics, params, data=", later), path.name


def test_check_prints_and_returns_nothing(capsys):
    assert config.check(size="smoke", results_from=None) is None
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- the runner and the CLI


def test_build_parameters_checks_known_names_and_passes_the_others():
    assert runner.build_parameters("smoke", ["epochs=3", "lr=1", "not_a_rule='x'"]) == {
        "epochs": 3, "lr": 1, "not_a_rule": "x"}
    for text, name in (("batch_size=0", "batch_size"), ("epochs=True", "epochs"), ("lr=abc", "lr"),
                       ("seed=None", "seed"), ("size=medium", "size"), ("fusion=bogus", "fusion")):
        with pytest.raises(ParameterError, match=f"^{name} must be"):
            runner.build_parameters("smoke", [text])


def test_reproduce_refuses_bad_jobs_before_anything_runs(tmp_path):
    with pytest.raises(ParameterError, match="^jobs must be"):
        runner.reproduce(jobs=0, notebooks_folder=tmp_path, output_dir=tmp_path / "out", progress=False)
    with pytest.raises(ParameterError, match="^cell_timeout must be"):
        runner.reproduce(execution_timeout=-1.0, notebooks_folder=tmp_path, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, option", [
    (["reproduce", "--jobs", "0"], "--jobs"),
    (["reproduce", "--cell-timeout", "nan"], "--cell-timeout"),
    (["refresh", "01", "--jobs", "x"], "--jobs"),
    (["seeds", "--jobs", "0"], "--jobs"),
    (["sweep", "--seeds", "-1"], "--seeds"),
    (["bench", "--batch-size", "0"], "--batch-size"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--device", "gpu"], "--device"),
])
def test_cli_options_are_checked_by_argparse(argv, option, capsys):
    from reprolib.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected " in err, err


def test_cli_refuses_a_bad_override_and_repeated_seeds(capsys, monkeypatch):
    from reprolib import seeds
    from reprolib.__main__ import main

    def never(*_args, **_kwargs):
        raise AssertionError("started despite a bad value")

    monkeypatch.setattr(runner, "run_notebooks", never)
    monkeypatch.setattr(seeds, "run", never)
    assert main(["reproduce", "-p", "batch_size=0"]) == 2
    assert "batch_size must be an integer >= 1" in capsys.readouterr().err
    assert main(["seeds", "--seeds", "1", "1"]) == 2
    assert "seeds must be a non-empty list of distinct values" in capsys.readouterr().err


def test_option_converts_and_checks():
    import argparse

    assert parameters.option("jobs")("3") == 3
    assert parameters.option("cell_timeout", float)("2.5") == 2.5
    for text in ("0", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected an integer >= 1, got '{text}'"):
            parameters.option("jobs")(text)


# --------------------------------------------------------------------------- engine.fit


def _fit_arguments(**changes):
    return {"epochs": 2, "lr": 1e-3, "batch_size": 4, "seed": 0, "weight_decay": 1e-4, "lr_step": None,
            "lr_gamma": 0.1, "momentum": 0.9, "num_workers": None, "clip_grad_norm": None, "plateau_patience": None,
            "early_stopping": 0, **changes}


def test_check_fit_refuses_none_where_fit_has_no_preset():
    parameters.check_fit(_fit_arguments())
    parameters.check_fit(_fit_arguments(lr=1, epochs=np.int64(1), lr_step=3, num_workers=0))
    for name in ("epochs", "lr", "batch_size", "seed", "weight_decay", "lr_gamma", "momentum", "early_stopping"):
        with pytest.raises(ParameterError, match=rf"^{name} must be [^(]*, got None$"):
            parameters.check_fit(_fit_arguments(**{name: None}))


def test_fit_checks_before_building_anything(monkeypatch):
    import torch

    from reprolib import engine

    monkeypatch.setattr(engine, "seed_everything", lambda *_: (_ for _ in ()).throw(AssertionError("reached")))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ParameterError, match="^batch_size must be an integer >= 1, got 0$"):
        engine.fit(model, [], [], batch_size=0)
    with pytest.raises(ParameterError, match="^epochs must be"):
        engine.fit(model, [], [], epochs=True)
