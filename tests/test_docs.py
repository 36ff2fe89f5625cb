"""The docs site builds with warnings as errors (mkdocs.yml, `make docs`), its CLI reference lists every command
of ``neuromap.cli.COMMANDS`` with every option, the built site needs no network, and no file in the repository
cites a path outside it (the project's notes live in docs/reference/)."""
from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from neuromap.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
# build outputs, caches and environments: not the repository's own text
SKIPPED_DIRS = {".git", ".venv", "site", "out", "build", "mutants", "__pycache__", ".mypy_cache", ".ruff_cache",
                ".pytest_cache", ".hypothesis", ".import_linter_cache"}
TEXT_SUFFIXES = {".py", ".toml", ".md", ".ipynb", ".yml", ".yaml", ".cfg", ".sh", ".txt"}
NOTES = ("loihi_lava", "algorithms", "estimator_sources")
# a path under docs/ as code and notes cite it (docs/architecture.md, docs/reference/loihi_lava.md)
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*\w")
# a note named without its folder ("algorithms.md §2"), or its folder without docs/ ("reference/loihi_lava.md")
BARE_NOTE = re.compile(r"(?<![\w./-])(?:" + "|".join(NOTES) + r")\.md")
REFERENCE_PATH = re.compile(r"(?<![\w./-])reference/[\w.-]+\.md")


def repository_text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def citation_problems(path: Path, text: str) -> list[str]:
    """What is wrong with the paths ``text`` (the content of ``path``) cites: one line each."""
    rel = path.relative_to(ROOT)
    # docs pages link notes relative to themselves, and mkdocs.yml's nav relative to docs/
    base = path.parent if rel.parts[0] == "docs" else ROOT / "docs" if rel == Path("mkdocs.yml") else None
    problems = [f"{rel}: cites {m.group()!r}, outside the repository"
                for m in re.finditer(r"shared/reference|/work/\w+", text)]
    problems += [f"{rel}: cites {m.group()!r}, which does not exist" for m in DOCS_PATH.finditer(text)
                 if not (ROOT / m.group().rstrip(".")).exists()]
    problems += [f"{rel}: cites {m.group()!r} without its folder (docs/reference/)" for m in BARE_NOTE.finditer(text)]
    for m in REFERENCE_PATH.finditer(text):
        if base is None:  # code, tests and TOML name a note from the repository's root
            problems.append(f"{rel}: cites {m.group()!r}: write docs/{m.group()}")
        elif not (base / m.group()).exists():
            problems.append(f"{rel}: links {m.group()!r}, which does not exist beside it")
    return problems


def test_no_file_cites_a_path_outside_the_repository():
    files = repository_text_files()
    assert ROOT / "docs" / "reference" / "loihi_lava.md" in files
    problems = [p for f in files if f != Path(__file__).resolve()
                for p in citation_problems(f, f.read_text(encoding="utf-8", errors="replace"))]
    assert problems == []


@pytest.mark.parametrize(("text", "problem"), [
    ("# Lava's Dense (shared/reference/loihi_lava.md §1.4)", "outside the repository"),
    ("# see /work/shared/notes", "outside the repository"),
    ('"""RMP-SNN (algorithms.md §2)."""', "without its folder"),
    ("# delays (reference/loihi_lava.md §1.4)", "write docs/reference/loihi_lava.md"),
    ("# formulas: docs/no_such_page.md", "does not exist"),
])
def test_the_citation_check_finds_each_kind_of_bad_citation(text, problem):
    found = citation_problems(ROOT / "hwsim" / "example.py", text)
    assert len(found) == 1 and problem in found[0], found


