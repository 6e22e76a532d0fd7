"""Run one bad input and say how the library met it: a clear error, an unclear one, a crash, or silence.

A case is a function registered with :func:`case`; it writes its bad files under a temporary folder and
returns an :class:`Attempt`: the call to make and the words a clear error must contain (the file name,
the key or parameter, what was wrong). Cases where a crash is possible (memory corruption, unbounded
allocation or recursion) run with ``isolate=True``: in a child Python with an address-space limit and a
timeout, so a segfault or a hang is counted, not suffered.

Outcomes:

* ``clear``: an ``Exception`` that is not a generic runtime failure (``MemoryError``, ``RecursionError``,
  ``KeyError``, ...), whose message holds every required word;
* ``unclear``: any other exception (a bare ``MemoryError('')``, a message without the file name, ...);
* ``crash``: the child died (signal, exit without a report) or ran past its timeout;
* ``silent``: the call returned, i.e. the bad input was accepted as valid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

OUTCOMES = ("clear", "unclear", "crash", "silent")
# Exceptions that say "something broke", never "this input is wrong and here is why".
GENERIC = ("MemoryError", "RecursionError", "SystemError", "KeyError", "IndexError", "AttributeError",
           "ZeroDivisionError", "AssertionError", "NameError", "UnboundLocalError", "StopIteration",
           "NotImplementedError")
ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30      # address space a child may add on top of what its imports mapped
TIMEOUT_S = 60.0
_MARK = "@@hostile-outcome@@"


@dataclass
class Attempt:
    """What to run and what a clear error must say.

    ``call``: in-process, a zero-argument callable; isolated, Python source run after ``prelude``, with
    ``ARGS`` (the ``args`` dict, JSON-able) in scope. ``names``: substrings the message must contain.
    """

    call: Callable[[], Any] | str
    names: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)
    prelude: str = ""


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    make: Callable[[Path], Attempt]
    isolate: bool

    @property
    def id(self) -> str:
        return f"{self.group}: {self.name}"


@dataclass(frozen=True)
class Outcome:
    kind: str       # one of OUTCOMES
    detail: str     # the exception type and message, or why the child stopped


CASES: dict[str, Case] = {}


def case(group: str, name: str, *, isolate: bool = False) -> Callable:
    """Register ``make(tmp: Path) -> Attempt`` as a hostile-input case."""
    def register(make: Callable[[Path], Attempt]) -> Callable[[Path], Attempt]:
        c = Case(group, name, make, isolate)
        if c.id in CASES:
            raise ValueError(f"two hostile cases are called {c.id!r}")
        CASES[c.id] = c
        return make
    return register


def _judge(raised: dict[str, Any] | None, names: tuple[str, ...]) -> Outcome:
    if raised is None:
        return Outcome("silent", "returned normally")
    detail = f"{raised['type']}: {raised['message']}"
    if raised["type"] in GENERIC or not raised["is_exception"]:
        return Outcome("unclear", detail)
    missing = [n for n in names if n not in raised["message"]]
    if missing:
        return Outcome("unclear", f"{detail} [missing {missing}]")
    return Outcome("clear", detail)


def _describe(err: BaseException) -> dict[str, Any]:
    return {"type": type(err).__name__, "message": str(err)[:4000], "is_exception": isinstance(err, Exception)}


_CHILD = r"""
import json, os, resource, sys
sys.path.insert(0, os.environ["HOSTILE_ROOT"])
ARGS = json.loads(os.environ["HOSTILE_ARGS"])
exec(compile(os.environ["HOSTILE_PRELUDE"], "<prelude>", "exec"))
def _mapped():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
limit = _mapped() + int(os.environ["HOSTILE_MEMORY"])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    exec(compile(os.environ["HOSTILE_CALL"], "<case>", "exec"))
    report = None
except BaseException as err:
    report = {"type": type(err).__name__, "message": str(err)[:4000], "is_exception": isinstance(err, Exception)}
sys.stdout.write("\n" + os.environ["HOSTILE_MARK"] + json.dumps(report) + "\n")
sys.stdout.flush()
os._exit(0)
"""


def _run_isolated(attempt: Attempt) -> Outcome:
    env = dict(os.environ, HOSTILE_ROOT=str(ROOT), HOSTILE_ARGS=json.dumps(attempt.args),
               HOSTILE_PRELUDE=attempt.prelude, HOSTILE_CALL=str(attempt.call), HOSTILE_MARK=_MARK,
               HOSTILE_MEMORY=str(MEMORY_LIMIT), OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="")
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return Outcome("crash", f"no answer within {TIMEOUT_S:.0f} s (hang)")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return _judge(json.loads(line[len(_MARK):]), attempt.names)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return Outcome("crash", f"child exited with {proc.returncode} and no report: {' | '.join(tail)}")


def run_case(c: Case, tmp: Path) -> Outcome:
    """Make the case's files under ``tmp`` and run it; never raises for what the library does."""
    attempt = c.make(tmp)
    if c.isolate:
        return _run_isolated(attempt)
    if not callable(attempt.call):
        raise TypeError(f"{c.id}: an in-process case needs a callable")
    try:
        attempt.call()
    except BaseException as err:  # noqa: BLE001 - judging what the library raised is the point
        if isinstance(err, KeyboardInterrupt):
            raise
        return _judge(_describe(err), attempt.names)
    return _judge(None, attempt.names)


def load_all() -> dict[str, Case]:
    """Import every ``cases_*.py`` module beside this one (each registers its cases) and return them."""
    import importlib

    for module in sorted(Path(__file__).parent.glob("cases_*.py")):
        importlib.import_module(f"{__package__}.{module.stem}")
    return CASES


def tally(cases: dict[str, Case] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every case; return ``{"total": {...}, "groups": {...}, "cases": {...}}`` counts and details."""
    cases = load_all() if cases is None else cases
    per_case: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as root:
        for i, (cid, c) in enumerate(sorted(cases.items())):
            tmp = Path(root) / f"case{i:03d}"
            tmp.mkdir()
            outcome = run_case(c, tmp)
            per_case[cid] = {"outcome": outcome.kind, "detail": outcome.detail[:300]}
            log(f"{outcome.kind:8s} {cid}")
    groups: dict[str, dict[str, int]] = {}
    for cid, c in sorted(cases.items()):
        counts = groups.setdefault(c.group, {"tried": 0, **{k: 0 for k in OUTCOMES}})
        counts["tried"] += 1
        counts[per_case[cid]["outcome"]] += 1
    total = {"tried": len(per_case), **{k: sum(g[k] for g in groups.values()) for k in OUTCOMES}}
    return {"total": total, "groups": groups, "cases": per_case}
