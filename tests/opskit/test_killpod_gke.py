"""kill-pod on the GKE path: official client against the loopback API, flight in a real
Postgres (0.0.60 schema), engine log lines through entries:list."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from opskit.envs import Env
from opskit.errors import NotFound, Refused, UsageError
from opskit.events import Collector, Reporter
from opskit.flights import FlightReader
from opskit.killpod import KillPodOptions, kill_pod
from opskit.platform import GkePlatform

READY_MSG = '{"type":{"version":"1","messageEnum":"QUEUE_MESSAGE_READY"},"flightId":"%s"}'


def _opts(**kw: Any) -> KillPodOptions:
    base: dict[str, Any] = {
        "timeout": 20,
        "replacement_timeout": 10,
        "settle": 2,
        "poll": 0.1,
        "log_poll": 0.2,
    }
    base.update(kw)
    return KillPodOptions(**base)


class FakeEngine(threading.Thread):
    """What a surviving replica of the engine does when the owner pod is deleted."""

    def __init__(self, fake: Any, db: Any, flight: str, owner: str, *, rebuild_fails: bool) -> None:
        super().__init__(daemon=True)
        self.fake, self.db, self.flight, self.owner = fake, db, flight, owner
        self.rebuild_fails = rebuild_fails

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while self.owner in self.fake.pods() and time.monotonic() < deadline:
            time.sleep(0.05)
        survivor = next(p for p in self.fake.pods() if p != self.owner)
        log = self.fake.log_writer(survivor)
        log.write("INFO", {"message": f"DELETED : {self.owner}"})
        log.write(
            "INFO", {"message": f"Attempting clean up of deleted stairway instance: {self.owner}"}
        )
        self.db.set(self.flight, status="READY", stairway_id=None)
        log.write("INFO", {"message": f"Disowned 1 flights for stairway: {self.owner}"})
        log.write("INFO", {"message": "Found ready flights: 1"})
        log.write("INFO", {"message": f"Queued message. Id: 42; Msg: {READY_MSG % self.flight}"})
        time.sleep(0.3)
        log.write("INFO", {"message": f"Received message: {READY_MSG % self.flight}"})
        self.db.set(self.flight, status="RUNNING", stairway_id=survivor)
        log.write(
            "INFO", {"message": f"Stairway {survivor} taking ownership of flight {self.flight}"}
        )
        if self.rebuild_fails:
            log.write(
                "WARNING",
                {
                    "message": "Unexpected exception dispatching messages - continuing\n"
                    "bio.terra.stairway.exception.MakeFlightException: Failed to make a"
                    " flight\nCaused by: java.lang.ClassCastException: Found value "
                    "'MC_WORKSPACE' is not an instance of type bio.terra.workspace."
                    "service.workspace.model.WorkspaceStage"
                },
            )
            return
        log.write(
            "INFO",
            {"message": f"Launching flight class: X stairway: {survivor} flightid: {self.flight}"},
        )
        time.sleep(0.3)
        self.db.step_done(self.flight)
        time.sleep(0.3)
        self.db.set(self.flight, status="SUCCESS", stairway_id=None)


@pytest.fixture
def owned_flight(fake_gke: Any, flight_db: Any) -> tuple[str, str]:
    owner = sorted(fake_gke.pods())[0]
    fid = str(uuid.uuid4())
    flight_db.insert(fid, owner=owner, steps_done=1)
    log = fake_gke.log_writer(owner)
    log.write("INFO", {"message": f"Launching flight class: X stairway: {owner} flightid: {fid}"})
    log.write("INFO", {"message": f"Delaying flight ID {fid} class X step 1 by PT3M"})
    return fid, owner


def test_kill_the_owner_and_follow_the_flight_to_success(
    gke_env: Env, fake_gke: Any, flight_db: Any, owned_flight: tuple[str, str], tmp_path: Path
) -> None:
    fid, owner = owned_flight
    FakeEngine(fake_gke, flight_db, fid, owner, rebuild_fails=False).start()
    reader = FlightReader(flight_db.url)
    got = Collector()
    result = kill_pod(
        GkePlatform(gke_env),
        _opts(flight_id=fid, when_step=1),
        get_flight=reader.get,
        reporter=Reporter([got]),
        run_dir=tmp_path / "run",
    )
    reader.close()
    assert result.pod == owner
    assert result.outcome == "finished", result.lines()
    assert result.final is not None and result.final.status == "SUCCESS"
    kinds = [e.kind for e in result.timeline]
    for expected in (
        "deleted",
        "pod_gone",
        "replacement_added",
        "replacement_ready",
        "disowned",
        "taken_over",
        "finished",
        "engine.disowned",
        "engine.taking_ownership",
        "engine.launching",
    ):
        assert expected in kinds, (expected, kinds)
    assert kinds.index("deleted") < kinds.index("disowned") < kinds.index("taken_over")
    saved = json.loads((tmp_path / "run" / "kill-pod.json").read_text())
    assert saved["outcome"] == "finished" and saved["final"]["status"] == "SUCCESS"
    assert got.of("killpod.in_step")


def test_rebuild_failure_after_takeover_is_reported_stuck_early(
    gke_env: Env, fake_gke: Any, flight_db: Any, owned_flight: tuple[str, str]
) -> None:
    fid, owner = owned_flight
    FakeEngine(fake_gke, flight_db, fid, owner, rebuild_fails=True).start()
    reader = FlightReader(flight_db.url)
    t0 = time.monotonic()
    result = kill_pod(GkePlatform(gke_env), _opts(flight_id=fid, settle=15), get_flight=reader.get)
    reader.close()
    assert time.monotonic() - t0 < 12  # did not wait for settle: the signature is unambiguous
    assert result.outcome == "stuck"
    assert "could not rebuild" in result.verdict and "MC_WORKSPACE" in result.verdict
    assert result.final is not None and result.final.status == "RUNNING"


def test_nobody_disowns_a_dead_owner(
    gke_env: Env, fake_gke: Any, flight_db: Any, owned_flight: tuple[str, str]
) -> None:
    fid, owner = owned_flight
    reader = FlightReader(flight_db.url)
    result = kill_pod(GkePlatform(gke_env), _opts(flight_id=fid), get_flight=reader.get)
    reader.close()
    assert result.outcome == "stuck"
    assert f"owned by {owner} which is gone" in result.verdict
    assert result.replacement_ready


def test_kill_by_pod_name_only(gke_env: Env, fake_gke: Any) -> None:
    victim = sorted(fake_gke.pods())[1]
    result = kill_pod(GkePlatform(gke_env), _opts(pod=f"terra-jcarlton/{victim}"))
    assert result.outcome == "replaced" and result.replacement not in (None, victim)


def test_bad_input_is_refused_before_anything_is_deleted(
    gke_env: Env, fake_gke: Any, flight_db: Any
) -> None:
    p = GkePlatform(gke_env)
    reader = FlightReader(flight_db.url)
    before = sorted(fake_gke.pods())
    with pytest.raises(NotFound, match="no flight 00000000"):
        kill_pod(p, _opts(flight_id="00000000-0000-0000-0000-000000000000"), get_flight=reader.get)
    with pytest.raises(Refused, match="terra-other"):
        kill_pod(p, _opts(pod=before[0], namespace="terra-other"))
    with pytest.raises(Refused, match="terra-other"):
        kill_pod(p, _opts(pod=f"terra-other/{before[0]}"))
    with pytest.raises(NotFound, match="not found in namespace terra-jcarlton"):
        kill_pod(p, _opts(pod="workspacemanager-deployment-5ffc97854c-9vbt4"))
    done = str(uuid.uuid4())
    flight_db.insert(done, status="SUCCESS")
    with pytest.raises(Refused, match="already finished"):
        kill_pod(p, _opts(flight_id=done), get_flight=reader.get)
    gone_owner = str(uuid.uuid4())
    flight_db.insert(gone_owner, owner="workspacemanager-deployment-5ffc97854c-9vbt4")
    with pytest.raises(NotFound, match=r"\(the flight's owner\) not found"):
        kill_pod(p, _opts(flight_id=gone_owner), get_flight=reader.get)
    with pytest.raises(UsageError):
        kill_pod(p, _opts())
    reader.close()
    assert sorted(fake_gke.pods()) == before
