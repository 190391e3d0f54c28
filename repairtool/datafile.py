"""The one strict loader of the project's data files (envs, experiments, journals, catalogs).

Files are parsed with duplicate keys refused (YAML and JSON), then validated into frozen
pydantic dataclasses whose config forbids unknown keys (:data:`STRICT`). Every problem is one
line naming the file, the field and what was expected::

    envs/jcarlton.yaml: unknown key 'gke.projet'
    envs/jcarlton.yaml: key 'stairway.db.port' must be an integer, not a string
    journal.json: key 'verdict' must be one of pass|fail, not 'maybe'

Values are never echoed except the wrong choice of a fixed set (short, and never a secret):
a data file may hold a token in the wrong place. Field types that need more than pydantic's
defaults are here too: :data:`Int`, :data:`Float`, :data:`Bool` (no coercion from strings or
booleans), :data:`Duration` (the grammar of :mod:`repairtool.durations`), :data:`Rfc3339`
and :data:`JsonScalar`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from repairtool.durations import format_duration, parse_duration
from repairtool.yamlstrict import UniqueKeyLoader

T = TypeVar("T")
ErrorFactory = Callable[[str], Exception]

#: the config of every data-file model: unknown keys are errors; numbers may be strings
#: (``version: 1.1`` is YAML's float), nothing else is coerced
STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{problem}", {"problem": str(exc)}) from None


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # an int stays an int: documents round-trip byte for byte
    raise PydanticCustomError("float_type", "must be a number")


def _rfc3339(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "rfc3339", "must be an RFC 3339 UTC time, not {kind}", _kind(value)
        )
    if not _RFC3339.match(value):
        raise PydanticCustomError(
            "rfc3339",
            "must be an RFC 3339 UTC time ending in Z, not {value}",
            {"value": repr(value)},
        )
    return value


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise PydanticCustomError("json_scalar", "must be a JSON scalar, not {kind}", _kind(value))


#: a number (an integer or a float, kept as given; never a string or a boolean)
Float = Annotated[float, PlainValidator(_number)]
#: a duration in the one grammar (``90s``, ``1h30m``, ``3d``); written back in its short form
Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
#: an RFC 3339 UTC timestamp ending in ``Z`` (kept as text)
Rfc3339 = Annotated[str, BeforeValidator(_rfc3339)]
#: a JSON scalar: string, number, boolean or null
JsonScalar = Annotated[Any, BeforeValidator(_scalar)]


# --------------------------------------------------------------------------------------------
# parsing files


def read_text(path: Path, shown: str, error: ErrorFactory) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{shown}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:  # the content is never repeated: it may hold anything
        raise error(f"{shown}: not UTF-8 text (byte {exc.start})") from None


def parse_yaml(text: str, shown: str, error: ErrorFactory) -> Any:
    """YAML (safe subset) with duplicate keys refused; errors name the line."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or ""
        if problem.startswith("duplicate key"):
            raise error(f"{shown}:{where} {problem}") from None
        raise error(f"{shown}:{where} not valid YAML") from None
    except RecursionError:  # PyYAML's parser recurses: a file nested thousands deep
        raise error(f"{shown}: nested too deeply") from None


def parse_json(text: str, shown: str, error: ErrorFactory) -> Any:
    """JSON with duplicate keys refused; errors name line and column."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise error(f"{shown}: duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise error(f"{shown}: not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"{shown}: nested too deeply") from None


def load_yaml(path: Path, shown: str, error: ErrorFactory) -> Any:
    return parse_yaml(read_text(path, shown, error), shown, error)


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (how errors name the file)."""
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# validating


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(model)
    return _ADAPTERS[model]


def validate(
    model: type[T],
    data: Any,
    *,
    shown: str,
    error: ErrorFactory,
    prefix: str = "",
    explain: Callable[[ErrorDetails], str] | None = None,
) -> T:
    """``data`` as a ``model`` instance, or ``error("<shown>: <problem>")`` for the first problem.

    ``prefix`` is the key path of ``data`` inside its file (for nested documents); ``explain``
    words an error for a format with its own vocabulary (default :func:`describe`).
    """
    if not isinstance(data, Mapping):
        where = (
            f"key {prefix!r} must be a mapping" if prefix else "expected a mapping at the top level"
        )
        raise error(f"{shown}: {where}, not {_kind(data)['kind']}")
    try:
        value: T = _adapter(model).validate_python(data)
    except ValidationError as exc:
        # an unknown key first: it is usually the typo that also makes a required key missing
        errors = sorted(exc.errors(), key=lambda e: e["type"] not in _UNKNOWN)
        problem = explain(errors[0]) if explain else describe(errors[0], prefix)
        raise error(f"{shown}: {problem}") from None
    return value


def dump(model: type[T], value: T) -> Any:
    """``value`` as plain JSON data (durations in their short form)."""
    return _adapter(model).dump_python(value, mode="json")


def key_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("attempts", 0, "pods")`` → ``attempts[0].pods``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping",
    "dataclass": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "timedelta": "a duration",
}


def describe(err: ErrorDetails, prefix: str = "") -> str:
    """One pydantic error as ``unknown key 'k'`` / ``key 'k' must be …, not …``."""
    kind = err["type"]
    key = key_path(err["loc"], prefix)
    given = err.get("input")
    if kind in _UNKNOWN:
        return f"unknown key {key!r}"
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        return f"missing key {key!r}"
    if kind == "literal_error":
        choices = (err.get("ctx") or {}).get("expected", "")
        allowed = "|".join(
            c.strip().strip("'\"") for c in re.split(r",| or ", choices) if c.strip()
        )
        shown = repr(given) if isinstance(given, str) and len(given) <= 40 else _kind(given)["kind"]
        return f"key {key!r} must be one of {allowed}, not {shown}"
    base = kind.split("_")[0]
    if base in _EXPECTED and kind.endswith(("_type", "_parsing", "_from_float")):
        if given is None:
            return f"key {key!r} must not be null"
        return f"key {key!r} must be {_EXPECTED[base]}, not {_kind(given)['kind']}"
    if kind in ("duration", "rfc3339", "json_scalar"):
        if kind == "duration":
            return f"key {key!r}: {err['msg']}"
        return f"key {key!r} {err['msg']}"
    ctx = err.get("ctx") or {}
    problem = str(ctx.get("error", "")) or err["msg"]
    return f"key {key!r}: {problem}"


def _kind(value: Any) -> dict[str, str]:
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "true/false"
    elif isinstance(value, Mapping):
        kind = "a mapping"
    elif isinstance(value, list | tuple):
        kind = "a list"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, int | float):
        kind = "a number"
    else:
        kind = type(value).__name__
    return {"kind": kind}
