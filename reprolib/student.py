"""Exercises in the notebooks, and the student copies built from them (``make student``).

Each exercise is a markdown cell whose first line is a heading ``### Exercise N.k · title`` (N the
notebook's number), followed by

* one or more cells tagged ``solution``: in a code cell, the lines between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION`` are the reference solution; lines outside the markers (the comment saying what to
  define, a plot of the student's result) stay in the student copy. A markdown cell tagged ``solution``
  is a written answer;
* one cell tagged ``hidden-check``: asserts that the answer is right. It runs in the full notebook (so
  nbval proves that the reference solution passes) and is left out of the student copy.

The student copy (:func:`student_notebook`) replaces every solution region by a line raising
``NotImplementedError`` that names the exercise, replaces written answers by a prompt, drops the
hidden checks and all outputs. Why nbconvert with cell tags and not nbgrader: nbconvert is already
installed for papermill and nbval (nbgrader would add a database, a server extension and a course
directory layout a single-repo course does not need), tags are edited in JupyterLab's property
inspector, and the markers are nbgrader's own, so a teacher can move the notebooks to nbgrader
unchanged. An exercise must not be read by any later cell, so a student copy runs to the end with
only the placeholders failing (``tests/test_student.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor

from .paths import committed_results_dir

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
SOLUTION_TAG = "solution"
CHECK_TAG = "hidden-check"
HEADING = re.compile(r"^#{2,4}\s*Exercise\s+(\d+\.\d+)\b")
WRITTEN_ANSWER_PROMPT = "**Your answer:** _write it here, then compare with the measurement above._"


def placeholder_line(exercise_id: str, indent: str = "") -> str:
    """The line a student copy has where the solution was: running it says what to do."""
    return (f'{indent}raise NotImplementedError("Exercise {exercise_id}: write your solution here '
            f'(replace this line), then run the cell")')


@dataclass
class Exercise:
    """One exercise of a notebook: its id, heading cell, solution cells and hidden check cells."""

    id: str
    title: str
    heading: int
    solutions: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)


class ExerciseError(ValueError):
    """A notebook's exercises are not laid out as :mod:`reprolib.student` expects."""


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercises_of(nb, name: str = "notebook") -> list[Exercise]:
    """The exercises of ``nb`` in order; raises :class:`ExerciseError` naming the first layout problem."""
    found: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        match = HEADING.match(first) if cell.cell_type == "markdown" else None
        if match:
            current = Exercise(match.group(1), first.split(match.group(1), 1)[1].strip(" ·:-"), i)
            found.append(current)
            continue
        tags = _tags(cell)
        if SOLUTION_TAG in tags or CHECK_TAG in tags:
            if current is None:
                raise ExerciseError(f"{name}: cell {i} is tagged {tags} but no 'Exercise N.k' heading precedes it")
            if SOLUTION_TAG in tags:
                if cell.cell_type == "code" and (BEGIN not in cell.source or END not in cell.source):
                    raise ExerciseError(f"{name}: cell {i} (Exercise {current.id}) is tagged solution "
                                        f"but has no '{BEGIN}' ... '{END}' region")
                current.solutions.append(i)
            else:
                current.checks.append(i)
    ids = [e.id for e in found]
    for ex in found:
        if ids.count(ex.id) > 1:
            raise ExerciseError(f"{name}: Exercise {ex.id} appears {ids.count(ex.id)} times")
        if not ex.solutions:
            raise ExerciseError(f"{name}: Exercise {ex.id} has no cell tagged '{SOLUTION_TAG}'")
        if not ex.checks:
            raise ExerciseError(f"{name}: Exercise {ex.id} has no cell tagged '{CHECK_TAG}'")
    return found


