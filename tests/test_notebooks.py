"""The notebooks teach from their committed outputs (what a code host renders) and run top to bottom.

Each notebook is executed with nbclient in a fresh ``python3`` kernel, in a temporary working directory, by
the helper that saves them (``notebooks/execute.py``); any error output fails. The committed file must hold
the outputs of that run: a notebook committed without them, or run out of order, fails here.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LESSONS = ["01_quickstart", "02_rmp_conversion", "03_stop_training", "04_compiler", "05_energy"]
SHOWN = ("print", "display", "show")  # calls whose cell has an output when it runs


def _executor():
    spec = importlib.util.spec_from_file_location("notebook_execute", ROOT / "notebooks" / "execute.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def shows_something(source: str) -> bool:
    """Whether a cell prints, displays or ends in an expression (whose value the notebook shows)."""
    tree = ast.parse(source)
    calls = {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
             for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name | ast.Attribute)}
    return bool(calls & set(SHOWN)) or (bool(tree.body) and isinstance(tree.body[-1], ast.Expr))


def output_kinds(cell: nbformat.NotebookNode) -> set[str]:
    """What a cell's outputs are: stream names and display MIME types (image/png for a figure)."""
    kinds = set()
    for output in cell.outputs:
        kinds |= {output.name} if output.output_type == "stream" else set(output.get("data", {}))
    return kinds


def test_the_five_lessons_are_there():
    assert [p.stem for p in NOTEBOOKS if p.stem[:2].isdigit()] == LESSONS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_with_outputs_in_order(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    cells = code_cells(notebook)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), \
        f"{path.name}: not executed top to bottom in one kernel (run notebooks/execute.py)"
    for i, cell in enumerate(cells):
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{path.name} code cell {i}: an error"
        if shows_something(cell.source):
            assert cell.outputs, f"{path.name} code cell {i} prints but was committed without outputs"
        assert "execution" not in cell.metadata, f"{path.name} code cell {i}: timestamps (run notebooks/execute.py)"


@pytest.mark.slow  # each notebook trains a small network: 10-40 s alone
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_matches_what_is_committed(path, tmp_path):
    committed = nbformat.read(path, as_version=4)
    executed = _executor().execute(nbformat.read(path, as_version=4), tmp_path)
    for i, (fresh, kept) in enumerate(zip(code_cells(executed), code_cells(committed))):
        errors = [o for o in fresh.outputs if o.output_type == "error"]
        assert not errors, f"{path.name} code cell {i}: {errors[0].ename}: {errors[0].evalue}"
        # the committed outputs are of this run's kinds: a figure where it draws one, text where it prints
        assert output_kinds(fresh) - {"stderr"} <= output_kinds(kept), \
            f"{path.name} code cell {i}: committed outputs {output_kinds(kept)}, a run gives {output_kinds(fresh)}"
