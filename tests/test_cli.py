"""The hf-galaxy command line: synth -> prepare -> saved DatasetDict, and the help text."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hf_galaxy.cli import main


def test_help_lists_every_installed_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "prepare", "demo"):
        assert command in out


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert main([]) == 2
    assert "usage: hf-galaxy" in capsys.readouterr().out


def test_synth_then_prepare_saves_a_loadable_datasetdict(tmp_path) -> None:
    import datasets

    assert main(["synth", str(tmp_path / "zoo"), "-n", "40", "--image-size", "48"]) == 0
    out = tmp_path / "prepared"
    grid = tmp_path / "grid.png"
    assert (
        main(
            [
                "prepare",
                str(tmp_path / "zoo" / "catalog.csv"),
                "--classes",
                "elliptical-spiral-other",
                "--image-size",
                "32",
                "--cache-dir",
                str(tmp_path / "cache"),
                "-o",
                str(out),
                "--grid",
                str(grid),
            ]
        )
        == 0
    )
    dsd = datasets.load_from_disk(str(out))
    assert dsd["train"].features["label"].names == ["elliptical", "spiral", "other"]
    assert sum(len(d) for d in dsd.values()) == 40
    assert grid.stat().st_size > 0
    from hf_galaxy.data.dataset import describe

    info = describe(dsd)  # the dataset facts survive save_to_disk / load_from_disk
    assert info["release"] and info["class_names"] == ["elliptical", "spiral", "other"]


def test_console_script_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hf_galaxy.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("hf-galaxy ")


def test_bad_catalogue_error_names_columns(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["prepare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown catalogue layout. Columns found: [a, b]" in err and "Traceback" not in err


def test_demo_configs_match_the_recipe_yamls() -> None:
    """The demo embeds recipes/configs/scratch_cnn.yaml and vit_lora_demo.yaml so it runs from a wheel; they must
    not drift."""
    from pathlib import Path

    import yaml

    from hf_galaxy.commands.demo import DEMO_CNN_CONFIG, DEMO_CONFIG

    configs = Path(__file__).parents[1] / "recipes/configs"
    for embedded, name in ((DEMO_CONFIG, "vit_lora_demo.yaml"), (DEMO_CNN_CONFIG, "scratch_cnn.yaml")):
        recipe = yaml.safe_load((configs / name).read_text())
        assert {k: recipe[k] for k in embedded} == embedded, name
        assert set(recipe) - set(embedded) <= {
            "dataset",
            "synthetic_image_size",
            "image_size",
            "output_dir",
            "use_lora",
        }


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_offline(tmp_path, capsys) -> None:
    import json

    from huggingface_hub import ModelCard

    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), "-n", "120", "--epochs", "1", "--num-proc", "1"]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert 0.0 <= summary["metrics"]["test_accuracy"] <= 1.0
    for name in (
        "sample_grid.png",
        "model/confusion_matrix.png",
        "model/training_curves.png",
        "model/model.safetensors",
        "model/README.md",
        "publish_dry_run/README.md",
        "vit_lora/adapter/adapter_config.json",
        "publish_dry_run_lora/README.md",
    ):
        assert (out / name).stat().st_size > 0, name
    card = ModelCard.load(out / "publish_dry_run" / "README.md")
    assert card.data.pipeline_tag == "image-classification"
    assert "trained on synthetic galaxies" in card.text
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == "resnet"  # the demo's model is the CNN; the LoRA run is the ViT
    assert json.loads((out / "vit_lora" / "config.json").read_text())["model_type"] == "vit"
    assert 0.0 <= summary["lora"]["metrics"]["test_accuracy"] <= 1.0
    printed = capsys.readouterr().out
    assert "[6/6]" in printed and "CNN from scratch" in printed and "LoRA on a ViT" in printed


# ------------------------------------------------------------------------------------------ conventions
def test_every_option_takes_underscores_and_dashes(tmp_path) -> None:
    from hf_galaxy.cli import build_parser

    for command, argv, dest, value in [
        ("prepare", ["cat.csv", "--image_dir", "d"], "image_dir", "d"),
        ("prepare", ["cat.csv", "--image-dir", "d"], "image_dir", "d"),
        ("prepare", ["cat.csv", "--cache-dir", "c"], "cache_dir", "c"),
        ("predict", ["imgs", "--model", "m", "--image-dir", "d"], "image_dir", "d"),
        ("predict", ["imgs", "--model", "m", "--batch-size", "4"], "batch_size", 4),
        ("publish", ["out", "a/b", "--dry_run", "x"], "dry_run", "x"),
        ("publish", ["out", "a/b", "--dry-run", "x"], "dry_run", "x"),
        ("demo", ["--output_dir", "o"], "output_dir", "o"),
        ("synth", ["out", "--image_size", "48"], "image_size", 48),
        ("evaluate", ["--model", "m", "--dataset", "d", "--split-seed", "3"], "split_seed", 3),
    ]:
        parser, _ = build_parser(command)
        assert getattr(parser.parse_args([command, *argv]), dest) == value, (command, argv)


def test_spelling_aliases_keep_the_leading_dashes() -> None:
    """The underscore twin of --output must be --output itself, not __output (an alias shown in --help)."""
    from hf_galaxy.cli import build_parser

    _, subparsers = build_parser("prepare")
    options = {o for a in subparsers["prepare"]._actions for o in a.option_strings}
    assert "--output" in options and "--image-dir" in options and not any(o.startswith("_") for o in options)


def test_an_unknown_option_shows_the_subcommands_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "cat.csv", "--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: hf-galaxy prepare" in err and "unrecognized arguments: --no-such-option" in err


def test_user_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys) -> None:
    missing = str(tmp_path / "missing.csv")
    assert main(["prepare", missing]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-galaxy prepare: error: ") and missing in err and "\n" not in err
    with pytest.raises(
        ValueError, match="catalogue not found"
    ):  # the CatalogError itself, with its traceback
        main(["--debug", "prepare", missing])


def test_help_imports_no_torch() -> None:
    """hf-galaxy --help and the light commands' --help build their parsers without importing torch."""
    code = (
        "import sys, contextlib, io\n"
        "from hf_galaxy.cli import main\n"
        "for argv in (['--help'], ['prepare', '--help'], ['evaluate', '--help'], ['predict', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print('torch' in sys.modules, 'transformers.training_args' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_train_help_is_cached_and_current(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["train", "--help"]) == 0
    first = capsys.readouterr().out
    assert "--dataset" in first and "--learning_rate" in first and "--image-dir" in first
    assert len(list((tmp_path / "hf_galaxy" / "help").glob("train-*.txt"))) == 1
    assert main(["train", "--help"]) == 0 and capsys.readouterr().out == first
