"""Model building from configs and checkpoints, offline errors, head re-initialisation, LoRA wrapping."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from hf_galaxy.models import (
    ModelNotFoundError,
    apply_lora,
    count_parameters,
    head_module_names,
    load_classifier,
    load_for_inference,
    lora_target_modules,
    parse_model_config,
    save_lora_model,
)
from tests.galaxy_tiny import GZ1_CLASSES, TINY_VIT


def test_parse_model_config_forms(tmp_path):
    assert parse_model_config("vit-tiny")["hidden_size"] == 32
    cfg = parse_model_config("vit-tiny,image_size=48,qkv_bias=false")
    assert cfg["image_size"] == 48 and cfg["qkv_bias"] is False and cfg["model_type"] == "vit"
    assert parse_model_config("hidden_size=16,num_hidden_layers=1") == {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "model_type": "vit",
    }
    assert parse_model_config('{"model_type": "vit", "patch_size": 4}')["patch_size"] == 4
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"hidden_size": 24}))
    assert parse_model_config(str(f))["hidden_size"] == 24
    with pytest.raises(ValueError, match="expected key=value"):
        parse_model_config("vit-tiny,oops")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        parse_model_config(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="invalid inline JSON"):
        parse_model_config("{bad")


def test_build_from_config_has_dataset_labels_and_processor():
    model, processor = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
    assert model.config.id2label == dict(enumerate(GZ1_CLASSES))
    assert model.config.label2id["merger"] == 5
    assert processor.size["height"] == 32 == model.config.image_size
    out = model(pixel_values=torch.zeros(2, 3, 32, 32))
    assert out.logits.shape == (2, 6)
    with pytest.raises(ValueError, match="not a ViTConfig field"):
        load_classifier(None, GZ1_CLASSES, model_config="vit-tiny,hiden_size=8")


def test_hub_id_not_available_offline_gives_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError) as err:
        load_classifier("no-such-org/no-such-galaxy-model", GZ1_CLASSES)
    msg = str(err.value)
    assert "no-such-org/no-such-galaxy-model" in msg and "not found locally" in msg
    assert "--model_name_or_path" in msg
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_classifier("./no/such/dir", GZ1_CLASSES)


def test_checkpoint_with_other_labels_gets_new_head(tmp_path, caplog):
    three, _ = load_classifier(None, ["a", "b", "c"], model_config=TINY_VIT)
    three.save_pretrained(tmp_path / "three")
    with caplog.at_level(logging.WARNING, logger="hf_galaxy.models"):
        model, processor = load_classifier(str(tmp_path / "three"), GZ1_CLASSES)
    assert "re-initialised" in caplog.text and "['a', 'b', 'c']" in caplog.text
    assert model.classifier.out_features == 6 and model.config.id2label[1] == "clockwise_spiral"
    torch.testing.assert_close(
        model.vit.embeddings.patch_embeddings.projection.weight,
        three.vit.embeddings.patch_embeddings.projection.weight,
    )
    # no preprocessor_config.json was saved: the model type's default processor at the config's size
    assert processor.size["height"] == 32
    # same number of labels but other names: the head is reset too (old weights would silently survive)
    six_other, _ = load_classifier(None, [f"x{i}" for i in range(6)], model_config=TINY_VIT)
    six_other.save_pretrained(tmp_path / "six")
    relabelled, _ = load_classifier(str(tmp_path / "six"), GZ1_CLASSES)
    assert not torch.equal(relabelled.classifier.weight, six_other.classifier.weight)
    # the same labels: weights kept, no notice
    caplog.clear()
    same, _ = load_classifier(str(tmp_path / "six"), [f"x{i}" for i in range(6)])
    torch.testing.assert_close(same.classifier.weight, six_other.classifier.weight)
    assert "re-initialised" not in caplog.text


def test_lora_targets_derived_from_module_names():
    model, _ = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
    assert head_module_names(model) == ["classifier"]
    assert sorted(lora_target_modules(model)) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert sorted(lora_target_modules(model, "all-linear")) == [
        "fc1",
        "fc2",
        "k_proj",
        "o_proj",
        "q_proj",
        "v_proj",
    ]
    assert lora_target_modules(model, "q_proj,v_proj") == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="query.*matches no nn.Linear"):
        lora_target_modules(model, ["query"])


class _BertLike(nn.Module):
    """Older naming: attention.output.dense and intermediate.dense share the leaf name 'dense'."""

    base_model_prefix = "enc"

    def __init__(self) -> None:
        super().__init__()
        block = nn.Module()
        block.attention = nn.Module()
        block.attention.query = nn.Linear(4, 4)
        block.attention.value = nn.Linear(4, 4)
        block.attention.output = nn.Module()
        block.attention.output.dense = nn.Linear(4, 4)
        block.intermediate = nn.Module()
        block.intermediate.dense = nn.Linear(4, 8)
        self.enc = nn.ModuleList([block])
        self.classifier = nn.Linear(4, 3)


def test_lora_target_suffixes_are_unambiguous():
    targets = lora_target_modules(_BertLike())
    assert sorted(targets) == ["output.dense", "query", "value"]
    assert "dense" not in targets and "classifier" not in targets


def test_apply_lora_keeps_head_trainable_and_reports_counts():
    model, _ = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
    total_before = count_parameters(model)[1]
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0, modules_to_save=["layernorm"])
    summary = peft_model.lora_summary
    assert summary["modules_to_save"] == ["classifier", "layernorm"]
    assert summary["r"] == 4 and summary["lora_alpha"] == 8
    trainable, total = count_parameters(peft_model)
    assert (summary["trainable_params"], summary["all_params"]) == (trainable, total)
    assert 0 < trainable < total and total > total_before
    names = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in names) and any("lora_A" in n for n in names)
    assert not any("fc1" in n for n in names)  # MLP untouched with the default attention targets


def test_save_lora_model_merged_and_adapter_load_back(tmp_path):
    base, processor = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
    base.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    model, processor = load_classifier(str(tmp_path / "base"), GZ1_CLASSES)
    peft_model = apply_lora(model, r=4, base_model_name_or_path=str(tmp_path / "base"))
    with torch.no_grad():  # make the adapter non-trivial
        for n, p in peft_model.named_parameters():
            if "lora_B" in n or "classifier" in n:
                p.add_(0.05 * torch.randn_like(p))
    peft_model.eval()
    x = torch.randn(2, 3, 32, 32)
    expected = peft_model(pixel_values=x).logits
    out = tmp_path / "run"
    save_lora_model(peft_model, out, processor)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "preprocessor_config.json").is_file()
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tmp_path / "base")
    assert "classifier" in adapter_cfg["modules_to_save"]
    merged, _ = load_for_inference(str(out))
    torch.testing.assert_close(merged(pixel_values=x).logits, expected, atol=1e-5, rtol=1e-4)
    from_adapter, _ = load_for_inference(str(out / "adapter"))
    torch.testing.assert_close(from_adapter(pixel_values=x).logits, expected, atol=1e-5, rtol=1e-4)
    assert merged.config.id2label[2] == "anticlockwise_spiral"


@pytest.mark.parametrize("kind", ["siglip", "clip"])
def test_clip_and_siglip_backbone_is_not_taken_for_the_head(kind):
    # base_model_prefix is 'clip'/'siglip' but the backbone child is 'vision_model': compare by identity
    import transformers

    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    config_cls = transformers.SiglipConfig if kind == "siglip" else transformers.CLIPConfig
    model_cls = (
        transformers.SiglipForImageClassification
        if kind == "siglip"
        else transformers.CLIPForImageClassification
    )
    config = config_cls(
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        text_config={**tiny, "num_hidden_layers": 1, "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1},
        num_labels=len(GZ1_CLASSES),
    )
    model = model_cls(config)
    assert model.base_model_prefix == kind and not hasattr(model, kind)
    assert head_module_names(model) == ["classifier"]
    targets = lora_target_modules(model)
    assert sorted(targets) == ["k_proj", "out_proj", "q_proj", "v_proj"]
    assert sorted(lora_target_modules(model, "all-linear")) == [
        "fc1",
        "fc2",
        "k_proj",
        "out_proj",
        "q_proj",
        "v_proj",
    ]
    peft_model = apply_lora(model, r=2, alpha=4, dropout=0.0)
    assert peft_model.lora_summary["modules_to_save"] == ["classifier"]
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n and "vision_model" in n for n in trainable)
    assert any("classifier" in n for n in trainable) and not any("fc1" in n for n in trainable)
    logits = peft_model(pixel_values=torch.zeros(1, 3, 32, 32)).logits
    assert logits.shape == (1, len(GZ1_CLASSES))


@pytest.mark.parametrize("preset", ["resnet-mini", "resnet-18", "convnext-mini", "convnext-tiny"])
def test_cnn_presets_build_and_follow_the_prepared_image_size(preset):
    model, processor = load_classifier(None, GZ1_CLASSES, model_config=preset, image_size=64)
    assert model.config.model_type == preset.split("-")[0] and model.config.num_labels == 6
    assert (processor.size["height"], processor.size["width"]) == (
        64,
        64,
    )  # a CNN has no input size of its own
    with torch.no_grad():
        logits = model(pixel_values=torch.randn(2, 3, 64, 64)).logits
    assert logits.shape == (2, 6)
    assert head_module_names(model) == ["classifier"]
