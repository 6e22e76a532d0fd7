"""Exercises and student copies (reprolib.student): the layout of every notebook's exercises, the
copies without solutions or hidden checks, and the placeholders a student meets.

Executing the copies is `make student-check` (and, for the cheap notebooks, a step of `make nbval`);
here the copies are checked as files, and the placeholder line is run."""

from __future__ import annotations

import ast
import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reprolib import runner
from reprolib.student import (BEGIN, CHECK_TAG, END, SOLUTION_TAG, ExerciseError, exercises_of, placeholder_cells,
                              placeholder_line, strip_solution, student_notebook)

NOTEBOOKS = runner.find_notebooks()


def _tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def _toy() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_code_cell("x = 2"),
        new_markdown_cell("### Exercise 3.1 · Square it\n\nDefine `y`, the square of `x`."),
        _tagged(new_code_cell(f"# Define y\n{BEGIN}\ny = x ** 2\n{END}\nprint(y)"), SOLUTION_TAG),
        _tagged(new_markdown_cell("Because squaring."), SOLUTION_TAG),
        _tagged(new_code_cell("assert y == 4"), CHECK_TAG),
        new_markdown_cell("## Key takeaways"),
    ])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_two_to_four_well_formed_exercises(path):
    nb = nbformat.read(path, as_version=4)
    exercises = exercises_of(nb, path.name)
    assert 2 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises"
    number = str(int(path.name[:2]))
    assert [e.id.split(".")[0] for e in exercises] == [number] * len(exercises), [e.id for e in exercises]
    assert [e.id for e in exercises] == [f"{number}.{k}" for k in range(1, len(exercises) + 1)], "numbered 1, 2, ..."
    takeaways = next(i for i, c in enumerate(nb.cells) if c.source.startswith("## Key takeaways"))
    for ex in exercises:
        assert ex.checks and max(ex.checks) < takeaways, f"Exercise {ex.id}: its check comes before the takeaways"
        assert min(ex.solutions) < min(ex.checks), f"Exercise {ex.id}: the solution comes before its check"
        for i in ex.solutions + ex.checks:
            if nb.cells[i].cell_type == "code":
                ast.parse(nb.cells[i].source.replace("%matplotlib inline", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_copy_has_no_solution_and_a_placeholder_per_region(path):
    nb = nbformat.read(path, as_version=4)
    exercises = exercises_of(nb, path.name)
    regions = sum(nb.cells[i].source.count(BEGIN) for ex in exercises for i in ex.solutions
                  if nb.cells[i].cell_type == "code")
    student = student_notebook(nb, path.name)
    text = nbformat.writes(student)
    assert BEGIN not in text and END not in text
    assert not any(CHECK_TAG in c.metadata.get("tags", []) for c in student.cells), "hidden checks are removed"
    assert len(student.cells) == len(nb.cells) - sum(len(ex.checks) for ex in exercises)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in student.cells if c.cell_type == "code")
    placeholders = placeholder_cells(student)
    assert sorted(set(placeholders.values())) == sorted({ex.id for ex in exercises}), "every exercise has a placeholder"
    assert sum(student.cells[i].source.count("raise NotImplementedError") for i in placeholders) == regions
    for i in placeholders:
        ast.parse(student.cells[i].source)  # a student copy's cell is valid Python
    # the notebook itself is not modified
    assert nbformat.writes(nb) == nbformat.writes(nbformat.read(path, as_version=4))


def test_placeholder_raises_a_clear_not_implemented_error():
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.1: write your solution here"):
        exec(placeholder_line("3.1"), {})


def test_toy_student_copy_runs_up_to_the_placeholder_and_keeps_the_rest():
    nb = _toy()
    student = student_notebook(nb, "toy")
    sources = [c.source for c in student.cells]
    assert sources[2] == "# Define y\n" + placeholder_line("3.1") + "\nprint(y)"
    assert sources[3].startswith("**Your answer:**"), "a written answer becomes a prompt"
    assert len(student.cells) == 5 and "assert y == 4" not in "".join(sources)
    namespace = {}
    exec(sources[0], namespace)
    with pytest.raises(NotImplementedError, match=r"Exercise 3\.1"):
        exec(sources[2], namespace)
    # and the reference solution passes the hidden check
    full = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(cell.source, full)
    assert full["y"] == 4


def test_indented_region_keeps_its_indentation():
    source = f"for i in range(2):\n    {BEGIN}\n    total = i\n    {END}\n    pass"
    stripped = strip_solution(source, "1.1")
    assert stripped.splitlines()[1] == placeholder_line("1.1", "    ")
    ast.parse(stripped)


@pytest.mark.parametrize("defect, expected", [
    ("unclosed", "never closed"),
    ("nested", "inside a solution region"),
    ("end_only", "without"),
])
def test_strip_solution_refuses_broken_regions(defect, expected):
    source = {"unclosed": f"{BEGIN}\nx = 1", "nested": f"{BEGIN}\n{BEGIN}\n{END}",
              "end_only": f"x = 1\n{END}"}[defect]
    with pytest.raises(ExerciseError, match=expected):
        strip_solution(source, "2.1")


def _defective(defect: str) -> nbformat.NotebookNode:
    nb = _toy()
    if defect == "no_check":
        del nb.cells[4]
    elif defect == "no_solution":
        del nb.cells[2:4]
    elif defect == "no_markers":
        nb.cells[2].source = "y = x ** 2"
    elif defect == "no_heading":
        del nb.cells[1]
    elif defect == "duplicate":
        nb.cells[5:5] = copy.deepcopy(nb.cells[1:5])
    return nb


@pytest.mark.parametrize("defect, expected", [
    ("no_check", "no cell tagged 'hidden-check'"),
    ("no_solution", "no cell tagged 'solution'"),
    ("no_markers", "has no '# BEGIN SOLUTION'"),
    ("no_heading", "no 'Exercise N.k' heading precedes it"),
    ("duplicate", "appears 2 times"),
])
def test_layout_problems_are_named(defect, expected):
    with pytest.raises(ExerciseError, match=expected):
        exercises_of(_defective(defect), "toy")
