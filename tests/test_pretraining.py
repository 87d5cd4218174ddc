"""Masked-autoencoder pretraining (recipes/vit_mae.py): unlabelled inputs, the exported encoder, fine-tuning
from it and its provenance in the cards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_galaxy.training.arguments import PretrainArguments
from hf_galaxy.training.pretraining import export_encoder, mae_config, unlabelled_images
from tests.galaxy_tiny import load_recipe, save_tiny_dataset, tiny_dataset_dict


def _image_folder(root: Path, n: int = 12, corrupt: int = 0) -> Path:
    """A flat folder of galaxy-like images (no labels), plus ``corrupt`` unreadable files."""
    root.mkdir(parents=True, exist_ok=True)
    images = tiny_dataset_dict(n_per_class=2, size=40, seed=3)["train"]["image"][:n]
    for i, img in enumerate(images):
        img.save(root / f"g{i:03d}.png")
    for i in range(corrupt):
        (root / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    return root


def test_unlabelled_images_mixes_sources_and_counts_unreadable_files(tmp_path) -> None:
    folder = _image_folder(tmp_path / "cutouts", n=10, corrupt=2)
    saved = save_tiny_dataset(tmp_path / "prepared", n_per_class=1, size=32)  # 6 rows in each of 3 splits
    images, report = unlabelled_images([folder, saved], image_size=24, work_dir=tmp_path)
    assert report["images_per_source"] == {str(folder): 10, str(saved): 18}
    assert len(images) == report["n_images"] == 28
    assert sorted(gid for gid, _ in report["skipped"]) == ["broken0", "broken1"]
    assert all(f"{gid}.jpg" in reason and "unreadable" in reason for gid, reason in report["skipped"])
    sizes = {
        source: {img.size for img in images.filter(lambda r, s=source: r["source"] == s)["image"]}
        for source in (str(folder), str(saved))
    }
    assert sizes == {str(folder): {(24, 24)}, str(saved): {(32, 32)}}  # files are prepared, datasets kept
    assert set(images.column_names) == {"id", "image", "source"}


def test_unlabelled_images_needs_a_source() -> None:
    with pytest.raises(ValueError, match="--dataset is required"):
        unlabelled_images([], image_size=32)


def test_unlabelled_images_reads_catalogues_without_labels_and_counts_missing_cutouts(tmp_path) -> None:
    """A catalogue's rows are all used whatever their votes; a missing cut-out is a counted skip; a folder of
    only unreadable files contributes nothing and stops nothing; --image_dir applies to catalogues only."""
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 20, seed=1, image_size=48, show_progress=False)
    victim = sorted(Path(zoo.image_dir).glob("*.jpg"))[0]
    victim.unlink()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"\x89PNG not really")
    folder = _image_folder(tmp_path / "cutouts", n=4)
    images, report = unlabelled_images(
        [zoo.catalog_path, broken, folder], image_size=32, image_dir=zoo.image_dir, work_dir=tmp_path
    )
    assert report["images_per_source"] == {str(zoo.catalog_path): 19, str(broken): 0, str(folder): 4}
    reasons = dict(report["skipped"])
    assert victim.stem in reasons and "missing image file" in reasons[victim.stem]
    assert "x" in reasons and len(report["skipped"]) == 2
    with pytest.raises(ValueError, match="no readable images.*1 unreadable"):
        unlabelled_images([broken], image_size=32)


def test_mae_config_follows_the_vit_preset_and_rejects_cnns() -> None:
    config = mae_config("vit-tiny", image_size=48, mask_ratio=0.6, norm_pix_loss=False)
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size, config.image_size) == (
        32,
        2,
        8,
        48,
    )
    assert config.mask_ratio == 0.6 and config.norm_pix_loss is False
    assert config.decoder_hidden_size == 32 and config.decoder_num_hidden_layers == 2
    assert (
        mae_config(
            '{"hidden_size": 32, "num_attention_heads": 2, "decoder_hidden_size": 16}', 32, 0.75, True
        ).decoder_hidden_size
        == 16
    )
    with pytest.raises(ValueError, match="needs a ViT.*resnet"):
        mae_config("resnet-mini", 64, 0.75, True)
    with pytest.raises(ValueError, match="decoder_hiden_size"):
        mae_config("vit-tiny,decoder_hiden_size=8", 32, 0.75, True)


def test_pretrain_arguments_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="--mask_ratio"):
        PretrainArguments(dataset=["x"], mask_ratio=1.0)
    assert PretrainArguments(dataset="one/folder").dataset == ["one/folder"]


def test_exported_encoder_computes_what_the_mae_encoder_computes() -> None:
    """With nothing masked and the patches in order, ViTMAE's encoder and the exported ViTModel agree."""
    from transformers import ViTMAEForPreTraining

    torch.manual_seed(0)
    mae = ViTMAEForPreTraining(mae_config("vit-tiny", 32, 0.75, True)).eval()
    encoder = export_encoder(mae, {"method": "mae"}).eval()
    assert encoder.config.hf_galaxy_pretraining == {"method": "mae"}
    x = torch.randn(2, 3, 32, 32)
    mae.config.mask_ratio = 0.0
    noise = torch.arange(16, dtype=torch.float32).repeat(2, 1)  # keeps every patch, in order
    with torch.no_grad():
        expected = mae.vit(pixel_values=x, noise=noise).last_hidden_state
        got = encoder(pixel_values=x).last_hidden_state
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory) -> Path:
    """vit_mae.py on an unlabelled folder plus a prepared DatasetDict, 2 epochs of a vit-tiny MAE."""
    root = tmp_path_factory.mktemp("mae")
    folder = _image_folder(root / "cutouts", n=12, corrupt=1)
    saved = save_tiny_dataset(root / "prepared", n_per_class=2, size=32)
    recipe = load_recipe("vit_mae")
    out = root / "encoder"
    args = recipe.make_parser().parse(
        [
            "--config", str(Path(__file__).parents[1] / "recipes/configs/vit_mae.yaml"),
            "--dataset", str(folder), str(saved),
            "--model_config", "vit-tiny", "--image_size", "32",
            "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--logging_steps", "1",
            "--output_dir", str(out), "--use_cpu", "true", "--disable_tqdm", "true",
        ]
    )  # fmt: skip
    recipe.main(*args)
    return out


