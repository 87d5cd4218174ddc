"""Whole-tree models end to end: the recipes train them on the synthetic GZ DECaLS tree (LoRA and full
fine-tunes, both losses), they evaluate per question, publish (dry run and loopback Hub) and are pulled back
with identical per-question predictions; flips swap chiral answers' counts; predictions are per-question
fractions everywhere (Python helper, ``hf-galaxy predict``, TTA)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard

from hf_galaxy.data.catalogs.trees import GZ1_TREE, GZD5_TREE
from hf_galaxy.data.tree import TREE_CONFIG_KEY, TreeLayout, set_tree_config, tree_layout_of
from hf_galaxy.hub import publish
from tests.galaxy_tiny import TINY_VIT, load_recipe
from tests.hub_helpers import file_tree, loopback_hub

GZD5 = TreeLayout.from_tree(GZD5_TREE)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with loopback_hub(tmp_path / "hub", monkeypatch) as server:
        yield server


def _recipe(
    name: str, out: Path, data_dir: Path, *extra: str, model: tuple = ("--model_config", TINY_VIT)
) -> Path:
    recipe = load_recipe(name)
    argv = ["--dataset", "synthetic:48", "--label_scheme", "tree", "--synthetic_image_size", "32",
            "--data_dir", str(data_dir), *model, "--output_dir", str(out), "--max_steps", "3",
            "--per_device_train_batch_size", "8", "--eval_strategy", "steps", "--eval_steps", "3",
            "--save_strategy", "no", "--report_to", "none", "--num_grid_images", "4", "--use_cpu", "true",
            *extra]  # fmt: skip
    recipe.main(*recipe.make_parser().parse(argv))
    return out


@pytest.fixture(scope="module")
def lora_tree_run(tmp_path_factory) -> Path:
    from tests.hub_helpers import tiny_processor, tiny_vit

    root = tmp_path_factory.mktemp("tree_lora")
    tiny_vit().save_pretrained(root / "base")  # a checkpoint on disk: the adapter names it as its base
    tiny_processor().save_pretrained(root / "base")
    model = ("--model_name_or_path", str(root / "base"))
    return _recipe("vit_lora", root / "out", root / "data", "--lora_r", "4", model=model)


def _images(data_dir: Path, k: int = 5) -> list[Path]:
    return sorted((data_dir / "images").glob("*.jpg"))[:k]


def _fractions(model, processor, images) -> np.ndarray:
    from hf_galaxy.inference import output_probs

    with torch.no_grad():
        logits = model(**processor(images=images, return_tensors="pt")).logits
    return output_probs(model, logits).numpy()


@pytest.mark.slow
def test_lora_tree_recipe_trains_evaluates_publishes_and_pulls_back_identically(lora_tree_run, hub, tmp_path):
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_galaxy.cli import main
    from hf_galaxy.inference import predict_vote_fractions

    out = lora_tree_run
    config = json.loads((out / "config.json").read_text())
    assert (
        TreeLayout.from_dict(config[TREE_CONFIG_KEY]) == GZD5
        and config[TREE_CONFIG_KEY]["loss"] == "dirichlet"
    )
    assert [config["id2label"][str(i)] for i in range(34)] == GZD5.answer_names
    results = json.loads((out / "test_results.json").read_text())
    for q in GZD5.questions:
        assert {f"test_{q}_rmse", f"test_{q}_mae", f"test_{q}_calibration", f"test_{q}_answered"} <= set(
            results
        )
    assert results["test_smooth-or-featured_answered"] == results["test_samples"]  # the root: every galaxy
    assert (out / "tree_fractions.png").is_file() and (out / "sample_grid.png").is_file()
    assert not (out / "confusion_matrix.png").exists()
    card = ModelCard.load(out / "README.md")
    assert "## Questions" in card.text and "predict_vote_fractions" in card.text
    for q in GZD5.questions:
        assert f"| `{q}` |" in card.text
    rmse = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert rmse["Vote-fraction RMSE (every question)"] == pytest.approx(results["test_tree_rmse"], abs=1e-6)

    dry = publish(out, "tester/gzd5-tree", dry_run_dir=tmp_path / "dry")
    publish(out, "tester/gzd5-tree")
    pushed = {k: v for k, v in hub.files("tester/gzd5-tree").items() if k != ".gitattributes"}
    assert file_tree(tmp_path / "dry") == pushed and sorted(pushed) == dry.files

    images = [Image.open(p).convert("RGB") for p in _images(out.parent / "data")]
    remote = AutoModelForImageClassification.from_pretrained("tester/gzd5-tree").eval()  # no remote code
    assert tree_layout_of(remote.config) == GZD5
    local = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    pulled = _fractions(remote, AutoImageProcessor.from_pretrained("tester/gzd5-tree"), images)
    np.testing.assert_array_equal(pulled, _fractions(local, processor, images))
    for s in GZD5.slices():
        np.testing.assert_allclose(pulled[:, s].sum(axis=1), 1.0, atol=1e-6)

    from_hub = predict_vote_fractions("tester/gzd5-tree", images)
    pd.testing.assert_frame_equal(from_hub, predict_vote_fractions(out, images))  # identical, pulled or local
    # hf-galaxy's own preprocessing matches the image processor's to float rounding
    np.testing.assert_allclose(from_hub.drop(columns="id").to_numpy(), pulled, atol=1e-6)
    assert list(from_hub.columns) == ["id", *(f"{a}_fraction" for a in GZD5.answer_names)]
    # the adapter folder restores the tree too, and predicts what the merged model predicts
    adapter = predict_vote_fractions(out / "adapter", images).drop(columns="id").to_numpy()
    np.testing.assert_allclose(adapter, pulled, atol=1e-5)

    # hf-galaxy evaluate scores the same test galaxies per question as the training run did
    assert main(["evaluate", "--model", str(out), "--dataset", "synthetic:48", "--label_scheme", "tree",
                 "--synthetic_image_size", "32", "--output_dir", str(tmp_path / "ev")]) == 0  # fmt: skip
    scored = json.loads((tmp_path / "ev" / "test_results.json").read_text())
    for key in (
        "test_tree_rmse",
        "test_bar_rmse",
        "test_merging_calibration",
        "test_spiral-arm-count_answered",
    ):
        assert scored[key] == pytest.approx(results[key], abs=1e-5)
    assert (tmp_path / "ev" / "test_tree_fractions.png").is_file()

    folder = tmp_path / "cutouts"
    folder.mkdir()
    for i, img in enumerate(images):
        img.save(folder / f"g{i}.png")
    assert (
        main(["predict", str(folder), "--model", "tester/gzd5-tree", "--output", str(tmp_path / "p.csv")])
        == 0
    )
    csv = pd.read_csv(tmp_path / "p.csv")
    assert list(csv.columns) == list(from_hub.columns) and len(csv) == len(images)
    np.testing.assert_allclose(csv.drop(columns="id").to_numpy(), pulled, atol=1e-5)


@pytest.mark.slow
def test_full_fine_tune_with_soft_ce_and_tta(tmp_path):
    from hf_galaxy import finetune

    result = finetune(
        "synthetic:40", TINY_VIT, tmp_path / "out", lora=False, label_scheme="tree", tree_loss="soft_ce",
        synthetic_image_size=32, data_dir=str(tmp_path / "data"), max_steps=2, per_device_train_batch_size=8,
        eval_strategy="no", report_to="none", use_cpu=True, tta=True, tta_rotations="0,90",
    )  # fmt: skip
    m = result.metrics
    assert json.loads((tmp_path / "out" / "config.json").read_text())[TREE_CONFIG_KEY]["loss"] == "soft_ce"
    assert {"test_tree_rmse", "test_tta_tree_rmse", "test_tta_bar_rmse"} <= set(m)
    assert "test_tta_loss" not in m  # the TTA pass's loss is not the training loss
    assert 0 <= m["test_tta_tree_rmse"] <= 1


def test_tree_options_that_do_not_fit_are_one_line_errors(tmp_path):
    from hf_galaxy import finetune
    from tests.galaxy_tiny import tiny_dataset_dict

    with pytest.raises(ValueError, match="--soft_labels does not apply to a whole-tree dataset"):
        finetune("synthetic:24", TINY_VIT, tmp_path / "o", label_scheme="tree", soft_labels=True,
                 synthetic_image_size=32, data_dir=str(tmp_path / "d"), max_steps=1, use_cpu=True)  # fmt: skip
    with pytest.raises(ValueError, match="--label_scheme tree: the dataset has no 'counts' column"):
        finetune(tiny_dataset_dict(n_per_class=1), TINY_VIT, tmp_path / "o2", label_scheme="tree", max_steps=1,
                 use_cpu=True)  # fmt: skip
    with pytest.raises(ValueError, match="--tree_loss must be 'dirichlet' or 'soft_ce'"):
        finetune(tiny_dataset_dict(n_per_class=1), TINY_VIT, tmp_path / "o3", tree_loss="mse")


def test_flip_swaps_the_counts_of_mirror_image_answers():
    from PIL import Image

    from hf_galaxy.data.transforms import AugmentConfig, TreeTransform
    from hf_galaxy.models.loading import default_image_processor

    processor = default_image_processor("vit", 32)
    gz1 = TreeLayout.from_tree(GZ1_TREE)
    flips_only = AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0, flip=True)
    transform = TreeTransform(processor, gz1.answer_names, train=True, augment=flips_only)
    image = Image.new("RGB", (32, 32))
    image.paste((255, 255, 255), (0, 0, 8, 32))  # a bright left edge: a mirrored image has it on the right
    counts = [1, 7, 2, 3, 4, 5]  # elliptical, cw, acw, edge-on, star, merger
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        batch = transform({"image": [image], "counts": [counts]})
        pixels = batch["pixel_values"][0]
        mirrored = bool(pixels[:, :, -4:].mean() > pixels[:, :, :4].mean())
        seen.add(mirrored)
        expected = [1, 2, 7, 3, 4, 5] if mirrored else counts
        assert batch["counts"][0].tolist() == expected
    assert seen == {True, False}  # both cases were drawn
    # the GZD-5 tree has no handed answer: a flip keeps every count where it is
    decals = TreeTransform(processor, GZD5.answer_names, train=True)
    assert decals.augment.flip and decals.augment.permutation == list(range(34))
    batch = decals({"image": [Image.new("RGB", (40, 40))], "counts": [list(range(34))]})
    assert batch["counts"][0].dtype == torch.float32 and sorted(batch["counts"][0].tolist()) == list(
        range(34)
    )


def test_output_probs_are_per_question_fractions_for_tree_models_only():
    from transformers import ViTConfig, ViTForImageClassification

    from hf_galaxy.inference import output_probs

    torch.manual_seed(0)
    logits = torch.randn(3, 34) * 3
    model = ViTForImageClassification(ViTConfig(num_labels=34, hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=37, image_size=32,
                                                 patch_size=8))  # fmt: skip
    softmax = output_probs(model, logits)
    np.testing.assert_allclose(softmax.sum(dim=1).numpy(), 1.0, atol=1e-6)
    set_tree_config(model.config, GZD5, "dirichlet")
    fractions = output_probs(model, logits)
    alpha = 1 + 99 * torch.sigmoid(logits)
    for s in GZD5.slices():
        torch.testing.assert_close(fractions[:, s], alpha[:, s] / alpha[:, s].sum(dim=1, keepdim=True))
    set_tree_config(model.config, GZD5, "soft_ce")
    for s in GZD5.slices():
        torch.testing.assert_close(output_probs(model, logits)[:, s], logits[:, s].softmax(dim=1))
    with pytest.raises(ValueError, match="the model has 34 outputs; the tree 'gz1' has 6"):
        set_tree_config(model.config, TreeLayout.from_tree(GZ1_TREE), "dirichlet")


def test_training_transform_reads_counts_and_the_loss_ignores_unanswered_questions():
    from hf_galaxy.training.tree import collate_tree
    from hf_galaxy.training.tree_loss import tree_loss

    batch = collate_tree([{"pixel_values": torch.zeros(3, 4, 4), "counts": [1.0] * 34} for _ in range(2)])
    assert batch["counts"].shape == (2, 34)
    outputs = torch.randn(2, 34, requires_grad=True)
    counts = torch.zeros(2, 34)
    counts[:, GZD5.slices()[0]] = torch.tensor([5.0, 3.0, 0.0])  # only the first question answered
    for loss in ("dirichlet", "soft_ce"):
        (grad,) = torch.autograd.grad(tree_loss(outputs, counts, GZD5.slices(), loss), outputs)
        assert grad[:, 3:].abs().sum() == 0 and grad[:, :3].abs().sum() > 0


@pytest.mark.slow
def test_ensemble_of_tree_models_averages_each_questions_fractions(tmp_path, capsys):
    from hf_galaxy.ensemble import GalaxyEnsemble, predict_members
    from hf_galaxy.metrics import tree_metrics
    from hf_galaxy.training import DataArguments, load_training_data

    recipe = load_recipe("ensemble")
    out = tmp_path / "ens"
    args = recipe.make_parser().parse(
        [
            "--config", str(Path(recipe.__file__).parent / "configs" / "ensemble_tiny.yaml"),
            "--dataset", "synthetic:48", "--label_scheme", "tree", "--synthetic_image_size", "32",
            "--model_config", TINY_VIT, "--n_members", "2", "--max_steps", "2", "--output_dir", str(out),
            "--data_dir", str(tmp_path / "data"), "--per_device_eval_batch_size", "16", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    results = recipe.main(*args)
    assert "tree_rmse" in capsys.readouterr().out
    rows = {r["model"]: r for r in results["rows"]}
    assert set(rows) >= {"mean of members", "ensemble (soft)"} and len(rows) == 4

    ens = GalaxyEnsemble.from_pretrained(out)
    assert ens.load() and ens.tree == GZD5
    test = load_training_data(
        "synthetic:48", DataArguments(label_scheme="tree", synthetic_image_size=32), data_dir=tmp_path / "data",
        seed=42,
    )["test"]  # fmt: skip
    preds = predict_members(ens.load(), test, progress=False)
    combined = ens.combine(preds.member_probs)
    np.testing.assert_allclose(combined, preds.member_probs.mean(axis=0))  # each question's mean fraction
    for s in GZD5.slices():
        np.testing.assert_allclose(combined[:, s].sum(axis=1), 1.0, atol=1e-6)
    expected = tree_metrics(combined, preds.counts, GZD5)["tree_rmse"]
    assert rows["ensemble (soft)"]["tree_rmse"] == pytest.approx(expected, abs=1e-9)
    with pytest.raises(
        ValueError, match="an ensemble of whole-tree models averages each question's vote fractions"
    ):
        GalaxyEnsemble.from_loaded(ens.load(), method="stacking")
