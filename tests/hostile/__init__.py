"""Hostile and broken input: a registry of cases (``harness.case``), run by ``tests/test_hostile.py`` and
tallied by ``python -m tests.hostile`` (tried / clear error / unclear / crash / silent)."""
