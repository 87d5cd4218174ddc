"""Publishing to, and pulling from, the loopback Hub (tests/hub_server.py): no test touches the real Hub."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from hf_galaxy.hub import PublishError, publish, publish_from_training_args, pull
from hf_galaxy.hub.validate import CardValidationError
from tests.hub_helpers import (
    GZ1_CLASSES,
    TOKEN,
    file_tree,
    galaxy_images,
    loopback_hub,
    make_lora_output_dir,
    make_output_dir,
    tiny_processor,
    tiny_vit,
)

NEVER_PUBLISHED = (
    "checkpoint-6/optimizer.pt",
    "checkpoint-6/model.safetensors",
    "training_args.bin",
    "optimizer.pt",
)


def _digest(folder: Path) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in file_tree(folder).items()}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    return make_output_dir(tmp_path_factory.mktemp("full") / "output")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lora")
    base = root / "base"
    tiny_vit().save_pretrained(base)
    tiny_processor().save_pretrained(base)
    return make_lora_output_dir(root / "output", base)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with loopback_hub(tmp_path / "hub", monkeypatch) as server:
        yield server


def _local_logits(model_dir: Path, images) -> torch.Tensor:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    processor = AutoImageProcessor.from_pretrained(model_dir)
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(**processor(images=images, return_tensors="pt")).logits


def test_publish_then_pull_gives_same_logits(full_run, hub, tmp_path):
    before = _digest(full_run)
    result = publish(full_run, "tester/gz1-vit", commit_message="first publish")
    assert result.repo_id == "tester/gz1-vit" and result.commit_oid and not result.adapter
    assert _digest(full_run) == before, "publish must not write into the output directory"

    remote = hub.files("tester/gz1-vit")
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "README.md",
        "confusion_matrix.png",
    ):
        assert name in remote
    for name in (*NEVER_PUBLISHED, "hub_token.txt"):
        assert name not in remote
    assert remote["model.safetensors"] == (full_run / "model.safetensors").read_bytes()
    titles = [c.title for c in HfApi(endpoint=hub.endpoint).list_repo_commits("tester/gz1-vit")]
    assert titles == ["first publish", "initial commit"]  # everything in one commit

    folder = snapshot_download("tester/gz1-vit", endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    images = galaxy_images(3)
    torch.testing.assert_close(
        _local_logits(Path(folder), images), _local_logits(full_run, images), rtol=0, atol=0
    )

    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained("tester/gz1-vit")  # through constants.ENDPOINT
    assert [model.config.id2label[i] for i in range(6)] == GZ1_CLASSES


def test_lora_merged_model_pulls_with_pipeline_without_peft(lora_run, hub):
    from peft import PeftModel
    from transformers import AutoModelForImageClassification, pipeline

    result = publish(lora_run, "tester/gz1-vit-lora")
    assert not result.adapter and "adapter_model.safetensors" not in result.files
    images = galaxy_images(4, seed=1)

    # reference: the base model with the adapter applied by peft
    base = AutoModelForImageClassification.from_pretrained(lora_run.parent / "base")
    reference = PeftModel.from_pretrained(base, lora_run / "adapter").eval()
    processor = tiny_processor()
    with torch.no_grad():
        ref_probs = reference(**processor(images=images, return_tensors="pt")).logits.softmax(-1)

    remote = pipeline("image-classification", model="tester/gz1-vit-lora")
    local = pipeline("image-classification", model=str(lora_run))
    for i, image in enumerate(images):
        pulled = remote(image, top_k=6)
        assert pulled == local(image, top_k=6)
        best = max(range(6), key=lambda k: ref_probs[i, k].item())
        assert pulled[0]["label"] == GZ1_CLASSES[best]
        assert pulled[0]["score"] == pytest.approx(ref_probs[i, best].item(), abs=1e-5)

    card = ModelCard.load("tester/gz1-vit-lora")
    assert card.data.library_name == "transformers" and "lora" in card.data.tags
    assert "LoRA configuration" in card.text and "| `r` | 4 |" in card.text


def test_dry_run_folder_matches_what_was_pushed(lora_run, hub, tmp_path):
    dry = tmp_path / "dry"
    result = publish(lora_run, "tester/dry", dry_run_dir=dry)
    assert result.dry_run_dir == dry and result.commit_oid is None
    assert not hub.requests, "a dry run makes no network call"
    publish(lora_run, "tester/dry")
    pushed = {k: v for k, v in hub.files("tester/dry").items() if k != ".gitattributes"}
    assert file_tree(dry) == pushed
    with pytest.raises(ValueError, match="not empty"):
        publish(lora_run, "tester/dry", dry_run_dir=dry)
    with pytest.raises(ValueError, match="inside the output directory"):
        publish(lora_run, "tester/dry", dry_run_dir=lora_run / "upload")


def test_publish_to_a_branch(full_run, hub, tmp_path):
    publish(full_run, "tester/branchy", revision="v1")
    assert set(hub.files("tester/branchy", "main")) == {".gitattributes"}
    assert "model.safetensors" in hub.files("tester/branchy", "v1")
    folder = snapshot_download(
        "tester/branchy", revision="v1", endpoint=hub.endpoint, cache_dir=tmp_path / "c"
    )
    assert (Path(folder) / "README.md").is_file()
    from transformers import AutoModelForImageClassification

    AutoModelForImageClassification.from_pretrained("tester/branchy", revision="v1")
    with pytest.raises(ValueError, match="invalid revision"):
        publish(full_run, "tester/branchy", revision="bad name")


def test_private_flag_reaches_the_server(full_run, hub, tmp_path):
    publish(full_run, "tester/secret", private=True)
    assert hub.repo("tester/secret").private
    create = [r for r in hub.requests if r["path"] == "/api/repos/create"]
    assert create and create[0]["auth"]
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).model_info("tester/secret")
    assert HfApi(endpoint=hub.endpoint, token=TOKEN).model_info("tester/secret").private is True

    publish(full_run, "tester/public")
    with pytest.raises(PublishError, match="already exists and is public"):
        publish(make_output_dir(tmp_path / "other", seed=3), "tester/public", private=True)
    assert hub.files("tester/public")["model.safetensors"] == (full_run / "model.safetensors").read_bytes()


def test_second_publish_updates_in_place(full_run, hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint)
    first = publish(full_run, "tester/inplace")
    second_run = make_output_dir(tmp_path / "retrained", seed=7)
    (second_run / "confusion_matrix.png").unlink()
    (second_run / "sample_grid.png").write_bytes((full_run / "confusion_matrix.png").read_bytes())
    second = publish(second_run, "tester/inplace", commit_message="retrained")
    assert second.commit_oid != first.commit_oid
    assert second.deleted == ["confusion_matrix.png"]
    remote = hub.files("tester/inplace")
    assert remote["model.safetensors"] == (second_run / "model.safetensors").read_bytes()
    assert "confusion_matrix.png" not in remote and "sample_grid.png" in remote
    assert [c.title for c in api.list_repo_commits("tester/inplace")][:2] == [
        "retrained",
        "Publish model with hf-galaxy",
    ]
    assert len(api.list_repo_commits("tester/inplace")) == 3


def test_dropped_connection_gives_clear_error_and_leaves_output_untouched(full_run, hub):
    before = _digest(full_run)
    HfApi(endpoint=hub.endpoint, token=TOKEN).create_repo("tester/dropped")
    hub.drop_next_commit = True
    with pytest.raises(PublishError, match="untouched") as info:
        publish(full_run, "tester/dropped")
    assert "run publish again" in str(info.value)
    assert hub.dropped_commits == 1
    assert _digest(full_run) == before
    assert set(hub.files("tester/dropped")) == {".gitattributes"}, "nothing was committed"
    publish(full_run, "tester/dropped")  # a rerun succeeds
    assert "model.safetensors" in hub.files("tester/dropped")


def test_invalid_repo_id_fails_before_any_network_call(full_run, hub):
    for bad in ("bad//id", "a/b/c", "", "-starts-with-dash/x", "name with space"):
        with pytest.raises(ValueError, match="repo_id"):
            publish(full_run, bad)
    assert hub.requests == []


def test_no_token_against_the_real_hub_says_how_to_log_in(full_run, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # hf_galaxy.hub.publish is the function; the module is in sys.modules
    monkeypatch.setattr(importlib.import_module("hf_galaxy.hub.publish"), "get_token", lambda: None)

    def no_network(*args, **kwargs):
        raise AssertionError("no request may be sent")

    monkeypatch.setattr(HfApi, "create_repo", no_network)
    with pytest.raises(PublishError, match="hf auth login"):
        publish(full_run, "someone/model", endpoint="https://huggingface.co")


def test_offline_mode_refuses_to_push_but_allows_dry_run(full_run, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE"):
        publish(full_run, "tester/offline", endpoint="http://127.0.0.1:9", token="x")
    assert publish(full_run, "tester/offline", dry_run_dir=tmp_path / "dry").files


def test_invalid_card_fails_before_upload_and_names_the_key(tmp_path, hub):
    run = make_output_dir(tmp_path / "run")
    with pytest.raises(CardValidationError, match="'license'"):
        publish(run, "tester/badcard", license="not-a-license")
    assert hub.requests == []


def test_refuses_directories_without_model_or_label_maps(tmp_path, full_run):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        publish(tmp_path / "missing", "tester/x", dry_run_dir=tmp_path / "d0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no trained model"):
        publish(empty, "tester/x", dry_run_dir=tmp_path / "d1")

    from transformers import ViTConfig, ViTForImageClassification

    unlabeled = tmp_path / "unlabeled"
    ViTForImageClassification(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=32,
            patch_size=8,
            num_labels=6,
        )
    ).save_pretrained(unlabeled)
    tiny_processor().save_pretrained(unlabeled)
    with pytest.raises(ValueError, match="label maps"):
        publish(unlabeled, "tester/x", dry_run_dir=tmp_path / "d2")

    no_processor = tmp_path / "no_processor"
    tiny_vit().save_pretrained(no_processor)
    with pytest.raises(ValueError, match="image processor"):
        publish(no_processor, "tester/x", dry_run_dir=tmp_path / "d3")

    bin_only = tmp_path / "bin_only"
    bin_only.mkdir()
    (bin_only / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="safetensors"):
        publish(bin_only, "tester/x", dry_run_dir=tmp_path / "d4")
    with pytest.raises(ValueError, match="no LoRA adapter"):
        publish(full_run, "tester/x", dry_run_dir=tmp_path / "d5", push_adapter=True)


def test_adapter_only_records_the_hub_base_model(tmp_path, hub, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    base_dir = tmp_path / "base"
    tiny_vit().save_pretrained(base_dir)
    tiny_processor().save_pretrained(base_dir)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("tester/tiny-vit-base")
    api.upload_folder(repo_id="tester/tiny-vit-base", folder_path=base_dir)
    run = make_lora_output_dir(tmp_path / "run", "tester/tiny-vit-base")

    result = publish(run, "tester/gz1-adapter", push_adapter=True)
    assert result.adapter
    remote = hub.files("tester/gz1-adapter")
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "preprocessor_config.json",
        "README.md",
    } <= set(remote)
    assert "model.safetensors" not in remote and "config.json" not in remote
    card = ModelCard.load("tester/gz1-adapter")
    assert card.data.library_name == "peft" and card.data.base_model == "tester/tiny-vit-base"

    base = AutoModelForImageClassification.from_pretrained("tester/tiny-vit-base")
    model = PeftModel.from_pretrained(base, "tester/gz1-adapter").eval()
    images = galaxy_images(2)
    with torch.no_grad():
        pulled = model(**tiny_processor()(images=images, return_tensors="pt")).logits
    torch.testing.assert_close(pulled, _local_logits(run, images), rtol=1e-5, atol=1e-5)

    import re

    snippet = re.findall(r"```python\n(.*?)```", card.text, flags=re.S)[
        0
    ]  # the card's "how to use" runs as written
    monkeypatch.chdir(tmp_path)
    images[0].save(tmp_path / "galaxy.jpg")
    exec(compile(snippet, "README.md", "exec"), {})


def test_adapter_only_needs_a_hub_base_model(lora_run, tmp_path):
    with pytest.raises(ValueError, match="not a Hub repo id"):
        publish(lora_run, "tester/x", push_adapter=True, dry_run_dir=tmp_path / "d")


def test_lora_output_without_merged_model_is_merged_for_publishing(tmp_path):
    base_dir = tmp_path / "base"
    tiny_vit().save_pretrained(base_dir)
    run = make_lora_output_dir(tmp_path / "run", base_dir, save_merged=False)
    reference_run = make_lora_output_dir(tmp_path / "ref", base_dir, save_merged=True)
    assert not (run / "model.safetensors").exists()
    with pytest.raises(ValueError, match="merge_lora is off"):
        publish(run, "tester/x", merge_lora=False, dry_run_dir=tmp_path / "d0")
    dry = tmp_path / "dry"
    publish(run, "tester/merged", dry_run_dir=dry)
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(file_tree(dry))
    images = galaxy_images(2)
    torch.testing.assert_close(
        _local_logits(dry, images), _local_logits(reference_run, images), rtol=1e-5, atol=1e-5
    )

    from hf_galaxy.hub import GalaxyCardData

    card = GalaxyCardData.load(run)
    card.base_model, card.model_config = None, "vit-tiny"  # random base: the adapter alone cannot be merged
    card.save(run)
    with pytest.raises(ValueError, match="cannot be merged again"):
        publish(run, "tester/merged", dry_run_dir=tmp_path / "d1")


def test_card_snippet_runs_as_written_and_offline_cache_works(full_run, hub, tmp_path, monkeypatch):
    import re

    publish(full_run, "tester/snippet")
    readme = hub.files("tester/snippet")["README.md"].decode()
    snippets = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(snippets) == 2 and 'model="tester/snippet"' in snippets[0]
    monkeypatch.chdir(tmp_path)
    galaxy_images(1)[0].save(tmp_path / "galaxy.jpg")
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {})

    folder = pull("tester/snippet")
    hub.stop()  # the Hub is gone: loading must come from the local cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    from transformers import pipeline

    classifier = pipeline("image-classification", model="tester/snippet")
    image = galaxy_images(1)[0]
    assert classifier(image, top_k=6) == pipeline("image-classification", model=str(full_run))(image, top_k=6)
    assert pull("tester/snippet") == folder


def test_trainer_path_ends_with_the_same_card(full_run, hub, tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        push_to_hub=True,
        hub_model_id="tester/trainer-path",
        hub_private_repo=True,
        hub_token=TOKEN,
        report_to=[],
    )
    result = publish_from_training_args(full_run, args)
    assert result.repo_id == "tester/trainer-path" and hub.repo("tester/trainer-path").private
    publish(full_run, "tester/trainer-path", dry_run_dir=tmp_path / "dry")
    assert hub.files("tester/trainer-path")["README.md"] == (tmp_path / "dry" / "README.md").read_bytes()


def test_cli_publish_dry_run_and_push(full_run, hub, tmp_path, capsys):
    from hf_galaxy.cli import main

    assert main(["publish", str(full_run), "tester/cli", "--dry-run", str(tmp_path / "dry")]) == 0
    assert "dry run" in capsys.readouterr().out
    assert main(["publish", str(full_run), "tester/cli", "--endpoint", hub.endpoint, "--private"]) == 0
    assert "published the model" in capsys.readouterr().out
    assert hub.repo("tester/cli").private
    assert main(["publish", str(full_run), "not a repo id"]) == 2
    assert "invalid repo_id" in capsys.readouterr().err


def test_published_card_parses_with_correct_metrics_and_labels(full_run, hub):
    publish(full_run, "tester/card")
    info = HfApi(endpoint=hub.endpoint).model_info("tester/card")
    assert info.card_data["pipeline_tag"] == "image-classification"
    card = ModelCard.load("tester/card")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"accuracy": 0.5, "f1": 0.4167, "ece": 0.1234, "rmse": 0.2101}
    assert card.data.eval_results[0].dataset_split == "test"
    for name in GZ1_CLASSES:
        assert f"`{name}`" in card.text
    assert os.path.basename("/data/private/GalaxyZoo1_DR_table2.csv") in card.text
    assert "/data/private" not in card.text


def _files_mentioning(folder: Path, *needles: str) -> dict[str, list[str]]:
    """Every file under ``folder`` whose bytes contain one of ``needles`` -> the needles it contains."""
    found = {}
    for name, data in file_tree(folder).items():
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[name] = hits
    return found


def test_no_pushed_file_carries_a_local_path(lora_run, tmp_path_factory, tmp_path):
    """The card text hid the catalogue path, but hf_galaxy_card.json (and the merged model's base) carried local
    paths: every published file must be free of them, and the published card data must render the same card."""
    import json
    import shutil

    from hf_galaxy.hub import GalaxyCardData, render_model_card

    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    card = GalaxyCardData.load(run)
    card.dataset["source"] = str(tmp_path / "data" / "saved_dsd")
    card.dataset["image_dir"] = str(tmp_path / "cutouts")
    card.hyperparameters["fsdp_config"] = str(tmp_path / "fsdp.json")
    card.extra["notes"] = {"catalogs": [str(tmp_path / "extra.csv"), "C:\\Users\\me\\gz1.csv"]}
    card.save(run)
    (run / "all_results.json").write_text(
        json.dumps({"test_accuracy": 0.5, "data": str(tmp_path / "x.fits")})
    )
    basetemp = str(tmp_path_factory.getbasetemp())
    assert basetemp in json.dumps(card.to_dict()) and basetemp in str(card.base_model)

    before = _digest(run)
    dry = tmp_path / "dry"
    publish(run, "tester/no-paths", dry_run_dir=dry)
    assert _digest(run) == before, "publish never writes into the output directory"
    assert _files_mentioning(dry, basetemp, "/data/private", "C:\\", "\\Users") == {}
    published = json.loads((dry / "hf_galaxy_card.json").read_text())
    assert published["dataset"]["catalog"] == "GalaxyZoo1_DR_table2.csv"
    assert published["dataset"]["source"] == "saved_dsd" and published["dataset"]["image_dir"] == "cutouts"
    assert published["extra"]["notes"]["catalogs"] == ["extra.csv", "gz1.csv"]
    assert published["base_model"] == "base" and published["extra"]["base_model_is_local"] is True
    assert published["dataset"]["release"] == "Galaxy Zoo 1" and published["label_names"] == GZ1_CLASSES
    assert json.loads((dry / "all_results.json").read_text()) == {"test_accuracy": 0.5, "data": "x.fits"}
    assert "`base` (a local checkpoint)" in (dry / "README.md").read_text()
    # the base name of a local base model is never taken for a Hub id when the published card data is rendered
    again = render_model_card(dry, card_data=GalaxyCardData.load(dry), repo_id="tester/no-paths")
    assert "base_model" not in ModelCard(again).data.to_dict()


def test_local_path_detection():
    from hf_galaxy.hub.sanitize import basename, looks_like_local_path, strip_local_paths

    for path in ("/data/x.csv", "~/gz/cat.csv", "./runs/a", "../b", "C:\\gz\\cat.csv", "data/sub/cat.csv",
                 "data/cat.csv", "cutouts\\img.png"):  # fmt: skip
        assert looks_like_local_path(path), path
    for value in ("google/vit-base-patch16-224-in21k", "tester/model", "Galaxy Zoo 1", "https://huggingface.co/a/b",
                  "synthetic:600", "vit-tiny", "", "ViTConfig(hidden_size=32, patch_size=8)"):  # fmt: skip
        assert not looks_like_local_path(value), value
    assert basename("C:\\gz\\cat.csv") == "cat.csv" and basename("/data/private/") == "private"
    data = {"a": ["/x/y.csv", 1, None, {"b": "/z"}], "hub": "user/model"}
    assert strip_local_paths(data) == {"a": ["y.csv", 1, None, {"b": "z"}], "hub": "user/model"}
    assert strip_local_paths(data, keep=lambda where: where == ("a", "0")) == {
        "a": ["/x/y.csv", 1, None, {"b": "z"}],
        "hub": "user/model",
    }


def _run_tiny_lora_recipe(tmp_path: Path, *extra: str):
    """Train recipes/vit_lora.py on a tiny in-memory dataset for 3 steps; returns (output_dir, dataset)."""
    import importlib.util

    from tests.galaxy_tiny import tiny_dataset_dict

    data = tmp_path / "dsd"
    dsd = tiny_dataset_dict(n_per_class=3)
    dsd.save_to_disk(str(data))
    spec = importlib.util.spec_from_file_location(
        "vit_lora", Path(__file__).parents[1] / "recipes" / "vit_lora.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out = tmp_path / "out"
    argv = ["--dataset", str(data), "--model_config", "vit-tiny", "--output_dir", str(out), "--max_steps", "3",
            "--per_device_train_batch_size", "6", "--logging_steps", "1", "--eval_strategy", "steps",
            "--eval_steps", "2", "--save_strategy", "no", "--report_to", "none", "--num_grid_images", "4",
            "--lora_r", "4", *extra]  # fmt: skip
    recipe.main(*recipe.make_parser().parse(argv))
    return out, dsd


@pytest.mark.slow
def test_vit_lora_recipe_run_publishes_and_pulls_back_identically(tmp_path, hub):
    """Done-when check: train with recipes/vit_lora.py (tiny config, few steps), publish, pull with pipeline."""
    import json

    from transformers import pipeline

    out, dsd = _run_tiny_lora_recipe(tmp_path)
    assert (
        ModelCard.load(out / "README.md").data.pipeline_tag == "image-classification"
    )  # card written locally
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "model.safetensors").is_file()
    before = _digest(out)

    result = publish(out, "tester/vit-lora-e2e", dry_run_dir=tmp_path / "dry")
    publish(out, "tester/vit-lora-e2e")
    assert _digest(out) == before
    pushed = {k: v for k, v in hub.files("tester/vit-lora-e2e").items() if k != ".gitattributes"}
    assert file_tree(tmp_path / "dry") == pushed and sorted(pushed) == result.files

    remote = pipeline("image-classification", model="tester/vit-lora-e2e")
    local = pipeline("image-classification", model=str(out))
    for row in dsd["test"].select(range(4)):
        assert remote(row["image"], top_k=6) == local(row["image"], top_k=6)

    card = ModelCard.load("tester/vit-lora-e2e")
    recorded = json.loads((out / "hf_galaxy_card.json").read_text())["eval_results"]
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert results["f1"] == pytest.approx(recorded["macro_f1"], abs=1e-6)
    assert results["ece"] == pytest.approx(recorded["ece"], abs=1e-6)
    assert card.data.library_name == "transformers" and "lora" in card.data.tags
    for name in GZ1_CLASSES:
        assert f"`{name}`" in card.text
    with pytest.raises(ValueError, match="built from a config"):
        publish(out, "tester/vit-lora-e2e-adapter", push_adapter=True, dry_run_dir=tmp_path / "dry2")


@pytest.mark.slow
def test_recipe_push_to_hub_publishes_once_with_the_generated_card(tmp_path, hub):
    """The Trainer path (--push_to_hub, --hub_model_id) ends with the same card and file set as publish()."""
    out, _ = _run_tiny_lora_recipe(tmp_path, "--push_to_hub", "true", "--hub_model_id", "tester/vit-pushed")
    remote = hub.files("tester/vit-pushed")
    assert "training_args.bin" not in remote and not any(k.startswith("checkpoint-") for k in remote)
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= set(remote)
    publish(out, "tester/vit-pushed", dry_run_dir=tmp_path / "dry")
    assert remote["README.md"] == (tmp_path / "dry" / "README.md").read_bytes()
    titles = [c.title for c in HfApi(endpoint=hub.endpoint).list_repo_commits("tester/vit-pushed")]
    assert len(titles) == 2  # the repo's initial commit and one publish


def test_detection_model_publishes_and_pulls_with_object_detection_pipeline(tmp_path, hub):
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor, pipeline

    from hf_galaxy.hub import GalaxyCardData

    out = tmp_path / "detr-run"
    torch.manual_seed(0)
    config = YolosConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=[32, 32],
        patch_size=8, num_detection_tokens=5, num_labels=1, id2label={0: "galaxy"}, label2id={"galaxy": 0},
    )  # fmt: skip
    YolosForObjectDetection(config).save_pretrained(out)
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 32}).save_pretrained(out)
    GalaxyCardData(
        task="object-detection",
        model_config="yolos-tiny",
        dataset={"release": "Galaxy Zoo DECaLS", "split_sizes": {"train": 8, "test": 2}},
        eval_results={"map": 0.25, "map_50": 0.5},
    ).save(out)
    result = publish(out, "tester/galaxy-detector")
    assert "hf_galaxy_card.json" in result.files
    image = galaxy_images(1)[0]
    remote = pipeline("object-detection", model="tester/galaxy-detector")(image, threshold=0.0)
    assert remote and remote == pipeline("object-detection", model=str(out))(image, threshold=0.0)
    card = ModelCard.load("tester/galaxy-detector")
    assert card.data.pipeline_tag == "object-detection"
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"map": 0.25, "map_50": 0.5}
    assert "| 0 | `galaxy` |" in card.text  # label names came from config.json


def test_cli_predict_with_a_hub_repo_id_matches_the_local_model(full_run, hub, tmp_path):
    """`hf-galaxy predict --model REPO_ID` downloads the published repo and predicts exactly as the local dir."""
    import pandas as pd

    from hf_galaxy.cli import main

    publish(full_run, "tester/gz1-predict")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(galaxy_images(4)):
        image.save(folder / f"g{i}.png")
    assert (
        main(["predict", str(folder), "--model", "tester/gz1-predict", "--output", str(tmp_path / "hub.csv")])
        == 0
    )
    assert (
        main(["predict", str(folder), "--model", str(full_run), "--output", str(tmp_path / "local.csv")]) == 0
    )
    from_hub, local = pd.read_csv(tmp_path / "hub.csv"), pd.read_csv(tmp_path / "local.csv")
    assert len(from_hub) == 4 and list(from_hub.columns[:2]) == ["id", "predicted_class"]
    pd.testing.assert_frame_equal(from_hub, local)
