"""`repairtool orphans` / `decode` / `catalog` end to end as a person runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from repairtool.flightmap import load_catalog
from repairtool.seed import seed_2021

ATTEMPT_1 = "7348bc13-2255-4a50-85b5-fcb5534674cb"
ATTEMPT_4 = "7028cce9-5017-48dc-9c17-ce8b23517459"
LIVE = "workspacemanager-deployment-68f9b944d5-9kgzp,workspacemanager-deployment-68f9b944d5-bj2qd"
TOKEN = "PLACEHOLDER-NOT-A-REAL-TOKEN"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAIRWAY_", "PG"))}
    base["STAIRWAY_OPS_STATE_DIR"] = "/nonexistent-state-dir"
    return subprocess.run(
        [sys.executable, "-m", "repairtool", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def url(stairway_db: Engine) -> str:
    seed_2021(stairway_db)
    return stairway_db.url.render_as_string(hide_password=False)


def test_orphans_json_document(url: str) -> None:
    proc = run("orphans", "--db", url, "--live-instances", LIVE, "--json")
    assert proc.returncode == 1, proc.stderr  # findings left: dry run
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "repairtool.orphans/1"
    assert doc["reader"] == "legacy"  # the rows were written like 0.0.60 writes them
    assert doc["liveness"]["source"] == "--live-instances"
    kinds = {(f["kind"], f["flight_id"] or f["instance"]) for f in doc["findings"]}
    assert kinds == {
        ("dead_owner", ATTEMPT_4),
        ("stalled", ATTEMPT_1),
        ("stale_instance", "workspacemanager-deployment-68f9b944d5-5gwdm"),
    }
    for f in doc["findings"]:
        assert set(f) >= {
            "flight_id",
            "class_name",
            "status",
            "owner",
            "kind",
            "evidence",
            "proposed_action",
        }
    assert "applied" not in doc
    assert TOKEN not in proc.stdout


def test_orphans_fix_then_rerun_is_a_no_op(url: str) -> None:
    fixed = run(
        "orphans",
        "--db",
        url,
        "--live-instances",
        LIVE,
        "--fix",
        "--action",
        "fail",
        "--reason",
        "2021 orphans",
        "--yes",
        "--json",
    )
    assert fixed.returncode == 0, fixed.stderr
    doc = json.loads(fixed.stdout)
    assert len(doc["applied"]) == 3 and doc["skipped"] == []
    again = run("orphans", "--db", url, "--live-instances", LIVE)
    assert again.returncode == 0
    assert "0 findings" in again.stdout
    audit = run("flights", "audit", "--db", url, "--json")
    assert len(json.loads(audit.stdout)["audit"]) == 3


def test_orphans_fix_needs_a_reason_and_a_terminal(url: str) -> None:
    no_reason = run("orphans", "--db", url, "--live-instances", LIVE, "--fix")
    assert no_reason.returncode == 3
    no_tty = run("orphans", "--db", url, "--live-instances", LIVE, "--fix", "--reason", "x")
    assert no_tty.returncode == 3
    assert "terminal" in no_tty.stderr.strip().splitlines()[-1]


def test_orphans_without_liveness_says_how_weak_the_evidence_is(url: str) -> None:
    proc = run("orphans", "--db", url)
    assert "Liveness: stairwayinstance (low confidence)" in proc.stdout
    assert "dead_owner" not in proc.stdout


def test_bad_durations_and_readers_are_usage_errors(url: str) -> None:
    assert run("orphans", "--db", url, "--stalled-after", "soon").returncode == 2
    bad_reader = run("orphans", "--db", url, "--reader", "latest")
    assert bad_reader.returncode == 2
    assert len(bad_reader.stderr.strip().splitlines()) == 1


def test_decode_finds_the_enum_bug_and_reencodes_it(url: str) -> None:
    dry = run("decode", "--db", url, "--json")
    assert dry.returncode == 1
    doc = json.loads(dry.stdout)
    assert {f["flight_id"] for f in doc["findings"]} == {ATTEMPT_1, ATTEMPT_4}
    for finding in doc["findings"]:
        assert finding["proposed_action"] == "reencode"
        keys = {x["key"] for x in finding["evidence"]["decode_failures"]}
        assert keys == {"workspaceStage", "workspaceId"}
    assert TOKEN not in dry.stdout
    fixed = run("decode", "--db", url, "--fix", "--reason", "PF-703 workaround", "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert run("decode", "--db", url).returncode == 0
    typed = run("decode", "--db", url, "--reader", "0.0.61", "--json")
    # the wrapped form the legacy reader needs is exactly what the fixed reader rejects
    assert {
        x["key"]
        for f in json.loads(typed.stdout)["findings"]
        for x in f["evidence"]["decode_failures"]
    } == {"workspaceStage", "workspaceId"}


def test_malformed_json_is_a_finding_not_a_crash(stairway_db: Engine) -> None:
    seed_2021(stairway_db)
    with stairway_db.begin() as c:
        c.execute(
            text(
                'UPDATE flightinput SET value = \'["bio.x.Pojo",{"a":\' WHERE key ='
                " 'auth_user_info' AND flightid = :f"
            ),
            {"f": ATTEMPT_1},
        )
    proc = run(
        "decode",
        "--db",
        stairway_db.url.render_as_string(hide_password=False),
        "--reader",
        "0.0.61",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr
    [f] = json.loads(proc.stdout)["findings"]
    assert f["flight_id"] == ATTEMPT_1
    [x] = f["evidence"]["decode_failures"]
    assert x["key"] == "auth_user_info" and "malformed JSON" in x["found"]


def test_catalog_draft_is_a_loadable_catalog(url: str, tmp_path: Path) -> None:
    out = tmp_path / "drafted.yaml"
    proc = run("catalog", "draft", "--db", url, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    catalog = load_catalog(out)
    spec = catalog.flight("bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight")
    assert spec is not None and "workspaceStage" in spec.keys("input")
    assert TOKEN not in out.read_text()


@pytest.fixture
def sandbox_kube(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """The sandbox's loopback Kubernetes API with 2 pods (no worker processes)."""
    from sandbox.cluster import Cluster, ClusterSpec, FakeRuntime
    from sandbox.kubeapi import KubeApiServer, write_kubeconfig

    cluster = Cluster(
        ClusterSpec("terra-sandbox", "workspacemanager-deployment", "workspacemanager", 2),
        FakeRuntime(),
        tick=0.05,
    )
    cluster.start()
    server = KubeApiServer(cluster).start()
    try:
        end = time.monotonic() + 10
        while len(cluster.pod_names()) < 2 and time.monotonic() < end:
            time.sleep(0.05)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, "terra-sandbox")
        yield kubeconfig, sorted(cluster.pod_names())
    finally:
        server.stop()
        cluster.stop()


