"""Static checks on the committed notebooks: what nbval and papermill rely on, read from the JSON.

A committed notebook is the smoke-size run, saved after a fresh "restart and run all":
* exactly one code cell tagged ``parameters``, holding only ``name = <literal>`` lines, defining ``size``;
* every non-empty code cell executed, counts 1..n in order (empty cells are skipped by papermill and
  nbval, so they must stay unexecuted), and at least one output somewhere;
* no papermill metadata (notebook or cell level) and no papermill injected/error-banner cells;
* kernelspec ``python3``;
* no error output and no traceback text in any output.

No kernel is started here. The checker itself is tested on small in-memory notebooks below.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from reprolib import paths
from reprolib.notebook_meta import (
    RUN_CELL_KEYS,
    RUN_NOTEBOOK_KEYS,
    cell_source,
    cell_tags,
    parameters_cell_indices,
    parse_parameters_source,
)
from reprolib.runner import NOTEBOOK_GLOB

KERNEL_NAME = "python3"
FORBIDDEN_TAGS = ("injected-parameters", "papermill-error-cell-tag")
TRACEBACK_MARK = "Traceback (most recent call last)"


def _output_texts(output: Mapping[str, Any]) -> list[str]:
    texts = []
    if "text" in output:
        texts.append(output["text"])
    for value in (output.get("data") or {}).values():
        texts.append(value)
    texts.extend(output.get("traceback") or [])
    return ["".join(t) if isinstance(t, list) else str(t) for t in texts]


def hygiene_problems(nb: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a notebook meant to be committed; empty when it is clean."""
    problems: list[str] = []
    cells = nb.get("cells", [])

    # one parameters cell, literals only, defines size
    param_indices = parameters_cell_indices(nb)
    if len(param_indices) != 1:
        problems.append(f"expected exactly one code cell tagged 'parameters', found {len(param_indices)}")
    for i in param_indices:
        try:
            values = parse_parameters_source(cell_source(cells[i]))
        except ValueError as exc:
            problems.append(f"cell {i}: parameters cell: {exc}")
        else:
            if "size" not in values:
                problems.append(f"cell {i}: parameters cell does not define 'size'")

    # executed in order, from a fresh kernel
    counts = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        count = cell.get("execution_count")
        if not cell_source(cell).strip():
            if count is not None or cell.get("outputs"):
                problems.append(f"cell {i}: empty code cell has an execution count or outputs")
            continue
        if count is None:
            problems.append(f"cell {i}: code cell was not executed")
        counts.append(count)
    executed = [c for c in counts if c is not None]
    if executed and executed != list(range(1, len(executed) + 1)):
        problems.append(f"execution counts are not 1..n in order: {executed}")
    if not any(cell.get("outputs") for cell in cells if cell.get("cell_type") == "code"):
        problems.append("no code cell has outputs (notebook committed without its smoke run?)")

    # run leftovers (papermill records, timings, widget state): `python -m reprolib refresh` strips them
    for key in RUN_NOTEBOOK_KEYS:
        if key in nb.get("metadata", {}):
            problems.append(f"notebook metadata has a {key!r} key (strip it before committing)")
    for i, cell in enumerate(cells):
        for key in RUN_CELL_KEYS:
            if key in cell.get("metadata", {}):
                problems.append(f"cell {i}: cell metadata has a {key!r} key")
        for tag in FORBIDDEN_TAGS:
            if tag in cell_tags(cell):
                problems.append(f"cell {i}: papermill cell tagged {tag!r}")

    # kernel
    kernel = (nb.get("metadata", {}).get("kernelspec") or {}).get("name")
    if kernel != KERNEL_NAME:
        problems.append(f"kernelspec name is {kernel!r}, expected {KERNEL_NAME!r}")

    # errors in outputs
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []) or []:
            if output.get("output_type") == "error":
                problems.append(f"cell {i}: error output ({output.get('ename')}: {output.get('evalue')})")
            elif any(TRACEBACK_MARK in text for text in _output_texts(output)):
                problems.append(f"cell {i}: output contains a traceback")
    return problems


# --------------------------------------------------------------------------- the committed notebooks

NOTEBOOKS = sorted(paths.notebooks_dir().glob(NOTEBOOK_GLOB))


def test_notebooks_exist():
    assert NOTEBOOKS, f"no numbered notebooks ({NOTEBOOK_GLOB}) in {paths.notebooks_dir()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    problems = hygiene_problems(nb)
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------- the checker itself


