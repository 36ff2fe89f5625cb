"""The README's Python example runs as written (the user's first contact with the API)."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(blocks[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # it saves out/net.npz
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "out" / "net.npz").is_file()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2  # the float classes, then the quantized chip's