@pytest.mark.slow
def test_mae_recipe_saves_an_encoder_with_its_provenance_and_card(mae_run) -> None:
    from huggingface_hub import ModelCard
    from transformers import ViTMAEForPreTraining, ViTModel

    config = json.loads((mae_run / "config.json").read_text())
    assert config["model_type"] == "vit" and config["architectures"] == ["ViTModel"]
    provenance = config["hf_galaxy_pretraining"]
    assert provenance["method"] == "mae" and provenance["n_images"] == 12 + 24
    assert provenance["images_per_source"] == {"cutouts": 12, "prepared": 24}
    assert provenance["mask_ratio"] == 0.75 and provenance["epochs"] == 2
    encoder = ViTModel.from_pretrained(mae_run, add_pooling_layer=False)
    mae = ViTMAEForPreTraining.from_pretrained(mae_run / "mae")
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, mae.state_dict()["vit." + name], msg=name)
    trained = ViTMAEForPreTraining(mae.config).state_dict()
    assert not torch.equal(
        trained["vit.layers.0.mlp.fc1.weight"], mae.state_dict()["vit.layers.0.mlp.fc1.weight"]
    )
    for picture in ("reconstructions.png", "training_curves.png"):
        assert Image.open(mae_run / picture).size[0] > 100
    card = ModelCard.load(mae_run / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction"
    assert "masked autoencoder" in card.text and "| `cutouts` | 12 |" in card.text
    assert "He et al. 2022" in card.text and "reconstructions.png" in card.text
    assert "mean of the patch tokens" in card.text  # a ViT: its features are not a pooler's
    eval_loss = json.loads((mae_run / "eval_results.json").read_text())["eval_loss"]
    assert np.isfinite(eval_loss) and provenance["final_loss"] == pytest.approx(eval_loss, abs=1e-4)


@pytest.mark.slow
def test_vit_full_fine_tunes_the_mae_encoder_and_its_card_says_so(mae_run, tmp_path) -> None:
    from transformers import AutoModelForImageClassification, ViTMAEForPreTraining

    start = AutoModelForImageClassification.from_pretrained(mae_run, num_labels=6)
    mae = ViTMAEForPreTraining.from_pretrained(mae_run / "mae")  # the autoencoder, saved separately
    for name in ("layers.1.attention.q_proj.weight", "embeddings.patch_embeddings.projection.weight"):
        torch.testing.assert_close(start.vit.state_dict()[name], mae.state_dict()["vit." + name], msg=name)
    recipe = load_recipe("vit_full")
    out = tmp_path / "finetuned"
    args = recipe.make_parser().parse(
        [
            "--model_name_or_path", str(mae_run), "--dataset", str(save_tiny_dataset(tmp_path / "d", size=32)),
            "--image_size", "32", "--max_steps", "3", "--output_dir", str(out), "--use_cpu", "true",
            "--disable_tqdm", "true", "--eval_strategy", "no",
        ]
    )  # fmt: skip
    recipe.main(*args)
    tuned = AutoModelForImageClassification.from_pretrained(out)
    assert tuned.config.num_labels == 6
    assert tuned.config.hf_galaxy_pretraining["method"] == "mae"
    text = (out / "README.md").read_text()
    assert "Encoder pretraining: a masked autoencoder" in text and "36 unlabelled" in text
    assert "He et al. 2022" in text


def test_reconstructions_undo_the_per_patch_normalisation() -> None:
    """mae_reconstructions shows the visible patches as they are, blanks the hidden ones in the masked panel, and
    turns normalised-pixel predictions back into pixels: a model predicting the exact normalised target is
    drawn as the original image."""
    from transformers import ViTMAEForPreTraining

    from hf_galaxy.models.loading import default_image_processor
    from hf_galaxy.training.pretraining import mae_reconstructions

    torch.manual_seed(0)
    model = ViTMAEForPreTraining(mae_config("vit-tiny", 32, 0.5, True)).eval()
    processor = default_image_processor("vit", 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    real_forward = model.forward

    def oracle(pixel_values, noise=None, **kwargs):
        out = real_forward(pixel_values=pixel_values, noise=noise, **kwargs)
        target = model.patchify(pixel_values)
        out.logits = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        return out

    model.forward = oracle
    panels = mae_reconstructions(model, list(x), processor)
    np.testing.assert_allclose(panels["reconstruction"], panels["original"], atol=1e-4)
    hidden = panels["masked"].reshape(2, -1, 3).max(-1) == 0
    assert 0.3 < hidden.mean() < 0.7  # about half the pixels (mask ratio 0.5) are blanked
    model.forward = real_forward
    rough = mae_reconstructions(model, list(x), processor)
    visible = ~hidden.reshape(2, 32, 32)
    np.testing.assert_allclose(rough["reconstruction"][visible], rough["original"][visible], atol=1e-5)
    assert not np.allclose(rough["reconstruction"][~visible], rough["original"][~visible], atol=1e-2)


def test_mae_recipe_without_dataset_is_a_one_line_error(tmp_path, capsys) -> None:
    from hf_galaxy.cli import run_recipe

    recipe = load_recipe("vit_mae")
    code = run_recipe(recipe.main, recipe.make_parser(), ["--output_dir", str(tmp_path), "--use_cpu", "true"])
    err = capsys.readouterr().err
    assert code == 2 and "error: --dataset is required" in err and "Traceback" not in err
