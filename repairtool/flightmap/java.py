"""Java class names and value ranges that the Jackson model needs.

Only JDK classes whose Jackson behaviour is known are listed; anything else (a service's POJOs
and enums) comes from the type catalog.
"""

from __future__ import annotations

import re

OBJECT = "java.lang.Object"
STRING = "java.lang.String"
INTEGER = "java.lang.Integer"
LONG = "java.lang.Long"
SHORT = "java.lang.Short"
BYTE = "java.lang.Byte"
BOOLEAN = "java.lang.Boolean"
DOUBLE = "java.lang.Double"
FLOAT = "java.lang.Float"
BIG_INTEGER = "java.math.BigInteger"
BIG_DECIMAL = "java.math.BigDecimal"
UUID = "java.util.UUID"
INSTANT = "java.time.Instant"
LIST = "java.util.List"
MAP = "java.util.Map"
ARRAY_LIST = "java.util.ArrayList"
HASH_MAP = "java.util.HashMap"
#: What ``FlightMap.get`` returns for a stored ``null``; not a class, used as a marker.
NULL = "null"

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
SHORT_MIN, SHORT_MAX = -(2**15), 2**15 - 1
BYTE_MIN, BYTE_MAX = -(2**7), 2**7 - 1
#: java.time.Instant.MIN / MAX epoch seconds.
INSTANT_MIN_SECONDS, INSTANT_MAX_SECONDS = -31557014167219200, 31556889864403199

#: List implementations Jackson can read back from a ``["class", [...]]`` wrapper.
LIST_CLASSES = frozenset(
    {
        LIST,
        ARRAY_LIST,
        "java.util.LinkedList",
        "java.util.Vector",
        "java.util.Arrays$ArrayList",
        "java.util.Collections$EmptyList",
        "java.util.Collections$SingletonList",
        "java.util.Collections$UnmodifiableList",
        "java.util.Collections$UnmodifiableRandomAccessList",
        "java.util.Collections$SynchronizedList",
        "java.util.Collections$SynchronizedRandomAccessList",
        "java.util.concurrent.CopyOnWriteArrayList",
    }
)

#: Map implementations Jackson can read back from a ``["class", {...}]`` wrapper.
MAP_CLASSES = frozenset(
    {
        MAP,
        HASH_MAP,
        "java.util.LinkedHashMap",
        "java.util.TreeMap",
        "java.util.Hashtable",
        "java.util.Collections$EmptyMap",
        "java.util.Collections$SingletonMap",
        "java.util.Collections$UnmodifiableMap",
        "java.util.Collections$SynchronizedMap",
        "java.util.concurrent.ConcurrentHashMap",
    }
)

#: Scalar classes with a Jackson deserializer modelled in :mod:`.semantics`.
SCALAR_CLASSES = frozenset(
    {
        STRING,
        INTEGER,
        LONG,
        SHORT,
        BYTE,
        BOOLEAN,
        DOUBLE,
        FLOAT,
        BIG_INTEGER,
        BIG_DECIMAL,
        UUID,
        INSTANT,
    }
)

#: Every JDK class the package knows; their names may be shown in findings.
KNOWN_CLASSES = SCALAR_CLASSES | LIST_CLASSES | MAP_CLASSES | {OBJECT}

_IDENT = r"[A-Za-z_$][A-Za-z0-9_$]*"
_CLASS_NAME = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
# Conventional names only (lower-case packages, capitalised class): a token such as
# "ya29.a0Af..." or a JWT does not match, so such a string is never shown as a class name.
_DISPLAYABLE = re.compile(r"(?:[a-z_][a-z0-9_]{0,40}\.){1,12}[A-Z][A-Za-z0-9_$]{0,100}")


_CLASS_NAMES: dict[str, bool] = {}


def is_class_name(text: str) -> bool:
    """True when ``text`` is syntactically a binary Java class name with a package."""
    known = _CLASS_NAMES.get(text)
    if known is None:
        known = "." in text and len(text) <= 1000 and _CLASS_NAME.fullmatch(text) is not None
        if known and len(_CLASS_NAMES) < 10_000:  # remember class names, not data
            _CLASS_NAMES[text] = known
    return known


_DISPLAYABLE_NAMES: dict[str, bool] = {}


def is_displayable_class(text: str) -> bool:
    """True when ``text`` is a conventional class name, safe to show in a finding."""
    known = _DISPLAYABLE_NAMES.get(text)
    if known is None:
        known = text in KNOWN_CLASSES or (
            # an old-style OAuth token ("ya29.Gl…") has the shape of a class name
            _DISPLAYABLE.fullmatch(text) is not None and not text.startswith("ya29.")
        )
        if known and len(_DISPLAYABLE_NAMES) < 10_000:  # remember class names, not data
            _DISPLAYABLE_NAMES[text] = known
    return known