def _good_notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    params = new_code_cell('# smoke defaults\nsize = "smoke"\nepochs: int = 2\nlr = 1e-3\nsizes = (32, 48)\n'
                           "data_root = None  # or the real dataset", execution_count=1)
    params.metadata["tags"] = ["parameters"]
    work = new_code_cell("print(epochs)", execution_count=2,
                         outputs=[new_output("stream", name="stdout", text="2\n")])
    result = new_code_cell("epochs * 2", execution_count=3,
                           outputs=[new_output("execute_result", data={"text/plain": "4"}, execution_count=3)])
    nb.cells = [new_markdown_cell("# Title"), params, work, new_code_cell(""), result]
    return nb


def _set_params(source):
    def mutate(nb):
        nb.cells[1].source = source
    return mutate


def _drop_tag(nb):
    nb.cells[1].metadata["tags"] = []


def _second_parameters_cell(nb):
    extra = new_code_cell("epochs = 5", execution_count=4)
    extra.metadata["tags"] = ["parameters"]
    nb.cells.append(extra)


def _unexecuted(nb):
    nb.cells[2].execution_count = None


def _out_of_order(nb):
    nb.cells[2].execution_count, nb.cells[4].execution_count = 3, 2


def _not_from_one(nb):
    for cell, count in zip([nb.cells[1], nb.cells[2], nb.cells[4]], [4, 5, 6]):
        cell.execution_count = count


def _no_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []


def _papermill_metadata(nb):
    nb.metadata["papermill"] = {"parameters": {}, "duration": 1.0}


def _papermill_cell_metadata(nb):
    nb.cells[2].metadata["papermill"] = {"status": "completed"}


def _widget_state(nb):
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}


def _execution_timing(nb):
    nb.cells[2].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}


def _injected_cell(nb):
    cell = new_code_cell("# Parameters\nepochs = 5\n", execution_count=2)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, cell)
    for c, n in zip([nb.cells[3], nb.cells[5]], [3, 4]):
        c.execution_count = n


def _wrong_kernel(nb):
    nb.metadata["kernelspec"]["name"] = "reprolib-env"


def _no_kernelspec(nb):
    del nb.metadata["kernelspec"]


def _error_output(nb):
    nb.cells[2].outputs.append(new_output("error", ename="ValueError", evalue="bad", traceback=["..."]))


def _traceback_in_stderr(nb):
    nb.cells[2].outputs.append(new_output("stream", name="stderr",
                                          text="Traceback (most recent call last):\n  ...\nKeyError: 1\n"))


def _executed_empty_cell(nb):
    nb.cells[3].execution_count = 3
    nb.cells[4].execution_count = 4


DEFECTS = {  # name: (how to break the good notebook, what the problem report must mention)
    "no parameters tag": (_drop_tag, "found 0"),
    "two parameters cells": (_second_parameters_cell, "found 2"),
    "call in parameters": (_set_params('size = "smoke"\nepochs = int("3")'), "not a literal"),
    "derived value in parameters": (_set_params('size = "smoke"\nepochs = 3\ntotal = epochs * 2'),
                                    "not a literal"),
    "import in parameters": (_set_params('import os\nsize = "smoke"'), "only assignments"),
    "expression in parameters": (_set_params('size = "smoke"\n"a docstring"'), "only assignments"),
    "attribute target": (_set_params('size = "smoke"\ncfg.epochs = 3'), "simple name"),
    "tuple target": (_set_params('size, epochs = "smoke", 3'), "simple name"),
    "bare annotation": (_set_params('size = "smoke"\nepochs: int'), "annotation without a value"),
    "syntax error": (_set_params('size = "smoke'), "syntax error"),
    "no size": (_set_params("epochs = 3"), "does not define 'size'"),
    "unexecuted cell": (_unexecuted, "not executed"),
    "out of order": (_out_of_order, "not 1..n"),
    "counts not from 1": (_not_from_one, "not 1..n"),
    "no outputs": (_no_outputs, "no code cell has outputs"),
    "papermill notebook metadata": (_papermill_metadata, "notebook metadata has a 'papermill'"),
    "papermill cell metadata": (_papermill_cell_metadata, "cell metadata has a 'papermill'"),
    "widget state": (_widget_state, "notebook metadata has a 'widgets'"),
    "execution timing": (_execution_timing, "cell metadata has a 'execution'"),
    "injected parameters cell": (_injected_cell, "'injected-parameters'"),
    "wrong kernel": (_wrong_kernel, "'reprolib-env'"),
    "no kernelspec": (_no_kernelspec, "kernelspec name is None"),
    "error output": (_error_output, "error output (ValueError: bad)"),
    "traceback in stderr": (_traceback_in_stderr, "traceback"),
    "executed empty cell": (_executed_empty_cell, "empty code cell"),
}


