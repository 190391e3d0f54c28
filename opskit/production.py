"""The production form of a command a rehearsal executed (pure; :func:`production_form`).

A runbook shows the command an on-call engineer runs in production first, and beneath it, as
evidence, the exact command the rehearsal executed. The production form is derived from the
executed command by these operations only — nothing else can differ, so nothing unexecuted can
slip in (``tests/runbooks`` checks every pair in the rendered runbooks with
:func:`check_production_form`, an independent reading of the same rule):

- the environment: ``--env local`` → ``--env "$ENV"``;
- ids: the rehearsal's flight ids → ``<FLIGHT_ID>``; its pods → ``<STAIRWAY_NAME>`` (an
  instance, after ``recover instance``) or ``<POD>``;
- thresholds: a rehearsal value of :data:`THRESHOLDS` → its production value, with a sentence on
  how to choose it;
- the reason: ``--reason 'rehearsal: …'`` → ``--reason "<TICKET>: <why>"``;
- flags dropped: ``--yes``/``-y`` (the engineer confirms y/N), ``--json`` (output for people),
  ``--reader VERSION`` (the environment file names the version its service reads with).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from repairtool.durations import InvalidDuration, parse_duration

ENV_PLACEHOLDER = '"$ENV"'
FLIGHT_PLACEHOLDER = "<FLIGHT_ID>"
INSTANCE_PLACEHOLDER = "<STAIRWAY_NAME>"
POD_PLACEHOLDER = "<POD>"
REASON_PLACEHOLDER = '"<TICKET>: <why>"'
#: flags dropped from the production form, with the number of values each takes
DROPPED: dict[str, int] = {"--yes": 0, "-y": 0, "--json": 0, "--reader": 1}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: a pod name: ``<deployment>-<pod-template-hash (6-10 chars, with a digit)>-<5 chars>``
_POD = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?-(?=[a-z]*[0-9])[a-z0-9]{6,10}-[a-z0-9]{5}$")
_ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Threshold:
    """A time threshold: the value to use in production and how to choose it."""

    flag: str
    production: str
    how: str


THRESHOLDS: dict[str, Threshold] = {
    t.flag: t
    for t in (
        Threshold(
            "--stalled-after",
            "30m",
            "longer than the slowest step of your flights, retries included (a RUNNING flight"
            " with a live owner and no flight-log row for this long is `stalled`); shorter flags"
            " slow steps, longer finds make-flight failures later",
        ),
        Threshold(
            "--unqueued-after",
            "10m",
            "how long an unowned READY flight may wait for a pod start or a pod deletion before"
            " it counts as lost; a few times your deployment's rollout time",
        ),
        Threshold(
            "--queue-retention",
            "3d",
            "the work-queue subscription's message retention (3 days as Stairway creates it;"
            " `gcloud pubsub subscriptions describe <cluster>-workqueue-sub`): a QUEUED flight"
            " older than that has certainly lost its message. To re-send earlier, lower it for"
            " that one command",
        ),
        Threshold(
            "--overdue-margin",
            "30s",
            "added to the ack deadline read from the subscription (100 s as the engine creates"
            " it): a flight QUEUED longer than one redelivery plus this is reported as"
            " `queued_overdue`",
        ),
    )
}


@dataclass(frozen=True)
class ProductionForm:
    """A production command, the rehearsal command it comes from, and its thresholds."""

    text: str
    executed: str
    thresholds: tuple[Threshold, ...]


def production_form(
    executed: str, *, flight_ids: Iterable[str] = (), pods: Iterable[str] = ()
) -> ProductionForm:
    """The production form of ``executed`` (see the module docstring)."""
    flights, pod_names = set(flight_ids), set(pods)
    tokens = shlex.split(executed)
    out: list[str] = []
    used: list[Threshold] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in DROPPED:
            i += 1 + DROPPED[tok]
            continue
        value = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok == "--env" and value is not None:
            out += [tok, ENV_PLACEHOLDER]
            i += 2
            continue
        if tok in THRESHOLDS and value is not None:
            out += [tok, THRESHOLDS[tok].production]
            used.append(THRESHOLDS[tok])
            i += 2
            continue
        if tok == "--reason" and value is not None:
            out += [tok, REASON_PLACEHOLDER]
            i += 2
            continue
        if tok in flights:
            out.append(FLIGHT_PLACEHOLDER)
        elif tok in pod_names:
            out.append(
                INSTANCE_PLACEHOLDER if tokens[1:3] == ["recover", "instance"] else POD_PLACEHOLDER
            )
        else:
            out.append(shlex.quote(tok))
        i += 1
    return ProductionForm(" ".join(out), executed, tuple(used))


def sql_production_form(query: str, *, flight_ids: Iterable[str] = ()) -> str:
    """A query with the rehearsal's flight ids replaced by ``<FLIGHT_ID>``."""
    for fid in flight_ids:
        query = query.replace(fid, FLIGHT_PLACEHOLDER)
    return query


# ----------------------------------------------------------------------------------------------
# the rule, checked on its own (the tests use this on every pair in the rendered runbooks)


def _duration(text: str) -> float | None:
    try:
        return parse_duration(text).total_seconds()
    except InvalidDuration:
        return None


def check_production_form(production: str, executed: str) -> list[str]:
    """What is wrong with ``production`` as a production form of ``executed`` (empty: right).

    Reads both commands on its own: the executed command without the droppable flags must match
    the production command token by token, except where the production token is a placeholder
    standing for a value of its kind, or a threshold's production value."""
    problems: list[str] = []
    try:
        prod = shlex.split(production)
        ran = shlex.split(executed)
    except ValueError as exc:
        return [f"not a shell command: {exc}"]
    kept: list[str] = []
    i = 0
    while i < len(ran):
        if ran[i] in DROPPED:
            i += 1 + DROPPED[ran[i]]
            continue
        kept.append(ran[i])
        i += 1
    for bad in ("--yes", "-y"):
        if bad in prod:
            problems.append(f"{bad} in a production form")
    if len(prod) != len(kept):
        return [*problems, f"{len(prod)} words, but the executed command has {len(kept)}"]
    for n, (p, e) in enumerate(zip(prod, kept, strict=True)):
        before = kept[n - 1] if n else ""
        if before == "--env":
            if p != "$ENV" or not _ENV_NAME.match(e):
                problems.append(f'--env {p!r}: must be "$ENV" (ran --env {e})')
        elif before in THRESHOLDS:
            want = THRESHOLDS[before].production
            if p != want or _duration(e) is None:
                problems.append(f"{before} {p}: the production value is {want} (ran {e})")
        elif before == "--reason":
            if p != "<TICKET>: <why>":
                problems.append(f"--reason {p!r}: must be the placeholder")
        elif not _same(p, e):
            problems.append(f"word {n + 1}: {p!r} is not the executed {e!r}")
    return problems


def _same(production: str, executed: str) -> bool:
    """The same word, or a placeholder standing for an id of its kind."""
    if production == executed:
        return True
    if production == FLIGHT_PLACEHOLDER:
        return bool(_UUID.match(executed))
    if production in (INSTANCE_PLACEHOLDER, POD_PLACEHOLDER):
        return bool(_POD.match(executed))
    return False


def pods_in(texts: Sequence[str]) -> set[str]:
    """Pod names (``<deployment>-<hash>-<5 chars>``) in some texts."""
    return {w for t in texts for w in re.split(r"[\s'\"]+", t) if _POD.match(w)}
