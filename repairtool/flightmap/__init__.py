"""Stairway FlightMap values: parse Jackson default-typed JSON, decode it against a type catalog
the way a given Stairway reader would, explain what fails, and re-encode what can be fixed.

Typical use::

    catalog = load_builtin_catalog("workspace-manager")
    reader = parse_reader("0.0.60")
    report = decode_map(flight_id, class_name, rows, catalog, reader, source="input")
    for finding in report.findings:
        print(finding.render())          # never contains a stored value
        if finding.reencodable:
            new_text = reencode(rows[finding.key], finding.expected_type, reader)

Nothing here touches a database: rows come from the caller.
"""

from __future__ import annotations

from .catalog import (
    ANY,
    Catalog,
    CatalogType,
    FlightSpec,
    KeySpec,
    ReadAs,
    Source,
    TypeKind,
    dump_catalog,
    load_builtin_catalog,
    load_catalog,
    loads_catalog,
    parse_type,
)
from .decode import Decoded, Finding, MapReport, decode_map, decode_value
from .draft import draft_catalog
from .errors import CatalogError, FlightMapError, JacksonParseError, ReaderVersionError
from .jackson import (
    JsonFloat,
    JsonTree,
    Typed,
    dumps,
    loads,
    parse_legacy_map,
    parse_value,
    split_legacy_map,
)
from .reader import ReaderVersion, parse_reader
from .reencode import reencode
from .secrets import MASK, is_secret_key, mask, mask_tree
from .shape import shape

__all__ = [
    "ANY",
    "MASK",
    "Catalog",
    "CatalogError",
    "CatalogType",
    "Decoded",
    "Finding",
    "FlightMapError",
    "FlightSpec",
    "JacksonParseError",
    "JsonFloat",
    "JsonTree",
    "KeySpec",
    "MapReport",
    "ReadAs",
    "ReaderVersion",
    "ReaderVersionError",
    "Source",
    "TypeKind",
    "Typed",
    "decode_map",
    "decode_value",
    "draft_catalog",
    "dump_catalog",
    "dumps",
    "is_secret_key",
    "load_builtin_catalog",
    "load_catalog",
    "loads",
    "loads_catalog",
    "mask",
    "mask_tree",
    "parse_legacy_map",
    "parse_reader",
    "parse_type",
    "parse_value",
    "reencode",
    "shape",
    "split_legacy_map",
]
