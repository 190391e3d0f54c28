"""What an error line may show: one line, no secret, no raw input.

Every line `repairtool` prints on stderr as an error — argparse's own messages included — goes
through :func:`clean_line`, after the typed errors have already kept passwords, SQL parameters
and stored values out of their text: this is the last guard, for the messages nobody typed (an
unexpected exception's text, argparse repeating an argument that was a database URL).
:func:`shown_input` is how a validation message names the value it refuses.
"""

from __future__ import annotations

import re

MASK = "***"
#: a URL's user info: `scheme://user:PASSWORD@` (the password may hold '@', '/', ':' — the user
#: info ends at the last '@' of the whitespace-delimited word)
_URL = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):(?P<pw>[^\s]*)@")
#: `password=…`, `sslpassword=…`, `token=…` in a query string, a DSN or an option
_KEYED = re.compile(
    r"(?i)(?P<key>\b(?:ssl)?pass(?:word)?|\bpwd|\bsecret|\b(?:access_|refresh_)?token|\bapi_?key)"
    r"(?P<sep>\s*=\s*)(?P<value>[^\s&'\",;]+)"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_QUOTED = re.compile(r"'[^'\n]{81,}'|\"[^\"\n]{81,}\"")
LINE_LIMIT = 1000


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _cut_quoted(match: re.Match[str]) -> str:
    text = match.group(0)
    quote = text[0]
    return f"{quote}{text[1:61]}…{quote} ({len(text) - 2} characters)"


def _tokens(line: str) -> str:
    # lazy: the FlightMap package is only needed when an error line is printed
    from repairtool.flightmap.secrets import MASK as TOKEN_MASK
    from repairtool.flightmap.secrets import SECRET_VALUE

    return SECRET_VALUE.sub(TOKEN_MASK, line)


def mask_secrets(text: str) -> str:
    """URL passwords, `password=`-style values and token-like strings masked."""
    text = _URL.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    text = _KEYED.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)
    return _tokens(text)


def clean_line(text: str) -> str:
    """One printable line: secrets masked, whitespace runs (newlines included) made one space,
    control characters and undecodable bytes escaped, long quoted values cut, at most
    `LINE_LIMIT` characters."""
    line = " ".join(mask_secrets(text).split())
    line = _CONTROL.sub(_escape, line)
    line = _QUOTED.sub(_cut_quoted, line)
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"


_PLAIN = re.compile(r"[\w.,:/+=@-]{1,40}")


def shown_input(text: str) -> str:
    """How a message names a value from the command line: short plain values quoted as they
    are, anything else (long, odd characters, a URL with a password) only by its length."""
    if _PLAIN.fullmatch(text) and mask_secrets(text) == text:
        return repr(text)
    return f"(a value of {len(text)} characters)"
