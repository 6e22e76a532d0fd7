"""Every hostile-input case of ``tests/hostile`` must end in a clear error naming the file and the
problem (``python -m tests.hostile`` prints the tally of the same cases)."""

from __future__ import annotations

import pytest

from hostile.harness import load_all, run_case

CASES = load_all()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_hostile_input_gets_a_clear_error(case_id, tmp_path):
    outcome = run_case(CASES[case_id], tmp_path)
    assert outcome.kind == "clear", f"{case_id}: {outcome.kind}: {outcome.detail}"
