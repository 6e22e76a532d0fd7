"""Command line: ``python -m reprolib <command>`` (also installed as ``reprolib``).

Commands:
  reproduce   run the numbered notebooks headless with papermill (see :mod:`reprolib.runner`)
  refresh     re-execute committed notebooks in place at smoke size (contributors)
  sweep       multi-seed runs (baselines plain, ± CCIM, ± CLEF; MulT ± CausalMER), mean ± std table
  bench       performance ratios measured in one run (results/bench.json)
  seeds       run the notebooks at more seeds and write the evidence file results/seeds_smoke.json
  check-data  check a real CAER-S / EMOTIC folder or MulT pickle: counts, unreadable files, boxes, labels
  prepare-inputs  write CAER-S face boxes, EMOTIC pose and depth from detector outputs (reprolib.data.prepare)
  student     write the student copies: exercises' solutions and hidden checks removed (reprolib.student)

To add a command, write ``_add_<name>(subparsers)`` that registers its parser and sets
``func`` to a function ``(args) -> int``, and call it in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .parameters import RECIPES, ParameterError, check_value, option

PROG = "reprolib"


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from . import runner

    try:
        return runner.reproduce(
            size=args.size,
            only=args.only,
            overrides=args.params,
            output_dir=args.output,
            notebooks_folder=args.notebooks,
            execution_timeout=args.cell_timeout,
            progress=not args.no_progress,
            jobs=args.jobs,
            dry_run=args.dry_run,
        )
    except (runner.SelectionError, runner.ParameterError) as exc:
        print(f"{PROG} reproduce: error: {exc}", file=sys.stderr)
        return 2


def _add_reproduce(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run the numbered notebooks headless (papermill) into results/executed/",
        description=(
            "Execute notebooks/NN_*.ipynb in order with papermill (kernel python3, cwd = the notebooks "
            "folder) into results/executed/<name>.ipynb, continue past failures, print a summary; "
            "exit status 1 if any notebook failed, 2 for bad arguments."
        ),
    )
    p.add_argument(
        "--size",
        choices=("smoke", "full"),
        default="smoke",
        help="smoke (the notebooks' defaults, CPU minutes) or full (passes size=\"full\"; GPU server)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NB",
        help="run only these notebooks: number prefix (01 or 1) or full name (01_intro)",
    )
    p.add_argument(
        "-p",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter; VALUE is a Python literal if it parses as one, else a string "
        "(-p epochs=3 -p data_root=/data/caer); repeatable",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="folder for the executed notebooks (default: results/executed)",
    )
    p.add_argument(
        "--notebooks",
        metavar="DIR",
        help="folder holding the numbered notebooks (default: the repository's notebooks/)",
    )
    p.add_argument(
        "--cell-timeout",
        type=option("cell_timeout", float),
        metavar="SECONDS",
        help="fail a cell that runs longer than this (default: no limit)",
    )
    p.add_argument("--jobs", type=option("jobs"), metavar="N",
                   help="notebooks at a time, threads shared out (default: 2 at smoke size on 2+ cores, "
                   "1 at full size)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="a few timed training steps on a sample of each split, to check a (full-size) run "
                   "end to end before a long one and estimate its time; writes results/dry_run/")
    p.set_defaults(func=_cmd_reproduce)


def _cmd_refresh(args: argparse.Namespace) -> int:
    from . import runner

    try:
        paths = runner.select_notebooks(runner.find_notebooks(), args.only)
    except runner.SelectionError as exc:
        print(f"{PROG} refresh: error: {exc}", file=sys.stderr)
        return 2
    runner.refresh_all(paths, jobs=args.jobs)
    return 0


def _add_refresh(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "refresh",
        help="re-execute committed notebooks in place at smoke size (for contributors)",
        description="Run notebooks/NN_*.ipynb top to bottom in place, as nbval will compare them, with "
        "progress bars off and run metadata stripped. Commit the result together with results/.",
    )
    p.add_argument("only", nargs="+", metavar="NB", help="notebooks: number prefix (01) or full name")
    p.add_argument("--jobs", type=option("jobs"), default=None, metavar="N",
                   help="notebooks at a time, as `reproduce` and `make nbval` run them (default: as reproduce)")
    p.set_defaults(func=_cmd_refresh)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from . import distributed, mer, sweeps

    log = print if distributed.is_main() else (lambda *_, **__: None)  # under torchrun, rank 0 speaks
    try:
        check_value("seeds", args.seeds)  # --only: sweeps.sweep and mer.sweep name unknown ones themselves
        if args.method == "causalmer":
            table = mer.sweep(args.size, args.seeds, args.only or mer.DATASETS, log=log, recipe=args.recipe)
        else:
            table = sweeps.sweep(args.method, args.size, args.seeds, args.only, log=log,
                                 reuse_baselines=args.reuse_baselines, from_journal=args.from_journal)
    except ValueError as exc:
        print(f"{PROG} sweep: error: {exc}", file=sys.stderr)
        return 2
    log((mer if args.method == "causalmer" else sweeps).format_table(table))
    return 0


def _add_sweep(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="train every baseline (plain, or with and without CCIM) for several seeds; write "
        "results/sweep_<method>_<size>.json",
        description="Multi-seed runs of the five baselines on their home datasets, with the notebooks' "
        "code path; prints a mean ± std table.",
    )
    p.add_argument("--method", choices=("baselines", "ccim", "clef", "ccim_ablations", "clef_ablations", "causalmer"),
                   default="baselines",
                   help="baselines: the plain models; ccim: each baseline without and with CCIM (both "
                   "strategies); clef: each baseline without and with CLEF (and a default-loss control); "
                   "ccim_ablations / clef_ablations: the papers' ablation tables (CCIM Table 4 and Figure 6, "
                   "CLEF Table 4) on the papers' ablated baselines (default: EMOT-Net and EmotiCon, CD-Net "
                   "and EmotiCon); "
                   "causalmer: MulT and MulT+CausalMER on IEMOCAP- and MOSEI-style data, with the "
                   "missing-modality study (results/sweep_causalmer_<size>.json)")
    p.add_argument("--reuse-baselines", action="store_true",
                   help="ccim/clef (and their ablations): take the plain baselines' rows from sweep_baselines_<size>.json (same seeds)")
    p.add_argument("--size", choices=("smoke", "medium", "full"), default="medium")
    p.add_argument("--from-journal", metavar="FILE",
                   help="train nothing: write the table from the finished runs of a stopped sweep's journal "
                   "(results/checkpoints/sweeps/*.jsonl); variants missing a seed are left out and named")
    p.add_argument("--seeds", type=option("seed"), nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", metavar="NAME", help="baselines to run (default: all five; the ablated ones for the ablations); with --method causalmer: datasets (iemocap, mosei)")
    p.add_argument("--recipe", choices=RECIPES, default="official",
                   help="causalmer: official = the paper code's training loop (no weight decay, clip 0.8, "
                   "plateau schedule, attention mask); engine = engine.fit's defaults (reprolib.mer.RECIPES)")
    p.set_defaults(func=_cmd_sweep)


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    bench.bench(args.sizes, repeats=args.repeats, batch_size=args.batch_size, device=args.device,
                suite=args.run_suite)
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time the causal modules against the models they wrap, MulT's attention against a "
        "fairseq-style one, and the data pipeline; write results/bench.json",
        description="Performance ratios measured side by side in one run (see reprolib.bench).",
    )
    p.add_argument("--sizes", nargs="+", choices=("smoke", "full"), default=["smoke", "full"],
                   help="model and view sizes to time the causal modules at")
    p.add_argument("--repeats", type=option("repeats"), default=5,
                   help="timed calls per measurement (the median is kept)")
    p.add_argument("--batch-size", type=option("batch_size"), default=8)
    p.add_argument("--device", type=option("device", str), help="cpu or cuda (default: cuda when available)")
    p.add_argument("--run-suite", action="store_true",
                   help="also run the whole smoke suite (reprolib reproduce) and time it")
    p.set_defaults(func=_cmd_bench)


def _cmd_seeds(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import paths, runner, seeds

    workdir = Path(args.workdir) if args.workdir else paths.repo_root() / "results" / "executed" / "seeds"
    try:
        check_value("seeds", args.seeds)
        notebooks = [p.stem for p in runner.select_notebooks(runner.find_notebooks(), args.only)
                     if p.stem not in seeds.DERIVED]
    except (runner.SelectionError, ParameterError) as exc:
        print(f"{PROG} seeds: error: {exc}", file=sys.stderr)
        return 2
    if not args.collect_only:
        failed = seeds.run(args.seeds, notebooks, workdir, jobs=args.jobs)
        if failed:
            print(f"{PROG} seeds: {failed} seed run(s) failed; see the run.log files under {workdir}",
                  file=sys.stderr)
            return 1
    folders = {0: paths.repo_root() / "results", **{s: seeds.seed_folder(workdir, s) / "results" for s in args.seeds}}
    try:
        evidence = seeds.collect(notebooks, folders)
        if args.keep_other_seeds and seeds.evidence_path().exists():
            evidence = seeds.keep_other_seeds(json.loads(seeds.evidence_path().read_text()), evidence)
    except (FileNotFoundError, ValueError) as exc:
        print(f"{PROG} seeds: error: {exc}", file=sys.stderr)
        return 1
    if args.only and seeds.evidence_path().exists():  # refresh some notebooks, keep the others
        kept = json.loads(seeds.evidence_path().read_text())["notebooks"]
        evidence["notebooks"] = {**kept, **evidence["notebooks"]}
    print(f"wrote {seeds.write(evidence)} ({len(evidence['notebooks'])} notebooks, seeds "
          f"{sorted(folders)})")
    return 0


def _add_seeds(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "seeds",
        help="run the notebooks at more seeds (default 1 2) and write results/seeds_smoke.json with the "
        "committed seed-0 results: the evidence the claims and the metric bands rest on",
        description="Seed 0 is the committed run (results/<notebook>.json, from `make reproduce` or "
        "`reprolib refresh`); the other seeds run here, each in results/executed/seeds/seed_N/.",
    )
    p.add_argument("--seeds", type=option("seed"), nargs="+", default=[1, 2],
                   help="seeds to run besides 0 (default: 1 2)")
    p.add_argument("--only", nargs="+", metavar="NB", help="notebooks (default: every one that trains)")
    p.add_argument("--jobs", type=option("jobs"), default=1, help="seeds run at a time (threads are shared out)")
    p.add_argument("--workdir", metavar="DIR", help="where the seed runs go (default results/executed/seeds)")
    p.add_argument("--collect-only", action="store_true", help="do not run; collect the runs already there")
    p.add_argument("--keep-other-seeds", action="store_true",
                   help="keep the recorded seeds of these notebooks that this run does not collect (e.g. seeds 1 2 "
                   "run on another machine, with --seeds 3 4 run here): the bands and claim margins cover both")
    p.set_defaults(func=_cmd_seeds)


def _cmd_order(args: argparse.Namespace) -> int:
    from . import runner

    print(" ".join(str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
                   for p in runner.start_order(runner.find_notebooks())))
    return 0


def _add_order(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "order", help="print the notebooks in the order two-at-a-time runs start them",
        description="The numbered notebooks, longest first with what 08 and 09 reuse before them "
        "(reprolib.runner.START_ORDER), one line; make nbval hands this order to pytest-xdist.")
    p.set_defaults(func=_cmd_order)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Causal debiasing for emotion recognition (CCIM, CLEF, CausalMER), as a course.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_reproduce(subparsers)
    _add_refresh(subparsers)
    _add_sweep(subparsers)
    _add_bench(subparsers)
    _add_seeds(subparsers)
    _add_order(subparsers)
    from .checkdata import add_parser as add_check_data
    from .data import prepare
    from .student import add_parser as add_student

    add_check_data(subparsers)  # check-data: a real dataset folder checked before a long run
    prepare.add_parser(subparsers)  # prepare-inputs: face boxes, pose, depth from the user's detectors
    add_student(subparsers)  # student: the notebooks without solutions and hidden checks
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
