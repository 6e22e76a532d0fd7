"""Bad parameter values at every door: a notebook's first code cell, ``reprolib`` command-line options,
``runner.build_parameters`` and ``engine.fit``. Each must stop at once with an error that names the
parameter, before any data is read or any notebook, sweep or training starts."""

from __future__ import annotations

import io
import math
import os
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from unittest import mock

from .harness import ROOT, Attempt, case


class Refused(Exception):
    """The command line's refusal (non-zero exit and its stderr), as an exception the harness can judge."""


class _Started(Exception):
    """Raised by a stub standing in for the work behind the door: reaching it means the bad value got in."""


def _started(*_args, **_kwargs):
    raise _Started


def notebook_door(stem: str, **overrides):
    """Run ``stem``'s parameters cell, the overrides as papermill injects them, then the code cell after
    it (the door), in a fresh namespace; IPython magics are dropped, matplotlib settings restored."""
    from reprolib.notebook_meta import cell_source, load_notebook, parameters_cell_indices

    nb = load_notebook(ROOT / "notebooks" / f"{stem}.ipynb")
    first = parameters_cell_indices(nb)[0]
    door = next(c for c in nb["cells"][first + 1:] if c.get("cell_type") == "code")
    params = cell_source(nb["cells"][first])
    code = "\n".join(line for line in cell_source(door).splitlines() if not line.lstrip().startswith("%"))

    def call() -> None:
        import matplotlib

        namespace: dict = {}
        exec(compile(params, f"{stem} parameters", "exec"), namespace)
        namespace.update(overrides)
        with matplotlib.rc_context(), redirect_stdout(io.StringIO()):
            exec(compile(code, f"{stem} first code cell", "exec"), namespace)
    return call


def command_line(*argv: str, stub: str):
    """``reprolib <argv>`` with ``stub`` (the work behind the door) replaced by one that raises."""
    def call() -> None:
        from reprolib import __main__ as cli

        err = io.StringIO()
        with ExitStack() as stack:
            stack.enter_context(mock.patch(stub, _started))
            stack.enter_context(redirect_stderr(err))
            stack.enter_context(redirect_stdout(io.StringIO()))
            try:
                status = cli.main(list(argv))
            except SystemExit as exit_:
                status = exit_.code
            except _Started:
                return
        if status:
            raise Refused(f"exit status {status}: {err.getvalue().strip()}")
    return call


def _tiny_fit(**kwargs):
    """``engine.fit`` on eight two-feature samples for one epoch, with ``kwargs`` over that."""
    def call() -> None:
        import torch
        from torch import nn

        from reprolib.engine import fit

        class Tiny(torch.utils.data.Dataset):
            def __len__(self):
                return 8

            def __getitem__(self, i):
                return {"x": torch.tensor([float(i), 1.0]), "label": i % 2}

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(2, 2)

            def forward(self, batch):
                return self.linear(batch["x"])

        with mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}):
            fit(Model(), Tiny(), Tiny(), **{"epochs": 1, "batch_size": 4, "device": "cpu", **kwargs})
    return call


# --------------------------------------------------------------------------- a notebook's first code cell

