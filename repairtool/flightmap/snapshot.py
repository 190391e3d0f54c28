"""Built-in catalogs without pydantic: each `repairtool/catalogs/NAME.yaml` has a snapshot
`NAME.snapshot.json` of the catalog it validates to, with the SHA-256 of the YAML it was made
from. `load_builtin_catalog` (in `.catalog`) builds the catalog from the snapshot when the hash
still matches (a few milliseconds, where importing pydantic and validating take 0.2 s on every
`repairtool orphans`), else validates the YAML as before. This module writes them
(`python -m repairtool.flightmap.snapshot`); `tests/flightmap/test_catalog_snapshot.py` holds
every snapshot equal to what validating its YAML gives, and fresh.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .catalog import (
    SNAPSHOT_SUFFIX as SUFFIX,
)
from .catalog import (
    Catalog,
    CatalogType,
    KeySpec,
    yaml_hash,
)
from .catalog import (
    catalog_from_snapshot as from_plain,
)
from .catalog import (
    load_snapshot as load,
)

__all__ = ["SUFFIX", "from_plain", "load", "to_plain", "write_all", "yaml_hash"]


def to_plain(catalog: Catalog, text: str) -> dict[str, Any]:
    """The snapshot of `catalog`, validated from the YAML `text`."""

    def keys(specs: tuple[KeySpec, ...]) -> list[dict[str, Any]]:
        return [
            {
                "key": k.key,
                "type": _type_plain(k.type),
                "optional": k.optional,
                "inferred": k.inferred,
                "note": k.note,
            }
            for k in specs
        ]

    return {
        "yaml_sha256": yaml_hash(text),
        "flights": [
            {"class_name": f.class_name, "input": keys(f.input), "working": keys(f.working)}
            for f in catalog.flights
        ],
        "declared": [_type_plain(t) for t in catalog.declared],
    }


def _type_plain(t: CatalogType) -> dict[str, Any]:
    return {
        "kind": t.kind.value,
        "java_class": t.java_class,
        "values": list(t.values),
        "element": _type_plain(t.element) if t.element is not None else None,
        "read_as": t.read_as.value,
        "classes": list(t.classes),
        "final": t.final,
        "bodies": list(t.bodies),
    }


def write_all() -> list[str]:
    """Write the snapshot of every built-in catalog (validated from its YAML); their paths."""
    from .catalog import loads_catalog

    written = []
    folder = resources.files("repairtool").joinpath("catalogs")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        text = entry.read_text(encoding="utf-8")
        catalog = loads_catalog(text, f"repairtool/catalogs/{entry.name}")
        target = folder.joinpath(entry.name.removesuffix(".yaml") + SUFFIX)
        with open(str(target), "w", encoding="utf-8") as out:
            json.dump(to_plain(catalog, text), out, indent=1, ensure_ascii=False)
            out.write("\n")
        written.append(str(target))
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path)
