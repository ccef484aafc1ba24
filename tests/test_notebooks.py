"""Every starter notebook runs top to bottom on data it makes or fetches itself, from
any folder: it works in the workspace (COMPETE_HOME, else the checkout), reads the
README's data folder (data/NAME), and writes nothing into notebooks/ or the folder it
started in. Each registered competition has one, named for it."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from competitions import names

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_every_competition_has_a_starter_notebook():
    assert set(names()) <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    workspace, elsewhere = tmp_path / "workspace", tmp_path / "elsewhere"
    workspace.mkdir()
    elsewhere.mkdir()
    monkeypatch.delenv("COMPETE_DATA", raising=False)
    monkeypatch.setenv("COMPETE_HOME", str(workspace))
    monkeypatch.setenv("PYTHONPATH", str(path.parents[1]))
    before = snapshot(path.parent)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(elsewhere)}}).execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert path.stem in names() and (workspace / "data" / path.stem).is_dir()   # the README's data folder
    assert {p.name for p in workspace.iterdir()} <= {"data", "runs", "submissions"}
    assert list(elsewhere.iterdir()) == [] and snapshot(path.parent) == before