def test_the_citation_check_takes_a_docs_page_link_relative_to_the_page():
    page = ROOT / "docs" / "architecture.md"
    assert citation_problems(page, "as Lava's do ([reference/loihi_lava.md](reference/loihi_lava.md) §1.4)") == []
    assert "does not exist beside it" in citation_problems(page, "[x](reference/nothing_here.md)")[0]
    code = ROOT / "neuromap" / "x.py"
    assert citation_problems(code, "# docs/reference/loihi_lava.md §2.3, docs/estimator.md.") == []


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The docs site, built as `make docs` builds it (strict: a warning fails), into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.mark.slow  # builds the site once for the module: ~3 s alone, more on a shared machine
def test_the_docs_build_with_warnings_as_errors_and_hold_every_page(site):
    for page in ("index", "getting-started", "frameworks", "cli", "api", "architecture", "targets", "formats",
                 "estimator", "reference/loihi_lava", "reference/algorithms", "reference/estimator_sources"):
        assert (site / f"{page}.html").stat().st_size > 0, page
    # the README's examples are included, not copied: both are on the getting-started page
    started = html.unescape((site / "getting-started.html").read_text(encoding="utf-8"))
    assert "neuromap.estimate(mapping" in started and "sequential([" in started
    # the API reference is read from the docstrings
    api = html.unescape((site / "api.html").read_text(encoding="utf-8"))
    for name in ("neuromap.mapping.compile", "neuromap.backends.run", "neuromap.frontends.rmp.convert",
                 "neuromap.mapping.Mapping", "neuromap.ir.nodes.Conv2d", "neuromap.neurons.lif.LIF"):
        assert f'id="{name}"' in api, name
    import neuromap.mapping
    assert neuromap.mapping.compile.__doc__.splitlines()[0] in api


@pytest.mark.slow  # builds the site once for the module: ~3 s alone, more on a shared machine
def test_the_site_loads_nothing_from_the_network(site):
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")
    for page in site.rglob("*.html"):
        found = remote.search(page.read_text(encoding="utf-8"))
        assert found is None, f"{page.relative_to(site)}: {found.group() if found else ''}"


def command_sections(cli_page: str) -> dict[str, str]:
    """Command name -> the HTML of its section on the CLI reference page (mkdocs-click: one heading each; the
    group itself is ``neuromap``)."""
    parts = re.split(r'<h\d id="(neuromap(?:-[\w-]+)?)"', cli_page)
    return {name.removeprefix("neuromap-"): section for name, section in zip(parts[1::2], parts[2::2])}


def verbatim_paragraphs(help_text: str) -> list[list[str]]:
    """The lines of each labelled paragraph click prints as written (a \\b line, a label such as "Examples:",
    then the lines), without the label."""
    found = []
    for paragraph in inspect.cleandoc(help_text).split("\n\n"):
        lines = [line.strip() for line in paragraph.strip("\n").splitlines()]
        if len(lines) > 2 and lines[0] == "\b" and lines[1].endswith(":"):
            found.append(lines[2:])
    return found


@pytest.mark.slow  # builds the site once for the module: ~3 s alone, more on a shared machine
def test_the_cli_reference_lists_every_command_with_its_options(site):
    sections = command_sections((site / "cli.html").read_text(encoding="utf-8"))
    assert set(sections) == {"neuromap", *COMMANDS}
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        options = [opt for p in command.params if isinstance(p, click.Option) and not p.hidden
                   for opt in (*p.opts, *p.secondary_opts)]
        text = html.unescape(re.sub(r"<[^>]+>", " ", sections[name]))
        missing = [opt for opt in options if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text)]
        assert missing == [], f"neuromap {name}: {missing}"
        summary = (command.help or command.short_help or "").strip().split("\n", 1)[0]
        assert " ".join(summary.split()) in " ".join(text.split()), name


@pytest.mark.slow  # the site of the module's fixture
def test_the_cli_reference_keeps_each_commands_examples_one_per_line(site):
    sections = command_sections((site / "cli.html").read_text(encoding="utf-8"))
    ctx = click.Context(main)
    commands = {"neuromap": main} | {name: main.get_command(ctx, name) for name in COMMANDS}
    checked = 0
    for name, command in commands.items():
        assert command is not None
        blocks = [html.unescape(b) for b in re.findall(r"<pre><code>(.*?)</code></pre>", sections[name], flags=re.S)]
        for lines in verbatim_paragraphs(command.help or ""):
            assert "\n".join(lines) in blocks, (name, lines)
            checked += 1
    assert checked >= 1  # neuromap's own examples at least


# ---------------------------------------------------------------- the pages say what the code and files hold
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
CODE_PATH = re.compile(r"(?<![\w./<-])(?:neuromap|hwsim|mappings|tests|benchmarks|notebooks)/[\w./-]*\w")


def test_every_code_path_a_page_names_exists():
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in CODE_PATH.finditer(text):
            path = m.group()
            # a pattern (tests/test_mutation_kills*.py, benchmarks/NAME.py): its folder must exist
            if text[m.end():m.end() + 1] in "*<" or path.rsplit("/", 1)[-1].split(".")[0].isupper():
                path = path.rsplit("/", 1)[0]
            if not (ROOT / path).exists():
                missing.append(f"{page.name}: {m.group()}")
    assert missing == []


