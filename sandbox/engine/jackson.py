"""Java values and Stairway's Jackson mapper (`enableDefaultTyping(NON_FINAL)`, WRAPPER_ARRAY).

Python stand-ins for the Java values a FlightMap holds (`str`, `int`, `bool`, `float`, `None`,
`uuid.UUID`, `EnumValue`, `Pojo`, `list` = ArrayList, `dict` = HashMap) and the three ways the
engine writes and reads them (stairway-engine.md §5):

* per-key rows (`flightinput`/`flightworking`/`flightpersisted`): `write_value` serialises the
  *runtime* class — final classes (String, boxed numbers, UUID, enums) carry no type id, non-final
  ones (POJOs, ArrayList, HashMap) are wrapped `["<class>", value]`;
* the legacy whole-map JSON (`flightlog.working_parameters`, `flight.output_parameters`, ≤0.0.60):
  `write_legacy_map`, every value typed as Object, so UUIDs, enums and Longs carry type ids too;
* reading: `read_object` = `readValue(json, Object.class)` (≤0.0.60: a stored `"MC_WORKSPACE"`
  comes back as a plain String), `read_as` = `readValue(json, type)` (≥0.0.61).

The text is Jackson's own, byte for byte (checked against real Jackson by
`tests/conformance/test_sandbox_writer.py`): compact, Jackson's string escapes, `Double.toString`
of the engines' JDK 11–17, a `HashMap`'s keys in Java's iteration order, a final POJO (a record,
a final class) without a type id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


class JsonReadError(ValueError):
    """What Jackson would throw (MismatchedInputException, InvalidTypeIdException, …)."""

    def __init__(self, java_class: str, message: str) -> None:
        super().__init__(message)
        self.java_class = java_class


@dataclass(frozen=True)
class JavaType:
    name: str
    final: bool = True

    @property
    def simple_name(self) -> str:
        return self.name.rsplit(".", 1)[-1].rsplit("$", 1)[-1]


@dataclass(frozen=True)
class JavaEnumType(JavaType):
    constants: tuple[str, ...] = ()

    def __call__(self, name: str) -> EnumValue:
        if name not in self.constants:
            raise ValueError(f"No enum constant {self.name}.{name}")
        return EnumValue(self, name)


@dataclass(frozen=True)
class PojoType(JavaType):
    fields: tuple[str, ...] = ()
    final: bool = False

    def __call__(self, **values: Any) -> Pojo:
        unknown = set(values) - set(self.fields)
        if unknown:
            raise TypeError(f"{self.name} has no fields {sorted(unknown)}")
        return Pojo(self, {f: values.get(f) for f in self.fields})


@dataclass(frozen=True)
class EnumValue:
    type: JavaEnumType
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Pojo:
    type: PojoType
    values: dict[str, Any] = field(hash=False)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def __str__(self) -> str:  # Object.toString()
        return f"{self.type.name}@{abs(hash(self.type.name)) & 0xFFFFFFF:x}"

    def __repr__(self) -> str:  # never show field values (tokens live in POJOs)
        return f"Pojo({self.type.name})"


@dataclass(frozen=True)
class JavaLong:
    """A `java.lang.Long` (plain ints are Integers)."""

    value: int


STRING = JavaType("java.lang.String")
INTEGER = JavaType("java.lang.Integer")
LONG = JavaType("java.lang.Long")
BOOLEAN = JavaType("java.lang.Boolean")
DOUBLE = JavaType("java.lang.Double")
UUID_TYPE = JavaType("java.util.UUID")
OBJECT = JavaType("java.lang.Object", final=False)
HASHMAP = JavaType("java.util.HashMap", final=False)
ARRAYLIST = JavaType("java.util.ArrayList", final=False)
EMPTY_LIST = "java.util.Collections$EmptyList"


class TypeCatalog:
    """The classes a reader can resolve from a type id (Jackson's class loader, in effect)."""

    def __init__(self) -> None:
        self._types: dict[str, JavaType] = {}

    def register(self, *types: JavaType) -> None:
        for t in types:
            self._types[t.name] = t

    def get(self, name: str) -> JavaType | None:
        return self._types.get(name)


CATALOG = TypeCatalog()
PROGRESS_METER = PojoType("bio.terra.stairway.ProgressMeter", fields=("v1", "v2"))
CATALOG.register(PROGRESS_METER)


def java_class_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return BOOLEAN.name
    if isinstance(value, int):
        return INTEGER.name if INT_MIN <= value <= INT_MAX else LONG.name
    if isinstance(value, JavaLong):
        return LONG.name
    if isinstance(value, float):
        return DOUBLE.name
    if isinstance(value, str):
        return STRING.name
    if isinstance(value, uuid.UUID):
        return UUID_TYPE.name
    if isinstance(value, EnumValue):
        return value.type.name
    if isinstance(value, Pojo):
        return value.type.name
    if isinstance(value, list):
        return EMPTY_LIST if not value else ARRAYLIST.name
    if isinstance(value, dict):
        return HASHMAP.name
    raise TypeError(f"no Java class for {type(value).__name__}")


def java_str(value: Any) -> str:
    """`String.valueOf(value)` as Java would print it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JavaLong):
        return str(value.value)
    if isinstance(value, list):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_str(v)}" for k, v in value.items()) + "}"
    return str(value)


# -- writing ---------------------------------------------------------------------------------------


def _content(value: Any) -> Any:
    """The JSON of a value's own content (no type id for the value itself)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, JavaLong):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, Pojo):
        # POJO fields are declared with final types here (String, UUID, enums, long)
        return {k: _content(v) for k, v in value.values.items()}
    if isinstance(value, list):
        return [_as_object(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _as_object(value[k]) for k in hashmap_order(list(value))}
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _as_object(value: Any) -> Any:
    """A value whose declared type is Object: natural JSON types (String, Integer, Double,
    Boolean, null) stay plain, everything else is wrapped with its class."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int) and INT_MIN <= value <= INT_MAX:
        return value
    return [java_class_of(value), _content(value)]


def _is_final(value: Any) -> bool:
    if isinstance(value, Pojo):
        return value.type.final
    return not isinstance(value, (list, dict))


def write_value(value: Any) -> str:
    """`writeValueAsString(value)` (per-key rows): runtime class, type id only if non-final."""
    node = _content(value) if _is_final(value) else [java_class_of(value), _content(value)]
    return _dumps(node)


def write_legacy_map(values: dict[str, Any]) -> str:
    """`writeValueAsString(HashMap<String,Object>)` (the ≤0.0.60 whole-map columns)."""
    return _dumps([HASHMAP.name, {k: _as_object(values[k]) for k in hashmap_order(list(values))}])


def _string_hash(text: str) -> int:
    """`String.hashCode()`: over UTF-16 code units, 32-bit."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h


def hashmap_order(keys: list[str]) -> list[str]:
    """The order a `java.util.HashMap` filled by `put` in this order iterates its keys: by bucket
    (`hash ^ hash >>> 16` masked by the table size, which doubles from 16 whenever the size
    passes three quarters of it), then by insertion within a bucket (up to 8 per bucket)."""
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2
    position = {key: i for i, key in enumerate(keys)}

    def bucket(key: str) -> tuple[int, int]:
        h = _string_hash(key)
        return ((h ^ (h >> 16)) & (capacity - 1), position[key])

    return sorted(keys, key=bucket)


_ESCAPES = {i: f"\\u{i:04X}" for i in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"})
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def _string(text: str) -> str:
    return '"' + text.translate(_ESCAPES) + '"'


_INSIGNIFICANT: tuple[int, ...] = (
    *(0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7),
    *(8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 14),
    *(14, 14, 15, 15, 15, 15, 16, 16, 16, 17, 17, 17, 18, 18, 18, 19),
)


def double_text(value: float) -> str:
    """`Double.toString` on JDK 11–17: the shortest round-trip digits, except that an integral
    value below 2^63 is printed from its long value with only the digits 2^(e-54) makes
    insignificant dropped. (JDK 11–18 also miss the shortest digits for a few other values,
    e.g. 1.0E23 → 9.999999999999999E22; that is not modelled.)"""
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    minus = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude == int(magnitude) and 1 <= magnitude < 2.0**63:
        n = int(magnitude)
        p2 = n.bit_length() - 55
        drop = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
        n, residue = divmod(n, 10**drop)
        if drop and residue >= 10**drop // 2:
            n += 1
        digits, point = str(n).rstrip("0") or "0", len(str(n)) + drop
    else:
        _, shortest, exponent = Decimal(repr(magnitude)).as_tuple()
        assert isinstance(exponent, int)
        digits = "".join(map(str, shortest)).rstrip("0") or "0"
        point = len(shortest) + exponent
    if 1e-3 <= magnitude < 1e7:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{digits}"
        return f"{minus}{digits[:point].ljust(point, '0')}.{digits[point:] or '0'}"
    return f"{minus}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _dumps(node: Any) -> str:
    """Jackson's compact JSON of a tree whose dicts are already in the order Java writes them."""
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, int):
        return str(node)
    if isinstance(node, float):
        return double_text(node)
    if isinstance(node, str):
        return _string(node)
    if isinstance(node, list):
        return "[" + ",".join(_dumps(item) for item in node) + "]"
    if isinstance(node, dict):
        return "{" + ",".join(f"{_string(str(k))}:{_dumps(v)}" for k, v in node.items()) + "}"
    raise TypeError(f"cannot write {type(node).__name__} as JSON")


# -- reading ---------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise JsonReadError("com.fasterxml.jackson.core.JsonParseException", str(error)) from None


def read_object(text: str) -> Any:
    """`readValue(text, Object.class)` with default typing."""
    return _from_object(_loads(text))


def _from_object(node: Any) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict):
        raise JsonReadError(
            "com.fasterxml.jackson.databind.exc.MismatchedInputException",
            "Unexpected token (START_OBJECT), expected START_ARRAY: need JSON Array to contain "
            "As.WRAPPER_ARRAY type information for class java.lang.Object",
        )
    if not node or not isinstance(node[0], str) or len(node) != 2:
        raise JsonReadError(
            "com.fasterxml.jackson.databind.exc.MismatchedInputException",
            "need JSON String that contains type id (for subtype of java.lang.Object)",
        )
    return _typed(node[0], node[1])


def _typed(type_id: str, content: Any) -> Any:
    if type_id == UUID_TYPE.name:
        return _uuid(content, type_id)
    if type_id == LONG.name:
        return JavaLong(int(content))
    if type_id in (INTEGER.name, STRING.name, BOOLEAN.name, DOUBLE.name):
        return content
    if type_id in (HASHMAP.name, "java.util.LinkedHashMap"):
        if not isinstance(content, dict):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                f"expected an object for {type_id}",
            )
        return {k: _from_object(v) for k, v in content.items()}
    if type_id in (ARRAYLIST.name, EMPTY_LIST, "java.util.LinkedList"):
        if not isinstance(content, list):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                f"expected an array for {type_id}",
            )
        return [_from_object(v) for v in content]
    t = CATALOG.get(type_id)
    if isinstance(t, JavaEnumType):
        return _enum(t, content)
    if isinstance(t, PojoType):
        if not isinstance(content, dict):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                f"expected an object for {type_id}",
            )
        return Pojo(t, {f: content.get(f) for f in t.fields})
    raise JsonReadError(
        "com.fasterxml.jackson.databind.exc.InvalidTypeIdException",
        f"Could not resolve type id '{type_id}' as a subtype of `java.lang.Object`: "
        "no such class found",
    )


