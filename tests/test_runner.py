"""Tests for the papermill runner and the ``reproduce`` CLI, on tiny notebooks in ``tmp_path``.

Every kernel start costs about a second, so the notebooks are executed only five times in all:
twice by the module fixture (Python API), twice by the CLI test and once by the ``--only`` test.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reprolib import runner
from reprolib.__main__ import main

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _parameters_cell(source: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def _write_notebooks(folder: Path, report: Path) -> tuple[Path, Path]:
    """01_fails (second code cell raises) and 02_writes (dumps its parameters to ``report``)."""
    folder.mkdir(parents=True, exist_ok=True)
    failing = new_notebook(metadata={"kernelspec": KERNELSPEC})
    failing.cells = [
        new_markdown_cell("# fails"),
        _parameters_cell('size = "smoke"\nvalue = 1'),
        new_code_cell("x = 1\nraise ZeroDivisionError('boom on purpose')\n# second line of evalue"),
        new_code_cell("print('never reached')"),
    ]
    writing = new_notebook(metadata={"kernelspec": KERNELSPEC})
    writing.cells = [
        new_markdown_cell("# writes"),
        _parameters_cell(f'# smoke defaults\nsize = "smoke"\nvalue = 1\nlabel = "default"\nreport = {str(report)!r}'),
        new_code_cell(
            "import json, os\n"
            "with open(report, 'w') as f:\n"
            "    json.dump({'size': size, 'value': value, 'value_type': type(value).__name__,\n"
            "               'label': label, 'mpl': os.environ.get('MPLBACKEND'), 'cwd': os.getcwd(),\n"
            "               'omp': os.environ.get('OMP_NUM_THREADS')}, f)\n"
            "print('done')"
        ),
    ]
    paths = folder / "01_fails.ipynb", folder / "02_writes.ipynb"
    nbformat.write(failing, paths[0])
    nbformat.write(writing, paths[1])
    return paths


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """Run both notebooks (the failing one first) through ``run_notebooks`` once."""
    root = tmp_path_factory.mktemp("api")
    report = root / "report.json"
    fails, writes = _write_notebooks(root / "notebooks", report)
    out = root / "executed"
    log = io.StringIO()
    saved_backend = os.environ.pop("MPLBACKEND", None)  # the runner must set agg itself, then restore
    try:
        omp_before = os.environ.get("OMP_NUM_THREADS")
        results = runner.run_notebooks(
            [fails, writes], out, {"value": 7, "label": "hi", "undeclared": 1}, progress=False, log=log, jobs=2
        )
        backend_after = os.environ.get("MPLBACKEND")
        omp_restored = os.environ.get("OMP_NUM_THREADS") == omp_before
    finally:
        if saved_backend is not None:
            os.environ["MPLBACKEND"] = saved_backend
    return {"results": results, "out": out, "report": report, "log": log.getvalue(), "folder": fails.parent,
            "backend_after": backend_after, "omp_restored": omp_restored}


# --------------------------------------------------------------------------- Python API


def test_two_at_a_time_keeps_input_order_and_gives_each_kernel_its_share_of_threads(api_run):
    assert [r.name for r in api_run["results"]] == ["01_fails", "02_writes"]
    report = json.loads(api_run["report"].read_text())
    assert report["omp"] == runner.thread_variables(runner.threads_per_job(2))["OMP_NUM_THREADS"]
    assert api_run["omp_restored"]


def test_default_jobs_are_two_at_smoke_size_and_one_at_full_size(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert runner.default_jobs("smoke") == 2 and runner.default_jobs("full") == 1 and runner.threads_per_job(2) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert runner.default_jobs("smoke") == 1 and runner.threads_per_job(2) == 1


def test_failure_is_reported_and_the_next_notebook_still_runs(api_run):
    failed, ok = api_run["results"]
    assert (failed.name, failed.ok, failed.status) == ("01_fails", False, "FAILED")
    # index 2 in the source notebook (markdown, parameters, raising cell); papermill's injected cell
    # makes it In [3] in the executed copy
    assert failed.cell_index == 2
    assert failed.exec_count == 3
    assert failed.error == "ZeroDivisionError: boom on purpose"
    assert "FAILED: 01_fails at cell 2 (In [3]): ZeroDivisionError: boom on purpose" in api_run["log"]
    assert ok.ok and ok.name == "02_writes" and ok.seconds > 0


def test_parameters_are_injected_and_environment_is_headless(api_run):
    report = json.loads(api_run["report"].read_text())
    assert report["value"] == 7 and report["value_type"] == "int"
    assert report["label"] == "hi"
    assert report["size"] == "smoke"  # not passed: the notebook's default
    assert report["mpl"] == "agg"
    assert api_run["backend_after"] is None  # restored after the run
    assert Path(report["cwd"]).resolve() == api_run["folder"].resolve()


def test_executed_copies_are_written_atomically(api_run):
    out = api_run["out"]
    assert sorted(p.name for p in out.iterdir()) == ["01_fails.ipynb", "02_writes.ipynb"]  # no temp files
    failed, ok = api_run["results"]
    assert failed.output_path == out / "01_fails.ipynb" and ok.output_path == out / "02_writes.ipynb"
    executed = nbformat.read(out / "02_writes.ipynb", as_version=4)
    assert "papermill" in executed.metadata  # outputs keep papermill's metadata
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert any(o.get("text") == "done\n" for c in executed.cells for o in c.get("outputs", []))
    # the failed copy is kept too, with papermill's error banner, so one can see where it stopped
    failed_nb = nbformat.read(out / "01_fails.ipynb", as_version=4)
    assert any(o.output_type == "error" for c in failed_nb.cells for o in c.get("outputs", []))


def test_unknown_parameter_warns_per_notebook(api_run):
    failed, ok = api_run["results"]
    assert any("'undeclared'" in w for w in failed.warnings)
    assert any("'undeclared'" in w for w in ok.warnings)
    assert not any("'value'" in w or "'label'" in w for w in ok.warnings)
    assert any("'label'" in w for w in failed.warnings)  # 01_fails has no `label`
    assert "warning: 02_writes: parameter 'undeclared'" in api_run["log"]


def test_summary_table(api_run):
    text = runner.format_summary(api_run["results"])
    lines = text.splitlines()
    assert lines[0].split() == ["notebook", "status", "time", "failure"]
    assert lines[1].startswith("01_fails") and "FAILED" in lines[1]
    assert "cell 2 (In [3]): ZeroDivisionError: boom on purpose" in lines[1]
    assert "second line" not in text
    assert lines[2].startswith("02_writes") and " ok " in lines[2]
    assert lines[-1].startswith("2 notebook(s), 1 ok, 1 failed")


def test_error_outside_a_cell_is_caught(tmp_path):
    """Anything else (here: a kernel that does not exist) is a failure too, not a crash; no kernel starts."""
    (nb,) = _write_notebooks(tmp_path / "nbs", tmp_path / "r.json")[1:]
    results = runner.run_notebooks([nb], tmp_path / "out", kernel_name="no-such-kernel-xyz", progress=False,
                                   log=io.StringIO())
    assert not results[0].ok
    assert results[0].error.startswith("NoSuchKernel")
    assert results[0].cell_index is None
    assert not any((tmp_path / "out").glob(".*partial*"))  # temp file cleaned up


# --------------------------------------------------------------------------- CLI


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_runs_everything_with_full_size_and_overrides(tmp_path):
    report = tmp_path / "report.json"
    folder = tmp_path / "notebooks"
    _write_notebooks(folder, report)
    out = tmp_path / "executed"
    (out).mkdir()
    (out / "02_writes.ipynb").write_text("stale")  # an old executed copy is replaced
    code, stdout, stderr = _cli(
        "reproduce", "--notebooks", str(folder), "--output", str(out),
        "--size", "full", "-p", "value=[1, 2]", "-p", "label=/data/caer",
    )
    assert code == 1
    assert "01_fails" in stdout and "FAILED" in stdout and "ZeroDivisionError: boom on purpose" in stdout
    assert "02_writes" in stdout
    written = json.loads(report.read_text())
    assert written["size"] == "full"
    assert written["value"] == [1, 2] and written["value_type"] == "list"
    assert written["label"] == "/data/caer"
    assert sorted(p.name for p in out.iterdir()) == ["01_fails.ipynb", "02_writes.ipynb"]
    assert nbformat.read(out / "02_writes.ipynb", as_version=4).cells  # the stale file was replaced
    assert "01_fails" in stderr  # the progress bar / failure line go to stderr


def test_cli_only_selects_by_number(tmp_path):
    report = tmp_path / "report.json"
    folder = tmp_path / "notebooks"
    _write_notebooks(folder, report)
    out = tmp_path / "executed"
    code, stdout, _ = _cli("reproduce", "--notebooks", str(folder), "--output", str(out), "--only", "2",
                           "--no-progress")
    assert code == 0
    assert [p.name for p in out.iterdir()] == ["02_writes.ipynb"]
    assert "01_fails" not in stdout
    assert json.loads(report.read_text())["size"] == "smoke"


def test_cli_unknown_selector_lists_notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    _write_notebooks(folder, tmp_path / "r.json")
    code, _, stderr = _cli("reproduce", "--notebooks", str(folder), "--output", str(tmp_path / "o"),
                           "--only", "01", "07")
    assert code == 2
    assert "'07'" in stderr and "01_fails, 02_writes" in stderr
    assert not (tmp_path / "o").exists()  # nothing ran


def test_cli_bad_parameter_and_empty_folder(tmp_path):
    folder = tmp_path / "notebooks"
    _write_notebooks(folder, tmp_path / "r.json")
    code, _, stderr = _cli("reproduce", "--notebooks", str(folder), "-p", "no_equals_sign")
    assert code == 2 and "name=value" in stderr
    code, _, stderr = _cli("reproduce", "--notebooks", str(folder), "--size", "full", "-p", "size='smoke'")
    assert code == 2 and "contradicts" in stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = _cli("reproduce", "--notebooks", str(empty))
    assert code == 2 and "no numbered notebooks" in stderr


def test_cli_without_command_prints_help():
    code, _, stderr = _cli()
    assert code == 2 and "reproduce" in stderr


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    "text, expected",
    [
        ("epochs=3", ("epochs", 3)),
        ("lr=1e-3", ("lr", 0.001)),
        ("flag=True", ("flag", True)),
        ("nothing=None", ("nothing", None)),
        ("sizes=[32, 48]", ("sizes", [32, 48])),
        ("tag='3'", ("tag", "3")),
        ("data_root=/data/caer", ("data_root", "/data/caer")),
        ("model=resnet18", ("model", "resnet18")),
        ("msg=hello world", ("msg", "hello world")),
        ("expr=2*3", ("expr", "2*3")),  # not a literal: kept as text, never evaluated
        ("eq=a=b", ("eq", "a=b")),
        ("empty=", ("empty", "")),
        (" spaced = 5 ", ("spaced", 5)),
    ],
)
def test_parse_parameter(text, expected):
    assert runner.parse_parameter(text) == expected


@pytest.mark.parametrize("text", ["novalue", "=3", "1x=3", "a-b=1", "a.b=1"])
def test_parse_parameter_rejects(text):
    with pytest.raises(runner.ParameterError):
        runner.parse_parameter(text)


def test_build_parameters():
    assert runner.build_parameters() == {}
    assert runner.build_parameters("smoke", ["epochs=2"]) == {"epochs": 2}
    assert runner.build_parameters("full") == {"size": "full"}
    assert runner.build_parameters("full", ["size='full'"]) == {"size": "full"}
    assert runner.build_parameters("smoke", ["size=full"]) == {"size": "full"}  # -p alone is honoured
    with pytest.raises(runner.ParameterError):
        runner.build_parameters("huge")


def test_find_and_select(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "10_c.ipynb", "scratch.ipynb", "1_short.ipynb", "03_d.txt"]:
        (tmp_path / name).write_text("{}")
    found = runner.find_notebooks(tmp_path)
    assert [p.name for p in found] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    pick = lambda *s: [p.stem for p in runner.select_notebooks(found, s)]  # noqa: E731
    assert pick() == ["01_a", "02_b", "10_c"]
    assert pick("10", "01") == ["01_a", "10_c"]  # notebook order, not selector order
    assert pick("1") == ["01_a"]
    assert pick("02_b", "02_b.ipynb", "2") == ["02_b"]
    with pytest.raises(runner.SelectionError, match="01_a, 02_b, 10_c"):
        pick("04")
    with pytest.raises(runner.SelectionError):
        pick("a")  # a bare word is not a prefix match


def test_unknown_parameters_reads_the_cell(tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell("size = 'x'"), _parameters_cell("size = 'smoke'\nepochs: int = 3\na, b = 1, 2")]
    assert runner.unknown_parameters(nb, ["size", "epochs", "a", "b", "lr"]) == ["lr"]
    no_cell = new_notebook()
    no_cell.cells = [new_code_cell("size = 'smoke'")]
    assert runner.unknown_parameters(no_cell, ["size"]) == ["size"]


def test_source_cell_index_mapping():
    nb = new_notebook()
    nb.cells = [new_markdown_cell("t"), _parameters_cell("a = 1"), new_code_cell("x"), new_code_cell("y")]
    # injected cell lands at index 2; cells after it shift by one
    assert runner._source_cell_index(nb, 4, injected=True) == 3
    assert runner._source_cell_index(nb, 1, injected=True) == 1
    assert runner._source_cell_index(nb, 4, injected=False) == 4
    nb.cells.insert(2, new_code_cell("a = 2"))
    nb.cells[2].metadata["tags"] = ["injected-parameters"]  # replaced in place: no shift
    assert runner._source_cell_index(nb, 4, injected=True) == 4


def test_last_started_cell_locates_a_stop_without_error_output(tmp_path):
    """A cell timeout or dead kernel leaves no error output; the partial copy still says where."""
    nb = new_notebook()
    started = ["2026-01-01T00:00:00", "2026-01-01T00:00:01", "2026-01-01T00:00:02", None]
    nb.cells = [new_markdown_cell("t")] + [new_code_cell(f"c{i}", execution_count=i + 1 if t else None)
                                           for i, t in enumerate(started)]
    for cell, t in zip(nb.cells[1:], started):  # papermill marks every cell "completed" at the end
        cell.metadata["papermill"] = {"status": "completed", "start_time": t}
    path = tmp_path / "partial.ipynb"
    nbformat.write(nb, path)
    assert runner._last_started_cell(path) == (3, 3)
    empty = tmp_path / "empty.ipynb"
    empty.write_text("")
    assert runner._last_started_cell(empty) is None


# --------------------------------------------------------------------------- start order and needs

SUITE = ["01_context_bias", "02_confounder_dictionary", "03_baseline_emotnet", "04_baseline_caernet",
         "05_baseline_gnncnn", "06_baseline_cdnet", "07_baseline_emoticon", "08_ccim", "09_clef",
         "10_causalmer_missing_modality", "11_summary"]


def test_start_order_puts_what_08_and_09_reuse_first_and_the_summary_last():
    order = [p.stem[:2] for p in runner.start_order([Path(f"{n}.ipynb") for n in SUITE])]
    assert order == list(runner.START_ORDER)
    assert sorted(order) == [n[:2] for n in SUITE]  # every notebook once
    for late, early in (("08", "03"), ("08", "04"), ("09", "03"), ("09", "04")):
        assert order.index(early) < order.index(late)
    assert order[-1] == "11"
    # a notebook the order does not name goes last, in number order
    assert [p.stem for p in runner.start_order([Path("12_new.ipynb"), Path("11_summary.ipynb"), Path("03_x.ipynb")])] \
        == ["03_x", "11_summary", "12_new"]


def test_the_cli_prints_the_start_order(capsys, monkeypatch):
    from reprolib.__main__ import main
    from reprolib.paths import repo_root

    monkeypatch.chdir(repo_root())
    assert main(["order"]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).stem[:2] for p in printed] == list(runner.START_ORDER)
    assert all(Path(p).exists() for p in printed)


def test_two_at_a_time_a_notebook_waits_for_what_it_needs(monkeypatch, tmp_path):
    """Scheduled with fake notebooks whose durations make the needs bite: 08 and 09 must not start
    before 03 and 04 have finished, 11 not before everything else; results stay in input order."""
    import threading
    import time as clock

    durations = {"03": 0.30, "04": 0.05, "10": 0.05, "09": 0.05, "08": 0.05, "07": 0.05, "11": 0.01}
    events, lock = [], threading.Lock()

    def fake_run(path, output_dir, parameters, **kwargs):
        number = Path(path).stem[:2]
        with lock:
            events.append(("start", number))
        clock.sleep(durations[number])
        with lock:
            events.append(("end", number))
        return runner.NotebookResult(name=Path(path).stem, input_path=Path(path), output_path=None, ok=True,
                                     seconds=durations[number])

    monkeypatch.setattr(runner, "run_notebook", fake_run)
    paths = [tmp_path / f"{n}_nb.ipynb" for n in sorted(durations)]
    results = runner.run_notebooks(paths, tmp_path / "out", {}, progress=False, log=io.StringIO(), jobs=2)
    assert [r.name[:2] for r in results] == sorted(durations)
    at = {event: i for i, event in enumerate(events)}
    for late in ("08", "09"):
        assert at[("start", late)] > max(at[("end", "03")], at[("end", "04")]), events
    assert at[("start", "11")] > max(at[("end", n)] for n in durations if n != "11"), events
    assert at[("start", "10")] < at[("end", "03")], events  # the slot 04 frees is not left idle