_NOTEBOOK_CASES = [
    ("01_context_bias", "batch_size", 0),
    ("03_baseline_emotnet", "epochs", "3"),
    ("03_baseline_emotnet", "epochs", True),
    ("03_baseline_emotnet", "epochs", -1),
    ("03_baseline_emotnet", "epochs", 2.5),
    ("01_context_bias", "lr", 0),
    ("01_context_bias", "lr", math.nan),
    ("01_context_bias", "lr", "abc"),
    ("01_context_bias", "seed", "x"),
    ("01_context_bias", "seed", -1),
    ("01_context_bias", "bias", 1.5),
    ("01_context_bias", "prior_strength", -0.1),
    ("01_context_bias", "n_context_groups", 0),
    ("02_confounder_dictionary", "dictionary_sizes", [0, 8, 16]),
    ("03_baseline_emotnet", "datasets", ["nope"]),
    ("03_baseline_emotnet", "datasets", ["iemocap"]),
    ("03_baseline_emotnet", "data_root", 123),
    ("03_baseline_emotnet", "data_root", "/data/CAER-S"),
    ("05_baseline_gnncnn", "backbone", "resnet9"),
    ("06_baseline_cdnet", "context_weights", 42),
    ("08_ccim", "baselines", "caernet"),
    ("08_ccim", "dictionary_size", "16"),
    ("10_causalmer_missing_modality", "fusion", "bogus"),
    ("10_causalmer_missing_modality", "kl", "bogus"),
    ("10_causalmer_missing_modality", "ig_steps", 0),
    ("10_causalmer_missing_modality", "constant_lr", -0.03),
    ("11_summary", "results_from", 123),
    ("11_summary", "size", "huge"),
]


def _register_notebook_case(stem: str, name: str, value) -> None:
    @case("parameters", f"notebook {stem[:2]}: {name}={value!r}")
    def make(_tmp):
        return Attempt(notebook_door(stem, **{name: value}), names=(name,))


for _stem, _name, _value in _NOTEBOOK_CASES:
    _register_notebook_case(_stem, _name, _value)


# --------------------------------------------------------------------------- the command line

_CLI_CASES = [
    (("reproduce", "--jobs", "0"), "reprolib.runner.run_notebooks", "--jobs"),
    (("reproduce", "-p", "batch_size=0"), "reprolib.runner.run_notebooks", "batch_size"),
    (("reproduce", "-p", "lr=abc"), "reprolib.runner.run_notebooks", "lr"),
    (("reproduce", "-p", "datasets=['nope']"), "reprolib.runner.run_notebooks", "datasets"),
    (("reproduce", "--cell-timeout", "-5"), "reprolib.runner.run_notebooks", "--cell-timeout"),
    (("refresh", "01", "--jobs", "0"), "reprolib.runner.refresh_all", "--jobs"),
    (("seeds", "--jobs", "0"), "reprolib.seeds.run", "--jobs"),
    (("seeds", "--seeds", "1", "1"), "reprolib.seeds.run", "seeds"),
    (("sweep", "--seeds", "-1"), "reprolib.sweeps.sweep", "--seeds"),
    (("bench", "--batch-size", "0"), "reprolib.bench.bench", "--batch-size"),
    (("bench", "--repeats", "0"), "reprolib.bench.bench", "--repeats"),
]


def _register_cli_case(argv: tuple[str, ...], stub: str, name: str) -> None:
    @case("parameters", "reprolib " + " ".join(argv))
    def make(_tmp):
        return Attempt(command_line(*argv, stub=stub), names=(name,))


for _argv, _stub, _name in _CLI_CASES:
    _register_cli_case(_argv, _stub, _name)


@case("parameters", "build_parameters: epochs=True")
def _build_bool_epochs(_tmp):
    from reprolib import runner

    return Attempt(lambda: runner.build_parameters("smoke", ["epochs=True"]), names=("epochs",))


@case("parameters", "build_parameters: bias=1.5")
def _build_bias(_tmp):
    from reprolib import runner

    return Attempt(lambda: runner.build_parameters("smoke", ["bias=1.5"]), names=("bias",))


# --------------------------------------------------------------------------- engine.fit

_FIT_CASES = [
    ("batch_size", 0), ("epochs", "3"), ("epochs", True), ("lr", 0), ("lr", math.nan), ("seed", -1),
    ("weight_decay", -1.0), ("lr_step", 0), ("lr_gamma", 0), ("momentum", 1.5), ("num_workers", -1),
]


def _register_fit_case(name: str, value) -> None:
    @case("parameters", f"engine.fit: {name}={value!r}")
    def make(_tmp):
        return Attempt(_tiny_fit(**{name: value}), names=(name,))


for _name, _value in _FIT_CASES:
    _register_fit_case(_name, _value)
