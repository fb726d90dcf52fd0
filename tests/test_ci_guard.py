"""Under CI=true a missing PostgreSQL or Redis fails the run instead of shrinking it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("variable", "dead_url", "named"),
    [
        ("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:9/postgres", "PostgreSQL"),
        ("TEST_REDIS_URL", "redis://127.0.0.1:9/0", "Redis"),
    ],
)
def test_ci_refuses_to_run_without_a_real_service(variable: str, dead_url: str, named: str) -> None:
    env = {**os.environ, "CI": "true", variable: dead_url}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_ledger.py",
            "-k",
            "nothing_matches_this",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    # On a machine with neither service both are named; the broken one always is.
    assert "CI=true needs the real services: " in said
    assert f"{named}: " in said
