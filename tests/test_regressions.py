"""Regression tests for behaviour users rely on, each checked by breaking the code once."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import ImageOps
from transformers import TrainerCallback, TrainingArguments

from hf_galaxy import load_galaxy_dataset
from hf_galaxy.data.transforms import AugmentConfig, GalaxyTransform
from hf_galaxy.training import (
    DataArguments,
    ModelArguments,
    ScriptArguments,
    build_trainer,
    collate_galaxy,
    prepare_run,
    run_training,
    soft_label_loss,
)
from tests.galaxy_tiny import GZ1_CLASSES, TINY_VIT, class_image, draw_spiral, tiny_dataset_dict
from tests.test_dataset import count_prepared, write_gz1

CW, ACW = GZ1_CLASSES.index("clockwise_spiral"), GZ1_CLASSES.index("anticlockwise_spiral")
NO_AUGMENT_BUT_FLIPS = AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0)


def _training_args(output_dir: Path, **overrides) -> TrainingArguments:
    """Tiny, fast, CPU-only, deterministic training arguments for run_training."""
    kwargs = dict(
        output_dir=str(output_dir),
        max_steps=4,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=1e-3,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=True,
        report_to="none",
    )
    return TrainingArguments(**{**kwargs, **overrides})


def _tiny_run(output_dir: Path, dsd, **training) -> dict[str, float]:
    """run_training of a full (no LoRA) tiny ViT on ``dsd``; returns the metrics."""
    return run_training(
        ScriptArguments(num_grid_images=0),
        _training_args(output_dir, **training),
        ModelArguments(model_config=TINY_VIT, use_lora=False),
        DataArguments(),
        dataset_dict=dsd,
    )


# ------------------------------------------------------------------------------- 1. chirality on the train path
def _processor():
    from hf_galaxy.models import default_image_processor

    return default_image_processor("vit", 32)


def _mirrored(out: torch.Tensor, plain: torch.Tensor, mirror: torch.Tensor) -> bool:
    """Whether a processed training image is the mirrored (True) or the plain (False) processed image."""
    if torch.equal(out, mirror):
        return True
    assert torch.equal(out, plain), "with rotation and crops off, the output is the image or its mirror"
    return False


def test_train_transform_swaps_chiral_label_and_votes_when_it_mirrors():
    """GalaxyTransform(train=True) on a batch: a mirrored clockwise spiral becomes anticlockwise, and so do its
    vote fractions; a non-chiral class keeps its label; an unmirrored image keeps label and votes."""
    processor = _processor()
    images = [
        draw_spiral(32, clockwise=True),
        draw_spiral(32, clockwise=False),
        class_image(0, 32, np.random.default_rng(0)),
    ]
    labels = [CW, ACW, 0]
    votes = [
        [0.05, 0.6, 0.2, 0.05, 0.05, 0.05],
        [0.1, 0.15, 0.55, 0.1, 0.05, 0.05],
        [0.7, 0.2, 0.05, 0.02, 0.02, 0.01],
    ]
    eval_tf = GalaxyTransform(processor, GZ1_CLASSES, train=False)
    plain = eval_tf({"image": images})["pixel_values"]
    mirror = eval_tf({"image": [ImageOps.mirror(im) for im in images]})["pixel_values"]
    for p, m in zip(plain, mirror):
        assert not torch.equal(p, m), "the test images must not be mirror-symmetric"
    perm = [0, ACW, CW, 3, 4, 5]  # GZ1: a mirror swaps the two spiral classes, nothing else

    train_tf = GalaxyTransform(processor, GZ1_CLASSES, train=True, augment=NO_AUGMENT_BUT_FLIPS)
    torch.manual_seed(0)
    seen = Counter()
    for _ in range(60):
        out = train_tf({"image": images, "label": labels, "votes": votes, "id": ["a", "b", "c"]})
        assert out["id"] == ["a", "b", "c"]
        for i in range(3):
            flipped = _mirrored(out["pixel_values"][i], plain[i], mirror[i])
            seen[flipped] += 1
            want_label = perm[labels[i]] if flipped else labels[i]
            want_votes = np.asarray(votes[i], dtype=np.float32)[perm] if flipped else votes[i]
            assert out["labels"][i] == want_label, (i, flipped)
            np.testing.assert_allclose(out["votes"][i].numpy(), want_votes, rtol=0, atol=1e-7)
    assert seen[True] > 40 and seen[False] > 40, seen  # p = 0.5 per image, 180 draws


def test_recipe_train_transform_flips_with_the_default_data_arguments(tmp_path):
    """The train transform prepare_run builds from DataArguments() mirrors about half of the images (with the
    label swap), under the full default augmentation too."""
    run = prepare_run(
        ScriptArguments(),
        _training_args(tmp_path),
        ModelArguments(model_config=TINY_VIT),
        DataArguments(),
        dataset_dict=tiny_dataset_dict(n_per_class=1),
    )
    tf = run.train_transform
    assert tf.augment is not None and tf.augment.flip
    cw_votes = [0.05, 0.6, 0.2, 0.05, 0.05, 0.05]
    batch = {"image": [draw_spiral(32, clockwise=True)], "label": [CW], "votes": [cw_votes]}

    # the default augmentation (rotation, crop, zoom jitter and flips): the label says whether it mirrored
    torch.manual_seed(0)
    labels = []
    for _ in range(100):
        out = tf(batch)
        labels.append(out["labels"][0])
        assert float(out["votes"][0][out["labels"][0]]) == pytest.approx(0.6)  # the votes follow the label
    assert set(labels) == {CW, ACW} and 25 <= labels.count(ACW) <= 75, Counter(labels)

    # the same transform with rotation and crops off: the mirrored outputs are exactly the swapped ones
    tf.augment.config = dataclasses.replace(
        tf.augment.config, rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0
    )
    plain = run.eval_transform(batch)["pixel_values"][0]
    mirror = run.eval_transform({"image": [ImageOps.mirror(batch["image"][0])]})["pixel_values"][0]
    torch.manual_seed(1)
    n_mirrored = 0
    for _ in range(100):
        out = tf(batch)
        flipped = _mirrored(out["pixel_values"][0], plain, mirror)
        n_mirrored += flipped
        assert out["labels"][0] == (ACW if flipped else CW)
    assert 25 <= n_mirrored <= 75, n_mirrored


# ------------------------------------------------------------------------------------------- 2. the cache key
@pytest.fixture()
def gz1(tmp_path: Path) -> tuple[Path, Path]:
    return write_gz1(tmp_path / "gz1")


def _same_content(a, b) -> None:
    assert set(a) == set(b)
    for s in a:
        assert a[s].features == b[s].features, s
        assert a[s]["id"] == b[s]["id"] and a[s]["label"] == b[s]["label"], s
        np.testing.assert_allclose(np.asarray(a[s]["votes"]), np.asarray(b[s]["votes"]))
        assert [im.size for im in a[s]["image"]] == [im.size for im in b[s]["image"]], s


def test_another_image_size_is_not_served_from_the_first_calls_cache(gz1, tmp_path, monkeypatch):
    cat, images = gz1
    cache = tmp_path / "cache"
    first = load_galaxy_dataset(cat, images, cache_dir=cache, image_size=32)
    calls = count_prepared(monkeypatch)
    load_galaxy_dataset(cat, images, cache_dir=cache, image_size=32)
    assert calls == [], "an identical call is served from the cache"

    second = load_galaxy_dataset(cat, images, cache_dir=cache, image_size=16)
    assert len(calls) == 60, "every image is prepared again at the new size"
    for s in second:
        assert {im.size for im in second[s]["image"]} == {(16, 16)}, s
        assert second[s].cache_files != first[s].cache_files
    assert {im.size for im in first["train"]["image"]} == {(32, 32)}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"label_scheme": "clean", "threshold": 0.5}),
        ({"label_scheme": "clean", "threshold": 0.5}, {"label_scheme": "clean", "threshold": 0.6}),
        ({}, {"classes": "elliptical-spiral-other"}),
    ],
    ids=["plurality-to-clean", "clean-threshold", "classes"],
)
def test_another_labelling_is_not_served_from_the_first_calls_cache(
    first, second, gz1, tmp_path, monkeypatch
):
    cat, images = gz1
    cache = tmp_path / "cache"
    a = load_galaxy_dataset(cat, images, cache_dir=cache, image_size=16, **first)
    calls = count_prepared(monkeypatch)
    load_galaxy_dataset(cat, images, cache_dir=cache, image_size=16, **first)
    assert calls == [], "an identical call is served from the cache"

    b = load_galaxy_dataset(cat, images, cache_dir=cache, image_size=16, **second)
    assert calls, "the images are prepared again for the other labelling"
    reference = load_galaxy_dataset(cat, images, cache_dir=tmp_path / "fresh", image_size=16, **second)
    _same_content(b, reference)  # what a fresh cache gives
    differs = any(
        a[s].features != b[s].features or a[s]["id"] != b[s]["id"] or a[s]["label"] != b[s]["label"]
        for s in b
    )
    assert differs, "the two labellings must give different datasets for this test to mean anything"


# --------------------------------------------------------------------------------------- 3. soft-label training
def _batch(dsd, n: int = 8) -> dict[str, torch.Tensor]:
    tf = GalaxyTransform(_processor(), GZ1_CLASSES, train=False)
    rows = dsd["train"].shuffle(seed=0).select(range(n))
    out = tf({"image": rows["image"], "label": rows["label"], "votes": rows["votes"]})
    return collate_galaxy([{k: out[k][i] for k in ("pixel_values", "labels", "votes")} for i in range(n)])


def test_soft_label_compute_loss_uses_the_batch_votes(tmp_path):
    from hf_galaxy.models import load_classifier

    torch.manual_seed(0)
    model, _ = load_classifier(None, GZ1_CLASSES, model_config=TINY_VIT)
    model.eval()
    batch = _batch(tiny_dataset_dict(n_per_class=4))
    assert not torch.equal(batch["votes"], F.one_hot(batch["labels"], 6).float()), "votes are real fractions"
    other = dict(batch, votes=torch.roll(batch["votes"], 1, dims=-1))
    with torch.no_grad():
        logits = model(pixel_values=batch["pixel_values"]).logits

    def loss(trainer, inputs) -> float:
        with torch.no_grad():
            return float(trainer.compute_loss(model, inputs))

    for kind in ("ce", "kl"):
        soft = build_trainer(
            model, _training_args(tmp_path / kind), class_names=GZ1_CLASSES, soft_labels=True, soft_loss=kind
        )
        expected = float(soft_label_loss(logits, batch["votes"], batch["labels"], kind))
        assert loss(soft, batch) == pytest.approx(expected, rel=1e-6)
        assert loss(soft, other) == pytest.approx(
            float(soft_label_loss(logits, other["votes"], other["labels"], kind)), rel=1e-6
        )
        assert abs(loss(soft, batch) - loss(soft, other)) > 1e-3, "other votes, other soft-label loss"

    hard = build_trainer(model, _training_args(tmp_path / "hard"), class_names=GZ1_CLASSES, soft_labels=False)
    ce = float(F.cross_entropy(logits, batch["labels"]))
    assert loss(hard, batch) == pytest.approx(ce, rel=1e-6)
    assert loss(hard, other) == pytest.approx(ce, rel=1e-6)  # hard labels ignore the votes


@pytest.mark.slow
def test_soft_label_training_feeds_the_datasets_votes_to_the_loss(tmp_path, monkeypatch):
    """finetune(soft_labels=True): the vote fractions stored in the dataset are what the loss sees during
    training (not one-hot stand-ins), through the transform, the collator and the Trainer."""
    import hf_galaxy.training.classification as tc
    from hf_galaxy import finetune

    seen: list[np.ndarray] = []
    real = tc.soft_label_loss

    def spy(logits, votes, labels=None, kind="ce"):
        if logits.requires_grad:  # a training step (evaluation runs without gradients)
            seen.append(votes.detach().numpy().copy())
        return real(logits, votes, labels, kind)

    monkeypatch.setattr(tc, "soft_label_loss", spy)
    dsd = tiny_dataset_dict(n_per_class=4)
    result = finetune(
        dsd, TINY_VIT, tmp_path / "run", lora=False, max_steps=2, per_device_train_batch_size=8,
        soft_labels=True, augment=False, num_grid_images=0, use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    assert result.trainer.soft_labels
    assert len(seen) == 2 and all(v.shape == (8, 6) for v in seen)
    stored = np.asarray(dsd["train"]["votes"], dtype=np.float32)
    for rows in seen:
        for v in rows:
            assert np.abs(stored - v).max(axis=1).min() < 1e-6, "each row is a stored vote-fraction row"
        assert not np.allclose(rows.max(axis=1), 1.0), "not one-hot"


# ------------------------------------------------------------------------------------------------- 4. resume
class _StopAt(TrainerCallback):
    """Stop training after ``step`` optimizer steps (an interrupted run)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def _weights(output_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(output_dir / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "lora",
    [pytest.param(False, id="full"), pytest.param(True, id="lora")],
)  # fmt: skip
@pytest.mark.parametrize(
    ("n", "augment"),
    [(4, False), (3, True)],
    ids=["mid-epoch", "epoch-boundary-augmented"],
)
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_runs_weights(n, augment, lora, tmp_path):
    """A 2N-step run interrupted after N steps (checkpoint-N) and resumed with resume_from_checkpoint="last" ends
    with the same weights as the uninterrupted 2N-step run: model, optimizer, scheduler and data order continue
    where they were (N = 4: in the middle of the second epoch of 3 batches), and so does the augmentation RNG
    (N = 3, at an epoch boundary, with the default augmentation)."""
    from tests.test_recipes import _CountSteps

    dsd = tiny_dataset_dict(n_per_class=4)  # 24 training images: 3 batches of 8 per epoch
    model_args = ModelArguments(model_config=TINY_VIT, use_lora=lora, lora_r=4)
    common = dict(max_steps=2 * n, save_strategy="steps", save_steps=n)

    def run(out, **kwargs):
        return run_training(
            ScriptArguments(num_grid_images=0),
            _training_args(out, **common, **kwargs.pop("training", {})),
            model_args,
            DataArguments(augment=augment),
            dataset_dict=dsd,
            **kwargs,
        )

    run(tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    run(interrupted, extra_callbacks=[_StopAt(n)])
    assert (interrupted / f"checkpoint-{n}").is_dir() and not (interrupted / f"checkpoint-{2 * n}").exists()
    counter = _CountSteps()
    run(interrupted, extra_callbacks=[counter], training={"resume_from_checkpoint": "last"})
    assert counter.steps == n, "the resumed run trains only the remaining steps"

    straight, resumed = _weights(tmp_path / "straight"), _weights(interrupted)
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(
            resumed[name], straight[name], rtol=1e-6, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.slow
def test_load_best_model_at_end_restores_the_whole_best_checkpoint(tmp_path):
    """A full fine-tune with load_best_model_at_end ends with every weight of the best checkpoint (transformers'
    own loading left the renamed encoder weights of the last step in place)."""
    import json

    dsd = tiny_dataset_dict(n_per_class=4)
    out = tmp_path / "best"
    run_training(
        ScriptArguments(num_grid_images=0),
        _training_args(
            out, max_steps=9, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
            load_best_model_at_end=True, metric_for_best_model="accuracy", learning_rate=3e-3,
        ),
        ModelArguments(model_config=TINY_VIT),
        DataArguments(augment=False),
        dataset_dict=dsd,
    )  # fmt: skip
    best = json.loads((out / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert best is not None and Path(best).name != "checkpoint-9", "the run must peak before its last step"
    final, chosen = _weights(out), _weights(Path(best))
    assert final.keys() == chosen.keys()
    for name in final:
        torch.testing.assert_close(final[name], chosen[name], msg=lambda m, name=name: f"{name}: {m}")


# ------------------------------------------------------------------------------------------- 5. never uploaded
LEAKY_TOKEN = "hf_testtoken_DO_NOT_LEAK"
NEVER_UPLOADED_NAMES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")


def _never_uploaded(path: str) -> bool:
    parts = Path(path).parts
    name = parts[-1]
    return (
        any(p.startswith("checkpoint-") for p in parts)
        or name in NEVER_UPLOADED_NAMES
        or name.startswith(("rng_state", "optimizer", "scheduler"))
        or name.endswith((".bin", ".pt", ".pth", ".pkl"))
    )


@pytest.mark.slow
def test_trainer_path_publish_never_uploads_checkpoints_or_the_token(tmp_path, monkeypatch):
    from hf_galaxy.hub import publish
    from tests.hub_helpers import file_tree, loopback_hub

    out = tmp_path / "run"
    repo_id = "tester/never-uploaded"
    with loopback_hub(tmp_path / "hub", monkeypatch, token=LEAKY_TOKEN) as hub:
        _tiny_run(
            out, tiny_dataset_dict(n_per_class=3), max_steps=4, save_strategy="steps", save_steps=2,
            push_to_hub=True, hub_model_id=repo_id, hub_token=LEAKY_TOKEN,
        )  # fmt: skip
        # the output directory holds what must stay local, and the token is in it (so the check below can see it)
        for name in ("checkpoint-2/optimizer.pt", "checkpoint-4/training_args.bin", "training_args.bin"):
            assert (out / name).is_file(), name
        local = file_tree(out)
        assert any(LEAKY_TOKEN.encode() in blob for blob in local.values())

        repo = hub.repo(repo_id)
        pushed = {k: v for k, v in hub.files(repo_id).items() if k != ".gitattributes"}
        assert {"model.safetensors", "config.json", "README.md", "hf_galaxy_card.json"} <= set(pushed)
        ever_pushed = {path for commit in repo.commits.values() for path in commit["tree"]}
        assert sorted(p for p in ever_pushed if _never_uploaded(p)) == []
        blobs = [p.read_bytes() for p in (repo.folder / "objects").iterdir()]  # every blob ever uploaded
        assert len(blobs) >= len(pushed)
        assert not any(LEAKY_TOKEN.encode() in blob for blob in blobs), "the token reached the Hub"
        for commit in repo.commits.values():
            assert LEAKY_TOKEN not in commit["title"] + commit["message"]

        dry = tmp_path / "dry"
        publish(out, repo_id, dry_run_dir=dry, token=LEAKY_TOKEN)
        dry_files = file_tree(dry)
        assert sorted(p for p in dry_files if _never_uploaded(p)) == []
        assert not any(LEAKY_TOKEN.encode() in blob for blob in dry_files.values())
        assert set(dry_files) == set(pushed)


# --------------------------------------------------------------------------------------------- 6. detector mAP
def _coco_targets() -> list[dict]:
    """Two 100x100 images, each with one box of category 0 and one of category 1 (xywh)."""
    return [
        {
            "boxes": np.array([[10, 10, 20, 20], [50, 50, 30, 20]]),
            "labels": np.array([0, 1]),
            "size": (100, 100),
        },
        {
            "boxes": np.array([[60, 5, 25, 25], [5, 60, 20, 30]]),
            "labels": np.array([0, 1]),
            "size": (100, 100),
        },
    ]


def _as_detections(targets, *, shift=(0.0, 0.0), x_shift=0.0, labels=None, scores=None) -> list[dict]:
    """The targets as detections (xyxy), moved by ``shift`` pixels plus ``x_shift`` box widths to the right,
    with other labels/scores when given."""
    out = []
    for i, t in enumerate(targets):
        b = np.asarray(t["boxes"], dtype=float)
        xyxy = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
        xyxy += np.array([shift[0], shift[1], shift[0], shift[1]])
        xyxy[:, [0, 2]] += x_shift * b[:, 2:3]
        out.append(
            {
                "boxes": xyxy,
                "scores": np.full(len(b), 0.9) if scores is None else np.asarray(scores[i], dtype=float),
                "labels": np.asarray(t["labels"]) if labels is None else np.asarray(labels[i]),
            }
        )
    return out


def test_coco_map_is_one_for_perfect_zero_for_far_or_mislabelled_and_in_between_for_half():
    from hf_galaxy.metrics import coco_map

    targets = _coco_targets()
    cats = ["galaxy", "star"]
    perfect = coco_map(targets, _as_detections(targets), cats)
    for key in ("map", "map_50", "map_75", "mar_100", "map_galaxy", "map_star"):
        assert perfect[key] == pytest.approx(1.0), key

    # every box moved by a fifth of its width: IoU 0.8 / 1.2 = 2/3, a hit at the IoU thresholds 0.5 to 0.65 only
    loose = coco_map(targets, _as_detections(targets, x_shift=0.2), cats)
    assert loose["map_50"] == pytest.approx(1.0) and loose["map_75"] == 0.0
    assert loose["map"] == pytest.approx(0.4) and loose["map_galaxy"] == pytest.approx(0.4)

    far = coco_map(targets, _as_detections(targets, shift=(400.0, 400.0)), cats)
    mislabelled = coco_map(targets, _as_detections(targets, labels=[[1, 0], [1, 0]]), cats)
    for result in (far, mislabelled):
        for key in ("map", "map_50", "map_75", "mar_100", "map_galaxy", "map_star"):
            assert result[key] == 0.0, key

    # half: image 0 detected exactly, image 1's detections far away (and less confident)
    half_dets = _as_detections(targets)[:1] + _as_detections(
        targets[1:], shift=(400.0, 400.0), scores=[[0.5, 0.5]]
    )
    half = coco_map(targets, half_dets, cats)
    for key in ("map", "map_50", "mar_100", "map_galaxy", "map_star"):
        assert 0.0 < half[key] < 1.0, key
    assert half["mar_100"] == pytest.approx(0.5)
    assert half["map"] == pytest.approx(51 / 101, abs=1e-6)  # precision 1 up to recall 0.5 (101-point AP)
    # the same detections with the misses ranked first: lower precision at recall 0.5, lower AP
    confident_misses = _as_detections(targets, scores=[[0.5, 0.5], [0.9, 0.9]])
    confident_misses[1]["boxes"] = half_dets[1]["boxes"]
    ranked_wrong = coco_map(targets, confident_misses, cats)
    assert 0.0 < ranked_wrong["map"] < half["map"]
    assert ranked_wrong["mar_100"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------ 7. bagging and boosting
@pytest.fixture(scope="module")
def ensemble_data():
    """The data of tests/test_ensemble.py (tiny_dataset_dict(n_per_class=10)): 60 training images."""
    return tiny_dataset_dict(n_per_class=10, size=32, seed=0)


def _member_training_args(**overrides) -> dict:
    """test_ensemble.py's boosting settings: 25 constant-LR steps per member, no saving, no evaluation."""
    return {
        "max_steps": 25,
        "learning_rate": 3e-3,
        "lr_scheduler_type": "constant",
        "per_device_train_batch_size": 16,
        "use_cpu": True,
        "save_strategy": "no",
        "eval_strategy": "no",
        "disable_tqdm": True,
        "report_to": "none",
        **overrides,
    }


def _spy_on_member_training(monkeypatch) -> list[list[str]]:
    """The ids of the training split each ensemble member is trained on (train_members -> run_training)."""
    import hf_galaxy.training
    import hf_galaxy.training.classification as tc

    trained_on: list[list[str]] = []

    def spy(script_args, training_args, model_args, data_args=None, *, dataset_dict=None, **kwargs):
        trained_on.append(list(dataset_dict["train"]["id"]))
        return tc.run_training(
            script_args, training_args, model_args, data_args, dataset_dict=dataset_dict, **kwargs
        )

    monkeypatch.setattr(hf_galaxy.training, "run_training", spy)
    return trained_on


@pytest.mark.slow
def test_bagging_members_train_on_their_recorded_reproducible_bootstrap(ensemble_data, tmp_path, monkeypatch):
    from hf_galaxy.ensemble import train_members
    from hf_galaxy.ensemble.strategies import _bootstrap
    from hf_galaxy.jsonio import read_json

    trained_on = _spy_on_member_training(monkeypatch)
    train = ensemble_data["train"]
    n = len(train)
    members, prov = train_members(
        ensemble_data, tmp_path, n_members=3, strategy="bagging", seed=11,
        training_args=_member_training_args(max_steps=3),
        model_args=ModelArguments(model_config=TINY_VIT), data_args=DataArguments(augment=False),
        script_args=ScriptArguments(num_grid_images=0),
    )  # fmt: skip
    assert prov["strategy"] == "bagging" and prov["n_members"] == 3 and len(trained_on) == 3
    resamples = []
    for k, member in enumerate(members):
        info = member.spec.info
        assert member.spec.seed == 11 + k and info["train_seed"] == 11 + k
        entropy = info["resample_seed_sequence"]
        assert entropy == [11, k]
        # the recorded seed entropy reproduces the resample, by _bootstrap and by numpy directly
        idx, again = _bootstrap(n, *entropy)
        assert again == entropy
        replay = np.random.default_rng(np.random.SeedSequence(entropy)).integers(0, n, size=n)
        np.testing.assert_array_equal(idx, replay)
        assert info["n_resampled"] == n and info["n_unique"] == len(np.unique(replay)) < n
        # ... and it is what the member was trained on, as its card records
        assert trained_on[k] == [train[int(i)]["id"] for i in replay]
        card = read_json(tmp_path / "members" / f"member-{k}" / "hf_galaxy_card.json")
        labels = Counter(GZ1_CLASSES[train[int(i)]["label"]] for i in replay)
        assert card["dataset"]["class_balance"]["train"] == {c: labels.get(c, 0) for c in GZ1_CLASSES}
        resamples.append(tuple(replay.tolist()))
    assert len(set(resamples)) == 3, "each member draws its own resample"
    assert len({tuple(ids) for ids in trained_on}) == 3


@pytest.mark.slow
def test_boosting_records_samme_errors_alphas_and_reweighted_resamples(ensemble_data, tmp_path, monkeypatch):
    """Extends test_ensemble.py's boosting test: every recorded weighted error is the error of that round's
    member under the current sample weights, every alpha is lr * (log((1 - err) / err) + log(C - 1)) (lr 0.5),
    and each round trains on the resample drawn with the updated weights from SeedSequence([seed, k, 1])."""
    from hf_galaxy.ensemble import predict_members, train_members

    trained_on = _spy_on_member_training(monkeypatch)
    train = ensemble_data["train"]
    n, n_classes, lr, seed = len(train), len(GZ1_CLASSES), 0.5, 7
    members, prov = train_members(
        ensemble_data, tmp_path, n_members=3, strategy="boosting", seed=seed, boosting_learning_rate=lr,
        training_args=_member_training_args(), model_args=ModelArguments(model_config=TINY_VIT),
        data_args=DataArguments(augment=False), script_args=ScriptArguments(num_grid_images=0),
        predict_kwargs={"progress": False},
    )  # fmt: skip
    rounds = prov["rounds"]
    assert len(members) >= 2, "the test needs at least two boosting rounds"
    assert len(prov["weights"]) == len(members) and len(trained_on) == len(rounds)
    y = np.asarray(train["label"])
    weights = np.full(n, 1.0 / n)
    for k, member in enumerate(members):
        idx = np.random.default_rng(np.random.SeedSequence([seed, k, 1])).choice(
            n, size=n, replace=True, p=weights
        )
        assert trained_on[k] == [train[int(i)]["id"] for i in idx], f"round {k} resample"
        miss = predict_members([member], train, progress=False).member_probs[0].argmax(axis=1) != y
        err = float(weights[miss].sum())
        assert 0 < err < 1 - 1 / n_classes
        assert rounds[k] == {"round": k, "weighted_error": pytest.approx(err, abs=1e-9)}
        alpha = lr * (math.log((1 - err) / err) + math.log(n_classes - 1))
        assert prov["weights"][k] == pytest.approx(alpha, rel=1e-9)
        assert member.spec.info["alpha"] == pytest.approx(alpha, rel=1e-9)
        assert member.spec.info["weighted_error"] == pytest.approx(err, abs=1e-9)
        weights = weights * np.exp(alpha * miss)
        weights /= weights.sum()


# --------------------------------------------------------------------------------------------- 8. accuracy bar
@pytest.mark.slow
def test_demo_style_lora_run_on_synthetic_galaxies_learns_well_above_chance(tmp_path):
    """The demo's LoRA settings (hf_galaxy.commands.demo.DEMO_CONFIG: vit-mini from a config, LoRA on every
    linear layer) for 12 epochs on 400 synthetic GZ1 galaxies at 64 px, as elliptical / spiral / other
    (chance 1/3; the majority class, spiral, is ~45% of the test split).

    Measured on 2 CPU cores (40 test galaxies, ~25 s of training), zoo and training seed s:
    s=0: accuracy 0.756 / macro-F1 0.738, s=1: 0.725 / 0.717, s=2: 0.775 / 0.773, s=3: 0.756 / 0.713,
    s=4: 0.800 / 0.768. The bars (accuracy 0.6, macro-F1 0.5) are well below the worst of those and far above
    chance (0.33) and the majority-class rate.
    """
    from hf_galaxy import finetune
    from hf_galaxy.commands.demo import DEMO_CONFIG
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    zoo = make_galaxy_zoo(tmp_path / "zoo", 400, seed=0, image_size=64, show_progress=False)
    dsd = load_galaxy_dataset(
        zoo.catalog_path,
        zoo.image_dir,
        image_size=64,
        classes="elliptical-spiral-other",
        cache_dir=tmp_path / "c",
    )
    assert dsd["train"].features["label"].names == ["elliptical", "spiral", "other"]
    options = {
        **DEMO_CONFIG, "num_train_epochs": 12, "eval_strategy": "no", "logging_steps": 1000,
        "use_cpu": True, "disable_tqdm": True, "num_grid_images": 0, "seed": 0,
    }  # fmt: skip
    metrics = finetune(dsd, output_dir=tmp_path / "model", lora=True, **options).metrics
    majority = max(Counter(dsd["test"]["label"]).values()) / len(dsd["test"])
    assert majority < 0.55
    assert metrics["test_accuracy"] >= 0.6, metrics
    assert metrics["test_macro_f1"] >= 0.5, metrics


def test_a_cnn_from_a_config_follows_a_prepared_datasetdicts_image_size(tmp_path):
    """finetune(DatasetDict, "resnet-mini") without --image_size used to resize the 32 px prepared images up to
    224 px (the processor default of a model with no input size): 49 times the pixels, the demo 9x slower."""
    import json

    from hf_galaxy import finetune

    dsd = tiny_dataset_dict(n_per_class=2, size=32)
    out = tmp_path / "cnn"
    finetune(
        dsd, "resnet-mini", out, lora=False, max_steps=1, eval_strategy="no", use_cpu=True, report_to="none"
    )
    size = json.loads((out / "preprocessor_config.json").read_text())["size"]
    assert 32 in size.values() and 224 not in size.values(), size
    out96 = tmp_path / "cnn96"
    finetune(
        dsd, "resnet-mini", out96, lora=False, max_steps=1, eval_strategy="no", use_cpu=True, image_size=48
    )
    assert 48 in json.loads((out96 / "preprocessor_config.json").read_text())["size"].values()
