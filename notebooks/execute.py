"""Re-execute the notebooks top to bottom and save them with their outputs (run before committing one).

    python notebooks/execute.py                     # every notebooks/*.ipynb
    python notebooks/execute.py notebooks/02_rmp_conversion.ipynb

Each notebook runs in a fresh ``python3`` kernel (nbclient) whose working directory is a temporary folder, so
what it writes under ``out/`` is thrown away; the kernel imports this checkout (its root goes first on
PYTHONPATH). Volatile metadata is dropped so that a re-run changes only what the code printed: no per-cell
timings (``record_timing=False``), the kernel's ``language_info`` kept to the language's name (not the Python
release), and printed paths relative to the checkout.
A cell that raises stops the run with the notebook's name and the cell's error (the file is left unchanged).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TIMEOUT_S = 300  # per cell: the longest cell of these notebooks takes well under a minute


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: this process's, with this checkout first on PYTHONPATH and matplotlib's inline
    backend (figures become PNG outputs even where MPLBACKEND names a file backend)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def execute(notebook: nbformat.NotebookNode, workdir: Path, timeout: int = TIMEOUT_S) -> nbformat.NotebookNode:
    """Run every code cell of ``notebook`` in order in a fresh kernel started in ``workdir``; the notebook,
    outputs filled in. Raises nbclient's CellExecutionError (naming the cell) on the first error."""
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute(env=kernel_environment())
    return notebook


def strip_volatile(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop what changes on every run or machine without a change of the code's results: timings, the Python
    release, and the checkout's absolute path in printed text (a warning names its source file)."""
    notebook.metadata.pop("widgets", None)
    language = notebook.metadata.get("language_info", {})
    notebook.metadata["language_info"] = {"name": language.get("name", "python")}
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = output.text.replace(f"{ROOT}{os.sep}", "")
    return notebook


def main(paths: list[str]) -> int:
    chosen = [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in chosen:
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="neuromap-nb-") as workdir:
            execute(notebook, Path(workdir))
        nbformat.write(strip_volatile(notebook), path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s, saved with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