def backticked(page: str) -> set[str]:
    """Every `code` span of a docs page."""
    return set(re.findall(r"`([^`\n]+)`", (ROOT / "docs" / page).read_text(encoding="utf-8")))


def test_the_target_page_names_every_table_and_key_of_the_shipped_files():
    import tomllib

    import mappings
    from mappings import constant_sets

    targets, estimator = backticked("targets.md"), backticked("estimator.md")
    text = (ROOT / "docs" / "targets.md").read_text(encoding="utf-8")
    shipped = [*sorted((ROOT / "mappings" / "targets").glob("*.toml")),
               *sorted((ROOT / "mappings" / "gpus").glob("*.toml"))]
    assert len(shipped) == 7
    for path in shipped:
        assert path.name in text, path.name
        for table, keys in tomllib.loads(path.read_text(encoding="utf-8")).items():
            if table == "constant_sets":
                continue
            assert f"[{table}]" in text, (path.name, table)
            assert keys.keys() <= targets, (path.name, table, sorted(keys.keys() - targets))
    for name in mappings.available_targets():
        for set_name, cs in mappings.load_target(name).constant_sets.items():
            document = cs.to_document()
            assert set(document) == {"label", "basis", "source", "energy", "timing"} <= targets
            # the event keys are explained, with every shipped value, on the estimator page
            events = {*document["energy"], *document["timing"]}
            assert events <= targets | estimator, (name, set_name, sorted(events - targets - estimator))
    assert set(constant_sets.BASES) <= set(re.findall(r"[\w-]+", text))


def compiled_example(*, bias_axon: bool, matrix_form: bool):
    """A small network compiled for loihi2: a bias into a neuron with current memory (a bias axon: a version 2
    file) or not, and a chain of two weighted nodes (a projection stored as its CSR matrix) or one."""
    import warnings

    import numpy as np

    import neuromap
    from neuromap.ir import IF, LI, LIF, Affine, Input, Linear, Output, sequential

    rng = np.random.default_rng(0)
    first = LIF((6,), threshold=1.0, v_decay=0.1, i_decay=0.5) if bias_axon else IF((6,), threshold=1.0)
    chain = [("fc1", Affine(rng.normal(0, 0.3, (6, 8)), rng.normal(0, 0.1, 6)))]
    if matrix_form:
        chain.append(("fc1b", Linear(rng.normal(0, 0.3, (6, 6)))))
    graph = sequential([("in", Input((8,))), *chain, ("pop1", first), ("fc2", Affine(rng.normal(0, 0.3, (3, 6)),
                        np.zeros(3))), ("ro", LI((3,))), ("out", Output((3,)))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precision notes on random weights; not what is checked here
        return neuromap.compile(graph, "loihi2")


def test_the_formats_page_names_every_member_and_header_key_of_both_versions():
    import io
    import json

    import numpy as np

    documented = backticked("formats.md")
    for bias_axon, matrix_form, version in ((False, True, 1), (True, False, 2)):
        with np.load(io.BytesIO(compiled_example(bias_axon=bias_axon, matrix_form=matrix_form).to_bytes())) as z:
            header = json.loads(str(z["__mapping__"][()]))
            graph = json.loads(str(z["graph/__graph__"][()]))
            members = set(z.files)
        # written in the oldest version that holds it
        assert header["format"] == "neuromap-mapping" and header["version"] == version
        named = {re.sub(r"^(pop|proj)/\d+/", r"\1/<i>/", m) for m in members if not m.startswith("graph/")}
        assert named - {"__mapping__"} <= documented, sorted(named - documented)
        assert ("pop/<i>/bias_axon" in named) == bias_axon and ("proj/<i>/indptr" in named) == matrix_form
        keys = set(header) | {k for part in ("populations", "projections", "inputs") for e in header[part] for k in e}
        keys |= set(header["placement"]) | set(header["options"]) | set(header["target"])
        keys |= {k for layer in header["report"] for k in layer} | {
            k for layer in header["report"] for p in layer["projections"] for k in p}
        keys |= set(graph) | {k for node in graph["nodes"] for k in node}
        assert keys <= documented, sorted(keys - documented)
