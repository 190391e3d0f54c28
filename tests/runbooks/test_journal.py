"""The journal model: exact round trips, one-line errors, secret masking, atomic writes."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from opskit.events import Event
from opskit.journal import (
    Attempt,
    EnvInfo,
    Journal,
    JournalError,
    JournalEvent,
    LogExcerpt,
    SecretInJournal,
    dumps,
    find_secrets,
    load,
    redact,
    write,
)

FIXTURES = Path(__file__).parent / "fixtures"
JOURNALS = sorted(FIXTURES.glob("*.json"))
DECODE = FIXTURES / "decode-failure-on-resume-local.json"
TOKEN = "ya29.a0AfB_byC3xZq9TfakeAccessTokenValue"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ"


def raw(path: Path = DECODE) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def error_of(doc: Any, source: str = "journal.json") -> str:
    with pytest.raises(JournalError) as info:
        Journal.from_json(doc, source=source)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("path", JOURNALS, ids=lambda p: p.stem)
def test_fixtures_round_trip_exactly(path: Path) -> None:
    journal = load(path)
    assert Journal.from_json(journal.to_json()) == journal
    # the fixtures are stored in the stable form, so load -> dumps gives the file back
    assert dumps(journal) == path.read_text(encoding="utf-8")


def test_nested_models_round_trip_on_their_own() -> None:
    journal = load(DECODE)
    attempt = journal.attempts[0]
    assert Attempt.from_json(attempt.to_json()) == attempt
    assert EnvInfo.from_json(journal.env.to_json()) == journal.env
    assert attempt.repair is not None and attempt.repair.fix is not None
    assert attempt.repair.fix["schema"] == "repairtool.orphans/1"


def test_optional_env_keys_may_be_absent_and_stay_absent() -> None:
    doc = raw()
    for key in ("project", "cluster", "location"):
        del doc["env"][key]
    journal = Journal.from_json(doc)
    assert journal.env.project is None
    assert "project" not in journal.to_json()["env"]
    assert journal.to_json() == doc


def test_unknown_key_names_file_and_path() -> None:
    doc = raw()
    doc["attempts"][0]["pods"]["zombie"] = "x"
    assert error_of(doc) == "journal.json: unknown key 'attempts[0].pods.zombie'"


def test_a_password_in_the_env_is_an_unknown_key() -> None:
    doc = raw()
    doc["env"]["db"]["password"] = "hunter2"
    message = error_of(doc)
    assert message == "journal.json: unknown key 'env.db.password'"
    assert "hunter2" not in message


def test_missing_required_key() -> None:
    doc = raw()
    del doc["env"]["db"]["port"]
    assert error_of(doc) == "journal.json: missing key 'env.db.port'"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(duration_s="long"),
            "journal.json: key 'duration_s' must be a number, not a string",
        ),
        (
            lambda d: d.update(verdict="maybe"),
            "journal.json: key 'verdict' must be one of pass|fail, not 'maybe'",
        ),
        (
            lambda d: d["commands"][0].update(at="2026-11-29 02:05:01"),
            "journal.json: key 'commands[0].at' must be an RFC 3339 UTC time ending in Z,"
            " not '2026-11-29 02:05:01'",
        ),
        (
            lambda d: d["attempts"][0]["sql_evidence"][0].update(rows=[[{"a": 1}]]),
            "journal.json: key 'attempts[0].sql_evidence[0].rows[0][0]' must be a JSON scalar,"
            " not a mapping",
        ),
        (
            lambda d: d["experiment"].update(replicas=True),
            "journal.json: key 'experiment.replicas' must be an integer, not true/false",
        ),
        (
            lambda d: d.update(schema="stairway-ops.journal/2"),
            "journal.json: key 'schema' is \"stairway-ops.journal/2\": unsupported"
            " (expected stairway-ops.journal/1)",
        ),
        (
            lambda d: d["setup"]["deployment"].update(command="skaffold run"),
            "journal.json: key 'setup.deployment.command' is not among commands[] with id 'deploy'"
            " (runbooks quote only commands that ran)",
        ),
        (
            lambda d: d["attempts"][0].update(number=2),
            "journal.json: key 'attempts' must be numbered 1..N in order, not [2]",
        ),
        (
            lambda d: d.update(attempts={}),
            "journal.json: key 'attempts' must be a list, not a mapping",
        ),
    ],
)
def test_bad_values_give_one_line_errors(mutate: Any, expected: str) -> None:
    doc = raw()
    mutate(doc)
    assert error_of(doc) == expected


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "journal.json"
    broken.write_text('{"run_id": ', encoding="utf-8")
    with pytest.raises(JournalError, match=r"journal\.json: not JSON: line 1 column 12: "):
        load(broken)
    with pytest.raises(JournalError, match=r"missing\.json: cannot read: "):
        load(tmp_path / "missing.json")
    broken.write_text("[]", encoding="utf-8")
    with pytest.raises(JournalError) as info:
        load(broken)
    assert str(info.value) == f"{broken}: expected a mapping at the top level, not a list"


def test_a_key_given_twice_is_an_error_not_the_last_one_wins(tmp_path: Path) -> None:
    text = DECODE.read_text(encoding="utf-8")
    twice = tmp_path / "journal.json"
    twice.write_text(text.replace('{\n  "attempts"', '{\n  "verdict": "pass",\n  "attempts"', 1))
    with pytest.raises(JournalError) as info:
        load(twice)
    assert str(info.value) == f"{twice}: duplicate key 'verdict'"


def test_write_is_stable_and_atomic(tmp_path: Path) -> None:
    journal = load(DECODE)
    target = tmp_path / "artifacts" / journal.run_id / "journal.json"
    assert write(journal, target) == target
    assert target.read_text(encoding="utf-8") == DECODE.read_text(encoding="utf-8")
    write(journal, target)  # over an existing file
    assert sorted(p.name for p in target.parent.iterdir()) == ["journal.json"]
    assert load(target) == journal


def test_a_journal_built_in_code_is_validated_when_built_and_when_written(
    tmp_path: Path,
) -> None:
    journal = load(DECODE)
    with pytest.raises(ValidationError):  # a bug in the runner, caught where it is made
        dataclasses.replace(journal, verdict="maybe")  # type: ignore[arg-type]
    setup = dataclasses.replace(
        journal.setup,
        deployment=dataclasses.replace(journal.setup.deployment, command="skaffold run"),
    )
    target = tmp_path / "journal.json"
    with pytest.raises(JournalError) as info:  # cross-field rules: checked by write()
        write(dataclasses.replace(journal, setup=setup), target)
    assert str(info.value).startswith(f"{target}: key 'setup.deployment.command' is not among")
    assert not target.exists()


def with_log_message(journal: Journal, message: str) -> Journal:
    doc = journal.to_json()
    excerpt = LogExcerpt("2026-11-29T02:12:31.500Z", "pod", "INFO", message)
    doc["attempts"][0]["log_excerpts"].append(excerpt.to_json())
    return Journal.from_json(doc)


@pytest.mark.parametrize(
    ("message", "what"),
    [
        (f"Authorization: Bearer {TOKEN}", "an OAuth access token or JWT"),
        (f"token={JWT}", "an OAuth access token or JWT"),
        ("jdbc url postgresql://stairway:s3cr3t-pw@127.0.0.1:5432/stairway", "a password"),
        ("PGPASSWORD=s3cr3t-pw psql ...", "a password"),
    ],
    ids=["ya29-token", "jwt", "url-password", "pgpassword"],
)
def test_write_refuses_secrets_by_pattern(tmp_path: Path, message: str, what: str) -> None:
    journal = with_log_message(load(DECODE), message)
    target = tmp_path / "journal.json"
    with pytest.raises(SecretInJournal) as info:
        write(journal, target)
    text = str(info.value)
    assert f"attempts[0].log_excerpts[13].message: {what}" in text
    assert "s3cr3t" not in text and TOKEN not in text and JWT not in text
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_secret_the_runner_names(tmp_path: Path) -> None:
    password = "correct-horse-battery"
    journal = with_log_message(load(DECODE), f"FATAL: password {password} rejected")
    with pytest.raises(SecretInJournal) as info:
        write(journal, tmp_path / "journal.json", secrets=["", password])
    assert "a secret the runner named" in str(info.value)
    assert password not in str(info.value)
    assert not (tmp_path / "journal.json").exists()


def test_write_refuses_values_under_secret_keys_in_embedded_documents(tmp_path: Path) -> None:
    doc = raw()
    doc["setup"]["server_spec"]["accessToken"] = "abc123"
    journal = Journal.from_json(doc)
    assert find_secrets(journal) == [
        "setup.server_spec.accessToken: a value under the secret-looking key 'accessToken'"
    ]
    doc["setup"]["server_spec"]["accessToken"] = "<<MASKED>>"
    assert find_secrets(Journal.from_json(doc)) == []


def test_redact_masks_what_write_refuses(tmp_path: Path) -> None:
    password = "correct-horse-battery"
    line = (
        f"login {password} with Bearer {TOKEN}, url postgresql://u:{password}@h/db,"
        f" PGPASSWORD={password}"
    )
    masked = redact(line, [password])
    assert masked == (
        "login <<MASKED>> with Bearer <<MASKED>>, url postgresql://u:<<MASKED>>@h/db,"
        " PGPASSWORD=<<MASKED>>"
    )
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:<<MASKED>>@h/db"
    write(with_log_message(load(DECODE), masked), tmp_path / "j.json", secrets=[password])


def test_events_are_kept_as_event_to_json() -> None:
    event = Event(
        kind="pod.deleted",
        message="deleted pod p",
        at=dt.datetime(2026, 11, 29, 2, 10, 14, 100000, tzinfo=dt.UTC),
        data={"pod": "p", "when": dt.date(2026, 11, 29)},
    )
    kept = JournalEvent.from_event(event)
    assert kept.to_json() == {**event.to_json(), "data": {"pod": "p", "when": "2026-11-29"}}
    assert JournalEvent.from_json(kept.to_json()) == kept


def test_models_are_frozen() -> None:
    journal = load(DECODE)
    with pytest.raises(AttributeError):
        journal.verdict = "fail"  # type: ignore[misc]
    clone = Journal.from_json(copy.deepcopy(journal.to_json()))
    assert clone == journal and clone is not journal
