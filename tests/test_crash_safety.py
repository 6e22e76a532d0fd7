"""Work survives a crash: sweeps resume from their journal, killed writers' temporaries are cleaned (never
a live writer's), concurrent writers of one file do not collide, a SIGTERM'd runner leaves no partial
notebook, and fit resumes after SIGKILL as if never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from reprolib import atomic, engine, experiments, mer, sweeps
from reprolib.data import synthetic

ROOT = Path(__file__).resolve().parents[1]


class Crash(Exception):
    """Stands for the machine going down in the middle of a sweep."""


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stale_name(path: Path, pid: int, suffix: str = ".tmp", host: str | None = None) -> Path:
    """A temporary sibling of ``path`` as a writer with ``pid`` (on ``host``) would have named it."""
    return path.with_name(f"{atomic.temp_prefix(path.name, pid, host)}abcd1234{suffix}")


def _without_seconds(table):
    """The metrics of a sweep JSON with the wall-clock ``seconds`` of each run dropped."""
    if isinstance(table, dict):
        return {k: _without_seconds(v) for k, v in table.items() if k != "seconds"}
    if isinstance(table, list):
        return [_without_seconds(v) for v in table]
    return table


def _crash_on_call(monkeypatch, module, name: str, crash_at: int) -> dict:
    """Make ``module.name`` raise :class:`Crash` on its ``crash_at``-th call (1-based) and count its calls;
    set ``["crash_at"]`` of the returned dict to None to stop crashing, and clear ``["calls"]`` to recount."""
    real, state = getattr(module, name), {"calls": [], "crash_at": crash_at}

    def wrapped(*args, **kwargs):
        state["calls"].append(kwargs.get("seed"))
        if len(state["calls"]) == state["crash_at"]:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return state


# ----------------------------------------------------------------------------------------- sweeps


@pytest.fixture
def tiny_sweeps(tmp_path, monkeypatch):
    """Sweeps at a size that trains in a second: two CAER-S baselines, 2 epochs on 84 small pictures."""
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setitem(sweeps.SIZES, "smoke", dict(epochs=2, lr=3e-3, backbone="small", scale=1,
                                                    views={"caer_s": (16, 24, 24)}))
    monkeypatch.setattr(sweeps, "SMOKE_SIZES", {"caer_s": {"train": 42, "val": 14, "test": 14, "test_ood": 14}})
    return tmp_path


def _baselines_sweep(results: Path, monkeypatch, log=lambda _: None):
    monkeypatch.setenv("REPROLIB_RESULTS", str(results))
    return sweeps.sweep("baselines", "smoke", seeds=(0, 1), only=["caernet", "cdnet"], log=log)


def test_a_crashed_sweep_resumes_and_ends_like_an_uninterrupted_one(tiny_sweeps, monkeypatch):
    straight = _baselines_sweep(tiny_sweeps / "straight", monkeypatch)

    crash = _crash_on_call(monkeypatch, experiments, "train_and_score", crash_at=3)
    with pytest.raises(Crash):
        _baselines_sweep(tiny_sweeps / "resumed", monkeypatch)
    journals = list((tiny_sweeps / "resumed" / "checkpoints" / "sweeps").glob("sweep_baselines_smoke-*.jsonl"))
    assert len(journals) == 1 and len(journals[0].read_text().splitlines()) == 2  # the two runs that ended
    assert not (tiny_sweeps / "resumed" / "sweep_baselines_smoke.json").exists()
    records = [json.loads(line) for line in journals[0].read_text().splitlines()]
    kept = {record["run"]: record["row"]["seconds"] for record in records}

    crash.update(crash_at=None, calls=[])  # the same command again, on a machine that stays up
    lines: list[str] = []
    resumed = _baselines_sweep(tiny_sweeps / "resumed", monkeypatch, log=lines.append)

    assert crash["calls"] == [0, 1]  # only cdnet's two runs, the one the crash lost and the one never begun
    assert any("2 run(s) finished by an interrupted sweep" in line for line in lines)
    assert sum("kept from the journal" in line for line in lines) == 2
    again, first = (json.loads((tiny_sweeps / folder / "sweep_baselines_smoke.json").read_text())
                    for folder in ("resumed", "straight"))
    assert _without_seconds(again["metrics"]) == _without_seconds(first["metrics"])
    assert again["provenance"]["parameters"] == first["provenance"]["parameters"]
    assert _without_seconds(resumed) == _without_seconds(straight)  # the returned table too
    caernet_seeds = {r["seed"]: r["seconds"] for r in resumed["caernet"]["runs"]}
    assert caernet_seeds == {0: kept['["caernet", "baseline", 0]'], 1: kept['["caernet", "baseline", 1]']}
    assert not journals[0].exists()  # removed once the final JSON is written


def test_a_journal_of_other_arguments_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    args = {"method": "baselines", "size": "smoke", "seeds": [0, 1]}
    first = sweeps.Journal("sweep_x", args, log=lambda _: None)
    first.add(("caernet", "baseline", 0), {"seed": 0, "test": 0.5, "seconds": 1.0})
    assert sweeps.Journal("sweep_x", args).get("caernet", "baseline", 0) == {"seed": 0, "test": 0.5, "seconds": 1.0}
    assert sweeps.Journal("sweep_x", {**args, "seeds": [0, 1, 2]}).get("caernet", "baseline", 0) is None
    monkeypatch.setattr(sweeps.runstore, "code_digest", lambda: "another version of the code")
    assert sweeps.Journal("sweep_x", args).get("caernet", "baseline", 0) is None


def test_a_torn_journal_line_is_ignored_and_the_next_record_survives(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    journal = sweeps.Journal("sweep_y", {"seeds": [0, 1, 2]})
    journal.add(("m", "v", 0), {"test": 0.25, "seconds": 3.0})
    with open(journal.path, "ab") as fh:  # what a kill in the middle of an append leaves
        fh.write(b'{"key": "' + journal.key.encode() + b'", "run": "[\\"m\\", \\"v\\", 1]", "row": {"te')
    assert sweeps.Journal("sweep_y", {"seeds": [0, 1, 2]}).done.keys() == {'["m", "v", 0]'}
    journal.add(("m", "v", 2), {"test": 0.75, "seconds": 4.0})  # appended after the torn line, not into it
    again = sweeps.Journal("sweep_y", {"seeds": [0, 1, 2]})
    assert again.get("m", "v", 0)["test"] == 0.25 and again.get("m", "v", 2)["test"] == 0.75
    assert again.get("m", "v", 1) is None


TINY_MER = dict(epochs=1, lr=1e-3, batch_size=8, branch_encoder="small", scale=1,
                mult=dict(d=4, num_heads=2, layers=1, kernel_sizes=(1, 1, 1), positions="all"))


def test_a_crashed_causalmer_sweep_resumes_like_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setitem(mer.SIZES, "smoke", TINY_MER)
    monkeypatch.setattr(mer, "SMOKE_SPLITS", {"train": 40, "valid": 16, "test": 24})
    run = lambda folder, log=lambda _: None: (monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path / folder)),
                                               mer.sweep("smoke", seeds=(0, 1), datasets=("mosei",), log=log))[1]
    straight = run("straight")
    crash = _crash_on_call(monkeypatch, mer, "train", crash_at=4)
    with pytest.raises(Crash):
        run("resumed")
    crash.update(crash_at=None, calls=[])
    lines: list[str] = []
    resumed = run("resumed", lines.append)
    assert crash["calls"] == [1]  # causalmer seed 1 only: mult's two runs and causalmer seed 0 were kept
    assert sum("kept from the journal" in line for line in lines) == 3
    read = lambda folder: json.loads((tmp_path / folder / "sweep_causalmer_smoke.json").read_text())["metrics"]
    assert _without_seconds(read("resumed")) == _without_seconds(read("straight"))
    assert _without_seconds(resumed) == _without_seconds(straight)
    assert not list((tmp_path / "resumed" / "checkpoints" / "sweeps").glob("*.jsonl"))


# ------------------------------------------------------------------------- temporaries and writers


def test_stale_temporaries_of_dead_writers_go_and_live_ones_stay(tmp_path):
    target = tmp_path / "file.pkl"
    dead = _stale_name(target, _dead_pid())
    alive_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _stale_name(target, alive_child.pid)
        mine = _stale_name(target, os.getpid())  # another thread of this process may be writing it
        elsewhere = _stale_name(target, _dead_pid(), host="another-host")  # a shared file system
        other_file = _stale_name(tmp_path / "file.pkl.bak", _dead_pid())
        for p in (dead, live, mine, elsewhere, other_file):
            p.write_bytes(b"half")
        folder = _stale_name(tmp_path / "dataset", _dead_pid(), suffix="")
        folder.mkdir()
        (folder / "a.png").write_bytes(b"x")
        assert atomic.remove_stale(target) == [dead]
        assert atomic.remove_stale(tmp_path / "dataset") == [folder]
        assert all(p.exists() for p in (live, mine, elsewhere, other_file))
    finally:
        alive_child.kill()
        alive_child.wait()


def test_make_mult_removes_a_killed_writers_half_file(tmp_path):
    small = {"sizes": {"train": 20, "valid": 8, "test": 8}}
    target = tmp_path / "m.pkl"
    stale = _stale_name(target, _dead_pid())
    stale.write_bytes(b"\x80half a pickle")
    assert synthetic.make_mult(target, "mosei", seed=0, **small) == target
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl"]


def test_concurrent_savers_of_one_checkpoint_never_collide(tmp_path):
    path, errors = tmp_path / "last.pt", []
    state = {"weights": torch.randn(64, 64)}

    def saver():
        for _ in range(40):
            try:
                engine._atomic_save(state, path)
            except Exception as err:  # noqa: BLE001 - counting failures is the point
                errors.append(err)

    threads = [threading.Thread(target=saver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and torch.equal(torch.load(path, weights_only=True)["weights"], state["weights"])
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    engine._atomic_save({"epoch": 1}, path)
    with pytest.raises(Exception):
        engine._atomic_save({"epoch": 2, "bad": lambda: None}, path)  # lambdas do not pickle
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reprolib.data import synthetic

    def writer(tmp, rng):
        (tmp / "part.bin").write_bytes(b"x" * 1000)
        Path(sys.argv[2]).write_text("started")
        time.sleep(float(sys.argv[3]))
        return {}

    print(synthetic.build_cached(sys.argv[1], "toy", 0, {}, writer))
""")


