"""Embeddings (hf-galaxy embed), nearest neighbours (hf-galaxy similar) and image-feature-extraction pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from PIL import Image

from hf_galaxy.cli import main
from hf_galaxy.inference.embed import embed_images, load_encoder, nearest_neighbours, pool
from tests.hub_helpers import loopback_hub


@pytest.fixture(scope="module")
def synthetic_spirals(tmp_path_factory):
    """A prepared synthetic GZ1 set (the project's generator, 32 px)."""
    from hf_galaxy.training.arguments import DataArguments
    from hf_galaxy.training.data import load_training_data

    root = tmp_path_factory.mktemp("synthetic")
    dsd = load_training_data("synthetic:150", DataArguments(image_size=32), data_dir=root / "data")
    dsd.save_to_disk(str(root / "prepared"))
    return root / "prepared"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A ViT encoder checkpoint as recipes/vit_mae.py saves one (ViTModel + image processor), random weights."""
    from transformers import ViTConfig, ViTModel

    from hf_galaxy.hub.card import GalaxyCardData
    from hf_galaxy.models.loading import default_image_processor
    from hf_galaxy.models.presets import parse_model_config

    root = tmp_path_factory.mktemp("encoder")
    cfg = parse_model_config("vit-tiny")
    cfg.pop("model_type")
    torch.manual_seed(0)
    ViTModel(ViTConfig(**cfg), add_pooling_layer=False).save_pretrained(root)
    default_image_processor("vit", 32).save_pretrained(root)
    GalaxyCardData(task="image-feature-extraction").save(root)
    return root


def test_embed_writes_a_dataset_of_features_labels_and_thumbnails(
    synthetic_spirals, encoder_dir, tmp_path, capsys
):
    out = tmp_path / "emb"
    assert main(["embed", "--model", str(encoder_dir), str(synthetic_spirals), "--output_dir", str(out)]) == 0
    assert "150 embeddings of dimension 32" in capsys.readouterr().out
    emb = load_from_disk(str(out))
    assert set(emb.column_names) == {"id", "ra", "dec", "label", "embedding", "thumbnail"}
    source = load_from_disk(str(synthetic_spirals))
    ids = [i for s in source for i in source[s]["id"]]
    assert list(emb["id"]) == ids
    assert emb.features["label"].names == source["train"].features["label"].names
    assert np.isfinite(np.asarray(emb["embedding"])).all() and emb[0]["thumbnail"].size == (32, 32)
    first = source["train"][0]
    assert (emb[0]["ra"], emb[0]["dec"], emb[0]["label"]) == (first["ra"], first["dec"], first["label"])


def test_neighbours_of_a_synthetic_spiral_are_mostly_spirals(synthetic_spirals, encoder_dir) -> None:
    from datasets import concatenate_datasets

    source = load_from_disk(str(synthetic_spirals))
    data = concatenate_datasets([source[s] for s in source])
    model, processor = load_encoder(str(encoder_dir))
    emb, skipped = embed_images(model, processor, data, progress=False)
    assert not skipped
    names = emb.features["label"].names
    spiral = np.array(["spiral" in names[v] for v in emb["label"]])
    fractions = [
        np.mean([spiral[n["index"]] for n in nearest_neighbours(emb, int(i), k=5)])
        for i in np.flatnonzero(spiral)
    ]
    # spirals are about a third of the set; their neighbours are mostly spirals
    assert spiral.mean() < 0.45 and np.mean(fractions) > 0.6


def test_nearest_neighbours_ranks_by_distance_and_leaves_the_query_out() -> None:
    from datasets import Dataset

    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.7, 0.3], [-1, 0]], dtype=np.float32)
    emb = Dataset.from_dict({"id": list("abcde"), "embedding": vectors.tolist()})
    found = nearest_neighbours(emb, "a", k=3)
    assert [n["id"] for n in found] == ["b", "d", "c"]
    assert found[0]["distance"] < found[1]["distance"] < found[2]["distance"]
    assert [n["id"] for n in nearest_neighbours(emb, np.array([0, 1.0]), k=2)] == ["c", "d"]
    assert [n["id"] for n in nearest_neighbours(emb, 4, k=1, metric="euclidean")] == ["c"]
    with pytest.raises(ValueError, match="no galaxy with id 'zz'"):
        nearest_neighbours(emb, "zz")


def test_pooling_modes() -> None:
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    out = {"last_hidden_state": hidden, "pooler_output": None}
    torch.testing.assert_close(pool(out, "cls"), hidden[:, 0])
    torch.testing.assert_close(pool(out), hidden[:, 1:].mean(1))
    with pytest.raises(ValueError, match="no pooler_output"):
        pool(out, "pooler")
    maps = {"last_hidden_state": torch.ones(2, 4, 3, 3), "pooler_output": torch.ones(2, 4, 1, 1)}
    assert pool(maps).shape == (2, 4)
    with pytest.raises(ValueError, match="feature maps"):
        pool(maps, "mean")


def test_similar_prints_writes_and_draws_the_neighbours(synthetic_spirals, encoder_dir, tmp_path, capsys):
    emb_dir = tmp_path / "emb"
    main(["embed", "--model", str(encoder_dir), str(synthetic_spirals), "--output_dir", str(emb_dir)])
    emb = load_from_disk(str(emb_dir))
    query = emb[3]["id"]
    capsys.readouterr()
    code = main(
        ["similar", str(emb_dir), "--id", query, "--k", "4", "--output", str(tmp_path / "n.png"),
         "--csv", str(tmp_path / "n.csv")]
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "distance", "id", "label"] and len(lines) == 1 + 4 + 1
    import pandas as pd

    table = pd.read_csv(tmp_path / "n.csv", dtype={"id": str})
    expected = nearest_neighbours(emb, query, k=4)
    assert list(table["id"]) == [n["id"] for n in expected] and query not in set(table["id"])
    assert Image.open(tmp_path / "n.png").size[0] > 300
    # the same search from an image file, embedded with the model
    image = tmp_path / "q.png"
    emb[3]["thumbnail"].save(image)
    # without --model: the model recorded with the embeddings
    assert (
        main(
            ["similar", str(emb_dir), "--image", str(image), "--k", "2", "--output", str(tmp_path / "m.png")]
        )
        == 0
    )
    assert query in capsys.readouterr().out.splitlines()[1]  # the galaxy itself is the nearest


def test_similar_errors_are_one_line(tmp_path, synthetic_spirals, encoder_dir, capsys) -> None:
    emb_dir = tmp_path / "emb"
    main(["embed", "--model", str(encoder_dir), str(synthetic_spirals), "--output_dir", str(emb_dir)])
    capsys.readouterr()
    assert main(["similar", str(emb_dir), "--id", "no-such-galaxy"]) == 2
    err = capsys.readouterr().err
    assert "no galaxy with id 'no-such-galaxy'" in err and "Traceback" not in err
    assert main(["similar", str(tmp_path), "--id", "x"]) == 2
    assert "not a Dataset written by hf-galaxy embed" in capsys.readouterr().err
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert main(["similar", str(emb_dir), "--image", str(tmp_path / "bad.jpg")]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg" in err and "unreadable" in err and "Traceback" not in err


def test_embed_of_a_whole_autoencoder_sees_every_patch(tmp_path) -> None:
    """DIR/mae (ViTMAEForPreTraining) embeds deterministically: nothing is masked at inference."""
    from transformers import ViTMAEForPreTraining

    from hf_galaxy.inference.predict import ImageRows
    from hf_galaxy.models.loading import default_image_processor
    from hf_galaxy.training.pretraining import mae_config

    ViTMAEForPreTraining(mae_config("vit-tiny", 32, 0.75, True)).save_pretrained(tmp_path / "mae")
    default_image_processor("vit", 32).save_pretrained(tmp_path / "mae")
    image = tmp_path / "g.png"
    Image.fromarray((np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)).save(image)
    model, processor = load_encoder(str(tmp_path / "mae"))
    runs = [
        embed_images(model, processor, ImageRows([("g", str(image), None)]), progress=False)[0]
        for _ in range(2)
    ]
    # equal up to float summation order (the patches are still shuffled, all kept); 75% masked differs by ~1
    np.testing.assert_allclose(runs[0][0]["embedding"], runs[1][0]["embedding"], rtol=1e-5, atol=1e-6)


def test_embed_reads_folders_and_counts_unreadable_images(encoder_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(folder / f"g{i}.png")
    (folder / "bad.jpg").write_bytes(b"garbage")
    assert main(["embed", "--model", str(encoder_dir), str(folder), "--output_dir", str(tmp_path / "e")]) == 0
    captured = capsys.readouterr()
    assert (
        "5 embeddings" in captured.out and "1 of 6 images skipped" in captured.err and "bad" in captured.err
    )
    assert sorted(load_from_disk(str(tmp_path / "e"))["id"]) == [f"g{i}" for i in range(5)]


def test_feature_extraction_pipeline_on_published_models_matches_embed(encoder_dir, tmp_path, monkeypatch):
    """A published encoder and a published classifier work with pipeline("image-feature-extraction"), and its
    mean-pooled patch tokens are hf-galaxy embed's features."""
    from transformers import pipeline

    from hf_galaxy.hub import publish
    from hf_galaxy.inference.predict import ImageRows
    from tests.hub_helpers import make_output_dir

    image = tmp_path / "g.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(image)
    classifier_dir = make_output_dir(tmp_path / "classifier")
    with loopback_hub(tmp_path / "hub", monkeypatch):
        for repo, folder in (("tester/encoder", encoder_dir), ("tester/classifier", classifier_dir)):
            publish(folder, repo)
            extractor = pipeline("image-feature-extraction", model=repo)
            tokens = np.asarray(extractor(Image.open(image).convert("RGB")))[0]
            model, processor = load_encoder(repo)
            emb, _ = embed_images(model, processor, ImageRows([("g", str(image), None)]), progress=False)
            np.testing.assert_allclose(
                tokens[1:].mean(0), np.asarray(emb[0]["embedding"]), rtol=1e-4, atol=1e-5
            )


def test_rows_without_ids_are_named_by_position_even_after_a_skip(encoder_dir) -> None:
    from datasets import Dataset, Features
    from datasets import Image as ImageFeature

    img = Image.fromarray(np.full((32, 32, 3), 90, np.uint8))
    data = Dataset.from_dict({"image": [img, None, img]}, features=Features({"image": ImageFeature()}))
    model, processor = load_encoder(str(encoder_dir))
    emb, skipped = embed_images(model, processor, data, batch_size=2, progress=False)
    assert list(emb["id"]) == ["0", "2"] and [gid for gid, _ in skipped] == ["1"]
