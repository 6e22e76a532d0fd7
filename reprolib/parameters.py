"""Every notebook parameter, ``reprolib`` option and ``engine.fit`` argument, checked in one place.

A bad value used to surface late and without its name (``batch_size=0`` trained with batch 1,
``epochs="3"`` failed 20 s in inside ``range``). Here each name has one :class:`Rule`, shared by
every notebook that has the parameter; the doors (:func:`reprolib.config.resolve` in each notebook's
first code cell, ``runner.build_parameters`` for ``-p``, the CLI's option types, the top of
``engine.fit``) call :func:`check` before any data is read, and a bad value stops the run with
``name must be <what>, got <value>``.

Kept free of torch and the models so the command line pays nothing for it; the choices below mirror
constants elsewhere (``FUSION_MODES``, ``KL_MODES``, ``experiments.DATASETS`` ...), and
``tests/test_parameters.py`` checks that they still agree.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

SIZES = ("smoke", "full")
IMAGE_DATASETS = ("caer_s", "emotic")
MULT_DATASETS = ("iemocap", "mosei")
DATASETS = IMAGE_DATASETS + MULT_DATASETS
BASELINES = ("emotnet", "caernet", "gnncnn", "cdnet", "emoticon")
ABLATIONS = ("no_kl", "no_mask", "fusion_hm", "fusion_mask", "baseline_first")  # notebook 09
BACKBONES = ("small", "caer", "resnet18", "resnet34", "resnet50", "resnet152")
FUSION_MODES = ("sum", "hm", "mask", "rubi", "tanh")
KL_MODES = ("auto", "joint", "pairs", "bernoulli", "off")
RECIPES = ("official", "engine")  # reprolib.mer.RECIPES: how MulT and CausalMER are trained
DEVICES = ("cpu", "cuda", "mps")
SEED_LIMIT = 2**32  # NumPy's seeds are 0 .. 2**32 - 1


class ParameterError(ValueError):
    """A parameter or option value that breaks its rule, or a ``-p`` override that is not ``name=value``."""


def _is_int(value: Any) -> bool:
    """bool is an int to Python, never an epoch count or a seed here (NumPy's bool_ is no Integral)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """An int is a number here (lr=1 is fine); nan and inf are not (an int too large for a float is)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and (isinstance(value, numbers.Integral) or math.isfinite(value)))


def _is_path(value: Any) -> bool:
    return (isinstance(value, str) and value.strip() != "") or isinstance(value, os.PathLike)


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bound(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    return f"{'<' if hi_open else '<='} {_num(hi)}" if hi is not None else ""


def _within(x: float, lo, hi, lo_open=False, hi_open=False) -> bool:
    return ((lo is None or (x > lo if lo_open else x >= lo))
            and (hi is None or (x < hi if hi_open else x <= hi)))


@dataclass(frozen=True)
class Rule:
    """What a name accepts: ``test(value)`` and the words for it; ``none`` says what None means (None:
    None is refused). ``choices`` (names rules only) can be narrowed per call, e.g. to the datasets
    a notebook's presets know."""

    expected: str
    test: Callable[[Any], bool]
    none: str | None = None
    choices: tuple[str, ...] | None = None
    narrow: Callable[[tuple[str, ...]], "Rule"] | None = None

    def describe(self) -> str:
        return self.expected + (f", or None ({self.none})" if self.none else "")

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.none is not None:
            return value
        if value is None or not self.test(value):
            shown = repr(value)
            shown = shown if len(shown) <= 120 else shown[:117] + "..."
            raise ParameterError(f"{name} must be {self.describe()}, got {shown}")
        return value


def integer(lo: int | None = None, hi: int | None = None, *, none: str | None = None) -> Rule:
    """A whole number (bool is not one) in ``[lo, hi]``."""
    words = "an integer" + (f" {_bound(lo, hi)}" if lo is not None or hi is not None else "")
    return Rule(words, lambda v: _is_int(v) and _within(v, lo, hi), none)


def real(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
         none: str | None = None) -> Rule:
    """A finite number (an int is fine, bool is not) in the given bounds."""
    words = "a finite number" + (f" {_bound(lo, hi, lo_open, hi_open)}" if lo is not None or hi is not None else "")
    return Rule(words, lambda v: _is_real(v) and _within(v, lo, hi, lo_open, hi_open), none)


def choice(options: Iterable[str], *, none: str | None = None) -> Rule:
    options = tuple(options)
    return Rule("one of " + ", ".join(map(repr, options)), lambda v: isinstance(v, str) and v in options, none)


def names(options: Iterable[str], *, empty: bool = False, none: str | None = None) -> Rule:
    """A list (or tuple) of distinct names from ``options``; a bare string is refused, not split."""
    options = tuple(options)

    def test(v: Any) -> bool:
        return (isinstance(v, (list, tuple)) and (empty or len(v) > 0)
                and all(isinstance(x, str) and x in options for x in v) and len(set(v)) == len(v))
    lead = "a list of distinct names" if empty else "a non-empty list of distinct names"
    return Rule(f"{lead} from {', '.join(map(repr, options))}", test, none, options,
                narrow=lambda narrowed: names(narrowed, empty=empty, none=none))


def integers(element: Rule, *, empty: bool = False, none: str | None = None) -> Rule:
    """A list (or tuple) of distinct values that each pass ``element``."""
    def test(v: Any) -> bool:
        return (isinstance(v, (list, tuple)) and (empty or len(v) > 0)
                and all(element.test(x) for x in v) and len(set(v)) == len(v))
    lead = "a list of distinct" if empty else "a non-empty list of distinct"
    return Rule(f"{lead} values, each {element.expected}", test, none)


def path(*, none: str | None = None) -> Rule:
    return Rule("a path (a non-empty string)", _is_path, none)


def _data_root(v: Any) -> bool:
    if _is_path(v):
        return True
    return (isinstance(v, Mapping)
            and all(k in DATASETS and (x is None or _is_path(x)) for k, x in v.items()))


def _device(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    kind, _, index = v.partition(":")
    return kind in DEVICES and (not index or index.isdigit())


PRESET = "the size preset"
SEED = integer(0, SEED_LIMIT - 1)

#: name -> rule, for every parameter of every notebook's parameters cell, every ``fit`` argument that is
#: a number, and the command-line options that are not notebook parameters.
RULES: dict[str, Rule] = {
    # every notebook
    "size": choice(SIZES),
    "seed": SEED,
    "data_root": Rule("a folder or file path (where a notebook reads one dataset), or a dict of dataset name ("
                      + ", ".join(map(repr, DATASETS)) + ") to a path or None (config.data_roots says which)",
                      _data_root, "synthetic data"),
    "epochs": integer(1, none=PRESET),
    "lr": real(0, lo_open=True, none=PRESET),
    "batch_size": integer(1, none=PRESET),
    # 01
    "bias": real(0, 1),
    "prior_strength": real(0, 1),
    "expression_noise": real(0, 1),
    "n_context_groups": integer(2, none=PRESET),
    # 02-10
    "datasets": names(DATASETS, none=PRESET),
    "backbone": choice(BACKBONES, none=PRESET),
    "context_weights": path(none="no pretrained context weights"),
    "places365_weights": path(none="ColourLayout features"),
    "dictionary_sizes": integers(integer(2), none=PRESET),
    "main_size": integer(2, none=PRESET),
    "dictionary_size": integer(2, none=PRESET),
    "ablation_sizes": integers(integer(2), empty=True, none=PRESET),
    "baselines": names(BASELINES, none=PRESET),
    "ablations": names(ABLATIONS, empty=True, none=PRESET),
    # 10
    "text_weights": path(none="random init"),
    "fusion": choice(FUSION_MODES),
    "kl": choice(KL_MODES),
    "recipe": choice(RECIPES),
    "constant_lr": real(0, lo_open=True, none="skip the ablation"),
    "ig_steps": integer(1),
    "ig_samples": integer(1, none="every test sample"),
    # 11
    "results_from": path(none="this repository's results folder"),
    # engine.fit's other numbers
    "weight_decay": real(0),
    "momentum": real(0, 1),
    "lr_step": integer(1, none="a constant learning rate"),
    "lr_gamma": real(0, lo_open=True),
    "clip_grad_norm": real(0, lo_open=True, none="no clipping"),
    "plateau_patience": integer(1, none="no plateau schedule"),
    "early_stopping": integer(0, none=PRESET),  # epochs without a better val score before stopping; 0: never
    "num_workers": integer(0, none="the device default"),
    # command-line options that are not notebook parameters
    "jobs": integer(1, none="the default for the size"),
    "cell_timeout": real(0, lo_open=True, none="no limit"),
    "seeds": integers(SEED),
    "repeats": integer(1),
    "device": Rule("'cpu', 'cuda', 'cuda:N' or 'mps'", _device, "cuda when available"),
}


def rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise KeyError(f"no parameter rule for {name!r}; add one to reprolib.parameters.RULES") from None


def check_value(name: str, value: Any, *, within: Iterable[str] | None = None) -> Any:
    """``value`` unchanged if it passes ``name``'s rule, else :class:`ParameterError` naming it.

    ``within`` narrows a names rule (``datasets``, ``baselines``, ``ablations``) to what the caller can
    run, e.g. the datasets of one notebook's presets."""
    r = rule(name)
    if within is not None and r.narrow is not None:
        known = set(within)
        r = r.narrow(tuple(x for x in r.choices if x in known))
    return r.check(name, value)


def check(**values: Any) -> None:
    """:func:`check_value` for each ``name=value``. Returns None, so that a notebook line calling it
    never displays anything (nbval compares that cell's output)."""
    for name, value in values.items():
        check_value(name, value)


FIT_ARGUMENTS = ("epochs", "lr", "batch_size", "seed", "weight_decay", "lr_step", "lr_gamma", "momentum",
                 "num_workers", "clip_grad_norm", "plateau_patience", "early_stopping")


def check_fit(arguments: Mapping[str, Any]) -> None:
    """``engine.fit``'s numeric arguments (its ``locals()`` on entry), before a model or loader is built:
    ``batch_size=0`` would otherwise train with batch 1 and ``seed=-1`` fail inside NumPy, unnamed."""
    for name in FIT_ARGUMENTS:
        r = rule(name)
        if r.none == PRESET:  # fit has no presets: None is no value there
            r = replace(r, none=None)
        r.check(name, arguments[name])


def check_known(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check the names that have a rule and pass the others through (``-p`` names no notebook knows
    are the runner's warning to give, not an error)."""
    for name, value in values.items():
        if name in RULES:
            check_value(name, value)
    return dict(values)


def option(name: str, parse: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse ``type=``: parse the text, then apply ``name``'s rule (argparse names the option)."""
    import argparse

    def convert(text: str) -> Any:
        try:
            return check_value(name, parse(text))
        except ValueError:  # unparsable text, or a ParameterError
            raise argparse.ArgumentTypeError(f"expected {rule(name).expected}, got {text!r}") from None
    convert.__name__ = name  # argparse's "invalid <name> value" fallback
    return convert