def _quick_writer(tmp, rng):
    (tmp / "part.bin").write_bytes(b"y" * 10)
    return {}


def _start_slow_writer(root: Path, flag: Path, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(root), str(flag), str(seconds)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not flag.exists():
        assert child.poll() is None and time.time() < deadline, "the writer did not start"
        time.sleep(0.05)
    return child


def test_a_killed_generation_is_cleaned_but_a_live_one_is_left_alone(tmp_path):
    target = synthetic.dataset_dir(tmp_path, "toy", 0, {})
    killed = _start_slow_writer(tmp_path, tmp_path / "killed.flag", 60)
    killed.kill()
    killed.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(leftovers) == 1  # what SIGKILL leaves behind

    live = _start_slow_writer(tmp_path, tmp_path / "live.flag", 2)
    try:
        live_temp = [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.") and p != leftovers[0]]
        assert synthetic.build_cached(tmp_path, "toy", 0, {}, _quick_writer) == target
        assert not leftovers[0].exists()  # the dead writer's folder went
        assert live_temp and all(p.exists() for p in live_temp)  # the live writer's stayed
        out, _ = live.communicate(timeout=60)
    finally:
        live.kill()
    assert live.returncode == 0 and Path(out.strip()) == target  # it kept the copy that landed first
    assert (target / "part.bin").read_bytes() == b"y" * 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_concurrent_generation_of_one_dataset_is_safe(tmp_path):
    code = ("import sys; from reprolib.data import synthetic; "
            "print(synthetic.make_caer_s(sys.argv[1], seed=0, sizes={'train': 14, 'val': 7, 'test': 7, "
            "'test_ood': 7}, image_size=32, supersample=1))")
    children = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    outs = [c.communicate(timeout=120)[0].strip() for c in children]
    assert [c.returncode for c in children] == [0, 0, 0] and len(set(outs)) == 1
    root = Path(outs[0])
    assert (root / ".complete").exists() and sum(1 for _ in root.rglob("*.png")) == 35
    assert [p.name for p in tmp_path.iterdir()] == [root.name]


# ------------------------------------------------------------------------------------- the runner


_RUN_TWO = textwrap.dedent("""
    import sys
    from pathlib import Path
    from reprolib import runner
    runner.run_notebooks(sorted(Path(sys.argv[1]).glob("0*.ipynb")), sys.argv[2], progress=False, jobs=2)
""")


def test_sigterm_stops_the_runner_without_leaving_partial_notebooks(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    folder, out = tmp_path / "notebooks", tmp_path / "executed"
    folder.mkdir()
    out.mkdir()
    for name in ("01_a", "02_b"):
        nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}})
        nb.cells = [new_code_cell(f"open({str(tmp_path / name)!r}, 'w').close()"),
                    new_code_cell("import time\ntime.sleep(120)")]
        nbformat.write(nb, folder / f"{name}.ipynb")
    stale = _stale_name(out / "01_a.ipynb", _dead_pid(), suffix=".partial.ipynb")  # from an earlier SIGKILL
    stale.write_text("{}")
    child = subprocess.Popen([sys.executable, "-c", _RUN_TWO, str(folder), str(out)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not ((tmp_path / "01_a").exists() and (tmp_path / "02_b").exists()):
            assert child.poll() is None and time.time() < deadline, child.communicate()[1][-2000:]
            time.sleep(0.1)
        assert not stale.exists()  # cleaned when 01_a started
        assert len(list(out.glob(".*.partial.ipynb"))) == 2  # both notebooks are running
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)  # stops within seconds, not after the notebooks' two minutes
    finally:
        child.kill()
    assert child.returncode == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------ fit resume


_KILLED_FIT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from test_engine import Blobs, SmallConvNet
    from reprolib.engine import fit
    from reprolib.seed import seed_everything

    def die(record):
        if record["epoch"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    seed_everything(3)
    fit(SmallConvNet(), Blobs(96, 0, shift=0.7), Blobs(48, 1, shift=0.7), checkpoint_dir=sys.argv[1],
        on_epoch_end=die, epochs=5, lr=5e-2, batch_size=16, seed=3, optimizer="sgd", lr_step=2)
""")


def test_fit_resumes_after_sigkill_like_an_uninterrupted_run(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_engine import Blobs, SmallConvNet
    finally:
        sys.path.remove(str(ROOT / "tests"))
    from reprolib.seed import seed_everything

    kwargs = dict(epochs=5, lr=5e-2, batch_size=16, seed=3, optimizer="sgd", lr_step=2)
    train, val = Blobs(96, 0, shift=0.7), Blobs(48, 1, shift=0.7)
    seed_everything(3)
    straight = SmallConvNet()
    straight_fit = engine.fit(straight, train, val, **kwargs)

    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same floating-point path
    done = subprocess.run([sys.executable, "-c", _KILLED_FIT, str(tmp_path), str(ROOT / "tests")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    seed_everything(99)
    resumed = SmallConvNet()
    resumed_fit = engine.fit(resumed, train, val, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert resumed_fit.resumed_from == 3
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]
    assert strip(resumed_fit.history) == strip(straight_fit.history)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_stopped_sweep_is_written_from_its_journal_without_training(tiny_sweeps, monkeypatch):
    crash = _crash_on_call(monkeypatch, experiments, "train_and_score", crash_at=3)
    with pytest.raises(Crash):
        _baselines_sweep(tiny_sweeps / "stopped", monkeypatch)
    journal, = (tiny_sweeps / "stopped" / "checkpoints" / "sweeps").glob("sweep_baselines_smoke-*.jsonl")
    crash.update(crash_at=None, calls=[])
    monkeypatch.setenv("REPROLIB_RESULTS", str(tiny_sweeps / "assembled"))
    lines: list[str] = []
    table = sweeps.sweep("baselines", "smoke", seeds=(0, 1), only=["caernet", "cdnet"], log=lines.append,
                         from_journal=journal)
    assert crash["calls"] == []  # nothing trained
    assert set(table) == {"caernet"} and [r["seed"] for r in table["caernet"]["runs"]] == [0, 1]
    assert any("cdnet    " in line and "left out" in line for line in lines)
    written = json.loads((tiny_sweeps / "assembled" / "sweep_baselines_smoke.json").read_text())
    assert written["provenance"]["parameters"]["from_journal"]["left_out"] == ["cdnet baseline"]
    assert journal.exists()  # the journal is the record of those runs: kept
    (tiny_sweeps / "two.jsonl").write_text(journal.read_text() + '{"key": "other", "run": "[]", "row": {}}\n')
    with pytest.raises(ValueError, match="not one sweep's journal"):
        sweeps.sweep("baselines", "smoke", seeds=(0, 1), only=["caernet"], from_journal=tiny_sweeps / "two.jsonl")