def _uuid(content: Any, type_name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(content))
    except ValueError:
        raise JsonReadError(
            "com.fasterxml.jackson.databind.exc.InvalidFormatException",
            f"Cannot deserialize value of type `{type_name}` from String "
            f'"{content}": UUID has to be represented by standard 36-char '
            "representation",
        ) from None


def _enum(t: JavaEnumType, content: Any) -> EnumValue:
    if isinstance(content, str) and content in t.constants:
        return EnumValue(t, content)
    raise JsonReadError(
        "com.fasterxml.jackson.databind.exc.InvalidFormatException",
        f'Cannot deserialize value of type `{t.name}` from String "{content}": not one of the '
        f"values accepted for Enum class: [{', '.join(t.constants)}]",
    )


def read_as(text: str, jtype: JavaType) -> Any:
    """`readValue(text, type)` (the ≥0.0.61 FlightMap.get)."""
    node = _loads(text)
    if node is None:
        return None
    if jtype == OBJECT:
        return _from_object(node)
    if not jtype.final:
        # non-final declared type: default typing expects the wrapper array
        if not (isinstance(node, list) and len(node) == 2 and isinstance(node[0], str)):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                f"Unexpected token ({_token(node)}), expected START_ARRAY: need JSON Array to "
                f"contain As.WRAPPER_ARRAY type information for class {jtype.name}",
            )
        return _typed(node[0], node[1])
    if isinstance(node, list):
        raise JsonReadError(
            "com.fasterxml.jackson.databind.exc.MismatchedInputException",
            f"Cannot deserialize value of type `{jtype.name}` from Array value "
            "(token `JsonToken.START_ARRAY`)",
        )
    if jtype == STRING:
        return node if isinstance(node, str) else json.dumps(node)
    if jtype == UUID_TYPE:
        return _uuid(node, jtype.name)
    if isinstance(jtype, JavaEnumType):
        return _enum(jtype, node)
    if jtype in (INTEGER, LONG):
        if isinstance(node, bool) or not isinstance(node, (int, float, str)):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                f"Cannot deserialize value of type `{jtype.name}`",
            )
        return int(node) if jtype == INTEGER else JavaLong(int(node))
    if jtype == BOOLEAN:
        return bool(node)
    if jtype == DOUBLE:
        return float(node)
    return node


