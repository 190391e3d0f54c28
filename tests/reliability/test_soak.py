"""The CI subset of the soaks: every registered soak with its `ci` trial count, 0 violations.

`inv soak` runs the same soaks with their full counts (`python -m tests.reliability.soak`)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from repairtool.localpg import PgServer
from tests.reliability.soak import Soak, SoakEnv, load

SOAKS = load()


@pytest.fixture(scope="module")
def soak_env(pg_server: PgServer) -> Iterator[SoakEnv]:
    env = SoakEnv(pg_server)
    yield env
    env.close()


@pytest.mark.parametrize(
    "soak",
    [
        # the sandbox's chaos runs real worker processes: an end-to-end test
        pytest.param(s, marks=pytest.mark.slow) if s.layer == "sandbox" else s
        for s in SOAKS.values()
    ],
    ids=list(SOAKS),
)
def test_soak_ci_subset_has_no_violations(soak_env: SoakEnv, soak: Soak) -> None:
    result = soak.run(soak_env, soak.ci, random.Random(12))
    assert result.trials == soak.ci
    assert set(result.violations) == set(soak.invariants)
    assert result.total_violations == 0, result.examples