def test_checker_accepts_a_clean_notebook():
    nb = _good_notebook()
    nbformat.validate(nb)
    assert hygiene_problems(nb) == []


def test_checker_accepts_a_notebook_read_back_from_disk(tmp_path):
    path = tmp_path / "01_x.ipynb"
    nbformat.write(_good_notebook(), path)
    assert hygiene_problems(nbformat.read(path, as_version=nbformat.NO_CONVERT)) == []


@pytest.mark.parametrize("defect", list(DEFECTS), ids=list(DEFECTS))
def test_checker_finds_defect(defect):
    nb = copy.deepcopy(_good_notebook())
    mutate, expected = DEFECTS[defect]
    mutate(nb)
    problems = hygiene_problems(nb)
    assert any(expected in p for p in problems), f"checker missed {defect!r}: {problems}"


def test_parameters_values_are_parsed():
    nb = _good_notebook()
    assert parse_parameters_source(nb.cells[1].source) == {
        "size": "smoke", "epochs": 2, "lr": 1e-3, "sizes": (32, 48), "data_root": None,
    }


# --------------------------------------------------------------------------- the nbval sanitize file

SANITIZE_FILE = paths.repo_root() / "tests" / "nbval_sanitize.cfg"


def _sanitize(text: str) -> str:
    """Apply the sanitize file the way nbval does (its own parser, rules in file order)."""
    import re

    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns(SANITIZE_FILE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_sanitize_file_parses_into_pairs():
    from nbval.plugin import get_sanitize_patterns

    text = SANITIZE_FILE.read_text()
    pairs = get_sanitize_patterns(text)
    # every "regex:" line found its "replace:" line (a comment in between would silently drop a rule)
    assert len(pairs) == text.count("\nregex: ") == text.count("\nreplace: ") == 6
    for regex, replace in pairs:
        assert regex == regex.strip() and replace == replace.strip(), "trailing blanks become part of the rule"


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("<matplotlib.lines.Line2D at 0x7f3a2c1d0e50>", "<matplotlib.lines.Line2D at 0x55d0c0ffee>"),
        ("<Figure size 640x480 with 1 Axes>", "<Figure size 432x288 with 1 Axes>"),
        ("epoch 3 done in 12.3s (250 ms/batch)", "epoch 3 done in 9.8s (31 ms/batch)"),
        ("trained in 4.56 s", "trained in 61 seconds"),
        ("saved to /tmp/tmpab12cd/x.npy", "saved to /tmp/pytest-of-ci/pytest-3/test0/x.npy"),
        ("reading /home/me/repo/data/caers/train", "reading /builds/ci/reprolib/data/caers/train"),
        ("PosixPath('/work/main/data/emotic/annotations.csv')", "PosixPath('/srv/r/data/emotic/annotations.csv')"),
        ("wrote /home/me/repo/results/metrics/02.json", "wrote /ci/x/results/metrics/02.json"),
        ("wrote /home/me/repo/results/metrics/02.json", "wrote /tmp/tmp.Xy12/results/metrics/02.json"),
    ],
)
def test_sanitize_makes_machine_dependent_text_equal(ours, theirs):
    assert ours != theirs
    assert _sanitize(ours) == _sanitize(theirs)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("accuracy 0.53", "accuracy 0.54"),  # metrics are compared, not sanitized
        ("7 samples, 3 classes", "8 samples, 3 classes"),
        ("reading <data>/caers/train", "reading <data>/caers/val"),
        ("/work/tmp/x", "/work/tmp/y"),  # only the absolute /tmp/ folder counts as temporary
        ("crop 480x640", "crop 480x600"),  # image sizes are not memory addresses
    ],
)
def test_sanitize_keeps_real_differences(ours, theirs):
    assert _sanitize(ours) != _sanitize(theirs)


# --------------------------------------------------------------------------- what nbval compares

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_claim_verdicts_and_machine_independent_cells_are_compared(path):
    """`make nbval` runs in lax mode: only marked cells are compared. The claims' verdicts (no values)
    must be among them, and so must the configuration printout of every notebook."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checked = [c for c in code if CHECK_MARK in c.source]
    assert any("claims.check(" in c.source for c in checked), f"{path.name}: the claims cell is not marked {CHECK_MARK}"
    assert CHECK_MARK in code[1].source, f"{path.name}: the configuration cell after the parameters is not marked"
    both = [c.source.splitlines()[0] for c in checked if "NBVAL_IGNORE_OUTPUT" in c.source]
    assert not both, f"{path.name}: cells marked both to check and to ignore: {both}"
