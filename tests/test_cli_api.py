"""The Python API is the CLI: every command has its function (``neuromap.cli.API_TWINS``), whose result's
``to_dict()`` is the command's --json line on the same input; the CLI's flags, help, quiet mode and usage
errors are one set; ``neuromap targets`` shows the target files as they are written."""
import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from click.testing import CliRunner
from netgen import digits_mlp

import neuromap
from mappings.target import TARGETS_DIR
from neuromap.cli import API_TWINS, COMMANDS, main
from neuromap.ir import save_graph


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(save_graph(digits_mlp(), tmp_path_factory.mktemp("api") / "net.npz"))


@pytest.fixture(scope="module")
def mapping_file(model, tmp_path_factory):
    return str(neuromap.compile(model, "loihi2").save(tmp_path_factory.mktemp("api") / "net.map.npz"))


def _json(*args):
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def _timeless(d):
    """A result without its wall-clock figure, the one thing two runs of the same input do not share."""
    return {k: v for k, v in d.items() if k != "seconds"}


def test_every_command_has_its_api_twin_with_a_docstring_and_an_example():
    assert set(API_TWINS) == set(COMMANDS)
    for command, twin in API_TWINS.items():
        function = getattr(neuromap, twin)
        assert callable(function) and twin in dir(neuromap), command
        summary, _, rest = function.__doc__.partition("\n")
        assert summary.strip() and f"{twin}(" in rest, twin   # a docstring with an example call


def test_the_choice_copies_equal_the_tuples_they_copy():
    from neuromap.cli import choices
    from neuromap.data import SPLITS
    from neuromap.frontends.rmp.thresholds import ENCODINGS as RMP_ENCODINGS
    from neuromap.ir.presets import FRAMEWORKS
    from neuromap.passes.place import METHODS
    from neuromap.passes.quantize import ENCODINGS, MODES

    assert choices.FRAMEWORKS == FRAMEWORKS and choices.SPLITS == SPLITS and choices.QUANT_MODES == MODES
    assert choices.INPUT_ENCODINGS == ENCODINGS and choices.PLACEMENTS == METHODS
    assert choices.RUN_ENCODINGS == RMP_ENCODINGS


def test_compile_json_is_the_api_result_and_reports_the_fit(model):
    cli = _json("compile", model, "--target", "loihi2", "--json")
    api = neuromap.compile(model, "loihi2")
    assert _timeless(cli) == _timeless(api.to_dict())
    # digits_mlp: 16 IF + 10 LI neurons on one loihi2 core of 3,168 (mappings/targets/loihi2.toml [core])
    assert cli["fits"] is True and cli["cores"] == 1
    assert cli["per_resource"]["neurons"]["total"] == 26
    assert cli["per_resource"]["neurons"]["utilisation"] == pytest.approx(26 / 3168)
    assert cli["binding_constraint"] in cli["per_resource"]
    # the result is the Mapping: it runs, and it saves the bytes a plain compile saves
    assert isinstance(api, neuromap.Mapping) and api.partition.cores
    assert api.to_bytes() == neuromap.Mapping.load(neuromap.compile(model, "loihi2").save(
        f"{model}.again.npz")).to_bytes()


def test_a_network_that_does_not_fit_prints_fits_false_then_the_error(tmp_path):
    """testchip cut to one chip of 4 cores: a network the shipped two-chip testchip places on 5 cores needs 5."""
    text = (TARGETS_DIR / "testchip.toml").read_text()
    doc = tomllib.loads(text)
    assert doc["chip"]["cores"] == 4 and doc["system"]["max_chips"] == 2
    one_chip = tmp_path / "one_chip.toml"
    one_chip.write_text(text.replace("max_chips = 2", "max_chips = 1", 1).replace("chip_cols = 2", "chip_cols = 1", 1))
    big = str(save_graph(digits_mlp(hidden=100), tmp_path / "big.npz"))
    cores = neuromap.compile(big, "testchip").resources["cores"]
    assert cores > 4
    res = CliRunner().invoke(main, ["compile", big, "--target", str(one_chip), "--json"])
    assert res.exit_code == 2, res.output
    figures = json.loads(res.stdout.strip().splitlines()[-1])
    assert figures["fits"] is False and figures["binding_constraint"] == "cores" and figures["target"] == "testchip"
    assert figures["needed"] == cores and figures["limit"] == 4
    assert res.stderr.splitlines() == [f"neuromap: error: {figures['error']}"], res.stderr


def test_run_json_is_the_api_result_and_the_api_keeps_the_array_form(mapping_file):
    cli = _json("run", mapping_file, "--backend", "hwsim", "--data", "digits", "--limit", "20", "--json")
    report = neuromap.run(mapping_file, "digits", backend="hwsim", limit=20)
    assert _timeless(cli) == _timeless(report.to_dict())
    # the data-set form is the array form on the same samples, scored against their labels
    from neuromap.data import load

    ds = load("digits").flat()
    arrays = neuromap.run(mapping_file, ds.x_test[:20], 32, "hwsim")
    assert isinstance(arrays, neuromap.RunResult)
    assert np.array_equal(arrays.predictions(), report.result.predictions())
    assert report.accuracy == round(100 * float((arrays.predictions() == ds.y_test[:20]).mean()), 2)
    assert report.samples == 20 and report.steps == 32 and report.split == "test"


@pytest.mark.slow   # the GPU side sweeps the batch up to the device's memory: ~5 s
def test_estimate_json_is_the_api_result(mapping_file):
    cli = _json("estimate", mapping_file, "--data", "digits", "--limit", "3", "--steps", "4", "--json")
    assert cli == neuromap.estimate(mapping_file, "digits", limit=3, steps=4).to_dict()


