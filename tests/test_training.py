"""Training plumbing: precision, argument parsing, soft-label loss, collator, TTA, the library flow."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainingArguments

from hf_galaxy.inference import TTAClassifier, list_inputs, predict_files
from hf_galaxy.training import (
    ConfigError,
    DataArguments,
    apply_precision,
    collate_galaxy,
    load_training_data,
    load_yaml_config,
    make_parser,
    parse_rotations,
    resolve_precision,
    soft_label_loss,
)
from tests.galaxy_tiny import GZ1_CLASSES, RECIPES, TINY_VIT, load_recipe, tiny_dataset_dict


def _fake_cuda(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


def test_precision_on_cpu_falls_back_with_notice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto") == ("fp32", "precision auto: no CUDA GPU, training in fp32 on CPU")
    chosen, notice = resolve_precision("fp16")
    assert chosen == "fp32" and "fp16" in notice and "CPU" in notice
    assert resolve_precision("fp32") == ("fp32", None)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int8")


def test_precision_on_gpus(monkeypatch):
    _fake_cuda(monkeypatch, bf16=True)
    assert resolve_precision("auto") == ("bf16", None)
    assert resolve_precision("fp16") == ("fp16", None)
    assert resolve_precision("auto", use_cpu=True)[0] == "fp32"
    _fake_cuda(monkeypatch, bf16=False)
    assert resolve_precision("auto")[0] == "fp16"
    chosen, notice = resolve_precision("bf16")
    assert chosen == "fp16" and "no bf16 support" in notice


def test_apply_precision_turns_fp16_off_on_cpu(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), fp16=True, report_to="none")
    with caplog.at_level("WARNING"):
        assert apply_precision(args, "auto") == "fp32"
    assert not args.fp16 and not args.bf16 and args.mixed_precision == "no"
    assert "fp16 asked for" in caplog.text


def test_parser_yaml_defaults_cli_overrides_and_cpu_fp16(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "dataset: synthetic:50\nlearning_rate: 0.003\nlora_r: 4\nfp16: true\nper_device_train_batch_size: 4\n"
        "image_size: 48\nsave_merged: false\nmodel_config: vit-tiny\n"
    )
    parser = make_parser(use_lora=True)
    script, train, model, data = parser.parse(
        ["--config", str(cfg), "--lora_r", "8", "--output_dir", str(tmp_path / "o"), "--use_cpu", "true"]
    )
    assert script.dataset == "synthetic:50" and script.save_merged is False
    assert train.learning_rate == 0.003 and train.per_device_train_batch_size == 4
    assert model.lora_r == 8 and model.use_lora is True  # the CLI wins over YAML
    assert data.image_size == 48
    assert train.fp16 is False and script.precision == "fp32"  # YAML fp16 on a CPU: no crash, fp32
    assert train.remove_unused_columns is False
    assert model.model_config == "vit-tiny"
    assert make_parser().parse(["--config", str(cfg), "--model_config", "none"])[2].model_config is None
    assert make_parser(use_lora=False).parse(["--output_dir", str(tmp_path)])[2].use_lora is False


def test_unknown_yaml_key_is_named(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("learning_rate: 0.001\nlearnig_rate_typo: 3\n")
    with pytest.raises(SystemExit):
        make_parser().parse(["--config", str(cfg)])
    err = capsys.readouterr().err
    assert "learnig_rate_typo" in err and "bad.yaml" in err
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_config(tmp_path / "nope.yaml", [])
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml_config(tmp_path / "list.yaml", [])


def test_shipped_configs_parse(tmp_path):
    from hf_galaxy.ensemble import EnsembleArguments

    hpo = load_recipe("hpo")
    parsers = {
        "vit": make_parser,
        "scratch": make_parser,
        "tree": make_parser,
        "hpo": hpo.make_parser,
        "detr": lambda: make_parser(task="detection"),
        "yolos": lambda: make_parser(task="detection"),
        "ensemble": lambda: make_parser(extra_dataclasses=[EnsembleArguments]),
        "mae": lambda: make_parser(task="pretraining"),
    }
    configs = sorted((RECIPES / "configs").glob("*.yaml"))
    assert {c.name for c in configs} >= {
        "vit_lora.yaml", "vit_full.yaml", "vit_lora_4gb.yaml", "vit_lora_demo.yaml", "hpo.yaml", "hpo_tiny.yaml",
        "detr.yaml", "detr_tiny.yaml", "yolos.yaml", "yolos_tiny.yaml", "ensemble.yaml", "ensemble_tiny.yaml",
        "scratch_cnn.yaml", "vit_mae.yaml", "tree_demo.yaml", "tree_vit_lora.yaml", "tree_vit_lora_4gb.yaml",
    }  # fmt: skip
    for cfg in configs:
        parser = parsers["mae" if cfg.stem == "vit_mae" else cfg.name.split("_")[0].split(".")[0]]()
        parsed = parser.parse(["--config", str(cfg), "--output_dir", str(tmp_path)])
        assert parsed[1].output_dir == str(tmp_path), cfg.name
        # only the demo/tiny configs name a dataset, and it is synthetic; real configs need --dataset
        demo = cfg.stem.endswith(("_tiny", "_demo"))
        assert (parsed[0].dataset or "").startswith("synthetic:") is demo, cfg.name
        if demo:
            assert "SYNTHETIC" in cfg.read_text(), f"{cfg.name} must say it trains on synthetic galaxies"
    four = make_parser().parse(["--config", str(RECIPES / "configs" / "vit_lora_4gb.yaml")])
    assert four[1].activation_checkpointing and four[1].gradient_accumulation_steps == 4
    assert four[1].per_device_train_batch_size == 16


def test_shipped_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {
        "single_gpu": "NO", "multi_gpu": "MULTI_GPU", "cpu_ddp": "MULTI_GPU", "fsdp": "FSDP",
        "deepspeed_zero2": "DEEPSPEED",
    }  # fmt: skip
    for name, kind in expected.items():
        config = load_config_from_file(str(RECIPES / "accelerate" / f"{name}.yaml"))
        assert str(config.distributed_type).split(".")[-1] == kind, name
    fsdp = load_config_from_file(str(RECIPES / "accelerate" / "fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "ViTLayer"
    ddp = load_config_from_file(
        str(RECIPES / "accelerate" / "cpu_ddp.yaml")
    )  # torchrun; the recipe sets use_cpu
    assert ddp.num_processes == 2 and not ddp.use_cpu
    zero = load_config_from_file(str(RECIPES / "accelerate" / "deepspeed_zero2.yaml"))
    assert zero.deepspeed_config["zero_stage"] == 2


def test_a_recipe_without_dataset_stops_with_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(RECIPES / "vit_lora.py"), "--config", str(RECIPES / "configs" / "vit_lora.yaml"),
         "--output_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("vit_lora.py: error: --dataset is required") and "Traceback" not in proc.stderr


def test_synthetic_data_says_so_and_the_card_records_it(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_galaxy"):
        dsd = load_training_data("synthetic:12", DataArguments(synthetic_image_size=32), data_dir=tmp_path)
    assert "training on 12 SYNTHETIC galaxies" in caplog.text
    assert dsd.galaxy_info["synthetic"] is True


def test_soft_label_loss():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    votes = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    ce = soft_label_loss(logits, votes, labels, "ce")
    logp = F.log_softmax(logits, -1)
    expected = (
        -(0.7 * logp[0, 0] + 0.2 * logp[0, 1] + 0.1 * logp[0, 2]) - logp[1, 2]
    )  # row 2: no votes -> label
    assert ce.item() == pytest.approx(expected.item() / 2, rel=1e-6)
    # unnormalised votes are renormalised; one-hot votes equal hard cross-entropy
    one_hot = F.one_hot(labels, 3).float()
    assert soft_label_loss(logits, 3 * one_hot, labels).item() == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )
    target = F.softmax(logits, -1)
    assert soft_label_loss(logits, target, labels, "kl").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="'ce' or 'kl'"):
        soft_label_loss(logits, votes, labels, "mse")


def test_collate_galaxy():
    ex = [{"pixel_values": torch.zeros(3, 4, 4), "labels": i, "votes": torch.ones(6) / 6} for i in range(3)]
    batch = collate_galaxy(ex)
    assert batch["pixel_values"].shape == (3, 3, 4, 4) and batch["labels"].dtype == torch.long
    assert batch["votes"].shape == (3, 6)
    assert set(collate_galaxy([{"pixel_values": torch.zeros(3, 4, 4)}])) == {"pixel_values"}


class _Corner(nn.Module):
    """Logits from the top-left pixel only: rotation changes its answer."""

    def forward(self, pixel_values):
        v = pixel_values[:, 0, 0, 0]
        return {"logits": torch.stack([v, -v], dim=-1)}


def test_tta_averages_probabilities_over_rotations():
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0, 0, 0] = 3.0  # top-left; the other rotations see 0 there
    tta = TTAClassifier(_Corner(), [0, 90, 180, 270])
    probs = tta(x).logits.exp()
    p0 = torch.softmax(torch.tensor([3.0, -3.0]), 0)
    expected = (p0 + 3 * torch.tensor([0.5, 0.5])) / 4
    torch.testing.assert_close(probs[0], expected)
    assert parse_rotations("0, 180") == [0, 180]
    with pytest.raises(ValueError, match="multiples of 90"):
        parse_rotations("0,45")


def test_load_training_data_errors(tmp_path):
    with pytest.raises(ValueError, match="--dataset is required"):
        load_training_data("")
    with pytest.raises(ValueError, match="synthetic:N"):
        load_training_data("synthetic:many", output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_training_data(str(tmp_path / "missing.csv"))


def test_saved_dataset_dict_loads(tmp_path):
    tiny_dataset_dict(n_per_class=2).save_to_disk(str(tmp_path / "dsd"))
    dsd = load_training_data(str(tmp_path / "dsd"))
    assert dsd["train"].features["label"].names == GZ1_CLASSES and len(dsd["train"]) == 12


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    return make_galaxy_zoo(tmp_path_factory.mktemp("zoo"), 40, seed=0, image_size=32)


def test_catalogue_classes_parsed_like_prepare(small_zoo):
    # --classes takes what hf-galaxy prepare takes: a JSON mapping, a preset or a comma list
    mapping = (
        '{"round": ["elliptical", "star_or_unknown"], "disk": ["clockwise_spiral", "anticlockwise_spiral"]}'
    )
    args = DataArguments(image_dir=str(small_zoo.image_dir), classes=mapping)
    dsd = load_training_data(str(small_zoo.catalog_path), args)
    assert dsd["train"].features["label"].names == ["round", "disk"]
    args = DataArguments(image_dir=str(small_zoo.image_dir), classes="elliptical-spiral-other")
    names = load_training_data(str(small_zoo.catalog_path), args)["train"].features["label"].names
    assert names == ["elliptical", "spiral", "other"]
    args = DataArguments(image_dir=str(small_zoo.image_dir), classes="elliptical, merger")
    names = load_training_data(str(small_zoo.catalog_path), args)["train"].features["label"].names
    assert names == ["elliptical", "merger"]


def test_catalogue_split_uses_split_seed_not_the_training_seed(small_zoo):
    from hf_galaxy.data.dataset import load_galaxy_dataset

    assert DataArguments().split_seed == 0
    args = DataArguments(image_dir=str(small_zoo.image_dir))
    ours = load_training_data(str(small_zoo.catalog_path), args, seed=42)  # a recipe passes its --seed
    reference = load_galaxy_dataset(small_zoo.catalog_path, small_zoo.image_dir)  # prepare's default seed 0
    for split in ("train", "validation", "test"):
        assert sorted(ours[split]["id"]) == sorted(reference[split]["id"]), split
    other = load_training_data(
        str(small_zoo.catalog_path), DataArguments(image_dir=str(small_zoo.image_dir), split_seed=7)
    )
    assert sorted(other["test"]["id"]) != sorted(reference["test"]["id"])


def test_list_inputs_uses_the_catalogue_image_extensions(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.fits.gz", "a/w.FITS", "y.png", "z.jpeg", "notes.txt", "a/readme.md"):
        (tmp_path / name).write_bytes(b"")
    rows = list_inputs(tmp_path)
    assert [r[0] for r in rows] == ["a/w", "a/x", "y", "z"]  # x.fits.gz -> x, not x.fits
    assert rows[1][1] == str(tmp_path / "a" / "x.fits.gz") and rows[1][2] is None
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images \(\.jpg"):
        list_inputs(tmp_path / "empty")


@pytest.mark.slow
def test_finetune_soft_labels_and_predict(tmp_path):
    from hf_galaxy import finetune

    dsd = tiny_dataset_dict(n_per_class=6)
    out = tmp_path / "run"
    result = finetune(
        dsd,
        TINY_VIT,
        out,
        lora=False,
        max_steps=4,
        per_device_train_batch_size=8,
        logging_steps=2,
        learning_rate=1e-3,
        soft_labels=True,
        soft_loss="kl",
        tta=True,
        num_grid_images=4,
    )
    metrics = result.metrics
    assert result.output_dir == out and result.trainer.soft_labels and result.trainer.soft_loss == "kl"
    with pytest.raises(TypeError, match="unknown option 'num_train_epoch'.*num_train_epochs"):
        finetune(dsd, TINY_VIT, out, num_train_epoch=1)
    for key in ("test_accuracy", "test_tta_accuracy", "test_vote_rmse", "eval_ece", "train_loss"):
        assert key in metrics, key
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "eval_results.json",
        "test_results.json",
        "all_results.json",
        "train_results.json",
        "trainer_state.json",
        "confusion_matrix.png",
        "sample_grid.png",
        "training_curves.png",
        "hf_galaxy_card.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "adapter").exists()
    card = json.loads((out / "hf_galaxy_card.json").read_text())
    assert card["soft_labels"] is True and card["label_names"] == GZ1_CLASSES and card["lora"] is None
    assert card["model_config"] == TINY_VIT and card["eval_split"] == "test"
    assert card["eval_results"]["accuracy"] == pytest.approx(metrics["test_accuracy"])
    # predict over an image folder with the trained model
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for i, row in enumerate(dsd["test"].select(range(3))):
        row["image"].save(img_dir / f"g{i}.png")
    (img_dir / "broken.png").write_bytes(b"not a png")
    from hf_galaxy.models import load_for_inference

    model, processor = load_for_inference(str(out))
    rows = list_inputs(img_dir)
    ids, probs, skipped = predict_files(
        model, processor, rows, batch_size=2, tta_rotations=[0, 90], progress=False
    )
    assert ids == ["g0", "g1", "g2"] and probs.shape == (3, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert [s[0] for s in skipped] == ["broken"]


@pytest.mark.slow
def test_report_to_tensorboard_writes_event_files_offline(tmp_path):
    """report_to is the Trainer's: TensorBoard (local files, no account, no network) logs the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hf_galaxy import finetune

    out = tmp_path / "run"
    finetune(
        tiny_dataset_dict(n_per_class=4), TINY_VIT, out, lora=False, max_steps=4, logging_steps=1,
        per_device_train_batch_size=8, report_to="tensorboard", num_grid_images=0,
    )  # fmt: skip
    events = sorted(out.glob("runs/*/events.out.tfevents.*"))
    assert events, sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]


def test_a_loss_stuck_at_chance_is_reported_once(caplog):
    import math

    from hf_galaxy.training.classification import ChanceLossWarning

    def epochs(callback, losses):
        for loss in losses:
            callback.on_log(None, None, None, logs={"loss": loss})
            callback.on_epoch_end(None, None, None)

    stuck = ChanceLossWarning(2, patience=3)
    with caplog.at_level(logging.WARNING, logger="hf_galaxy"):
        epochs(stuck, [math.log(2) + 0.005, math.log(2) - 0.004, math.log(2), math.log(2), math.log(2)])
    assert caplog.text.count("stayed at its chance value ln(2) = 0.693 for 3 epochs") == 1
    caplog.clear()
    learning = ChanceLossWarning(2, patience=3)
    with caplog.at_level(logging.WARNING, logger="hf_galaxy"):
        epochs(learning, [0.69, 0.69, 0.60, 0.69, 0.69, 0.5])  # never three chance epochs in a row
    assert "chance value" not in caplog.text
