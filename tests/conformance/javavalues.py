"""Java values for the conformance suite, and hypothesis strategies that generate them.

A :class:`J` is a Java value the oracle builds from its description (``oracle/README.md``):
scalars, enums, the POJOs under ``oracle/src/conformance/model``, collections and maps of many
implementations (JDK, ``List.of``, Guava), ``Optional`` and arrays. Each value is generated for a
:class:`~repairtool.flightmap.CatalogType` (what the service's code asks for); :func:`asked`
also draws neighbouring types the code might ask for instead (a String for a UUID, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from repairtool.flightmap import CatalogType, ReadAs, TypeKind
from repairtool.flightmap import java as jv
from repairtool.flightmap.catalog import catalog_classes

M = "conformance.model."


@dataclass(frozen=True)
class J:
    """A Java value: ``t`` is its kind in the description language, ``cls`` the enum/POJO class
    or the array component, ``v`` the payload (scalar, list of J, list of (key, J))."""

    t: str
    v: Any = None
    cls: str = ""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.t}
        if self.t in ("enum", "pojo"):
            out["class"] = self.cls
        elif self.t == "array":
            out["of"] = self.cls
        out["v"] = _payload(self)
        return out


def describe(value: J | None) -> dict[str, Any] | None:
    return None if value is None else value.describe()


_PAIRED = {"pojo", "HashMap", "LinkedHashMap", "TreeMap", "Map.of", "ImmutableMap"}
_PAIRED |= {"Collections.emptyMap"}


def _payload(j: J) -> Any:
    if j.t in _PAIRED:
        return [[k, describe(x)] for k, x in j.v]
    if j.t == "Optional":
        return describe(j.v)
    if isinstance(j.v, tuple):
        return [describe(x) for x in j.v]
    return j.v


# --- the model classes (oracle/src/conformance/model) ------------------------------------------

STAGE = CatalogType(
    TypeKind.ENUM, java_class=M + "Stage", values=("RAWLS_WORKSPACE", "MC_WORKSPACE", "DELETING")
)
OPERATION = CatalogType(
    TypeKind.ENUM,
    java_class=M + "Operation",
    values=("CREATE", "DELETE", "NOOP"),
    bodies=("CREATE", "DELETE"),
)
OWNER = CatalogType(TypeKind.POJO, java_class=M + "Owner")
REQUEST = CatalogType(TypeKind.POJO, java_class=M + "Request", classes=(M + "AdminRequest",))
ADMIN_REQUEST = CatalogType(TypeKind.POJO, java_class=M + "AdminRequest")
FINAL_REQUEST = CatalogType(TypeKind.POJO, java_class=M + "FinalRequest", final=True)
REF = CatalogType(TypeKind.POJO, java_class=M + "Ref", final=True)
SNAPSHOT = CatalogType(TypeKind.POJO, java_class=M + "Snapshot", final=True)
POJOS = (OWNER, REQUEST, ADMIN_REQUEST, FINAL_REQUEST, REF, SNAPSHOT)
ENUMS = (STAGE, OPERATION)
#: What a catalog of the "conformance service" declares under ``classes:``.
DECLARED = (*ENUMS, OWNER, REQUEST, FINAL_REQUEST, REF, SNAPSHOT)
CLASSES = catalog_classes(DECLARED)


def leaf(kind: TypeKind) -> CatalogType:
    return CatalogType(kind)


STRING, UUID, INT, LONG = (
    leaf(k) for k in (TypeKind.STRING, TypeKind.UUID, TypeKind.INT, TypeKind.LONG)
)
BOOL, DOUBLE, INSTANT = (leaf(k) for k in (TypeKind.BOOL, TypeKind.DOUBLE, TypeKind.INSTANT))
BIGDECIMAL, OPTIONAL, ANY = (
    leaf(k) for k in (TypeKind.BIGDECIMAL, TypeKind.OPTIONAL, TypeKind.ANY)
)
LEAVES = (STRING, UUID, INT, LONG, BOOL, DOUBLE, INSTANT, BIGDECIMAL, *ENUMS, *POJOS, OPTIONAL)


def oracle_type(t: CatalogType) -> dict[str, Any]:
    """The requested Java type as the oracle takes it: ``{"raw", "of", "ref"}``."""
    raw = t.java_class if t.kind in (TypeKind.ENUM, TypeKind.POJO) else t.java_type.split("<")[0]
    out: dict[str, Any] = {"raw": raw}
    if t.kind in (TypeKind.LIST, TypeKind.SET, TypeKind.MAP):
        out["ref"] = t.read_as is ReadAs.TYPE_REFERENCE
        if t.element is not None:
            out["of"] = oracle_type(t.element)
    return out


# --- scalar strategies -------------------------------------------------------------------------

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
_SPECIAL_STRINGS = st.sampled_from(
    [
        "",
        "null",
        "true",
        "1.5",
        "42",
        "MC_WORKSPACE",
        "CREATE",
        "java.util.UUID",
        "java.util.ArrayList",
        "conformance.model.Owner",
        "2021-04-05T10:14:23.723Z",
        "2e74e380-cccd-48ad-a0ac-e006b3650dbe",
        "2E74E380-CCCD-48AD-A0AC-E006B3650DBE",
        "ya29.a0Af-token",
        'quote " and \\ backslash',
        "tab\tnew\nline\u001f\u007f",
        "ünïcödé ✓ 𝄞",
    ]
)
strings = st.one_of(_SPECIAL_STRINGS, _TEXT, st.uuids().map(str)).map(lambda s: J("String", s))
ints = st.one_of(st.integers(-3, 300), st.integers(jv.INT_MIN, jv.INT_MAX)).map(
    lambda n: J("Integer", n)
)
longs = st.one_of(
    st.integers(-3, 300),
    st.integers(jv.INT_MIN, jv.INT_MAX),
    st.integers(jv.LONG_MIN, jv.LONG_MAX),
).map(lambda n: J("Long", n))
shorts = st.integers(jv.SHORT_MIN, jv.SHORT_MAX).map(lambda n: J("Short", n))
bytes_ = st.integers(jv.BYTE_MIN, jv.BYTE_MAX).map(lambda n: J("Byte", n))
big_integers = st.integers(-(2**80), 2**80).map(lambda n: J("BigInteger", str(n)))
doubles = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 0.1, 1e7, 1e-3, 9.999e-4, 1e21, 123456789.125, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),
).map(lambda x: J("Double", repr(x)))
floats = st.floats(allow_nan=False, allow_infinity=False, width=32).map(
    lambda x: J("Float", repr(x))
)
booleans = st.booleans().map(lambda b: J("Boolean", b))
uuids = st.uuids().map(lambda u: J("UUID", str(u)))
instants = st.one_of(
    st.sampled_from(["2021-04-05T10:14:23.723Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z"]),
    st.datetimes(
        min_value=__import__("datetime").datetime(1900, 1, 1),
        max_value=__import__("datetime").datetime(2200, 1, 1),
    ).map(lambda d: d.isoformat() + "Z"),
).map(lambda s: J("Instant", s))
big_decimals = st.one_of(
    st.sampled_from(["1.50", "0", "1E+3", "-0.000001", "12345678901234567890.5"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
).map(lambda s: J("BigDecimal", s))


def enum_values(t: CatalogType) -> st.SearchStrategy[J]:
    return st.sampled_from(t.values).map(lambda name: J("enum", name, t.java_class))


# --- POJOs ---------------------------------------------------------------------------------------


def _nullable(s: st.SearchStrategy[J]) -> st.SearchStrategy[J | None]:
    return st.one_of(st.none(), s)


def _owner() -> st.SearchStrategy[J]:
    return st.tuples(_nullable(strings), _nullable(strings)).map(
        lambda f: J("pojo", (("email", f[0]), ("subjectId", f[1])), M + "Owner")
    )


def _string_list() -> st.SearchStrategy[J]:
    return st.lists(_nullable(strings), max_size=3).flatmap(lambda xs: list_impl(xs))


def _request_fields() -> st.SearchStrategy[tuple[tuple[str, J | None], ...]]:
    return st.tuples(
        _nullable(strings),
        _nullable(uuids),
        _nullable(enum_values(STAGE)),
        longs,
        _nullable(instants),
        _nullable(_string_list()),
        _nullable(_owner()),
        _nullable(_nullable(strings).map(lambda x: J("Optional", x))),
    ).map(
        lambda f: tuple(
            zip(
                ("name", "id", "stage", "count", "created", "tags", "owner", "note"), f, strict=True
            )
        )
    )


def pojo_values(t: CatalogType) -> st.SearchStrategy[J]:
    name = t.java_class
    if name == M + "Owner":
        return _owner()
    if name == M + "Request":
        plain = _request_fields().map(lambda f: J("pojo", f, M + "Request"))
        return st.one_of(plain, pojo_values(ADMIN_REQUEST))
    if name == M + "AdminRequest":
        return st.tuples(_request_fields(), _nullable(strings)).map(
            lambda f: J("pojo", (*f[0], ("reason", f[1])), M + "AdminRequest")
        )
    if name == M + "FinalRequest":
        return st.tuples(
            _nullable(strings),
            _nullable(uuids),
            _nullable(enum_values(STAGE)),
            _nullable(big_decimals),
            _nullable(_owner()),
        ).map(
            lambda f: J(
                "pojo",
                tuple(zip(("name", "id", "stage", "amount", "owner"), f, strict=True)),
                M + "FinalRequest",
            )
        )
    if name == M + "Ref":
        sizes = st.lists(_nullable(ints), max_size=3).map(lambda xs: J("ArrayList", tuple(xs)))
        return st.tuples(
            _nullable(strings), _nullable(uuids), _nullable(enum_values(STAGE)), _nullable(sizes)
        ).map(
            lambda f: J(
                "pojo", tuple(zip(("name", "id", "stage", "sizes"), f, strict=True)), M + "Ref"
            )
        )
    assert name == M + "Snapshot"
    return st.tuples(_nullable(strings), longs, _nullable(_owner())).map(
        lambda f: J(
            "pojo", tuple(zip(("name", "version", "owner"), f, strict=True)), M + "Snapshot"
        )
    )


# --- collections ---------------------------------------------------------------------------------


def _distinct(xs: list[J | None]) -> list[J | None]:
    seen: list[Any] = []
    out: list[J | None] = []
    for x in xs:
        key = describe(x)
        if key not in seen:
            seen.append(key)
            out.append(x)
    return out


def list_impl(xs: list[J | None]) -> st.SearchStrategy[J]:
    """One of the List implementations that can hold ``xs``."""
    kinds = ["ArrayList", "LinkedList", "Arrays.asList", "Collections.unmodifiableList"]
    if None not in xs:
        kinds += ["List.of", "ImmutableList"]
    if not xs:
        kinds.append("Collections.emptyList")
    if len(xs) == 1:
        kinds.append("Collections.singletonList")
    return st.sampled_from(kinds).map(lambda k: J(k, tuple(xs)))


_PLAIN_EQUALITY = {"String", "Integer", "Long", "UUID", "Boolean", "enum"}


def set_impl(xs: list[J | None]) -> st.SearchStrategy[J]:
    xs = _distinct(xs)
    kinds = ["HashSet", "LinkedHashSet"]
    if None not in xs:
        kinds.append("ImmutableSet")
        # Set.of throws on elements equal in Java: only where equality is plain
        if all(x is not None and x.t in _PLAIN_EQUALITY for x in xs):
            kinds.append("Set.of")
        if xs and all(x is not None and x.t == "String" for x in xs):
            kinds.append("TreeSet")
    return st.sampled_from(kinds).map(lambda k: J(k, tuple(xs)))


def map_impl(pairs: list[tuple[str, J | None]]) -> st.SearchStrategy[J]:
    pairs = list(dict(pairs).items())
    kinds = ["HashMap", "LinkedHashMap", "TreeMap"]
    if all(v is not None for _, v in pairs):
        kinds += ["Map.of", "ImmutableMap"]
    if not pairs:
        kinds.append("Collections.emptyMap")
    return st.sampled_from(kinds).map(lambda k: J(k, tuple(pairs)))


_KEYS = st.one_of(st.sampled_from(["a", "b", "READER", "", "java.util.UUID"]), _TEXT)


def containers(
    element: Callable[[], st.SearchStrategy[J | None]], kind: TypeKind
) -> st.SearchStrategy[J]:
    if kind is TypeKind.MAP:
        return st.lists(st.tuples(_KEYS, element()), max_size=4).flatmap(map_impl)
    items = st.lists(element(), max_size=4)
    return items.flatmap(set_impl if kind is TypeKind.SET else list_impl)


def arrays() -> st.SearchStrategy[J]:
    return st.one_of(
        st.lists(_nullable(strings), max_size=3).map(
            lambda xs: J("array", tuple(xs), "java.lang.String")
        ),
        st.lists(ints, max_size=3).map(lambda xs: J("array", tuple(xs), "int")),
        st.lists(longs, max_size=3).map(lambda xs: J("array", tuple(xs), "long")),
        st.lists(_nullable(uuids), max_size=3).map(
            lambda xs: J("array", tuple(xs), "java.util.UUID")
        ),
        st.lists(_nullable(scalar_any()), max_size=3).map(
            lambda xs: J("array", tuple(xs), "java.lang.Object")
        ),
        st.lists(_nullable(_owner()), max_size=2).map(
            lambda xs: J("array", tuple(xs), M + "Owner")
        ),
    )


def scalar_any() -> st.SearchStrategy[J]:
    return st.one_of(
        strings,
        ints,
        longs,
        doubles,
        booleans,
        uuids,
        instants,
        big_decimals,
        floats,
        shorts,
        bytes_,
        big_integers,
        enum_values(STAGE),
        enum_values(OPERATION),
    )


def any_values(depth: int = 2) -> st.SearchStrategy[J | None]:
    """Anything a FlightMap may hold: scalars, POJOs, Optional, arrays, nested collections."""
    base: st.SearchStrategy[J | None] = st.one_of(
        st.none(), scalar_any(), st.sampled_from(POJOS).flatmap(pojo_values)
    )
    if depth <= 0:
        return base
    inner = lambda: any_values(depth - 1)  # noqa: E731
    return st.one_of(
        base,
        base,
        arrays(),
        containers(inner, TypeKind.LIST),
        containers(inner, TypeKind.SET),
        containers(inner, TypeKind.MAP),
        _nullable(scalar_any()).map(lambda x: J("Optional", x)),
    )


def values_for(t: CatalogType, depth: int = 2) -> st.SearchStrategy[J | None]:
    """Java values of the type ``t`` names (null included)."""
    kind = t.kind
    simple: dict[TypeKind, st.SearchStrategy[J]] = {
        TypeKind.STRING: strings,
        TypeKind.UUID: uuids,
        TypeKind.INT: ints,
        TypeKind.LONG: longs,
        TypeKind.BOOL: booleans,
        TypeKind.DOUBLE: doubles,
        TypeKind.INSTANT: instants,
        TypeKind.BIGDECIMAL: big_decimals,
    }
    if kind in simple:
        return _nullable(simple[kind])
    if kind is TypeKind.ENUM:
        return _nullable(enum_values(t))
    if kind is TypeKind.POJO:
        return _nullable(pojo_values(t))
    if kind is TypeKind.OPTIONAL:
        return _nullable(
            st.one_of(st.none(), scalar_any(), _owner()).map(lambda x: J("Optional", x))
        )
    if kind is TypeKind.ANY:
        return any_values(depth)
    element = t.element

    def elements() -> st.SearchStrategy[J | None]:
        return values_for(element, depth - 1) if element is not None else any_values(depth - 1)

    return _nullable(containers(elements, kind))


# --- types ---------------------------------------------------------------------------------------


def types(depth: int = 2) -> st.SearchStrategy[CatalogType]:
    """Catalog types: every leaf kind, and lists/sets/maps of them (nested)."""
    leaves = st.sampled_from((*LEAVES, ANY))
    if depth <= 0:
        return leaves
    return st.one_of(
        leaves,
        leaves,
        st.builds(
            lambda kind, element, read_as: CatalogType(kind, element=element, read_as=read_as),
            st.sampled_from([TypeKind.LIST, TypeKind.SET, TypeKind.MAP]),
            st.one_of(st.none(), types(depth - 1)),
            st.sampled_from(list(ReadAs)),
        ),
    )


def _neighbours(t: CatalogType) -> list[CatalogType]:
    kind = t.kind
    out: list[CatalogType] = [ANY]
    if kind in (TypeKind.UUID, TypeKind.ENUM, TypeKind.INSTANT):
        out.append(STRING)
    if kind is TypeKind.STRING:
        out += [UUID, STAGE, INSTANT]
    if kind is TypeKind.INT:
        out += [LONG, DOUBLE]
    if kind is TypeKind.LONG:
        out += [INT]
    if kind in (TypeKind.INSTANT, TypeKind.BIGDECIMAL):
        out.append(DOUBLE)
    if kind is TypeKind.POJO and t.java_class == M + "AdminRequest":
        out.append(REQUEST)
    if kind in (TypeKind.LIST, TypeKind.SET, TypeKind.MAP):
        flipped = ReadAs.CLASS if t.read_as is ReadAs.TYPE_REFERENCE else ReadAs.TYPE_REFERENCE
        out.append(replace(t, read_as=flipped))
        out.append(replace(t, element=None))
        if kind is not TypeKind.MAP:
            other = TypeKind.SET if kind is TypeKind.LIST else TypeKind.LIST
            out.append(replace(t, kind=other))
    return out


def asked(t: CatalogType) -> st.SearchStrategy[CatalogType]:
    """What the code asks for: usually ``t`` itself, sometimes a neighbouring type."""
    return st.one_of(st.just(t), st.just(t), st.just(t), st.sampled_from(_neighbours(t)))


@dataclass(frozen=True)
class Case:
    """One FlightMap entry: the Java value put, and the type the code asks for."""

    key: str
    value: J | None
    asked: CatalogType


@st.composite
def cases(draw: st.DrawFn, prefix: str = "k") -> Case:
    t = draw(types())
    value = draw(values_for(t))
    return Case(prefix, value, draw(asked(t)))