def test_targets_show_the_files_as_written():
    listed = _json("targets", "--json")
    assert listed == neuromap.targets().to_dict()
    for summary in listed["targets"]:
        doc = tomllib.loads((TARGETS_DIR / f"{summary['name']}.toml").read_text())
        assert summary["cores_per_chip"] == doc["chip"]["cores"] and summary["max_chips"] == doc["system"]["max_chips"]
        assert summary["neurons_per_core"] == doc["core"]["neurons"]
        assert summary["weight_bits"] == doc["synapses"]["weight_bits"]
        assert summary["constant_sets"] == list(doc["constant_sets"])
        assert summary["default_constant_set"] == doc["estimator"]["default_set"]
    shown = _json("targets", "loihi2", "--json")
    doc = tomllib.loads((TARGETS_DIR / "loihi2.toml").read_text())
    assert shown == neuromap.targets("loihi2").to_dict()
    assert all(shown["target"][table] == doc[table] for table in ("chip", "system", "core", "synapses", "neuron"))
    energy = shown["target"]["constant_sets"]["intel_measured"]["energy"]
    assert {k: v["source"] for k, v in energy.items()} == {
        k: v["source"] for k, v in doc["constant_sets"]["intel_measured"]["energy"].items()}
    text = CliRunner().invoke(main, ["targets", "loihi2"]).stdout
    assert energy["synop_dense_pj"]["source"] in text and "[core]" in text


def test_quiet_leaves_only_the_json_line_and_the_errors(mapping_file):
    args = ["run", mapping_file, "--backend", "torch", "--limit", "5"]
    loud = CliRunner().invoke(main, args)
    assert loud.exit_code == 0 and "accuracy" in loud.stdout
    quiet = CliRunner().invoke(main, [*args, "--quiet", "--json"])
    assert quiet.exit_code == 0 and len(quiet.stdout.strip().splitlines()) == 1
    assert json.loads(quiet.stdout)["samples"] == 5
    assert CliRunner().invoke(main, ["--quiet", "targets"]).stdout == ""
    failed = CliRunner().invoke(main, ["run", f"{mapping_file}.missing", "-q"])
    assert failed.exit_code == 2 and failed.stderr.startswith("neuromap: error: ")
    # quiet lasts one command line: the next, in the same process, speaks again
    assert "accuracy" in CliRunner().invoke(main, args).stdout


def test_usage_errors_are_one_error_line_naming_the_commands_help():
    for args, fragment in ((["compile", "--mode", "best"], "'--mode'"), (["estimate"], "Missing argument 'MODEL'"),
                           (["train", "--alpha", "2"], "'--alpha': 2.0 is not in the range 0<=x<=1"),
                           (["nonsense"], "No such command 'nonsense'")):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, args
        assert res.stdout == "" and len(res.stderr.splitlines()) == 1, res.stderr
        line = res.stderr.strip()
        assert line.startswith("neuromap: error: ") and fragment in line, line
        assert line.endswith(f"(see 'neuromap {args[0]} --help')" if args[0] in COMMANDS else
                             "(see 'neuromap --help')"), line


def test_convert_names_its_flags_where_the_converter_would_name_its_arguments():
    res = CliRunner().invoke(main, ["convert", "--threshold", "qcfs", "--epochs", "1"])
    assert res.exit_code == 2 and "--threshold qcfs" in res.stderr and "--activation qcfs" in res.stderr
    assert "=" not in res.stderr.removeprefix("neuromap: error: "), res.stderr


def test_every_help_has_examples_and_loads_no_torch():
    """Each command's --help in one fresh process: an Examples block naming the command, and torch never
    imported (what made --help take seconds; benchmarks/cli_startup.py times it)."""
    script = ("import sys, json; from neuromap.cli import COMMANDS, main\n"
              "pages = {}\n"
              "for name in COMMANDS:\n"
              "    from click.testing import CliRunner\n"
              "    pages[name] = CliRunner().invoke(main, [name, '--help']).output\n"
              "print(json.dumps({'pages': pages, 'torch': 'torch' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    for name, page in report["pages"].items():
        examples = page.split("Examples:")[1].splitlines()[1:] if "Examples:" in page else []
        assert 1 <= sum(line.strip().startswith(f"neuromap {name}") for line in examples) <= 3, (name, page)


def test_targets_show_the_sources_the_files_comments_give():
    from neuromap.api import _file_notes

    legend, notes = _file_notes('# Chip X.\n#   [K] a paper\n\n[target]\nname = "x # not a comment"  # named so\n'
                                "[core]\nneurons = 64   # [K] table 2\ninput_axons = 8\n# a remark = 3\n")
    assert legend == " Chip X.\n   [K] a paper"
    assert notes == {"target": {"name": "named so"}, "core": {"neurons": "[K] table 2"}}
    shown = neuromap.targets("loihi1").to_dict()
    assert "[D18]" in shown["notes"]["core"]["neurons"] and "[D18]" in shown["legend"]


def test_dir_lists_the_api_and_nothing_this_module_imports():
    public = [name for name in dir(neuromap) if not name.startswith("_")]
    assert public == sorted(neuromap.__all__)
    assert {"compile", "run", "estimate", "targets", "read", "train", "convert", "Mapping"} <= set(public)


def test_read_tells_every_model_file_by_its_content(model, mapping_file, tmp_path):
    from neuromap.ir.nir_io import write_nir

    graph = neuromap.read(model)
    assert isinstance(graph, neuromap.Graph) and graph.neuron_count() == 26
    assert isinstance(neuromap.read(mapping_file), neuromap.Mapping)
    nir_file = write_nir(graph, tmp_path / "net.weights")   # no telling suffix: read by content
    again = neuromap.read(nir_file)   # our own export names its dt and reset: no framework needed
    assert isinstance(again, neuromap.Graph) and again.neuron_count() == 26
