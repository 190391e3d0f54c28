"""Experiment definitions are data: every shipped one loads, and a bad file is one line that
names the file and the key (as env files are)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.errors import ExitCode
from opskit.experiment.definition import (
    ExperimentError,
    UnknownExperiment,
    experiments_dir,
    list_definitions,
    load_definition,
    load_definition_file,
)

NAMES = [
    "db-connection-drop",
    "decode-failure-on-resume",
    "multi-instance-pod-kill",
    "single-instance-pod-kill",
]


def test_the_four_experiments_are_shipped_and_load() -> None:
    assert set(NAMES) <= set(list_definitions())
    for name in NAMES:
        d = load_definition(name)
        assert d.name == name and d.title and d.description
        assert d.delay.flight_class.endswith("WorkspaceCreateFlight") and d.delay.step == 1
        # long enough that `inv kill-pod` (a process of its own) lands inside the step on a loaded
        # machine, short for tests; `--delay` changes it
        assert 3 <= d.delay.seconds <= 8
        assert d.method.when_step == d.delay.step
        assert d.attempts == 1


def test_what_each_experiment_expects() -> None:
    single = load_definition("single-instance-pod-kill")
    assert single.replicas == 1 and single.reader == "0.0.61"
    assert (single.expect.final_status, single.expect.recovered_by) == ("SUCCESS", "replacement")
    multi = load_definition("multi-instance-pod-kill")
    assert multi.replicas >= 2 and multi.expect.recovered_by == "survivor"
    assert multi.expect.steps_once and multi.repair is None
    decode = load_definition("decode-failure-on-resume")
    assert decode.reader == "0.0.60" and decode.expect.final_status == "RUNNING"
    assert decode.expect.owner == "live" and decode.expect.findings == ("stalled",)
    assert decode.expect.finding_pattern == "make-flight failure"
    assert decode.repair is not None and decode.repair.action == "reencode"
    assert decode.repair.expect_status == "SUCCESS" and decode.repair.reason
    drop = load_definition("db-connection-drop")
    assert drop.method.fault == "drop-db-connections" and not drop.kills_owner
    assert any("(08006) - retrying" in line for line in drop.expect.log_lines)


def test_with_delay_changes_only_the_delay() -> None:
    d = load_definition("multi-instance-pod-kill")
    assert d.with_delay(3.5).delay.seconds == 3.5
    assert d.with_delay(3.5).expect == d.expect
    with pytest.raises(ExperimentError, match="--delay must be > 0"):
        d.with_delay(0)


def test_unknown_experiment_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExperiment) as info:
        load_definition("nope")
    assert str(info.value).startswith("unknown experiment 'nope' (known: db-connection-drop")
    assert info.value.exit_code == ExitCode.NOT_FOUND


def _mutated(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(yaml.safe_load((experiments_dir() / f"{name}.yaml").read_text()))
    change(data)
    return data


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown top key", lambda d: d.update(replica=2), "unknown key 'replica'"),
    ("unknown nested key", lambda d: d["expect"].update(final=1), "unknown key 'expect.final'"),
    ("missing key", lambda d: d.pop("reader"), "missing key 'reader'"),
    ("missing nested key", lambda d: d["delay"].pop("seconds"), "missing key 'delay.seconds'"),
    ("missing repair key", lambda d: d.pop("repair"), "missing key 'repair'"),
    ("wrong type", lambda d: d.update(replicas="two"), "key 'replicas' must be an integer"),
    ("bool is no number", lambda d: d["delay"].update(seconds=True), "must be a number"),
    ("null", lambda d: d.update(method=None), "key 'method' must not be null"),
    (
        "bad literal",
        lambda d: d["method"].update(fault="nuke"),
        "key 'method.fault' must be one of"
        " kill-owner|kill-idle-pod|drop-db-connections|wsm-db-outage, not 'nuke'",
    ),
    (
        "bad finding kind",
        lambda d: d["expect"].update(findings=["orphan"]),
        "key 'expect.findings[0]' must be one of",
    ),
    (
        "not a list",
        lambda d: d["expect"].update(log_lines="x"),
        "'expect.log_lines' must be a list",
    ),
    (
        "unknown placeholder",
        lambda d: d["expect"]["log_lines"].append("Disowned {pod}"),
        "key 'expect.log_lines[5]' uses {pod}; known: {flight}",
    ),
    ("bad version", lambda d: d.update(reader="latest"), "key 'reader' is not an engine version"),
    ("zero replicas", lambda d: d.update(replicas=0), "key 'replicas' must be >= 1"),
    (
        "kill outside the delayed step",
        lambda d: d["method"].update(when_step=0),
        "key 'method.when_step' must be the delayed step (1)",
    ),
    (
        "owner of a finished flight",
        lambda d: d["expect"].update(owner="live"),
        "key 'expect.owner' must be none for a flight that ends SUCCESS",
    ),
    (
        "survivor with one replica",
        lambda d: d.update(replicas=1),
        "key 'expect.recovered_by' survivor needs replicas >= 2",
    ),
    (
        "bad duration",
        lambda d: d["detection"].update(stalled_after="soon"),
        "key 'detection.stalled_after' not a duration",
    ),
    ("name and file differ", lambda d: d.update(name="other"), "key 'name' is 'other' but"),
]


@pytest.mark.parametrize(("case", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_definition_is_one_line_naming_file_and_key(
    write_definition: Callable[..., Path],
    case: str,
    change: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    path = write_definition(_mutated("multi-instance-pod-kill", change))
    with pytest.raises(ExperimentError) as info:
        load_definition_file(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: "), text
    assert message in text, text


def test_repair_needs_a_reason(write_definition: Callable[..., Path]) -> None:
    data = _mutated("decode-failure-on-resume", lambda d: d["repair"].update(reason="  "))
    path = write_definition(data, name="decode-failure-on-resume")
    with pytest.raises(ExperimentError, match=r"key 'repair\.reason' must not be empty"):
        load_definition_file(path)


def test_connection_drop_cannot_expect_a_recovering_pod(
    write_definition: Callable[..., Path],
) -> None:
    data = _mutated("db-connection-drop", lambda d: d["expect"].update(recovered_by="survivor"))
    path = write_definition(data, name="db-connection-drop")
    with pytest.raises(ExperimentError, match=r"needs a pod-killing fault"):
        load_definition_file(path)


def test_invalid_yaml_names_the_line(write_definition: Callable[..., Path]) -> None:
    path = write_definition("name: x\nreplicas: [1\n")
    with pytest.raises(ExperimentError, match=r": line \d+ not valid YAML$"):
        load_definition_file(path)


def test_defaults_fill_optional_keys(write_definition: Callable[..., Path]) -> None:
    def strip(d: dict[str, Any]) -> None:
        for key in ("detection", "attempts", "notes"):
            d.pop(key, None)
        for key in ("settle_seconds", "observe_seconds"):
            d["method"].pop(key)

    d = load_definition_file(write_definition(_mutated("multi-instance-pod-kill", strip)))
    assert d.attempts == 1 and d.detection.stalled_after == "5s"
    assert d.method.settle_seconds == 15.0 and d.notes == ()


#: every mitigation's experiment: (name, the repair commands it runs, the status it verifies)
MITIGATIONS = {
    "dead-owner-resume": (["orphans-fix", "recover"], "SUCCESS"),
    "dead-owner-no-queue": (["orphans-fix", "restart"], "SUCCESS"),
    "stale-instance": (["orphans-fix"], "SUCCESS"),
    "lost-queue-message": (["orphans-fix"], "SUCCESS"),
    "queued-past-ack-deadline": ([], "SUCCESS"),
    "decode-failure-fail": (["orphans-fix"], "FATAL"),
    "dismal-failure-force-ready": (["recover", "recover"], "ERROR"),
}


def test_an_experiment_for_every_mitigation() -> None:
    for name, (runs, status) in MITIGATIONS.items():
        d = load_definition(name)
        assert d.repair is not None, name
        assert [s.run for s in d.repair.plan()] == runs, name
        assert d.repair.expect_status == status, name
    no_queue = load_definition("dead-owner-no-queue")
    assert no_queue.queue == "none"
    assert no_queue.method.switches.before_fault == {
        "pod_watch_dropped": True,
        "replace_deleted_pods": False,
    }
    first, restart = no_queue.repair.plan()  # type: ignore[union-attr]
    assert (first.action, first.expect_status, first.hold_seconds) == ("resume", "READY", 10)
    assert restart.run == "restart"
    assert load_definition("dead-owner-resume").repair.expect_instance_gone  # type: ignore[union-attr]
    lost = load_definition("lost-queue-message")
    assert lost.method.switches.before_fault == {"work_queue_detached": True}
    assert lost.method.switches.after_fault == {"work_queue_detached": False}
    assert lost.detection.queue_retention == "20s" and lost.detection.wait_for_findings
    held = load_definition("queued-past-ack-deadline")
    assert held.expect.findings == ("queued_overdue",)
    assert held.method.switches.after_detection == {"hold_queue_messages": False}
    forced = load_definition("dismal-failure-force-ready")
    assert forced.method.fault == "wsm-db-outage"
    assert [s.action for s in forced.repair.plan()] == ["force-ready", "enqueue"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["method"].update(switches={"before_fault": {"nuke_it": True}}),
            "key 'method.switches.before_fault.nuke_it' is not a sandbox switch",
        ),
        (
            lambda d: d["repair"]["steps"][0].update(reason=" "),
            "key 'repair.steps[0].reason' must not be empty",
        ),
        (
            lambda d: d["repair"]["steps"][1].update(action="explode"),
            "key 'repair.steps[1].action' is 'explode'; recover takes",
        ),
        (
            lambda d: d["repair"].update(action="resume", reason="x"),
            "key 'repair.action' give either action",
        ),
        (
            lambda d: d.update(queue="none"),
            "",
        ),
    ],
)
def test_bad_repair_steps_and_switches_are_one_line(
    write_definition: Callable[..., Path], change: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _mutated("dead-owner-resume", change)
    path = write_definition(data, name="dead-owner-resume")
    if not message:  # queue none with the same switches is valid
        assert load_definition_file(path).queue == "none"
        return
    with pytest.raises(ExperimentError) as info:
        load_definition_file(path)
    assert message in str(info.value) and "\n" not in str(info.value)