def test_kube_liveness_uses_the_pod_list(stairway_db: Engine, sandbox_kube: Any) -> None:
    kubeconfig, pods = sandbox_kube
    dead = "workspacemanager-deployment-5ffc97854c-9vbt4"
    with stairway_db.begin() as c:
        for name in [*pods, dead]:
            c.execute(text("INSERT INTO stairwayinstance VALUES (:n, :n)"), {"n": name})
        for fid, owner in (("f-live-owner", pods[0]), ("f-dead-owner", dead)):
            c.execute(
                text(
                    "INSERT INTO flight (flightid, submit_time, class_name, status,"
                    " stairway_id, debug_info) VALUES (:f, LOCALTIMESTAMP, 'x.Flight',"
                    " 'RUNNING', :o, '{}')"
                ),
                {"f": fid, "o": owner},
            )
    proc = run(
        "orphans",
        "--db",
        stairway_db.url.render_as_string(hide_password=False),
        "--kube",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        "terra-sandbox",
        "--json",
    )
    doc = json.loads(proc.stdout)
    assert doc["liveness"]["source"] == "kube:terra-sandbox"
    assert doc["liveness"]["live"] == pods
    kinds = {(f["kind"], f["flight_id"] or f["instance"]) for f in doc["findings"]}
    assert kinds == {("dead_owner", "f-dead-owner"), ("stale_instance", dead)}


# -- CLI conventions: -o, --json, -y, -n, durations, help defaults, completion -------------------