def strip_solution(source: str, exercise_id: str) -> str:
    """``source`` with every BEGIN/END SOLUTION region replaced by the exercise's placeholder line."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ExerciseError(f"Exercise {exercise_id}: '{BEGIN}' inside a solution region")
            inside = True
            out.append(placeholder_line(exercise_id, line[: len(line) - len(line.lstrip())]))
        elif stripped.startswith(END):
            if not inside:
                raise ExerciseError(f"Exercise {exercise_id}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseError(f"Exercise {exercise_id}: '{BEGIN}' is never closed")
    return "\n".join(out)


class ClearSolutions(Preprocessor):
    """nbconvert preprocessor: solutions become placeholders, hidden checks are dropped."""

    def preprocess(self, nb, resources):
        exercises = exercises_of(nb, resources.get("name", "notebook"))
        owner = {i: ex.id for ex in exercises for i in ex.solutions + ex.checks}
        kept = []
        for i, cell in enumerate(nb.cells):
            tags = _tags(cell)
            if CHECK_TAG in tags:
                continue
            if SOLUTION_TAG in tags:
                if cell.cell_type == "code":
                    cell.source = strip_solution(cell.source, owner[i])
                else:
                    cell.source = WRITTEN_ANSWER_PROMPT
            kept.append(cell)
        nb.cells = kept
        return nb, resources


def student_notebook(nb, name: str = "notebook"):
    """A student copy of ``nb`` (not modified): no solutions, no hidden checks, no outputs."""
    copy = nbformat.reads(nbformat.writes(nb), as_version=4)
    resources = {"name": name}
    for step in (ClearSolutions(), ClearOutputPreprocessor()):
        copy, resources = step.preprocess(copy, resources)
    copy.metadata.setdefault("reprolib", {})["student_copy"] = True
    return copy


def build_student_copies(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write the student copy of each notebook under ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(student_notebook(nb, path.name), target)
        written.append(target)
    return written


def placeholder_cells(nb) -> dict[int, str]:
    """Cell index -> exercise id for every cell of a student copy holding a placeholder line."""
    found = {}
    for i, cell in enumerate(nb.cells):
        match = re.search(r'NotImplementedError\("Exercise (\d+\.\d+):', cell.source) if cell.cell_type == "code" else None
        if match:
            found[i] = match.group(1)
    return found


def execute_student_copy(path: Path, timeout: int = 1800) -> list[str]:
    """Run a student copy to the end (errors allowed); the problems found, empty when it behaves.

    It behaves when every placeholder cell stops with the NotImplementedError naming its exercise and
    every other cell runs: the student can work through the notebook in any order.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    expected = placeholder_cells(nb)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if i in expected:
            want = f"Exercise {expected[i]}:"
            if not any(o["ename"] == "NotImplementedError" and want in o["evalue"] for o in errors):
                got = ", ".join(f"{o['ename']}: {o['evalue'][:80]}" for o in errors) or "no error"
                problems.append(f"{path.name} cell {i}: expected NotImplementedError('{want} ...'), got {got}")
        elif errors:
            o = errors[0]
            problems.append(f"{path.name} cell {i}: {o['ename']}: {o['evalue'][:200]}")
    return problems


def _cmd_student(args) -> int:
    from . import runner

    try:
        notebooks = runner.find_notebooks()
        if args.only:
            notebooks = runner.select_notebooks(notebooks, args.only)
        written = build_student_copies(notebooks, Path(args.out))
    except (ExerciseError, runner.SelectionError) as exc:
        print(f"reprolib student: error: {exc}")
        return 1
    counts = {p.name: len(exercises_of(nbformat.read(p, as_version=4))) for p in notebooks}
    for path in written:
        print(f"{path}  ({counts[path.name]} exercises)")
    print(f"{len(written)} student copies, {sum(counts.values())} exercises: solutions and hidden checks removed")
    if not args.check:
        return 0
    if not os.environ.get("REPROLIB_RESULTS"):  # run against a scratch copy: results/ stays as committed
        scratch = Path(tempfile.mkdtemp(prefix="reprolib-student-"))
        shutil.copytree(committed_results_dir(), scratch / "results",
                        ignore=shutil.ignore_patterns("executed", "checkpoints", "lab"))
        os.environ["REPROLIB_RESULTS"] = str(scratch / "results")  # the kernels inherit it
    jobs = max(1, min(args.jobs, len(written)))
    if jobs > 1:  # one thread per kernel, as for the notebooks under nbval
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
        os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    print(f"executing {len(written)} copies, {jobs} at a time; results go to {os.environ['REPROLIB_RESULTS']}",
          flush=True)
    problems = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for path, found in zip(written, pool.map(execute_student_copy, written)):
            print(f"{path.name}: " + ("ran to the end, every placeholder stopped with its exercise's message"
                                      if not found else f"{len(found)} problem(s)"), flush=True)
            problems += found
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


def add_parser(subparsers) -> None:
    """Register ``reprolib student``."""
    p = subparsers.add_parser(
        "student", help="write the student copies of the notebooks (solutions and hidden checks removed)",
        description="Write notebooks/NN_*.ipynb without solutions, hidden checks or outputs to OUT "
        "(default student/): each solution region becomes a line raising NotImplementedError that names "
        "the exercise.")
    p.add_argument("--out", default="student", help="folder for the copies (default: student/)")
    p.add_argument("--only", nargs="+", metavar="NB", help="only these notebooks (01 or a full name)")
    p.add_argument("--check", action="store_true", help="then execute each copy: only the placeholders may fail")
    p.add_argument("--jobs", type=int, default=1, help="copies executed at a time with --check (default 1)")
    p.set_defaults(func=_cmd_student)
