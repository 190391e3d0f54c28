"""`repairtool completion bash|zsh`: a shell completion script generated from the parser itself
(shtab), so it always knows every command, option and choice of this version.

    repairtool completion bash > ~/.local/share/bash-completion/completions/repairtool
    repairtool completion zsh > "${fpath[1]}/_repairtool"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

SHELLS = ("bash", "zsh")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    build_parser: Callable[[], argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    def cmd_completion(args: argparse.Namespace) -> int:
        import shtab  # lazy: ~0.1 s to import; only this command needs it, not every --help

        sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
        return 0

    p.set_defaults(func=cmd_completion)
