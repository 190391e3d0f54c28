"""Fixtures for experiment tests: isolated state/artifacts directories, definition files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """State and artifacts under ``tmp_path`` (the commands an experiment runs inherit them)."""
    monkeypatch.setenv("STAIRWAY_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STAIRWAY_OPS_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return tmp_path


@pytest.fixture
def write_definition(tmp_path: Path) -> Callable[..., Path]:
    """``write_definition(data, name=…)``: a definition file in a temporary experiments dir."""

    def write(data: Any, name: str = "multi-instance-pod-kill") -> Path:
        d = tmp_path / "experiments"
        d.mkdir(exist_ok=True)
        path = d / f"{name}.yaml"
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
