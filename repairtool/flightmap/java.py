"""Java class names and value ranges that the Jackson model needs.

Only JDK classes whose Jackson behaviour is known are listed; anything else (a service's POJOs
and enums) comes from the type catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
SET = "java.util.Set"
MAP = "java.util.Map"
OPTIONAL = "java.util.Optional"
ARRAY_LIST = "java.util.ArrayList"
HASH_MAP = "java.util.HashMap"
#: What ``FlightMap.get`` returns for a stored ``null``; not a class, used as a marker.
NULL = "null"

INVALID_DEFINITION = "com.fasterxml.jackson.databind.exc.InvalidDefinitionException"
JSON_MAPPING = "com.fasterxml.jackson.databind.JsonMappingException"

#: Primitive array components (``[I`` …) and the boxed class Jackson reads each element with.
PRIMITIVES = {
    "int": INTEGER,
    "long": LONG,
    "short": SHORT,
    "double": DOUBLE,
    "float": FLOAT,
    "boolean": BOOLEAN,
}
_ARRAY_CODES = {
    "I": "int",
    "J": "long",
    "S": "short",
    "D": "double",
    "F": "float",
    "Z": "boolean",
    "B": "byte",
    "C": "char",
}


def array_component(type_id: str) -> str | None:
    """The component of an array class's binary name (``[Ljava.lang.Object;`` → Object,
    ``[I`` → ``int``, ``[[I`` → ``[I``), or None when ``type_id`` is not an array class."""
    if len(type_id) < 2 or type_id[0] != "[":
        return None
    rest = type_id[1:]
    if rest[0] == "[":
        return rest if array_component(rest) is not None else None
    if rest[0] == "L" and rest.endswith(";") and is_class_name(rest[1:-1]):
        return rest[1:-1]
    return _ARRAY_CODES.get(rest) if len(rest) == 1 else None


INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
SHORT_MIN, SHORT_MAX = -(2**15), 2**15 - 1
BYTE_MIN, BYTE_MAX = -(2**7), 2**7 - 1
#: java.time.Instant.MIN / MAX epoch seconds.
INSTANT_MIN_SECONDS, INSTANT_MAX_SECONDS = -31557014167219200, 31556889864403199

LIST_KIND, SET_KIND, MAP_KIND, COLLECTION_KIND = "list", "set", "map", "collection"


@dataclass(frozen=True, slots=True)
class Container:
    """A collection or map class that Jackson may meet as a type id (verified against the JVM
    by ``tests/conformance/test_class_table.py``).

    ``kind``: what the class is — a ``List``, a ``Set``, a ``Map``, or another ``Collection``.
    ``final``: the class is final, so Jackson writes an instance of it without a type id where
    its declared type does not force one (a per-key row's root). ``reads``: the runtime class
    Jackson makes when it reads a wrapper of this class with 0 / 1 / more elements (a reader
    with GuavaModule, Stairway ≥0.0.62); ``""`` where the read fails. ``legacy``: the same for a
    reader without GuavaModule (≤0.0.61), when it differs. ``nulls``: what a read does with null
    elements (or map values): ``keep`` them, ``refuse`` (the read fails) or ``skip`` them (Guava's
    map deserializers drop null values, so the size that counts is that of the rest).
    """

    name: str
    kind: str
    final: bool
    reads: tuple[str, str, str]
    legacy: tuple[str, str, str] | None = None
    nulls: str = "keep"

    def reads_as(self, size: int, guava_module: bool) -> str:
        """The runtime class a read of ``size`` elements makes, ``""`` when the read fails."""
        table = self.reads if guava_module or self.legacy is None else self.legacy
        return table[min(size, 2)]


KEEP, REFUSE, SKIP = "keep", "refuse", "skip"


def _same(name: str) -> tuple[str, str, str]:
    return (name, name, name)


_U = "java.util."
_C = "java.util.Collections$"
_I = "java.util.ImmutableCollections$"
_G = "com.google.common.collect."
_NONE = ("", "", "")
_G_LIST = (_G + "RegularImmutableList", _G + "SingletonImmutableList", _G + "RegularImmutableList")
_G_SET = (_G + "RegularImmutableSet", _G + "SingletonImmutableSet", _G + "RegularImmutableSet")
_G_MAP = (_G + "RegularImmutableMap", _G + "SingletonImmutableBiMap", _G + "RegularImmutableMap")
_G_BIMAP = (
    _G + "RegularImmutableBiMap",
    _G + "SingletonImmutableBiMap",
    _G + "RegularImmutableBiMap",
)

CONTAINERS: dict[str, Container] = {
    c.name: c
    for c in (
        # lists
        Container(LIST, LIST_KIND, False, _same(ARRAY_LIST)),
        Container(_U + "AbstractList", LIST_KIND, False, _same(ARRAY_LIST)),
        Container(ARRAY_LIST, LIST_KIND, False, _same(ARRAY_LIST)),
        Container(_U + "LinkedList", LIST_KIND, False, _same(_U + "LinkedList")),
        Container(_U + "Vector", LIST_KIND, False, _same(_U + "Vector")),
        Container(_U + "Stack", LIST_KIND, False, _same(_U + "Stack")),
        Container(_U + "Arrays$ArrayList", LIST_KIND, False, _same(ARRAY_LIST)),
        Container(_C + "EmptyList", LIST_KIND, False, (_C + "EmptyList", "", "")),
        Container(_C + "SingletonList", LIST_KIND, False, ("", _C + "SingletonList", "")),
        Container(
            _C + "UnmodifiableList", LIST_KIND, False, _same(_C + "UnmodifiableRandomAccessList")
        ),
        Container(
            _C + "UnmodifiableRandomAccessList",
            LIST_KIND,
            False,
            _same(_C + "UnmodifiableRandomAccessList"),
        ),
        Container(
            _C + "SynchronizedList", LIST_KIND, False, _same(_C + "SynchronizedRandomAccessList")
        ),
        Container(
            _C + "SynchronizedRandomAccessList",
            LIST_KIND,
            False,
            _same(_C + "SynchronizedRandomAccessList"),
        ),
        Container(
            _U + "concurrent.CopyOnWriteArrayList",
            LIST_KIND,
            False,
            _same(_U + "concurrent.CopyOnWriteArrayList"),
        ),
        Container(_I + "List12", LIST_KIND, True, _same(ARRAY_LIST)),
        Container(_I + "ListN", LIST_KIND, True, _same(ARRAY_LIST)),
        Container(_G + "ImmutableList", LIST_KIND, False, _G_LIST, _NONE, nulls=REFUSE),
        Container(_G + "RegularImmutableList", LIST_KIND, False, _G_LIST, _NONE, nulls=REFUSE),
        Container(_G + "SingletonImmutableList", LIST_KIND, True, _G_LIST, _NONE, nulls=REFUSE),
        # other collections (neither List nor Set)
        Container(_U + "Collection", COLLECTION_KIND, False, _same(ARRAY_LIST)),
        Container(_U + "Queue", COLLECTION_KIND, False, _same(_U + "LinkedList")),
        Container(
            _U + "ArrayDeque", COLLECTION_KIND, False, _same(_U + "ArrayDeque"), nulls=REFUSE
        ),
        Container(_G + "ImmutableCollection", COLLECTION_KIND, False, _G_LIST, _NONE, nulls=REFUSE),
        # sets
        Container(SET, SET_KIND, False, _same(_U + "HashSet")),
        Container(_U + "SortedSet", SET_KIND, False, _same(_U + "TreeSet"), nulls=REFUSE),
        Container(_U + "NavigableSet", SET_KIND, False, _same(_U + "TreeSet"), nulls=REFUSE),
        Container(_U + "HashSet", SET_KIND, False, _same(_U + "HashSet")),
        Container(_U + "LinkedHashSet", SET_KIND, False, _same(_U + "LinkedHashSet")),
        Container(_U + "TreeSet", SET_KIND, False, _same(_U + "TreeSet"), nulls=REFUSE),
        Container(_C + "EmptySet", SET_KIND, False, (_C + "EmptySet", "", "")),
        Container(_C + "SingletonSet", SET_KIND, False, ("", _C + "SingletonSet", "")),
        Container(_C + "UnmodifiableSet", SET_KIND, False, _same(_C + "UnmodifiableSet")),
        Container(_C + "SynchronizedSet", SET_KIND, False, _same(_C + "SynchronizedSet")),
        Container(
            _U + "concurrent.CopyOnWriteArraySet",
            SET_KIND,
            False,
            _same(_U + "concurrent.CopyOnWriteArraySet"),
        ),
        Container(_I + "Set12", SET_KIND, True, _same(_C + "UnmodifiableSet")),
        Container(_I + "SetN", SET_KIND, True, _same(_C + "UnmodifiableSet")),
        Container(_G + "ImmutableSet", SET_KIND, False, _G_SET, _NONE, nulls=REFUSE),
        Container(_G + "RegularImmutableSet", SET_KIND, True, _G_SET, _NONE, nulls=REFUSE),
        Container(_G + "SingletonImmutableSet", SET_KIND, True, _G_SET, _NONE, nulls=REFUSE),
        # maps
        Container(MAP, MAP_KIND, False, _same(_U + "LinkedHashMap")),
        Container(_U + "SortedMap", MAP_KIND, False, _same(_U + "TreeMap")),
        Container(_U + "NavigableMap", MAP_KIND, False, _same(_U + "TreeMap")),
        Container(HASH_MAP, MAP_KIND, False, _same(HASH_MAP)),
        Container(_U + "LinkedHashMap", MAP_KIND, False, _same(_U + "LinkedHashMap")),
        Container(_U + "TreeMap", MAP_KIND, False, _same(_U + "TreeMap")),
        Container(_U + "Hashtable", MAP_KIND, False, _same(_U + "Hashtable"), nulls=REFUSE),
        Container(_U + "Properties", MAP_KIND, False, _same(_U + "Properties"), nulls=REFUSE),
        Container(_U + "IdentityHashMap", MAP_KIND, False, _same(_U + "IdentityHashMap")),
        Container(_U + "WeakHashMap", MAP_KIND, False, _same(_U + "WeakHashMap")),
        Container(
            _U + "concurrent.ConcurrentHashMap",
            MAP_KIND,
            False,
            _same(_U + "concurrent.ConcurrentHashMap"),
            nulls=REFUSE,
        ),
        Container(
            _U + "concurrent.ConcurrentMap",
            MAP_KIND,
            False,
            _same(_U + "concurrent.ConcurrentHashMap"),
            nulls=REFUSE,
        ),
        Container(_C + "EmptyMap", MAP_KIND, False, (_C + "EmptyMap", "", "")),
        Container(_C + "SingletonMap", MAP_KIND, False, ("", _C + "SingletonMap", "")),
        Container(_C + "UnmodifiableMap", MAP_KIND, False, _same(_C + "UnmodifiableMap")),
        Container(_C + "SynchronizedMap", MAP_KIND, False, _same(_C + "SynchronizedMap")),
        Container(_I + "Map1", MAP_KIND, True, _same(_C + "UnmodifiableMap")),
        Container(_I + "MapN", MAP_KIND, True, _same(_C + "UnmodifiableMap")),
        Container(_G + "ImmutableMap", MAP_KIND, False, _G_MAP, _NONE, nulls=SKIP),
        Container(
            _G + "RegularImmutableMap",
            MAP_KIND,
            True,
            _G_MAP,
            (_G + "RegularImmutableMap", "", ""),
            nulls=SKIP,
        ),
        Container(_G + "ImmutableBiMap", MAP_KIND, False, _G_BIMAP, _NONE, nulls=SKIP),
        Container(_G + "SingletonImmutableBiMap", MAP_KIND, True, _G_BIMAP, _NONE, nulls=SKIP),
        Container(_G + "RegularImmutableBiMap", MAP_KIND, False, _G_BIMAP, _NONE, nulls=SKIP),
        Container(
            _G + "ImmutableSortedMap",
            MAP_KIND,
            True,
            _same(_G + "ImmutableSortedMap"),
            _NONE,
            nulls=SKIP,
        ),
    )
}

#: Runtime classes a mapper without GuavaModule makes as broken instances (internals null):
#: the read succeeds, but hashing or iterating the object throws NullPointerException.
BROKEN_WITHOUT_GUAVA = frozenset({_G + "RegularImmutableMap"})

#: Type ids that are ``List`` subtypes (what ``get(key, List.class)`` accepts on ≥0.0.61, and
#: the runtime classes that pass ``List.class.isInstance`` on ≤0.0.60).
LIST_CLASSES = frozenset(n for n, c in CONTAINERS.items() if c.kind == LIST_KIND)
SET_CLASSES = frozenset(n for n, c in CONTAINERS.items() if c.kind == SET_KIND)
MAP_CLASSES = frozenset(n for n, c in CONTAINERS.items() if c.kind == MAP_KIND)
COLLECTION_CLASSES = frozenset(n for n, c in CONTAINERS.items() if c.kind != MAP_KIND)

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

#: Classes whose deserializer accepts an explicit null after their type id (``["java.lang.Long",
#: null]``); for every other class only ``["a.b.C"]`` reads as null.
NULL_IN_WRAPPER = frozenset({INTEGER, LONG, SHORT, BYTE, BOOLEAN, DOUBLE, FLOAT})

#: Scalar classes that are final (written without a type id at a per-key row's root).
FINAL_SCALAR_CLASSES = SCALAR_CLASSES - {BIG_INTEGER, BIG_DECIMAL}

#: Every JDK class the package knows; their names may be shown in findings.
KNOWN_CLASSES = SCALAR_CLASSES | frozenset(CONTAINERS) | {OBJECT}

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
