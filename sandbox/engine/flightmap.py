"""The engine's FlightMap, in its two reader generations.

* `ObjectFlightMap` (≤0.0.60): a `Map<String,Object>`. A map built in-process holds the caller's
  objects; a map rebuilt from `flightinput` rows holds `readValue(json, Object.class)` results,
  so an enum or UUID comes back as a String and `get(key, WorkspaceStage.class)` throws
  `ClassCastException("Found value 'MC_WORKSPACE' is not an instance of type …WorkspaceStage")`.
* `JsonFlightMap` (≥0.0.61): a `Map<String,String>` of raw JSON, decoded on `get` with the
  requested type (errors become `JsonConversionException`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from sandbox.engine import jackson
from sandbox.engine.exceptions import JavaException, JsonConversionException, java_class_cast
from sandbox.engine.jackson import JavaType, JsonReadError


class FlightMap(ABC):
    @abstractmethod
    def get(self, key: str, jtype: JavaType) -> Any: ...

    @abstractmethod
    def put(self, key: str, value: Any) -> None: ...

    @abstractmethod
    def keys(self) -> list[str]: ...

    @abstractmethod
    def row_json(self) -> dict[str, str]:
        """Per-key JSON, as written to flightinput/flightworking."""

    @abstractmethod
    def legacy_json(self) -> str:
        """The whole map as ≤0.0.60 wrote it to working_parameters/output_parameters."""

    def contains_key(self, key: str) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


class ObjectFlightMap(FlightMap):
    """≤0.0.60: values are Java objects (the caller's, or what `readValue(…, Object)` made)."""

    def __init__(self, values: dict[str, Any] | None = None, *, get_frame: str = "") -> None:
        self._m: dict[str, Any] = dict(values or {})
        self._get_frame = get_frame or "bio.terra.stairway.FlightMap.get(FlightMap.java:89)"

    @classmethod
    def from_rows(cls, rows: dict[str, str], *, get_frame: str = "") -> ObjectFlightMap:
        return cls({k: jackson.read_object(v) for k, v in rows.items()}, get_frame=get_frame)

    @classmethod
    def from_legacy(cls, text: str, *, get_frame: str = "") -> ObjectFlightMap:
        value = jackson.read_object(text)
        if not isinstance(value, dict):
            raise JsonReadError(
                "com.fasterxml.jackson.databind.exc.MismatchedInputException",
                "legacy flight map is not a map",
            )
        return cls(value, get_frame=get_frame)

    def get(self, key: str, jtype: JavaType) -> Any:
        value = self._m.get(key)
        if value is None:
            return None
        if jackson.is_instance(value, jtype):
            return value
        raise java_class_cast(
            f"Found value '{jackson.java_str(value)}' is not an instance of type {jtype.name}",
            frames=[self._get_frame],
        )

    def put(self, key: str, value: Any) -> None:
        self._m[key] = value

    def keys(self) -> list[str]:
        return list(self._m)

    def row_json(self) -> dict[str, str]:
        return {k: jackson.write_value(v) for k, v in self._m.items()}

    def legacy_json(self) -> str:
        return jackson.write_legacy_map(self._m)


class JsonFlightMap(FlightMap):
    """≥0.0.61: raw JSON per key, decoded with the requested type on `get`."""

    def __init__(self, rows: dict[str, str] | None = None) -> None:
        self._m: dict[str, str] = dict(rows or {})

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> JsonFlightMap:
        return cls({k: jackson.write_value(v) for k, v in values.items()})

    @classmethod
    def from_legacy(cls, text: str) -> JsonFlightMap:
        """`FlightMapUtils.create` for rows written before 0.0.50: convert the whole-map JSON."""
        value = jackson.read_object(text)
        if not isinstance(value, dict):
            return cls()
        return cls.from_values(value)

    def get(self, key: str, jtype: JavaType) -> Any:
        raw = self._m.get(key)
        if raw is None:
            return None
        try:
            return jackson.read_as(raw, jtype)
        except JsonReadError as error:
            raise JsonConversionException(
                f"Failed to deserialize value '{raw}' from JSON to type {jtype.name}",
                cause=JavaException(error.java_class, str(error)),
            ) from None

    def get_raw(self, key: str) -> str | None:
        return self._m.get(key)

    def put(self, key: str, value: Any) -> None:
        self._m[key] = jackson.write_value(value)

    def keys(self) -> list[str]:
        return list(self._m)

    def row_json(self) -> dict[str, str]:
        return dict(self._m)

    def legacy_json(self) -> str:
        return jackson.write_legacy_map({k: jackson.read_object(v) for k, v in self._m.items()})


def new_map(typed: bool, values: dict[str, Any] | None = None) -> FlightMap:
    """An in-process map (what `new FlightMap()` + `put` gives the submitter)."""
    if typed:
        return JsonFlightMap.from_values(values or {})
    return ObjectFlightMap(values)
