"""Shared fixtures: one Ray instance per test session, and a way to run the CLI in-process on it."""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def ray_session():
    """Ray starts once for the whole session (about 5 s here), never once per test."""
    import ray

    from pipeline.cluster import init_ray

    init_ray(None, 2)
    yield ray
    ray.shutdown()


@pytest.fixture
def run_cli(ray_session, capsys):
    """Run `pipeline ARGS` in this process (so it reuses the session's Ray); returns (exit code, stdout, stderr)."""
    from pipeline.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real test data not found at {REALDATA} (see shared/realdata/SOURCES.md)")
    return REALDATA