def test_orphans_in_every_output_format(url: str) -> None:
    base = ("orphans", "--db", url, "-n", "terra-jcarlton", "--live-instances", LIVE)
    as_json = run(*base, "-o", "json", "--stalled-after", "1h30m")  # the one duration grammar
    assert as_json.returncode == 1, as_json.stderr
    alias = run(*base, "--json", "--stalled-after", "1h30m")

    def kinds(proc: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
        doc = json.loads(proc.stdout)
        assert doc["schema"] == "repairtool.orphans/1"
        return {(f["kind"], f["flight_id"] or f["instance"]) for f in doc["findings"]}

    assert kinds(as_json) == kinds(alias) and ("stalled", ATTEMPT_1) in kinds(as_json)
    table = run(*base).stdout
    wide = run(*base, "-o", "wide").stdout
    markdown = run(*base, "-o", "markdown").stdout
    # the table cuts the evidence to fit; wide shows all of it (the make-flight failure's
    # idle time, pattern and submit time), markdown is a pipe table ready to paste
    assert "…" in table and "submitted=" not in table
    assert "submitted=" in wide and "pattern=" in wide
    assert markdown.startswith("**repairtool orphans: 3 findings")
    assert "| Kind | Flight | Status | Owner | Idle | Proposed | Evidence |" in markdown
    assert f"| stalled | {ATTEMPT_1} |" in markdown


def test_yes_short_flag_applies_without_asking(url: str) -> None:
    fix = run(
        "orphans", "--db", url, "--live-instances", LIVE, "--flight", ATTEMPT_4,
        "--fix", "--action", "fail", "--reason", "test", "-y", "-o", "json",
    )  # fmt: skip
    assert fix.returncode == 0, fix.stderr
    (applied,) = json.loads(fix.stdout)["applied"]
    assert applied["flight_id"] == ATTEMPT_4


def test_every_json_document_is_versioned(url: str) -> None:
    docs = {
        "repairtool.flights/1": run("flights", "list", "--db", url, "--json"),
        "repairtool.flight-count/1": run("flights", "count", "--db", url, "-o", "json"),
        "repairtool.flight/1": run("flights", "show", ATTEMPT_1, "--db", url, "--json"),
        "repairtool.instances/1": run("flights", "instances", "--db", url, "--json"),
        "repairtool.audit/1": run("flights", "audit", "--db", url, "--json"),
        "repairtool.generation/1": run("flights", "generation", "--db", url, "--json"),
        "repairtool.decode/1": run("decode", "--db", url, "--json"),
        # a dry run honours --json too (exit 1: nothing was changed)
        "repairtool.recover/1": run("recover", "force-fatal", ATTEMPT_1, "--db", url, "--json"),
    }
    for schema, proc in docs.items():
        doc = json.loads(proc.stdout)
        assert doc["schema"] == schema, (schema, proc.stderr)
    recover = json.loads(docs["repairtool.recover/1"].stdout)
    assert (recover["dry_run"], recover["results"]) == (True, [])
    submitted = json.loads(docs["repairtool.flights/1"].stdout)["flights"][0]["submit_time"]
    assert submitted.endswith("Z") and "T" in submitted  # RFC 3339 UTC


def test_list_views_in_markdown_and_wide(url: str) -> None:
    md = run("flights", "list", "--db", url, "-o", "markdown").stdout
    assert md.startswith("**repairtool flights list: ") and "| Offset | FlightId |" in md
    wide = run("flights", "list", "--db", url, "-o", "wide").stdout
    assert "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight" in wide
    assert (
        "bio.terra.workspace.service.workspace.flight.WorkspaceCreateFlight"
        not in run("flights", "list", "--db", url).stdout
    )


def test_help_shows_defaults() -> None:
    out = run("orphans", "--help").stdout
    assert "RUNNING with no progress this long is stalled (default: 10m)" in " ".join(out.split())
    assert "(default: table)" in out and "-n NAMESPACE" in out and "-y, --yes" in out


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_knows_every_command(shell: str) -> None:
    proc = run("completion", shell)
    assert proc.returncode == 0, proc.stderr
    for word in ("orphans", "decode", "flights", "recover", "--stalled-after", "markdown"):
        assert word in proc.stdout, word
    if shell == "bash":
        check = subprocess.run(["bash", "-n"], input=proc.stdout, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
