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


def test_demo_config_matches_the_recipe_yaml() -> None:
    """The demo embeds recipes/configs/vit_lora_demo.yaml so it runs from a wheel; the two must not drift."""
    from pathlib import Path

    import yaml

    from hf_galaxy.commands.demo import DEMO_CONFIG

    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes/configs/vit_lora_demo.yaml").read_text())
    assert {k: recipe[k] for k in DEMO_CONFIG} == DEMO_CONFIG


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
    ):
        assert (out / name).stat().st_size > 0, name
    card = ModelCard.load(out / "publish_dry_run" / "README.md")
    assert card.data.pipeline_tag == "image-classification"
    assert "trained on synthetic galaxies" in card.text
    assert "[5/5]" in capsys.readouterr().out
