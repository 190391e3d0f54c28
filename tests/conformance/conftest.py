"""The Jackson oracle for the conformance suite: one JVM per test session (per pytest-xdist
worker; the compiled classes are shared).

The suite skips, with one line naming what is missing, only where ``javac``/``java`` or a jar of
the local Maven repository is missing. Where they are all present (this machine image, so CI) a
skipped conformance test is turned into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.oracle_client import Oracle, build, missing_prerequisite
from tests.conformance.tally import TALLY, TALLYING, Tally

__all__ = ["CASES", "DERANDOMIZE", "TALLY", "Tally"]

#: Generated cases the full-path test compares (``inv conformance --cases N`` raises it).
CASES = int(os.environ.get("STAIRWAY_CONFORMANCE_CASES", "5000"))
#: CI replays the same cases (derandomized); ``inv conformance`` draws new ones each run.
DERANDOMIZE = os.environ.get("STAIRWAY_CONFORMANCE_RANDOM") != "1"


@pytest.fixture(scope="session")
def oracle(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Oracle]:
    missing = missing_prerequisite()
    if missing is not None:
        pytest.skip(f"conformance: {missing}")
    cache = getattr(request.config, "cache", None)  # None under `-p no:cacheprovider`
    where = cache.mkdir("conformance-oracle") if cache else tmp_path_factory.mktemp("oracle")
    classes = build(where)
    running = Oracle(classes)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Tally:
    """The session's tally; a test that asks for it is one the summary must account for."""
    request.node.user_properties.append((TALLYING, True))
    return TALLY


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and missing_prerequisite() is None:
        report.outcome = "failed"
        report.longrepr = (
            "conformance: a test was skipped although javac, java and the oracle's jars are all "
            f"present; the oracle is the referee and may not be skipped here ({report.longrepr})"
        )
