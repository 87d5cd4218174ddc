"""End-to-end recipe runs on tiny offline models: accelerate launch (1 and 2 processes), resume, HPO, CLI."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from hf_galaxy.data.transforms import ProcessorSpec
from hf_galaxy.models import ModelNotFoundError, load_for_inference
from hf_galaxy.training import DataArguments, ModelArguments, ScriptArguments, run_training
from tests.galaxy_tiny import GZ1_CLASSES, RECIPES, TINY_VIT, load_recipe, save_tiny_dataset

ROOT = RECIPES.parent
LORA_DEMO = ["--lora_target_modules", "all-linear", "--lora_modules_to_save", "embeddings,layernorm"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"
    )
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _accelerate(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def saved_dsd(tmp_path_factory) -> Path:
    return save_tiny_dataset(tmp_path_factory.mktemp("data") / "dsd", n_per_class=6)


def _targs(out: Path, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(out),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=2e-3,
        logging_steps=2,
        report_to="none",
        remove_unused_columns=False,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    base.update(kw)
    return TrainingArguments(**base)


@pytest.mark.slow
def test_accelerate_launch_lora_on_synthetic_beats_chance(tmp_path):
    out = tmp_path / "lora"
    proc = _accelerate(
        "--num_processes", "1", "--cpu", "recipes/vit_lora.py",
        "--dataset", "synthetic:300", "--synthetic_image_size", "32", "--image_size", "32",
        "--model_config", TINY_VIT, *LORA_DEMO, "--lora_r", "16", "--learning_rate", "3e-3",
        "--num_train_epochs", "8", "--per_device_train_batch_size", "16", "--eval_strategy", "epoch",
        "--logging_steps", "10", "--save_strategy", "no", "--dataloader_num_workers", "0",
        "--disable_tqdm", "true", "--output_dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "all_results.json",
        "eval_results.json",
        "test_results.json",
        "confusion_matrix.png",
        "sample_grid.png",
        "training_curves.png",
        "hf_galaxy_card.json",
    ):
        assert (out / name).is_file(), name
    results = json.loads((out / "all_results.json").read_text())
    chance = 1 / len(GZ1_CLASSES)
    assert results["test_accuracy"] > chance + 0.08, results
    card = json.loads((out / "hf_galaxy_card.json").read_text())
    assert card["lora"]["trainable_params"] < card["lora"]["all_params"]
    assert "classifier" in card["lora"]["modules_to_save"] and card["precision"] == "fp32"
    assert card["log_table"] and card["eval_results"]["accuracy"] == pytest.approx(results["test_accuracy"])
    # the top-level model is a plain transformers model: pipeline() works without peft
    from PIL import Image
    from transformers import pipeline

    clf = pipeline("image-classification", model=str(out))
    preds = clf(Image.new("RGB", (32, 32), (40, 40, 40)), top_k=2)
    assert {p["label"] for p in preds} <= set(GZ1_CLASSES)


@pytest.mark.slow
def test_two_process_ddp_writes_once(tmp_path, saved_dsd):
    out = tmp_path / "ddp"
    proc = _accelerate(
        # torchrun launcher; the recipe sees no GPU and trains with DDP over gloo on the CPU. (accelerate 1.15's
        # `--cpu --num_processes 2` would start a single process: it needs an MPI hostfile for more.)
        "--config_file", "recipes/accelerate/cpu_ddp.yaml", "--num_processes", "2", "recipes/vit_lora.py",
        "--dataset", str(saved_dsd), "--model_config", TINY_VIT, "--max_steps", "4",
        "--per_device_train_batch_size", "4", "--eval_strategy", "steps", "--eval_steps", "2",
        "--logging_steps", "2", "--save_strategy", "no", "--dataloader_num_workers", "0",
        "--disable_tqdm", "true", "--output_dir", str(out),
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert log.count("hf-galaxy: wrote the merged LoRA model") == 1, log[-3000:]
    assert "(process 0 of 2)" in log and "(process 1 of 2)" not in log  # the replica logs no save line
    # and no file is (re)written after the main process reported its save (the replica would write later)
    saved_at = re.search(r"^(\S+ \S+) INFO \S+: hf-galaxy: wrote the merged", log, re.MULTILINE)
    assert saved_at, log[-3000:]
    saved_ts = datetime.strptime(saved_at.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    for name in ("model.safetensors", "config.json", "adapter/adapter_model.safetensors", "eval_results.json",
                 "test_results.json", "all_results.json", "trainer_state.json", "hf_galaxy_card.json"):  # fmt: skip
        assert (out / name).stat().st_mtime <= saved_ts + 0.01, name
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert state["epoch"] == pytest.approx(4 / 5)  # 36 images / (2 processes x 4) = 5 steps per epoch
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_samples"] == 18 and "eval_accuracy" in results
    for name in (
        "model.safetensors",
        "adapter/adapter_model.safetensors",
        "confusion_matrix.png",
        "hf_galaxy_card.json",
        "test_results.json",
    ):
        assert (out / name).is_file(), name
    card = json.loads((out / "hf_galaxy_card.json").read_text())
    assert len({row["step"] for row in card["log_table"]}) == len(card["log_table"])  # one row per step


class _CountSteps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


@pytest.mark.slow
def test_resume_from_checkpoint_continues_global_step(tmp_path, saved_dsd):
    out = tmp_path / "resume"
    script = ScriptArguments(dataset=str(saved_dsd), num_grid_images=0)
    model = ModelArguments(model_config=TINY_VIT, use_lora=True, lora_r=4)
    run_training(
        script, _targs(out, max_steps=4, save_strategy="steps", save_steps=2), model, DataArguments()
    )
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    counter = _CountSteps()
    run_training(
        script,
        _targs(
            out,
            max_steps=6,
            save_strategy="steps",
            save_steps=2,
            resume_from_checkpoint=str(out / "checkpoint-4"),
        ),
        model,
        DataArguments(),
        extra_callbacks=[counter],
    )
    assert counter.steps == 2  # steps 5 and 6 only
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        run_training(
            script, _targs(out, max_steps=2, resume_from_checkpoint=str(out / "checkpoint-99")), model
        )


def test_unknown_yaml_key_fails_naming_it(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: synthetic:10\nlora_rank: 8\n")
    proc = subprocess.run(
        [sys.executable, "recipes/vit_lora.py", "--config", str(cfg)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "'lora_rank'" in proc.stderr and "bad.yaml" in proc.stderr


def test_hub_id_offline_error_from_recipe(tmp_path, saved_dsd, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    recipe = load_recipe("vit_full")
    with pytest.raises(ModelNotFoundError, match="not found locally"):
        recipe.main(
            ScriptArguments(dataset=str(saved_dsd)),
            _targs(tmp_path / "x", max_steps=1),
            ModelArguments(model_name_or_path="fake-org/galaxy-vit-that-does-not-exist"),
        )
    from hf_galaxy.cli import main as cli

    assert cli(["predict", str(tmp_path), "--model", "fake-org/galaxy-vit-that-does-not-exist"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-galaxy predict: error:") and "not found locally" in err


@pytest.mark.slow
def test_full_finetune_recipe_main(tmp_path, saved_dsd):
    recipe = load_recipe("vit_full")
    out = tmp_path / "full"
    metrics = recipe.main(
        ScriptArguments(dataset=str(saved_dsd), eval_split="validation", num_grid_images=4),
        _targs(out, max_steps=3, fp16=True),  # fp16 on a CPU: falls back to fp32
        ModelArguments(model_config=TINY_VIT),
    )
    assert "eval_accuracy" in metrics and "test_accuracy" not in metrics
    assert (out / "model.safetensors").is_file() and not (out / "adapter").exists()
    card = json.loads((out / "hf_galaxy_card.json").read_text())
    assert card["lora"] is None and card["precision"] == "fp32" and card["eval_split"] == "validation"


@pytest.mark.slow
def test_hpo_runs_two_trials(tmp_path, saved_dsd):
    hpo = load_recipe("hpo")
    out = tmp_path / "hpo"
    best = hpo.main(
        ScriptArguments(dataset=str(saved_dsd)),
        _targs(out, eval_strategy="epoch", per_device_train_batch_size=12),
        ModelArguments(model_config=TINY_VIT, use_lora=True),
        DataArguments(),
        hpo.HPOArguments(n_trials=2, lora_ranks="2,4", epochs_min=1, epochs_max=2),
    )
    saved = json.loads((out / "best_trial.json").read_text())
    assert saved == best and saved["n_trials"] == 2 and saved["metric"] == "eval_accuracy"
    assert set(saved["hyperparameters"]) == {"learning_rate", "weight_decay", "num_train_epochs", "lora_r"}
    assert saved["hyperparameters"]["lora_r"] in (2, 4)
    trials = json.loads((out / "trials.json").read_text())
    assert [t["trial"] for t in trials] == [0, 1]
    assert saved["objective"] == max(t["eval_accuracy"] for t in trials)


@pytest.mark.slow
def test_cli_train_evaluate_predict(tmp_path, saved_dsd, capsys):
    from datasets import load_from_disk

    from hf_galaxy.cli import main as cli

    out = tmp_path / "cli"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"model_config: {TINY_VIT}\nmax_steps: 50\nper_device_train_batch_size: 8\nlora_r: 4\n")
    rc = cli(["train", "--config", str(cfg), "--dataset", str(saved_dsd), "--max_steps", "3",
              "--output_dir", str(out), "--disable_tqdm", "true", "--use_cpu", "true"])  # fmt: skip
    assert rc == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3  # the command line overrides the YAML's max_steps
    assert (out / "adapter" / "adapter_config.json").is_file()
    rc = cli(["evaluate", "--model", str(out), "--dataset", str(saved_dsd), "--split", "validation", "--tta"])
    assert rc == 0
    metrics = json.loads((out / "eval" / "validation_results.json").read_text())
    assert "validation_vote_rmse" in metrics
    # the reported accuracy is that of the saved model with rotation TTA, recomputed here independently
    model, processor = load_for_inference(str(out))
    validation = load_from_disk(str(saved_dsd))["validation"]
    spec = ProcessorSpec.from_processor(processor)
    with torch.no_grad():
        x = torch.stack([spec(img) for img in validation["image"]])
        probs = sum(model(pixel_values=torch.rot90(x, k, (-2, -1))).logits.softmax(-1) for k in range(4))
    expected = float((probs.argmax(-1).numpy() == np.asarray(validation["label"])).mean())
    assert metrics["validation_accuracy"] == pytest.approx(expected)
    assert (out / "eval" / "validation_confusion_matrix.png").is_file()
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for i, row in enumerate(load_from_disk(str(saved_dsd))["test"].select(range(4))):
        row["image"].save(img_dir / f"gal{i}.png")
    csv_path = tmp_path / "preds.csv"
    assert cli(["predict", str(img_dir), "--model", str(out), "--output", str(csv_path)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["id"] for r in rows] == [f"gal{i}" for i in range(4)]
    assert list(rows[0]) == ["id", "predicted_class", "confidence", *[f"prob_{n}" for n in GZ1_CLASSES]]
    assert all(r["predicted_class"] in GZ1_CLASSES for r in rows)
    assert abs(sum(float(rows[0][f"prob_{n}"]) for n in GZ1_CLASSES) - 1) < 1e-4


@pytest.mark.slow
def test_evaluate_scores_the_training_runs_held_out_test_split(tmp_path, monkeypatch, capsys):
    # training --seed 42 (as the shipped YAMLs) must not move the catalogue split: --split_seed (default 0)
    # sets it, as in hf-galaxy prepare / evaluate, so `evaluate` scores galaxies the model never trained on
    import hf_galaxy.inference as inference
    import hf_galaxy.training.data as training
    from hf_galaxy.cli import main as cli
    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 60, seed=0, image_size=32)
    loaded, evaluated = [], []
    real_load, real_evaluate = training.load_training_data, inference.evaluate_model

    def spy_load(*args, **kwargs):
        dsd = real_load(*args, **kwargs)
        loaded.append({split: sorted(dsd[split]["id"]) for split in dsd})
        return dsd

    def spy_evaluate(model, dataset_split, **kwargs):
        evaluated.append(sorted(dataset_split["id"]))
        return real_evaluate(model, dataset_split, **kwargs)

    monkeypatch.setattr(training, "load_training_data", spy_load)
    monkeypatch.setattr(inference, "evaluate_model", spy_evaluate)
    out = tmp_path / "model"
    load_recipe("vit_full").main(
        ScriptArguments(dataset=str(zoo.catalog_path), num_grid_images=0),
        _targs(out, max_steps=1, seed=42),
        ModelArguments(model_config=TINY_VIT),
        DataArguments(image_dir=str(zoo.image_dir)),
    )
    assert len(loaded) == 1
    train_split = loaded[0]
    rc = cli(["evaluate", "--model", str(out), "--dataset", str(zoo.catalog_path),
              "--image_dir", str(zoo.image_dir), "--split", "test"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert evaluated == [train_split["test"]] and evaluated[0]
    assert not set(evaluated[0]) & set(train_split["train"])
    # the same ids as hf-galaxy prepare's default split; a split seeded with the training seed differs
    assert sorted(load_galaxy_dataset(zoo.catalog_path, zoo.image_dir)["test"]["id"]) == evaluated[0]
    assert sorted(load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, seed=42)["test"]["id"]) != evaluated[0]


@pytest.mark.slow
def test_evaluate_takes_the_merged_classes_the_model_was_trained_with(tmp_path, capsys):
    from hf_galaxy.cli import main as cli
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 40, seed=1, image_size=32, show_progress=False)
    out = tmp_path / "model"
    load_recipe("vit_full").main(
        ScriptArguments(dataset=str(zoo.catalog_path), num_grid_images=0),
        _targs(out, max_steps=1),
        ModelArguments(model_config=TINY_VIT),
        DataArguments(image_dir=str(zoo.image_dir), classes="elliptical-spiral-other"),
    )
    base = [
        "evaluate",
        "--model",
        str(out),
        "--dataset",
        str(zoo.catalog_path),
        "--image_dir",
        str(zoo.image_dir),
    ]
    assert cli(base) == 2  # six GZ1 classes against a three-class model: refused, naming both
    assert "elliptical" in capsys.readouterr().err
    assert cli([*base, "--classes", "elliptical-spiral-other"]) == 0
    metrics = json.loads((out / "eval" / "test_results.json").read_text())
    assert "test_accuracy" in metrics and "test_precision_spiral" in metrics
