"""The analyst's notebook runs top to bottom on small data, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_tune_model_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "tune_model.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = ("LOGS = None\nHELD_OUT = None\nBASELINE_DAYS = 3\nSEED = 5\nALERTS_PER_DAY = 1.0\n"
                     f"OUT = {str(tmp_path / 'm')!r}")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders the figures as PNG
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "windows of" in outputs and "recall" in outputs and "saved" in outputs
    assert (tmp_path / "m.card.json").exists() and (tmp_path / "m.skops").exists()
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the score distribution and the threshold curve
