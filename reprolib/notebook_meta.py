"""Read a notebook's ``parameters`` cell straight from its JSON, without starting a kernel.

Every numbered notebook has exactly one code cell tagged ``parameters`` that holds only literal
assignments (``size = "smoke"``, ``epochs = 3``); papermill injects overrides right after it. The
runner uses :func:`parameter_names` to warn about overrides a notebook does not declare (papermill
would inject them anyway), and the hygiene tests use :func:`parse_parameters_source` to check that
the cell holds nothing but literals.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def load_notebook(path: str | Path) -> dict[str, Any]:
    """The notebook's JSON as plain dicts and lists (no validation, no kernel)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            nb = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a valid notebook (JSON error: {exc})") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path}: not a valid notebook (no 'cells' list)")
    return nb


def cell_source(cell: Mapping[str, Any]) -> str:
    """A cell's source as one string (nbformat stores it as a string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def cell_tags(cell: Mapping[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def parameters_cell_indices(nb: Mapping[str, Any]) -> list[int]:
    """Indices (into ``nb["cells"]``) of the code cells tagged ``parameters``."""
    return [
        i
        for i, cell in enumerate(nb.get("cells", []))
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell_tags(cell)
    ]


def parse_parameters_source(source: str) -> dict[str, Any]:
    """Strictly parse a parameters cell: every statement must assign a literal to a simple name.

    Comments and blank lines are fine. Returns ``{name: value}`` in order of appearance. Raises
    ``ValueError`` naming the line of the first statement that is not ``name = <literal>`` or
    ``name: type = <literal>`` (calls, arithmetic on other names, imports, attribute or tuple
    targets are all refused: papermill overrides only work on plain names, and values derived
    from parameters belong in the next cell).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: syntax error: {exc.msg}") from exc
    values: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is None:
                raise ValueError(f"line {stmt.lineno}: annotation without a value")
            targets, value = [stmt.target], stmt.value
        else:
            raise ValueError(
                f"line {stmt.lineno}: only assignments are allowed, found {type(stmt).__name__}"
            )
        for target in targets:
            if not isinstance(target, ast.Name):
                raise ValueError(f"line {stmt.lineno}: target must be a simple name")
        try:
            literal = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(
                f"line {stmt.lineno}: value of {targets[0].id!r} is not a literal"  # type: ignore[attr-defined]
                f" ({ast.unparse(value)})"
            ) from exc
        for target in targets:
            values[target.id] = literal  # type: ignore[attr-defined]
    return values


def parameter_names(nb: Mapping[str, Any] | str | Path) -> set[str] | None:
    """Names assigned in the notebook's (first) parameters cell; ``None`` if it has none.

    Lenient, unlike :func:`parse_parameters_source`: any simple-name assignment counts, whatever
    its value, so that a notebook with a sloppy parameters cell still gets useful warnings.
    """
    if not isinstance(nb, Mapping):
        nb = load_notebook(nb)
    indices = parameters_cell_indices(nb)
    if not indices:
        return None
    source = cell_source(nb["cells"][indices[0]])
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        while targets:
            target = targets.pop()
            if isinstance(target, ast.Name):
                names.add(target.id)
            elif isinstance(target, (ast.Tuple, ast.List)):
                targets.extend(target.elts)
    return names


# Metadata a run leaves behind that must not be committed: it changes on every execution.
RUN_NOTEBOOK_KEYS = ("papermill", "widgets")
RUN_CELL_KEYS = ("papermill", "execution", "ExecuteTime")


def strip_run_metadata(nb: dict[str, Any]) -> dict[str, Any]:
    """Remove per-run metadata (timings, widget state, papermill records) in place; returns ``nb``."""
    for key in RUN_NOTEBOOK_KEYS:
        nb.get("metadata", {}).pop(key, None)
    for cell in nb.get("cells", []):
        for key in RUN_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
    return nb