def _token(node: Any) -> str:
    if isinstance(node, dict):
        return "START_OBJECT"
    if isinstance(node, str):
        return "VALUE_STRING"
    if isinstance(node, bool):
        return "VALUE_TRUE" if node else "VALUE_FALSE"
    if isinstance(node, (int, float)):
        return "VALUE_NUMBER_INT" if isinstance(node, int) else "VALUE_NUMBER_FLOAT"
    return "START_ARRAY"


def is_instance(value: Any, jtype: JavaType) -> bool:
    """`type.isInstance(value)` for the ≤0.0.60 FlightMap.get."""
    if jtype == OBJECT:
        return value is not None
    if jtype == STRING:
        return isinstance(value, str)
    if jtype == UUID_TYPE:
        return isinstance(value, uuid.UUID)
    if jtype == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if jtype == LONG:
        return isinstance(value, JavaLong)
    if jtype == BOOLEAN:
        return isinstance(value, bool)
    if jtype == DOUBLE:
        return isinstance(value, float)
    if isinstance(jtype, JavaEnumType):
        return isinstance(value, EnumValue) and value.type.name == jtype.name
    if isinstance(jtype, PojoType):
        return isinstance(value, Pojo) and value.type.name == jtype.name
    if jtype == HASHMAP:
        return isinstance(value, dict)
    if jtype == ARRAYLIST:
        return isinstance(value, list)
    return False
