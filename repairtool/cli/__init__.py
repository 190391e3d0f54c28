"""`repairtool`: find and repair stuck Stairway flights. Parses, calls the package, renders, exits.

Heavy modules (SQLAlchemy, Google clients, kubernetes) are imported inside the commands, each
with a one-line reason, so that `repairtool --help` and shell completion stay fast.

No traceback reaches a user: everything `main` does — building the parser, parsing, the command,
rendering — runs inside one handler that turns any exception into one cleaned line on stderr
(:func:`repairtool.cli.messages.clean_line`) and its code of the one exit-code table; an
exception nobody classified is `INTERNAL` (70), a bug, never 1 ("findings left").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from repairtool import __version__
from repairtool.cli import completion, decode, flights, local, multienv, recover, watch
from repairtool.cli.common import EXIT_CODES_HELP, HelpFormatter
from repairtool.cli.messages import clean_line
from repairtool.errors import UsageError
from repairtool.exitcodes import ExitCode, exit_code_of, one_line

DESCRIPTION = """Find and repair stuck Stairway flights: orphaned RUNNING flights, FlightMap decode
failures, READY/QUEUED flights nobody picks up. Dry run is the default for anything that changes
state; every change is a compare-and-set and is written to the audit trail."""

REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    multienv.register,
    decode.register,
    flights.register,
    recover.register,
    local.register,
    watch.register,
]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `repairtool: error: …` and exit code 2. The message is
    cleaned like every error line (argparse repeats arguments: one may be a database URL with
    its password), and an argument that is not UTF-8 text is refused where it is converted."""

    def error(self, message: str) -> NoReturn:
        line = clean_line(f"{message} (see {self.prog} --help)")
        self.exit(int(UsageError.exit_code), f"repairtool: error: {line}\n")

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        # a file name may be any bytes (Path keeps them); any other text goes to the database,
        # the audit trail or stdout, which take UTF-8 only
        if action.type is not Path and not _is_utf8(arg_string):
            raise argparse.ArgumentError(
                action, "not valid UTF-8 text (the shell passed bytes of another encoding)"
            )
        return super()._get_value(action, arg_string)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="repairtool",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stairway-ops {__version__}")
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    for register in REGISTRARS:
        register(sub)
    completion.register(sub, build_parser)
    _document_exit_codes(parser)
    return parser


def _document_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's --help ends with the exit codes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action.choices.values():
                choice.epilog = EXIT_CODES_HELP
                choice.formatter_class = HelpFormatter
                _document_exit_codes(choice)


def main(argv: Sequence[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        _refuse_double_dash_values(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        _say("repairtool: interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader went away (`| head`): not an error
        return int(ExitCode.OK)
    except Exception as error:  # every error is one line and a code; an unclassified one is a bug
        _say(f"repairtool: error: {_line(error)}")
        return int(exit_code_of(error))
    finally:
        # what resolving --env started (a Cloud SQL proxy) stops with the command
        target = getattr(args, "_target", None)
        if target is not None:
            try:
                target.close()
            except Exception as error:  # the command's result stands; say what was left
                _say(f"repairtool: warning: stopping what --env started: {_line(error)}")


def _refuse_double_dash_values(argv: Sequence[str]) -> None:
    """`--opt=--` would reach a command as an empty list where it expects a string (argparse
    drops a `--` value); found by the cli.fuzz soak."""
    for token in argv:
        if token == "--":
            return
        if token.startswith("-") and token.endswith("=--"):
            raise UsageError(f"{token.split('=', 1)[0]}: '--' is not a value; give one")


def _line(error: BaseException) -> str:
    try:
        return clean_line(one_line(error))
    except Exception:  # an exception whose text cannot even be read: name its type only
        return f"internal error ({type(error).__name__})"


def _say(line: str) -> None:
    # stderr may be closed or gone: the exit code still tells
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def entry() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away: point stdout at /dev/null so the interpreter's own flush at
        # exit does not print "Exception ignored … BrokenPipeError"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(code)
