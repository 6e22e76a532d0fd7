"""``python -m tests.hostile [--json FILE]``: run every hostile-input case and print the tally."""

from __future__ import annotations

import argparse
import json
import sys

from .harness import OUTCOMES, tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile", description=__doc__)
    parser.add_argument("--json", help="also write the tally and every case's outcome to this file")
    parser.add_argument("--quiet", action="store_true", help="print only the tally")
    args = parser.parse_args(argv)
    result = tally(log=(lambda _line: None) if args.quiet else print)
    header = f"{'group':12s} {'tried':>5s} " + " ".join(f"{k:>7s}" for k in OUTCOMES)
    print(header)
    for group, counts in sorted(result["groups"].items()) + [("total", result["total"])]:
        print(f"{group:12s} {counts['tried']:5d} " + " ".join(f"{counts[k]:7d}" for k in OUTCOMES))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
    return 0 if result["total"]["clear"] == result["total"]["tried"] else 1


if __name__ == "__main__":
    sys.exit(main())
