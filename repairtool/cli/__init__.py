"""`repairtool`: find and repair stuck Stairway flights. Parses, calls the package, renders, exits.

Heavy modules (SQLAlchemy, Google clients, kubernetes) are imported inside the commands, each
with a one-line reason, so that `repairtool --help` and shell completion stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, cast

from repairtool import __version__
from repairtool.cli import completion, decode, flights, local, multienv, recover, watch
from repairtool.cli.common import EXIT_CODES_HELP, HelpFormatter
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
    """argparse with one-line errors: `repairtool: error: …` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            int(UsageError.exit_code), f"repairtool: error: {message} (see {self.prog} --help)\n"
        )


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("repairtool: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as error:  # every error is one line and a code; an unclassified one is a bug
        print(f"repairtool: error: {one_line(error)}", file=sys.stderr)
        return int(exit_code_of(error))
    finally:
        # what resolving --env started (a Cloud SQL proxy) stops with the command
        target = getattr(args, "_target", None)
        if target is not None:
            target.close()


def entry() -> None:
    sys.exit(main())
