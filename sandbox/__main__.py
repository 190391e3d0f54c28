"""`python -m sandbox up|down|status|switches` — a thin command line over `sandbox.lifecycle`
(what `inv sandbox.*` wraps). Exit codes: 0 ok, 1 not running (status, switches), 2 usage, 3 start
failed.

`switches --set NAME=on|off …` turns the sandbox's run-time faults on and off (experiments drive
them from their definition): `replace_deleted_pods`, `pod_watch_dropped`, `work_queue_detached`,
`hold_queue_messages` (see `sandbox.cluster.Switches`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.cluster import Switches
from sandbox.config import WORKSPACE_CREATE_FLIGHT, DelayHookConfig, SandboxConfig
from sandbox.lifecycle import SandboxError, SandboxHandle, destroy, down, status, up

ON = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def _switch(text: str) -> tuple[str, bool]:
    """`NAME=on|off` (also true/false, 1/0)."""
    name, _, value = text.partition("=")
    if name not in Switches.names():
        raise argparse.ArgumentTypeError(
            f"unknown switch {name!r} (known: {', '.join(Switches.names())})"
        )
    if value.lower() not in ON:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is on or off")
    return name, ON[value.lower()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox", description="The local sandbox.")
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start Postgres, the Pub/Sub emulator, the supervisor and pods")
    d = sub.add_parser("down", help="stop every process of the sandbox")
    s = sub.add_parser("status", help="what runs in the state directory")
    w = sub.add_parser("switches", help="show or set the run-time switches (faults)")
    for cmd in (u, d, s, w):
        cmd.add_argument("--state-dir", type=Path, default=None)
    for cmd in (u, s, w):
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
    w.add_argument(
        "--set",
        dest="switches",
        action="append",
        type=_switch,
        default=[],
        metavar="NAME=on|off",
        help="set a switch (repeatable): " + ", ".join(Switches.names()),
    )
    u.add_argument("--replicas", type=int, default=2)
    u.add_argument("--engine-version", default="0.0.60")
    u.add_argument("--reader-version", default=None)
    u.add_argument("--queue", choices=("auto", "emulator", "none"), default="auto")
    u.add_argument("--ack-deadline", type=int, default=100, help="seconds (emulator min 10)")
    u.add_argument("--delay-seconds", type=float, default=None, help="install the DelayHook")
    u.add_argument("--delay-step", type=int, default=1)
    u.add_argument("--delay-class", default=WORKSPACE_CREATE_FLIGHT)
    u.add_argument("--keep", action="store_true", help="keep the previous database and logs")
    d.add_argument("--purge", action="store_true", help="also delete the database and logs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        delay = (
            DelayHookConfig(args.delay_class, args.delay_step, args.delay_seconds)
            if args.delay_seconds is not None
            else None
        )
        try:
            config = SandboxConfig(
                state_dir=args.state_dir,
                replicas=args.replicas,
                engine_version=args.engine_version,
                reader_version=args.reader_version,
                queue=args.queue,
                ack_deadline_seconds=args.ack_deadline,
                delay=delay,
            )
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            handle = up(config, fresh=not args.keep)
        except SandboxError as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
        if args.json:
            print(json.dumps(handle.to_json(), indent=2))
        else:
            print(f"sandbox up in {handle.startup_seconds:.1f}s ({handle.state_dir})")
            print(f"  pods:       {', '.join(handle.ready_pods())}")
            print(f"  service:    {handle.service_url}")
            print(f"  kubeconfig: {handle.kubeconfig}")
            print(f"  logging:    {handle.logging_url}  (entries:list)")
            print(f"  queue:      {handle.topic_path if handle.queue_enabled else 'none'}")
        return 0
    if args.command == "switches":
        try:
            handle = SandboxHandle.load(args.state_dir)
            values = (
                handle.set_switches(**dict(args.switches)) if args.switches else handle.switches()
            )
        except (SandboxError, OSError) as error:
            print(f"error: the sandbox is not running: {error}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(values, indent=2, sort_keys=True))
        else:
            for name, value in values.items():
                print(f"{name:<22} {'on' if value else 'off'}")
        return 0
    if args.command == "down":
        if args.purge:
            destroy(args.state_dir)
            print("sandbox stopped and purged")
            return 0
        print("sandbox stopped" if down(args.state_dir) else "sandbox was not running")
        return 0
    st = status(args.state_dir)
    if args.json:
        print(json.dumps(st.as_dict(), indent=2, default=str))
    else:
        print(f"sandbox {'running' if st.running else 'not running'} ({st.state_dir})")
        print(f"  supervisor: {st.supervisor}  postgres: {st.postgres}  emulator: {st.emulator}")
        for pod in st.pods:
            state = (
                "Ready" if pod["ready"] else ("Terminating" if pod["terminating"] else "NotReady")
            )
            print(f"  {pod['name']}  {state}  restarts={pod['restart_count']}  port={pod['port']}")
    return 0 if st.running else 1


if __name__ == "__main__":
    sys.exit(main())
