"""Run the numbered notebooks headless with papermill: the ``reprolib reproduce`` command.

The committed notebooks are the smoke-size run. This runner re-executes them (at smoke size, at
``size="full"`` or with explicit overrides) into ``results/executed/``, one fresh ``python3``
kernel per notebook, and keeps going past a failing notebook so that one run reports every
problem. At the end it prints a summary table and returns a non-zero exit code if anything failed.

Choices worth knowing:

* Parameters are passed to papermill only when they differ from the notebooks' defaults: ``size``
  only for ``--size full`` (smoke is what the parameters cell says), plus each ``-p name=value``.
  A name that a notebook's ``parameters`` cell does not define gets a warning for that notebook
  (papermill would inject it anyway and the notebook would ignore it).
* Each notebook runs with the notebooks folder as its working directory, like nbval and JupyterLab.
* Executed copies are outputs and keep everything papermill writes (metadata, the error banner of a
  failed run). They are written atomically: papermill saves after every cell into a hidden temporary
  file in the output folder, which is renamed over the final name when the notebook ends (also when
  it failed, so the executed copy shows where). An interrupted run never leaves a half-written
  ``<name>.ipynb``. SIGTERM becomes an exception (exit status 143) that removes the temporary files
  and stops the kernels, also of notebooks running two at a time; the temporaries of a killed run
  carry its PID and are removed when the notebook runs again.
* ``MPLBACKEND=agg`` is set for the run when the user has not chosen a backend. tqdm's own
  environment variables are left alone.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from . import atomic, dryrun, paths
from .notebook_meta import INJECTED_TAG, PARAMETERS_TAG, cell_tags, load_notebook, parameter_names
from .parameters import ParameterError, check, check_known, check_value

KERNEL_NAME = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
# What a notebook reads that others write, by number: 08 and 09 reuse the baselines 03 and 04 train
# (reprolib.runstore), 11 summarises every results JSON. Run several at a time, a notebook starts
# only once what it needs (of the notebooks selected) has finished.
EVERY_OTHER = "every other notebook"
NEEDS: dict[str, tuple[str, ...] | str] = {"08": ("03", "04"), "09": ("03", "04"), "11": EVERY_OTHER}
# The order in which several at a time start (longest processing time first, numbers not listed go
# last in number order): what 08 and 09 need, then the three long notebooks (3-6 minutes at smoke
# size), then the short ones from the longest, so that the last to start are the shortest. On two
# cores the smoke suite's makespan in one-thread notebook times is 586 s this way, 620 s in number order.
START_ORDER = ("03", "04", "10", "09", "08", "07", "05", "06", "01", "02", "11")
SIZES = ("smoke", "full")


class SelectionError(ValueError):
    """A ``--only`` selector that matches no notebook, or no notebooks at all."""


@dataclass
class NotebookResult:
    """What happened to one notebook.

    ``cell_index`` is the 0-based index of the failing cell among all cells of the *source*
    notebook (papermill's injected-parameters cell is not counted); ``exec_count`` is the
    ``In [n]`` number it got in the executed copy.
    """

    name: str
    input_path: Path
    output_path: Path | None
    ok: bool
    seconds: float
    error: str | None = None
    cell_index: int | None = None
    exec_count: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAILED"

    @property
    def location(self) -> str:
        """Where it failed, e.g. ``cell 4 (In [3])``; empty when unknown."""
        if self.cell_index is None:
            return ""
        where = f"cell {self.cell_index}"
        if self.exec_count is not None:
            where += f" (In [{self.exec_count}])"
        return where


# --------------------------------------------------------------------------- finding notebooks


def find_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``folder`` (default: the repo's ``notebooks/``), sorted."""
    folder = Path(folder) if folder is not None else paths.notebooks_dir()
    return sorted(p for p in folder.glob(NOTEBOOK_GLOB) if p.is_file())


def _matches(path: Path, selector: str) -> bool:
    sel = selector.strip()
    if sel.endswith(".ipynb"):
        sel = sel[: -len(".ipynb")]
    if sel == path.stem:
        return True
    number = path.stem.split("_", 1)[0]
    if sel.isdigit():
        return int(sel) == int(number)
    return False


def number_of(path: str | Path) -> str:
    return Path(path).name[:2]


def start_order(notebooks: Sequence[str | Path]) -> list[Path]:
    """``notebooks`` in the order several-at-a-time runs start them (:data:`START_ORDER`); one at a
    time keeps number order. ``make nbval`` hands pytest-xdist this order too."""
    rank = {number: i for i, number in enumerate(START_ORDER)}
    return sorted((Path(p) for p in notebooks), key=lambda p: (rank.get(number_of(p), len(rank)), p.name))


def needs_of(path: Path, selected: Sequence[Path]) -> set[Path]:
    """The selected notebooks ``path`` must wait for (:data:`NEEDS`)."""
    needed = NEEDS.get(number_of(path), ())
    return {p for p in selected if p != path and (needed == EVERY_OTHER or number_of(p) in needed)}


def select_notebooks(notebooks: Sequence[Path], selectors: Iterable[str] | None) -> list[Path]:
    """Keep the notebooks named by ``selectors`` (number prefix like ``01`` or ``1``, or full stem).

    Order stays that of ``notebooks``; duplicates are dropped. No selectors keeps everything. An
    unknown selector raises :class:`SelectionError` listing the notebooks that exist.
    """
    selectors = [s for s in (selectors or []) if s.strip()]
    if not selectors:
        return list(notebooks)
    unknown = [s for s in selectors if not any(_matches(p, s) for p in notebooks)]
    if unknown:
        available = ", ".join(p.stem for p in notebooks) or "(none)"
        raise SelectionError(
            f"no notebook matches {', '.join(repr(s) for s in unknown)}; available: {available}"
        )
    return [p for p in notebooks if any(_matches(p, s) for s in selectors)]


# --------------------------------------------------------------------------- parameters


def parse_parameter(text: str) -> tuple[str, Any]:
    """Parse one ``name=value`` override.

    The value is read with :func:`ast.literal_eval` (``3``, ``1e-3``, ``True``, ``None``,
    ``"quoted"``, ``[1, 2]``) and falls back to the plain string when it is not a Python literal,
    so ``epochs=3`` gives an int and ``data_root=/data/caer`` a string. Quote a literal-looking
    string to keep it a string: ``-p tag="'3'"``.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise ParameterError(f"parameter {text!r} must look like name=value")
    if not name.isidentifier():
        raise ParameterError(f"parameter name {name!r} (in {text!r}) is not a valid Python name")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return name, value


def build_parameters(size: str = "smoke", overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The papermill parameters for a run: ``size`` only when not smoke, then each ``name=value``.

    Each value is checked by the rule of its name (:mod:`reprolib.parameters`) here, before any
    notebook starts, rather than minutes later inside one; a name without a rule passes (the
    per-notebook unknown-parameter warning covers it). A ``-p size=...`` that contradicts an
    explicit ``size="full"`` is an error.
    """
    check_value("size", size)
    params: dict[str, Any] = {}
    if size != "smoke":
        params["size"] = size
    for text in overrides:
        name, value = parse_parameter(text)
        if name == "size" and "size" in params and params["size"] != value:
            raise ParameterError(f"--size {size} contradicts -p {text}")
        params[name] = value
    return check_known(params)


def unknown_parameters(notebook: str | Path | Mapping[str, Any], parameters: Iterable[str]) -> list[str]:
    """Names in ``parameters`` that the notebook's ``parameters`` cell does not define."""
    known = parameter_names(notebook)
    return [name for name in parameters if known is None or name not in known]


# --------------------------------------------------------------------------- running


@contextmanager
def headless_environment() -> Iterator[None]:
    """Set ``MPLBACKEND=agg`` for the duration of a run unless the user set a backend."""
    if os.environ.get("MPLBACKEND"):
        yield
        return
    previous = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "agg"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = previous


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_jobs(size: str = "smoke") -> int:
    """Notebooks run at a time by default: two at smoke size where there are two cores or more (on
    CPU two one-thread kernels finish the suite sooner than one two-thread kernel: small models
    use a second thread poorly), one at full size (each notebook wants the whole GPU)."""
    return min(2, os.cpu_count() or 1) if size == "smoke" else 1


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def thread_variables(threads: int) -> dict[str, str]:
    """The environment that gives a kernel (torch, NumPy) ``threads`` threads; a value the user set
    in the environment is kept."""
    return {name: os.environ.get(name, str(threads)) for name in THREAD_VARIABLES}


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the kernels started meanwhile, restored afterwards."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def thread_environment(threads: int | None) -> Iterator[None]:
    """Set the thread variables of :func:`thread_variables` for the kernels started meanwhile."""
    with environment(thread_variables(threads) if threads is not None else {}):
        yield


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def _describe(ename: str, evalue: Any) -> str:
    first = _first_line(evalue)
    return f"{ename}: {first}" if first else ename


def _first_tagged(cells: list[Mapping[str, Any]], tag: str) -> int:
    return next((i for i, c in enumerate(cells) if tag in cell_tags(c)), -1)


def _source_cell_index(source_nb: Mapping[str, Any] | None, executed_index: int, injected: bool) -> int:
    """Map papermill's cell index (in the parameterized notebook) back to the source notebook.

    Papermill inserts its ``injected-parameters`` cell right after the first ``parameters`` cell
    (at the top when there is none) or replaces an existing one in place.
    """
    if not injected or source_nb is None:
        return executed_index
    cells = source_nb.get("cells", [])
    if _first_tagged(cells, INJECTED_TAG) >= 0:
        return executed_index
    position = _first_tagged(cells, PARAMETERS_TAG) + 1  # 0 when there is no parameters cell
    return executed_index - 1 if executed_index > position else executed_index


def _last_started_cell(executed: Path) -> tuple[int, int | None] | None:
    """(index, execution count) of the last cell papermill started, read from its partial output.

    Used when execution stopped without a cell error (cell timeout, dead kernel): papermill saves
    the notebook after each cell and records a ``start_time`` only for cells it started (its
    ``status`` is no help: every cell is marked completed when the run ends, reached or not).
    """
    try:
        nb = load_notebook(executed)
    except (OSError, ValueError):
        return None
    started = [
        (i, cell.get("execution_count"))
        for i, cell in enumerate(nb["cells"])
        if cell.get("cell_type") == "code"
        and (cell.get("metadata", {}).get("papermill") or {}).get("start_time") is not None
    ]
    return started[-1] if started else None


class Terminated(SystemExit):
    """SIGTERM turned into an exception (exit status 128 + 15), so that ``finally`` blocks run: the
    partial notebook is removed and the kernels are stopped instead of being left behind."""


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Only the main thread may install a handler (and only it receives the exception), so in another
    thread, or where a handler other than the default is installed (ours, or the caller's), it does
    nothing."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_KERNELS: "weakref.WeakSet[Any]" = weakref.WeakSet()
_KERNEL_MANAGER: type | None = None


def _tracked_kernel_manager() -> type:
    """nbclient's default kernel manager, recording itself: when the run is terminated, the main thread
    can stop the kernels that worker threads are waiting on (it cannot interrupt the threads)."""
    global _KERNEL_MANAGER
    if _KERNEL_MANAGER is None:
        from jupyter_client import AsyncKernelManager

        class TrackedKernelManager(AsyncKernelManager):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                _KERNELS.add(self)

        _KERNEL_MANAGER = TrackedKernelManager
    return _KERNEL_MANAGER


def _stop_kernels() -> None:
    """SIGTERM to every kernel this process started that still runs (its notebook then ends at once)."""
    for km in list(_KERNELS):
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:  # poll: never signal a reaped (reusable) pid
            try:
                process.send_signal(signal.SIGTERM)
            except OSError:
                pass


class _DropUnknownParameterWarning(logging.Filter):
    """Papermill logs "Passed unknown parameter" itself; the runner's per-notebook warning replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Passed unknown parameter")


def run_notebook(
    path: str | Path,
    output_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    execution_timeout: float | None = None,
    cwd: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> NotebookResult:
    """Execute one notebook into ``output_dir/<name>.ipynb``; never raises for a notebook failure.

    ``cwd`` defaults to the notebook's own folder. ``execution_timeout`` is per cell, in seconds
    (``None``: no limit, papermill's default). Warnings (unknown parameters) are collected in the
    result and also passed to ``warn`` before the notebook starts.

    The executed copy grows in a hidden temporary file named with this process's PID
    (:mod:`reprolib.atomic`): temporaries of runs that were killed are removed when the same notebook
    runs again. SIGTERM (in the main thread) and ``KeyboardInterrupt`` remove it and propagate;
    ``stop`` (set by :func:`run_notebooks` when the whole run is terminated) discards it too.
    """
    import papermill as pm  # imported here: ``reprolib --help`` should not pay for it

    path = Path(path)
    output_dir = Path(output_dir)
    parameters = dict(parameters or {})
    final = output_dir / path.name
    result = NotebookResult(name=path.stem, input_path=path, output_path=None, ok=False, seconds=0.0)

    try:
        source_nb: Mapping[str, Any] | None = load_notebook(path)
    except (OSError, ValueError) as exc:
        result.error = _describe(type(exc).__name__, exc)
        return result
    for name in unknown_parameters(source_nb, parameters):
        message = (
            f"parameter {name!r} is not defined in the parameters cell of {path.name}"
            " (papermill injects it anyway; the notebook will probably ignore it)"
        )
        result.warnings.append(message)
        if warn is not None:
            warn(message)

    engine_kwargs = {} if execution_timeout is None else {"execution_timeout": execution_timeout}
    start = time.perf_counter()
    with sigterm_as_exception(), atomic.temp_file(final, suffix=".partial.ipynb") as tmp:
        try:
            pm.execute_notebook(
                str(path),
                str(tmp),
                parameters=parameters,
                kernel_name=kernel_name,
                progress_bar=False,
                cwd=str(cwd if cwd is not None else path.parent),
                kernel_manager_class=_tracked_kernel_manager(),
                **engine_kwargs,
            )
            result.ok = True
        except pm.PapermillExecutionError as exc:
            result.error = _describe(exc.ename, exc.evalue)
            result.cell_index = _source_cell_index(source_nb, exc.cell_index, bool(parameters))
            result.exec_count = exc.exec_count
        except Exception as exc:  # kernel died, no such kernel, timeout, unreadable notebook, ...
            result.error = _describe(type(exc).__name__, exc)
            stopped = _last_started_cell(tmp)
            if stopped is not None:
                result.cell_index = _source_cell_index(source_nb, stopped[0], bool(parameters))
                result.exec_count = stopped[1]
        result.seconds = time.perf_counter() - start
        if stop is not None and stop.is_set():  # cut short by a terminated run: not a result to keep
            result.error = result.error or "the run was terminated"
            result.ok = False
        elif tmp.exists() and tmp.stat().st_size > 0:
            atomic.publish(tmp, final)
            result.output_path = final
    return result


def run_notebooks(
    notebooks: Sequence[str | Path],
    output_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    execution_timeout: float | None = None,
    progress: bool = True,
    log: TextIO | None = None,
    jobs: int = 1,
) -> list[NotebookResult]:
    """Execute ``notebooks`` into ``output_dir``, continuing past failures; results in input order.

    ``jobs`` > 1 runs that many notebooks at a time, each kernel with ``cores / jobs`` threads,
    started in :func:`start_order`, each only once what it needs has finished (:data:`NEEDS`: 08 and
    09 find the baselines of 03 and 04 to reuse, 11 summarises everything before it).
    One tqdm bar over the notebooks when ``progress``; warnings and per-notebook failures are
    written to ``log`` (default ``sys.stderr``) as they happen.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    from tqdm import tqdm

    log = log if log is not None else sys.stderr
    paths_in_order = [Path(p) for p in notebooks]
    jobs = max(1, min(jobs, len(paths_in_order) or 1))
    results: dict[Path, NotebookResult] = {}
    papermill_logger = logging.getLogger("papermill")
    drop_duplicate = _DropUnknownParameterWarning()
    papermill_logger.addFilter(drop_duplicate)
    bar = tqdm(total=len(paths_in_order), unit="notebook", disable=not progress, file=log, dynamic_ncols=True)
    stop = threading.Event()  # set when the run is terminated: workers then discard their partial copies

    def one(path: Path) -> NotebookResult:
        return run_notebook(path, output_dir, parameters, kernel_name=kernel_name,
                            execution_timeout=execution_timeout, stop=stop,
                            warn=lambda message: bar.write(f"warning: {path.stem}: {message}", file=log))

    def finished(path: Path, result: NotebookResult) -> None:
        if not result.ok:
            where = f" at {result.location}" if result.location else ""
            bar.write(f"FAILED: {result.name}{where}: {result.error}", file=log)
        results[path] = result
        bar.update(1)

    try:
        with sigterm_as_exception(), headless_environment(), \
                thread_environment(threads_per_job(jobs) if jobs > 1 else None):
            if jobs == 1:
                for path in paths_in_order:
                    bar.set_description(path.stem)
                    finished(path, one(path))
            else:  # each kernel is its own process; the threads here only wait for them
                pending, running = start_order(paths_in_order), {}
                needs = {path: needs_of(path, paths_in_order) for path in pending}
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    try:
                        while pending or running:
                            while len(running) < jobs:
                                ready = [p for p in pending if needs[p] <= set(results)]
                                if not ready:
                                    if not running:
                                        raise RuntimeError(f"NEEDS is circular among {[p.name for p in pending]}")
                                    break
                                path = ready[0]
                                pending.remove(path)
                                running[pool.submit(one, path)] = path
                            bar.set_description(", ".join(p.stem[:2] for p in running.values()) + " running")
                            done, _ = wait(running, return_when=FIRST_COMPLETED)
                            for future in done:
                                finished(running.pop(future), future.result())
                    except BaseException:  # SIGTERM or Ctrl-C reach this thread only: end the workers' runs
                        stop.set()
                        _stop_kernels()
                        raise
                bar.set_description("done")
    except BaseException:
        stop.set()
        _stop_kernels()  # jobs == 1: nbclient shuts its kernel down itself; this only makes sure
        raise
    finally:
        bar.close()
        papermill_logger.removeFilter(drop_duplicate)
    return [results[p] for p in paths_in_order if p in results]


def format_summary(results: Sequence[NotebookResult]) -> str:
    """A plain-text table: notebook, status, wall time, and for failures where and why."""
    header = ("notebook", "status", "time", "failure")
    rows = []
    for r in results:
        failure = ""
        if not r.ok:
            failure = f"{r.location}: {r.error}" if r.location else (r.error or "")
        rows.append((r.name, r.status, f"{r.seconds:.1f}s", failure))
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        name, status, secs, failure = row
        line = f"{name:<{widths[0]}}  {status:<{widths[1]}}  {secs:>{widths[2]}}  {failure}"
        lines.append(line.rstrip())
    n_failed = sum(not r.ok for r in results)
    total = sum(r.seconds for r in results)
    lines.append(
        f"{len(results)} notebook(s), {len(results) - n_failed} ok, {n_failed} failed, {total:.1f}s in total"
    )
    return "\n".join(lines)


def reproduce(
    *,
    size: str = "smoke",
    only: Iterable[str] | None = None,
    overrides: Iterable[str] = (),
    output_dir: str | Path | None = None,
    notebooks_folder: str | Path | None = None,
    execution_timeout: float | None = None,
    progress: bool = True,
    out: TextIO | None = None,
    log: TextIO | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
) -> int:
    """Run the selected notebooks and print the summary to ``out``; returns 0 if all ran.

    ``jobs``: notebooks at a time (None: :func:`default_jobs` for the size). ``dry_run``: each
    training takes a few timed steps on a sample of each split (:mod:`reprolib.dryrun`); results,
    checkpoints and executed notebooks go to ``results/dry_run/``, and the steps the real run will
    take, with an estimate of its time on this machine, are printed per notebook and written to
    ``results/dry_run/estimate.json``.

    Raises :class:`SelectionError` / :class:`ParameterError` for bad selectors or overrides
    (before anything runs).
    """
    out = out if out is not None else sys.stdout
    folder = Path(notebooks_folder) if notebooks_folder is not None else paths.notebooks_dir()
    parameters = build_parameters(size, overrides)
    check(jobs=jobs, cell_timeout=execution_timeout)
    notebooks = find_notebooks(folder)
    if not notebooks:
        raise SelectionError(f"no numbered notebooks ({NOTEBOOK_GLOB}) in {folder}")
    selected = select_notebooks(notebooks, only)
    results_folder = paths.results_dir() / dryrun.FOLDER if dry_run else paths.results_dir()
    output_dir = Path(output_dir) if output_dir is not None else results_folder / "executed"
    jobs = default_jobs(size) if jobs is None else jobs
    started = time.perf_counter()
    with dry_run_environment(results_folder, selected) if dry_run else nullcontext():
        results = run_notebooks(
            selected, output_dir, parameters, execution_timeout=execution_timeout, progress=progress, log=log,
            jobs=jobs,
        )
    print(format_summary(results), file=out)
    if dry_run:
        estimates = {path.stem: dryrun.read_estimate(results_folder, path.stem) for path in selected}
        print("\nfull-size dry run: what the real run will do, and how long it would take here", file=out)
        print(dryrun.report(estimates), file=out)
        from .results import machine

        atomic.write_text(results_folder / "estimate.json", json.dumps(
            {"machine": machine(), "size": size, "notebooks": estimates}, indent=2, default=float) + "\n")
        print(f"estimate: {results_folder / 'estimate.json'}", file=out)
    if jobs > 1:
        print(f"wall time {time.perf_counter() - started:.1f}s, {jobs} notebooks at a time, "
              f"{threads_per_job(jobs)} thread(s) each", file=out)
    print(f"executed notebooks: {output_dir}", file=out)
    return 0 if all(r.ok for r in results) else 1


@contextmanager
def dry_run_environment(results_folder: Path, selected: Sequence[Path]) -> Iterator[None]:
    """The switches the kernels of a dry run inherit: :data:`reprolib.dryrun.ENV`, and results written
    to ``results_folder`` (not over the committed ones); stale event files of these notebooks removed."""
    results_folder.mkdir(parents=True, exist_ok=True)
    for path in selected:
        dryrun.events_file(results_folder, path.stem).unlink(missing_ok=True)
    with environment({dryrun.ENV: "1", "REPROLIB_RESULTS": str(results_folder)}):
        yield


def refresh_committed(path: Path, *, kernel_name: str = "python3", timeout: float | None = None) -> Path:
    """Re-execute a committed notebook in place at its defaults (smoke size), as nbval will compare it.

    Progress bars are switched off (as under test) and run metadata is stripped, so the committed file
    holds the smoke outputs and nothing that changes from run to run.
    """
    import nbformat
    from nbclient import NotebookClient

    from reprolib.notebook_meta import strip_run_metadata

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        NotebookClient(nb, kernel_name=kernel_name, timeout=timeout,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous
    strip_run_metadata(nb)
    with atomic.replacing(path, suffix=".refresh") as tmp:  # unique per writer; a killed one is cleaned later
        nbformat.write(nb, tmp)
    return path


def refresh_all(paths: Sequence[Path], *, jobs: int | None = None, log: Callable[[str], None] = print) -> None:
    """:func:`refresh_committed` for each notebook, ``jobs`` at a time with the thread count that
    ``reproduce`` and ``make nbval`` give a kernel, so the committed run is the one they repeat."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = default_jobs() if jobs is None else jobs
    threads = threads_per_job(jobs)  # of the requested jobs, also for one notebook: as nbval runs it

    def one(path: Path) -> Path:
        log(f"refreshing {path.name} ...")
        started = time.perf_counter()
        refresh_committed(path)
        log(f"refreshed {path.name} in {time.perf_counter() - started:.0f}s")
        return path

    with thread_environment(threads), ThreadPoolExecutor(max_workers=max(1, min(jobs, len(paths) or 1))) as pool:
        list(pool.map(one, paths))
