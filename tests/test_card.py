"""Card data, the callback that fills it during training, and the rendered model cards."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, metadata_load

from hf_galaxy.hub import CardCallback, GalaxyCardData, render_model_card, write_model_card
from hf_galaxy.hub.card import CARD_DATA_FILENAME, non_default_arguments
from hf_galaxy.hub.references import describe_class, release_info
from hf_galaxy.hub.validate import ALLOWED_KEYS, CardValidationError, validate_card_metadata
from tests.hub_helpers import GZ1_CLASSES, card_data, make_output_dir, tiny_vit


class _TinyImages(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, len(GZ1_CLASSES), (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def _accuracy(pred) -> dict[str, float]:
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


def _train(tmp_path, model, card: GalaxyCardData, **overrides):
    from transformers import Trainer, TrainingArguments

    settings = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 4,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "hub_token": "hf_must_not_leak",
    }
    args = TrainingArguments(**{**settings, **overrides})
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_TinyImages(16, 0),
        eval_dataset=_TinyImages(8, 1),
        compute_metrics=_accuracy,
        callbacks=[CardCallback(card)],
    )
    trainer.train()
    return args


def test_card_data_round_trip_and_errors(tmp_path):
    card = card_data()
    card.extra["tuple"] = (1, 2)
    card.eval_results["nan_metric"] = float("nan")
    path = card.save(tmp_path)
    assert path.name == CARD_DATA_FILENAME
    loaded = GalaxyCardData.load(tmp_path)
    assert loaded.to_dict() == card.to_dict()
    assert loaded.extra["tuple"] == [1, 2] and loaded.eval_results["nan_metric"] is None
    data = json.loads(path.read_text())
    data["future_key"] = 1
    path.write_text(json.dumps(data))
    assert GalaxyCardData.load(path).extra["future_key"] == 1
    with pytest.raises(FileNotFoundError, match="hf_galaxy_card.json"):
        GalaxyCardData.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="task"):
        GalaxyCardData(task="segmentation")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GalaxyCardData.load(tmp_path)


def test_non_default_arguments_drop_defaults_and_secrets(tmp_path):
    from transformers import TrainingArguments

    assert non_default_arguments(TrainingArguments(output_dir=str(tmp_path))) == {}
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=3e-4, hub_token="secret", push_to_hub=True, report_to=[]
    )
    assert non_default_arguments(args) == {"learning_rate": 3e-4}


def test_card_callback_fills_the_card_during_training(tmp_path):
    card = GalaxyCardData(dataset={"release": "Galaxy Zoo 1"})
    args = _train(tmp_path, tiny_vit(), card)
    saved = GalaxyCardData.load(args.output_dir)
    assert saved.label_names == GZ1_CLASSES  # from model.config.id2label
    assert saved.hyperparameters["learning_rate"] == 1e-3 and saved.hyperparameters["max_steps"] == 4
    assert "hub_token" not in saved.hyperparameters and "output_dir" not in saved.hyperparameters
    assert "hf_must_not_leak" not in json.dumps(saved.to_dict())
    assert saved.precision == "fp32" and saved.hardware.startswith("CPU")
    assert {"python", "transformers", "torch", "huggingface_hub"} <= set(saved.library_versions)
    assert saved.lora is None
    steps = [row["step"] for row in saved.log_table]
    assert steps == [1, 2, 3, 4]
    by_step = {row["step"]: row for row in saved.log_table}
    assert "training_loss" in by_step[1] and "validation_loss" not in by_step[1]
    for step in (2, 4):
        assert {"training_loss", "validation_loss", "accuracy"} <= set(by_step[step])
        assert not any(k.endswith(("runtime", "per_second")) for k in by_step[step])


def test_card_callback_records_lora(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_vit(),
        LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"]),
    )
    card = GalaxyCardData()
    _train(tmp_path, model, card, max_steps=1, eval_strategy="no")
    assert card.lora["r"] == 2 and card.lora["target_modules"] == ["q_proj", "v_proj"]
    assert card.lora["modules_to_save"] == ["classifier"]
    assert 0 < card.lora["trainable_params"] < card.lora["all_params"]


def test_rendered_card_parses_back_with_huggingface_hub(tmp_path):
    out = make_output_dir(tmp_path / "run")
    path = write_model_card(out, repo_id="astro/gz1-vit")
    assert path == out / "README.md"
    meta = metadata_load(path)
    assert set(meta) <= ALLOWED_KEYS
    assert meta["license"] == "mit" and meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "image-classification"
    assert {"galaxy-zoo", "astronomy"} <= set(meta["tags"])
    assert "base_model" not in meta  # built from a config: no Hub base model to point at
    card = ModelCard.load(path)
    assert card.data.model_name == "gz1-vit"
    results = {r.metric_type: (r.metric_value, r.metric_name) for r in card.data.eval_results}
    assert results["accuracy"] == (0.5, "Accuracy")
    assert results["f1"] == (0.4167, "Macro F1") and results["ece"][0] == 0.1234
    assert results["rmse"] == (0.2101, "Vote-fraction RMSE")
    assert all(r.dataset_name == "Galaxy Zoo 1" and r.dataset_split == "test" for r in card.data.eval_results)
    text = card.text
    for i, name in enumerate(GZ1_CLASSES):  # label table: id -> name -> meaning
        assert re.search(rf"\| {i} \| `{name}` \| {re.escape(describe_class(name))} \|", text), name
    assert "| 0 | `elliptical` |" in text and "| 0.75 | 1 |" in text  # per-class precision / recall
    assert "![Confusion matrix on the evaluation split](confusion_matrix.png)" in text
    assert 'pipeline("image-classification", model="astro/gz1-vit")' in text
    for needle in ("Lintott et al. 2008", "Lintott et al. 2011", "Dosovitskiy et al. 2021", "Chirality"):
        assert needle in text
    assert "Hu et al. 2022" not in text  # no LoRA in this run
    assert "redshift" in text and "Not for:" in text
    assert "| `learning_rate` | 0.001 |" in text and "| 2 | 12 | 1.52 | 1.58 | 0.5 |" in text
    assert "`GalaxyZoo1_DR_table2.csv`" in text and "/data/private" not in text
    assert "| transformers |" in text


def test_lora_and_adapter_cards(tmp_path):
    lora = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"],
            "modules_to_save": ["classifier"], "trainable_params": 100, "all_params": 10000}  # fmt: skip
    card = card_data(lora=lora, base_model="google/vit-base-patch16-224-in21k")
    card.save(tmp_path)
    merged = render_model_card(tmp_path, repo_id="astro/merged")
    meta = ModelCard(merged).data
    assert meta.library_name == "transformers" and meta.base_model == "google/vit-base-patch16-224-in21k"
    assert "lora" in meta.tags and "Hu et al. 2022" in merged and "| `trainable_fraction` | 1.00% |" in merged
    adapter = render_model_card(tmp_path, repo_id="astro/adapter", adapter=True)
    meta = ModelCard(adapter).data
    assert meta.library_name == "peft" and meta.base_model == "google/vit-base-patch16-224-in21k"
    assert 'PeftModel.from_pretrained(base, "astro/adapter")' in adapter
    assert json.dumps(GZ1_CLASSES) in adapter  # the snippet rebuilds the head with the right labels
    card.lora = None
    card.save(tmp_path)
    with pytest.raises(ValueError, match="LoRA settings"):
        render_model_card(tmp_path, adapter=True)


def test_detection_card_reports_map(tmp_path):
    card = GalaxyCardData(
        task="object-detection",
        base_model="facebook/detr-resnet-50",
        dataset={"release": "Galaxy Zoo DECaLS", "split_sizes": {"train": 10, "test": 2}},
        label_names=["galaxy"],
        eval_results={"map": 0.41, "map_50": 0.72, "map_75": 0.38},
    )
    card.save(tmp_path)
    text = render_model_card(tmp_path, repo_id="astro/detr-galaxies")
    data = ModelCard(text).data
    assert data.pipeline_tag == "object-detection"
    assert {r.metric_type: r.metric_value for r in data.eval_results} == {
        "map": 0.41,
        "map_50": 0.72,
        "map_75": 0.38,
    }
    assert 'pipeline("object-detection", model="astro/detr-galaxies")' in text
    assert "Carion et al. 2020" in text and "Walmsley et al. 2022" in text and "Dosovitskiy" not in text


def test_card_falls_back_to_metrics_files_and_trainer_state(tmp_path):
    card = GalaxyCardData(label_names=GZ1_CLASSES, dataset={"release": "Galaxy Zoo 2"})
    card.save(tmp_path)
    (tmp_path / "eval_results.json").write_text(
        json.dumps({"eval_accuracy": 0.7, "eval_runtime": 3.0, "epoch": 1})
    )
    log = [
        {"loss": 1.0, "step": 5, "epoch": 0.5},
        {"eval_loss": 0.9, "eval_accuracy": 0.7, "step": 5, "epoch": 0.5},
    ]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": log}))
    text = render_model_card(tmp_path)
    data = ModelCard(text).data
    assert [(r.metric_type, r.metric_value) for r in data.eval_results] == [("accuracy", 0.7)]
    assert "| 0.5 | 5 | 1 | 0.9 | 0.7 |" in text
    assert "<namespace>/<model-name>" in text  # no repo id yet: a placeholder, replaced when publishing
    assert "Willett et al. 2013" in text and "Hart et al. 2016" in text


def test_synthetic_runs_say_so(tmp_path):
    card = card_data()
    card.dataset["synthetic"] = True
    card.save(tmp_path)
    assert "trained on synthetic galaxies" in render_model_card(tmp_path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"license": "not-a-license"}, "license"),
        ({"widget": []}, "widget"),
        ({"library_name": "timm"}, "library_name"),
        ({"tags": ["astronomy"]}, "tags"),
        ({"model-index": [{"name": "m", "results": [{"task": {}}]}]}, "model-index"),
        ({"model-index": "not a list"}, "model-index"),
    ],
)
def test_validation_names_the_offending_key(change, key):
    metadata = {
        "license": "mit",
        "library_name": "transformers",
        "pipeline_tag": "image-classification",
        "tags": ["galaxy-zoo", "astronomy"],
        **change,
    }
    with pytest.raises(CardValidationError, match=f"'{key}'") as info:
        validate_card_metadata(metadata)
    assert info.value.key == key


def test_license_override_is_validated(tmp_path):
    card_data().save(tmp_path)
    assert ModelCard(render_model_card(tmp_path, license="cc-by-4.0")).data.license == "cc-by-4.0"
    with pytest.raises(CardValidationError, match="'license'"):
        render_model_card(tmp_path, license="MIT License")


def test_release_lookup_and_class_meanings():
    assert release_info("Galaxy Zoo DECaLS")[0] == "Galaxy Zoo DECaLS"
    assert release_info("Galaxy10 DECaLS")[0] == "Galaxy10 DECaLS"
    assert release_info("Galaxy10 SDSS")[0] == "Galaxy10 SDSS"
    assert release_info("Kaggle Galaxy Challenge")[2] == ["willett2013", "dieleman2015"]
    assert release_info("image folder") is None
    assert "anticlockwise" in describe_class("anticlockwise_spiral")
    assert describe_class("bar_strong", "bar").startswith("Answer 'bar_strong' to: Is there a bar")
    assert describe_class("has-spiral-arms_yes").startswith("Answer 'yes' to:")
    assert describe_class("something_unknown") == ""


def test_log_table_from_history_merges_steps_and_skips_summaries():
    from hf_galaxy.hub.card import log_table_from_history

    history = [
        {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 0.5, "step": 5},
        {"eval_loss": 1.9, "eval_accuracy": 0.4, "eval_runtime": 0.1, "eval_samples_per_second": 9.0, "epoch": 0.5,
         "step": 5},
        {"loss": 1.5, "epoch": 1.0, "step": 10},
        {"train_runtime": 3.0, "train_loss": 1.75, "epoch": 1.0, "step": 10},
    ]  # fmt: skip
    assert log_table_from_history(history) == [
        {"epoch": 0.5, "step": 5, "training_loss": 2.0, "validation_loss": 1.9, "accuracy": 0.4},
        {"epoch": 1.0, "step": 10, "training_loss": 1.5},
    ]


def test_card_without_any_metrics_still_validates(tmp_path):
    """A run that was never evaluated has no model-index; no stray model_name key may be left behind."""
    card = GalaxyCardData(label_names=GZ1_CLASSES, dataset={"release": "Galaxy Zoo 1"})
    card.save(tmp_path)
    text = render_model_card(tmp_path)
    meta = ModelCard(text).data.to_dict()
    assert "model_name" not in meta and "model-index" not in meta
    validate_card_metadata(meta)


def test_validation_allows_a_missing_library_name_only_when_asked():
    """Ensemble cards have no library_name (no single library loads them); model cards must have one."""
    metadata = {"license": "mit", "pipeline_tag": "image-classification", "tags": ["galaxy-zoo", "astronomy"]}
    with pytest.raises(CardValidationError, match="'library_name'"):
        validate_card_metadata(metadata)
    validate_card_metadata(metadata, library_required=False)
    with pytest.raises(CardValidationError, match="'library_name'"):
        validate_card_metadata({**metadata, "library_name": "timm"}, library_required=False)


def test_local_base_model_and_config_paths_are_shown_by_name_only(tmp_path):
    base = tmp_path / "private" / "my-base"
    base.mkdir(parents=True)
    card = card_data(base_model=str(base))
    card.save(tmp_path)
    text = render_model_card(tmp_path, repo_id="astro/local-base")
    assert "`my-base` (a local checkpoint)" in text and str(tmp_path) not in text
    assert "base_model" not in ModelCard(text).data.to_dict()
    card = card_data()
    card.model_config = str(tmp_path / "configs" / "vit_tiny.json")
    card.hyperparameters["fsdp_config"] = str(tmp_path / "configs" / "fsdp.json")
    card.save(tmp_path)
    text = render_model_card(tmp_path)
    assert "(vit_tiny.json)" in text and "| `fsdp_config` | fsdp.json |" in text and str(tmp_path) not in text


def test_card_data_turns_arrays_into_lists():
    card = GalaxyCardData(extra={"confusion": np.eye(2, dtype=np.int64), "score": np.float32(0.5)})
    assert card.to_dict()["extra"] == {"confusion": [[1, 0], [0, 1]], "score": 0.5}
