"""What every Invoke task shares: the task class, error → exit-code mapping, ``--dry``,
``--json-out``, reporters and run directories.

Tasks stay thin: parse options, call opskit, print, pick the exit code. Conventions
(:func:`ops_task`):

- every error becomes ``invoke.Exit("error: <one line>", code)`` with the code of the shared
  table (:mod:`repairtool.exitcodes`); an unexpected exception is ``INTERNAL`` (70), one line;
- ``inv --dry`` (``-R``) is honoured by tasks that can show what they would do (``dry=
  "honoured"``: the task checks :func:`is_dry`) and refused, exit ``REFUSED``, by the others
  that change a cluster (``dry="refused"``) — never silently ignored;
- short flags are explicit (:data:`SHORT_FLAGS`): no automatic one can shadow Invoke's own
  ``-e``/``-h``/…;
- a task with a ``json_out`` option writes its result there (:func:`write_json_out`), or, when it
  fails, the error document (``stairway-ops.error/1``: exit code, name, message);
- ``inv --help TASK`` ends with the exit-code table.
"""

from __future__ import annotations

import functools
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from invoke import Context, Task, task
from invoke.exceptions import Exit

from opskit import paths
from opskit.envchoice import Use, choose_env, configured_env
from opskit.envs import Env, load_env
from opskit.errors import Refused
from opskit.events import ConsoleView, Event, JournalWriter, Reporter
from repairtool.exitcodes import ExitCode, by_value, exit_code_of, help_text, one_line

F = TypeVar("F", bound=Callable[..., Any])
DryPolicy = Literal["honoured", "refused", "none"]

ERROR_SCHEMA = "stairway-ops.error/1"
#: Invoke's own flags (``inv --help``): a task never takes these letters
CORE_SHORT_FLAGS = frozenset("cdefhlprtvwDFRTV")
#: the only short flags tasks get, by option name (kubectl's and repairtool's letters)
SHORT_FLAGS = {"namespace": "n", "yes": "y"}


class OpsTask(Task):
    """An Invoke task with the project's conventions (see the module docstring)."""

    def __init__(self, body: Callable[..., Any], *, dry: DryPolicy = "none", **kwargs: Any):
        kwargs["auto_shortflags"] = False
        super().__init__(body, **kwargs)
        self.dry = dry
        # indented like a docstring body, so that ``inspect.getdoc`` keeps the layout
        self.__doc__ = (self.__doc__ or "").rstrip() + "\n\n" + textwrap.indent(help_text(), "    ")

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        """Invoke consumes ``self.help`` while building the arguments; keep it for next time."""
        kept = dict(self.help)
        try:
            arguments: list[Any] = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept
        return arguments

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names and short not in CORE_SHORT_FLAGS:
            opts["names"].append(short)
        return opts


def ops_task(*, dry: DryPolicy = "none", **task_kwargs: Any) -> Callable[[F], OpsTask]:
    """``@task`` with the conventions: error mapping, the ``--dry`` policy, short flags."""

    def wrap(fn: F) -> OpsTask:
        made: OpsTask = task(klass=OpsTask, dry=dry, **task_kwargs)(guard(fn, dry=dry))
        return made

    return wrap


def is_dry(c: Context) -> bool:
    """``inv --dry``: Invoke's run.dry setting."""
    try:
        return bool(c.config.run.dry)
    except AttributeError:
        return False


def guard(fn: F, *, dry: DryPolicy = "none") -> F:
    """Turn errors into ``invoke.Exit`` with a one-line message and the error's code."""
    name = fn.__name__.replace("_", "-")

    @functools.wraps(fn)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        try:
            if dry == "refused" and is_dry(c):
                raise Refused(f"{name} changes the cluster and has no dry run; nothing was done")
            return fn(c, *args, **kwargs)
        except KeyboardInterrupt:
            raise Exit("interrupted", int(ExitCode.INTERRUPTED)) from None
        except Exit:
            raise
        except Exception as exc:  # every error is one line and a code; a bug is INTERNAL
            message, code = exit_for(exc)
            if kwargs.get("json_out"):
                write_json_out(kwargs["json_out"], error_document(code, message))
            raise Exit(f"error: {message}", code) from None

    return wrapper  # type: ignore[return-value]


def exit_for(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an error (:mod:`repairtool.exitcodes`)."""
    return one_line(exc), int(exit_code_of(exc))


def error_document(code: int, message: str) -> dict[str, Any]:
    return {
        "schema": ERROR_SCHEMA,
        "code": code,
        "name": by_value(code).name,
        "message": message,
    }


def write_json_out(path: str | Path, doc: Any) -> None:
    """Write a task's machine-readable result (``--json-out FILE``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def env_of(name: str | None, c: Context | None = None, *, use: Use = "reads") -> Env:
    """The environment a task acts on (:mod:`opskit.envchoice`: ``--env``,
    ``$STAIRWAY_OPS_ENV``, Invoke's ``stairway_ops.env``, the only env file; refused for a
    task that changes something when none was chosen), named on the first line of stderr."""
    config = getattr(c, "config", None) if c is not None else None
    choice = choose_env(name, use=use, configured=configured_env(config) if config else None)
    print(choice.line(), file=sys.stderr, flush=True)
    return load_env(choice.name)


def console_reporter(
    run_dir: Path | None = None,
    *,
    quiet: bool = False,
    show: Callable[[Event], bool] | None = None,
) -> Reporter:
    """Console view (unless quiet; ``show`` filters it) plus the run's ``events.jsonl``."""
    handlers: list[Any] = []
    if not quiet:
        handlers.append(ConsoleView(sys.stdout, show=show))
    if run_dir is not None:
        handlers.append(JournalWriter(run_dir / "events.jsonl"))
    return Reporter(handlers)


def run_dir(prefix: str, env: Env) -> Path:
    return paths.new_run_dir(f"{prefix}-{env.name}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
