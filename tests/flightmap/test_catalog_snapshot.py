"""Built-in catalogs load from their snapshots (no pydantic on `repairtool orphans`' path), and
every snapshot is what validating its YAML gives — made from the YAML as it is now."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from repairtool.flightmap import catalog as catalog_module
from repairtool.flightmap import snapshot
from repairtool.flightmap.catalog import load_builtin_catalog, loads_catalog

FOLDER = resources.files("repairtool").joinpath("catalogs")
NAMES = sorted(e.name.removesuffix(".yaml") for e in FOLDER.iterdir() if e.name.endswith(".yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_the_snapshot_is_the_validated_yaml_and_fresh(name: str) -> None:
    text = FOLDER.joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    source = f"repairtool/catalogs/{name}.yaml"
    snap = json.loads(FOLDER.joinpath(f"{name}{snapshot.SUFFIX}").read_text(encoding="utf-8"))
    assert snap["yaml_sha256"] == snapshot.yaml_hash(text), (
        "stale snapshot: run `python -m repairtool.flightmap.snapshot`"
    )
    validated = loads_catalog(text, source)
    fast = snapshot.from_plain(snap, source)
    assert fast == validated
    assert fast.classes == validated.classes  # derived fields too (compare=False in ==)
    for want, got in zip(validated.flights, fast.flights, strict=True):
        for a, b in zip(want.input + want.working, got.input + got.working, strict=True):
            assert (a, a.type.java_type, a.type.all_values) == (
                b,
                b.type.java_type,
                b.type.all_values,
            )


def test_a_changed_yaml_is_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = catalog_module.loads_catalog

    def counting(text: str, source: str = "<string>") -> object:
        calls.append(source)
        return real(text, source)

    monkeypatch.setattr(catalog_module, "loads_catalog", counting)
    load_builtin_catalog(NAMES[0])
    assert calls == []  # the snapshot matches: no validation
    assert snapshot.load(NAMES[0], "# edited\n", "x") is None  # another text: no snapshot
