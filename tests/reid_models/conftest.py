"""Fixtures of the re-id tests: real CUHK03 detected val crops (skipped where ../shared lacks them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid_models.datasets.index import CropItem, load_cuhk03_folder


@pytest.fixture(scope="session")
def cuhk03_val(shared: Path) -> list[CropItem]:
    """Every CUHK03 detected ``val/`` crop (100 people, 5 images per camera), as test items in CUHK03 naming."""
    val = shared / "data" / "reid" / "CUHK03" / "detected" / "val"
    if not val.is_dir():
        pytest.skip(f"{val}: CUHK03 not present")
    return load_cuhk03_folder(val, "test")
