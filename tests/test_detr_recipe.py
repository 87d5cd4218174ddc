"""The detection recipe: box-aware augmentation, collation, COCO metrics, backbone checkpointing, tiny DETR/YOLOS."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_galaxy.data.transforms import (
    DetectionAugment,
    DetectionAugmentConfig,
    DetectionCollator,
    DetectionTransform,
)
from hf_galaxy.inference import predict_detections
from hf_galaxy.metrics import coco_map
from hf_galaxy.models import load_detector
from hf_galaxy.models.detection import (
    accepts_pixel_mask,
    disable_backbone_checkpointing,
    enable_backbone_checkpointing,
    set_backbone_trainable,
)
from hf_galaxy.training import build_detection_trainer, make_parser, pack_targets, unpack_targets

ROOT = Path(__file__).resolve().parents[1]
CATS = [
    "elliptical",
    "clockwise_spiral",
    "anticlockwise_spiral",
    "edge_on",
    "star_or_unknown",
    "merger",
    "neighbour",
    "star",
]


def _rect_image(w=40, h=30, box=(5, 3, 12, 7)):
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    x, y, bw, bh = box
    arr[y : y + bh, x : x + bw] = 255
    return Image.fromarray(arr)


def _extent(img):
    ys, xs = np.nonzero(np.asarray(img)[:, :, 0] > 128)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


# ------------------------------------------------------------------------------------------ augmentation
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotation_by_90_keeps_boxes_on_the_pixels(k):
    aug = DetectionAugment(CATS)
    img = _rect_image()
    out, boxes = aug.rotate(img, [[5, 3, 12, 7]], k)
    assert out.size == ((40, 30) if k % 2 == 0 else (30, 40))
    assert boxes[0] == pytest.approx(_extent(out))


def test_flip_mirrors_boxes_and_swaps_chirality():
    aug = DetectionAugment(CATS)
    img = _rect_image()
    out, boxes, cats = aug.mirror(img, [[5, 3, 12, 7], [5, 3, 12, 7], [5, 3, 12, 7]], [1, 2, 6])
    assert boxes[0] == pytest.approx(_extent(out))
    assert cats == [2, 1, 6]  # clockwise <-> anticlockwise; neighbour unchanged


def test_flip_turned_off_when_chirality_cannot_be_paired(caplog):
    aug = DetectionAugment(["clockwise_spiral", "elliptical"])
    assert not aug.flip
    with pytest.raises(ValueError, match="cannot mirror"):
        aug.mirror(_rect_image(), [[5, 3, 12, 7]], [0])


def test_random_augment_keeps_boxes_correct():
    torch.manual_seed(0)
    aug = DetectionAugment(CATS, DetectionAugmentConfig(scale_jitter=0.3))
    scales = []
    for _ in range(12):
        out, boxes, cats, scale = aug(_rect_image(), [[5, 3, 12, 7]], [1])
        assert boxes[0] == pytest.approx(_extent(out))
        assert cats[0] in (1, 2)
        scales.append(scale)
    assert min(scales) >= 0.7 and max(scales) <= 1.3 and len(set(scales)) > 1


def test_transform_scale_jitter_and_normalised_boxes():
    from transformers import DetrImageProcessorPil

    proc = DetrImageProcessorPil(size={"height": 32, "width": 32})
    batch = {
        "image": [_rect_image(40, 40, (10, 10, 20, 10))] * 6,
        "image_id": list(range(6)),
        "objects": [{"bbox": [[10, 10, 20, 10]], "category": [6], "area": [200.0], "id": [0]}] * 6,
    }
    torch.manual_seed(1)
    tf = DetectionTransform(
        proc, CATS, train=True, augment=DetectionAugmentConfig(rotate90=False, flip=False, scale_jitter=0.5)
    )
    out = tf(batch)
    sizes = {tuple(v.shape[-2:]) for v in out["pixel_values"]}
    assert len(sizes) > 1 and all(16 <= s[0] <= 48 for s in sizes)
    for lab in out["labels"]:
        assert lab["boxes"][0].tolist() == pytest.approx([0.5, 0.375, 0.5, 0.25], abs=1e-5)
        assert lab["orig_size"].tolist() == [40, 40] and lab["class_labels"].tolist() == [6]


def test_collator_pads_and_builds_pixel_mask():
    examples = [
        {
            "pixel_values": torch.ones(3, 20, 30),
            "labels": {"orig_size": torch.tensor([40, 60]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])},
        },
        {
            "pixel_values": torch.ones(3, 32, 16),
            "labels": {"orig_size": torch.tensor([64, 32]), "boxes": torch.tensor([[0.5, 0.5, 1.0, 1.0]])},
        },
    ]
    batch = DetectionCollator()(examples)
    assert batch["pixel_values"].shape == (2, 3, 32, 30)
    assert batch["pixel_mask"][0].sum() == 20 * 30 and batch["pixel_mask"][1].sum() == 32 * 16
    assert batch["pixel_mask"][0, 20:].sum() == 0 and batch["pixel_values"][1, :, :, 16:].abs().sum() == 0
    assert batch["labels"][1]["target_size"].tolist() == [64, 32]
    canvas = DetectionCollator(pixel_mask=False)(examples)
    assert "pixel_mask" not in canvas
    # boxes relative to the padded canvas; target_size maps them back to original pixels
    assert canvas["labels"][1]["boxes"][0].tolist() == pytest.approx([0.5 * 16 / 30, 0.5, 16 / 30, 1.0])
    assert canvas["labels"][1]["target_size"].tolist() == pytest.approx([64, 32 * 30 / 16])


# ------------------------------------------------------------------------------------------ metrics
def test_pack_targets_round_trip_with_empty_images():
    labels = [
        {
            "class_labels": torch.tensor([3, 1]),
            "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.1], [0.1, 0.2, 0.1, 0.1]]),
            "orig_size": torch.tensor([40, 60]),
            "target_size": torch.tensor([40.0, 90.0]),
        },
        {
            "class_labels": torch.zeros(0, dtype=torch.long),
            "boxes": torch.zeros(0, 4),
            "orig_size": torch.tensor([8, 8]),
        },
    ]
    packed = pack_targets(labels)
    assert packed.shape == (2, 3, 5) and packed[1, 1:].eq(-100).all()
    back = unpack_targets(packed.numpy())
    assert back[0]["class_labels"].tolist() == [3, 1] and back[1]["class_labels"].tolist() == []
    assert np.allclose(back[0]["boxes"], labels[0]["boxes"].numpy())
    assert back[0]["target_size"].tolist() == [40, 90] and back[1]["target_size"].tolist() == [8, 8]
    assert back[0]["orig_size"].tolist() == [40, 60]
    # an uneven last batch is trimmed by image, as accelerate does with tensors
    assert len(unpack_targets(packed[:1].numpy())) == 1


def test_coco_map_perfect_shifted_and_empty():
    targets = [
        {
            "boxes": np.array([[10, 10, 20, 20], [50, 50, 10, 10]]),
            "labels": np.array([0, 1]),
            "size": (100, 100),
        },
        {"boxes": np.array([[5, 5, 30, 30]]), "labels": np.array([0]), "size": (100, 100)},
    ]

    def dets(shift):
        return [
            {
                "boxes": np.array([[10 + shift, 10, 30 + shift, 30], [50, 50, 60, 60]]),
                "scores": np.array([0.9, 0.8]),
                "labels": np.array([0, 1]),
            },
            {"boxes": np.array([[5, 5, 35, 35]]), "scores": np.array([0.7]), "labels": np.array([0])},
        ]

    perfect = coco_map(targets, dets(0), ["a", "b"])
    assert perfect["map"] == pytest.approx(1.0) and perfect["map_50"] == pytest.approx(1.0)
    assert perfect["mar_100"] == pytest.approx(1.0) and perfect["map_a"] == pytest.approx(1.0)
    shifted = coco_map(targets, dets(8), ["a", "b"])
    assert shifted["map_75"] < perfect["map_75"] and shifted["map"] < 1.0
    assert (
        coco_map(
            targets,
            [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)}] * 2,
            ["a", "b"],
        )["map"]
        == 0.0
    )


# ------------------------------------------------------------------------------------------ models
def test_load_detector_presets_and_errors():
    model, proc = load_detector(None, CATS, model_config="detr-tiny", image_size=64)
    assert type(model).__name__ == "DetrForObjectDetection" and model.config.id2label[7] == "star"
    assert accepts_pixel_mask(model) and type(proc).__name__.endswith("Pil")
    yolos, _ = load_detector(None, CATS, model_config="yolos-tiny,num_detection_tokens=5", image_size=64)
    assert not accepts_pixel_mask(yolos) and yolos.config.num_detection_tokens == 5
    with pytest.raises(ValueError, match="object-detection model_type"):
        load_detector(None, CATS, model_config="hidden_size=8")


def test_load_detector_from_checkpoint_with_new_categories(tmp_path):
    model, proc = load_detector(None, ["a", "b"], model_config="detr-tiny", image_size=64)
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    again, proc2 = load_detector(str(tmp_path), ["x", "y", "z"], image_size=96)
    assert (
        again.config.id2label == {0: "x", 1: "y", 2: "z"} and again.class_labels_classifier.out_features == 4
    )
    assert (proc2.size.height, proc2.size.width) == (96, 96)


def test_detector_config_keys_are_checked_like_the_classifiers():
    # a misspelt key would otherwise become a silent attribute of the config
    with pytest.raises(ValueError, match="'d_modle' is not a DetrConfig field"):
        load_detector(None, CATS, model_config="detr-tiny,d_modle=32")
    nested = '{"model_type": "detr", "backbone_config": {"model_type": "resnet", "hiden_sizes": [8, 16]}}'
    with pytest.raises(ValueError, match="backbone_config: 'hiden_sizes' is not a ResNetConfig field"):
        load_detector(None, CATS, model_config=nested)


def test_detector_checkpoint_with_same_number_of_other_labels_gets_a_new_head(tmp_path, caplog):
    old, proc = load_detector(None, ["a", "b"], model_config="detr-tiny", image_size=64)
    old.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="hf_galaxy.models"):
        relabelled, _ = load_detector(str(tmp_path), ["x", "y"])
    assert "re-initialised" in caplog.text and "['a', 'b']" in caplog.text
    assert relabelled.config.id2label == {0: "x", 1: "y"}
    head, old_head = relabelled.class_labels_classifier, old.class_labels_classifier
    assert head.weight.shape == old_head.weight.shape and not torch.equal(head.weight, old_head.weight)
    # everything else is the checkpoint's, and the same labels keep the head as trained
    torch.testing.assert_close(
        relabelled.bbox_predictor.layers[0].weight, old.bbox_predictor.layers[0].weight
    )
    caplog.clear()
    same, _ = load_detector(str(tmp_path), ["a", "b"])
    torch.testing.assert_close(same.class_labels_classifier.weight, old_head.weight)
    assert "re-initialised" not in caplog.text


def test_backbone_trainable_and_checkpointing_give_same_gradients():
    torch.manual_seed(0)
    model, _ = load_detector(None, CATS, model_config="detr-tiny", image_size=64)
    frozen_all = sum(p.numel() for n, p in model.named_parameters() if "backbone" in n and p.requires_grad)
    counts = set_backbone_trainable(model, "detr")
    assert counts["trainable"] > 0 and counts["frozen"] > 0
    assert frozen_all == 0  # transformers 5.x freezes the whole HF ResNet backbone of DETR
    model.train()
    x = torch.randn(2, 3, 64, 64)
    labels = [{"class_labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]])}] * 2

    def grads():
        model.zero_grad()
        torch.manual_seed(1)
        model(
            pixel_values=x, pixel_mask=torch.ones(2, 64, 64, dtype=torch.long), labels=labels
        ).loss.backward()
        return {
            n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None and "backbone" in n
        }

    ref = grads()
    n = enable_backbone_checkpointing(model)
    assert n == 3  # the three trainable stages' blocks (first stage frozen)
    assert enable_backbone_checkpointing(model) == 3  # idempotent
    ck = grads()
    assert ref.keys() == ck.keys() and len(ref) > 0
    for k in ref:
        torch.testing.assert_close(ck[k], ref[k], rtol=1e-4, atol=1e-5)
    assert disable_backbone_checkpointing(model) == 3


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    from hf_galaxy.data.dataset import load_galaxy_dataset
    from hf_galaxy.data.detection import to_detection
    from hf_galaxy.data.synthetic import make_galaxy_zoo

    tmp = tmp_path_factory.mktemp("detr")
    zoo = make_galaxy_zoo(tmp / "zoo", 30, seed=2, image_size=64, show_progress=False)
    return to_detection(load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, cache_dir=tmp / "cache"))


@pytest.mark.parametrize("preset", ["detr-tiny", "yolos-tiny"])
def test_tiny_detector_trains_evaluates_and_predicts(preset, det_data, tmp_path):
    from transformers import TrainingArguments

    from hf_galaxy.data.detection import categories_of

    cats = categories_of(det_data)
    model, proc = load_detector(None, cats, model_config=preset, image_size=64)
    set_backbone_trainable(model, "detr")
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=2,  # the validation split is odd-sized: an uneven last batch
        learning_rate=1e-4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        gradient_checkpointing=True,
        disable_tqdm=True,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = build_detection_trainer(
        model,
        proc,
        det_data["train"],
        det_data["validation"],
        cats,
        args,
        augment=DetectionAugmentConfig(),
        backbone_checkpointing=True,
    )
    assert args.eval_do_concat_batches is False
    trainer.train()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)
    seen = []
    metric_fn = trainer.compute_metrics

    def counting(eval_pred):
        seen.append(sum(len(b) for b in eval_pred.label_ids))
        for batch_pred, packed in zip(eval_pred.predictions, eval_pred.label_ids):
            batch_labels = unpack_targets(packed)
            assert len(batch_pred[0]) == len(batch_labels)
            assert all(t["target_size"].tolist() == [64, 64] for t in batch_labels)
        return metric_fn(eval_pred)

    trainer.compute_metrics = counting
    metrics = trainer.evaluate()
    assert len(det_data["validation"]) % 2 == 1 and seen == [len(det_data["validation"])]
    for key in ("eval_map", "eval_map_50", "eval_mar_100"):
        assert 0.0 <= metrics[key] <= 1.0
    images = [det_data["validation"][i]["image"] for i in range(3)]
    dets = predict_detections(model, proc, images, threshold=0.0)
    assert len(dets) == 3
    for img, d in zip(images, dets):
        w, h = img.size
        b = d["boxes"]
        assert b.shape[1] == 4 and len(b) == len(d["scores"]) == len(d["labels"]) > 0
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
        assert b.max() <= max(w, h) * 1.01 and b.max() > 1.0  # absolute pixels, not [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["conditional-detr-tiny", "deformable-detr-tiny", "rt-detr-tiny"])
def test_other_detector_families_train_and_evaluate(preset, det_data, tmp_path):
    from transformers import TrainingArguments

    from hf_galaxy.data.detection import categories_of

    cats = categories_of(det_data)
    model, proc = load_detector(None, cats, model_config=preset, image_size=64)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        gradient_checkpointing=True,
        disable_tqdm=True,
    )
    trainer = build_detection_trainer(
        model,
        proc,
        det_data["train"],
        det_data["validation"],
        cats,
        args,
        augment=DetectionAugmentConfig(),
        backbone_checkpointing=True,
    )
    trainer.train()
    assert 0.0 <= trainer.evaluate()["eval_map"] <= 1.0
    dets = predict_detections(model, proc, [det_data["validation"][0]["image"]], threshold=0.0)
    assert dets[0]["boxes"].shape[1] == 4 and len(dets[0]["boxes"]) > 0


# ------------------------------------------------------------------------------------------ recipe
def test_load_detection_data_from_coco_folder_with_mosaics(det_data, tmp_path):
    from hf_galaxy.data.detection import categories_of, export_coco
    from hf_galaxy.training import DetectionDataArguments, load_detection_data

    export_coco(det_data, tmp_path / "coco")
    args = DetectionDataArguments(mosaics=4, mosaic_size_min=96, mosaic_size_max=112)
    dsd = load_detection_data(str(tmp_path / "coco"), args)
    assert set(dsd) == {"train", "validation", "test"} and categories_of(dsd) == categories_of(det_data)
    assert len(dsd["train"]) == len(det_data["train"]) + 4
    assert len(dsd["validation"]) == len(det_data["validation"]) + 1
    assert len(set(dsd["train"]["image_id"])) == len(dsd["train"])  # mosaic ids follow the cutouts' ids
    assert max(dsd["train"]["width"]) >= 96


def test_parser_yaml_cli_and_cpu_precision_fallback(tmp_path):
    script, targs, margs, dargs = make_parser(task="detection").parse(
        [
            "--config",
            str(ROOT / "recipes/configs/detr_tiny.yaml"),
            "--max_steps",
            "2",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert margs.model_config == "detr-tiny" and targs.max_steps == 2 and dargs.processor_size == 64
    assert targs.gradient_checkpointing and script.backbone_checkpointing
    if not torch.cuda.is_available():
        assert script.precision == "fp32" and not targs.fp16
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_config: detr-tiny\nnot_an_option: 1\n")
    with pytest.raises(SystemExit):
        make_parser(task="detection").parse(["--config", str(bad)])


def _launch(config: str, out: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(ROOT / "recipes/detr.py"),
        "--config",
        str(ROOT / "recipes/configs" / config),
        "--output_dir",
        str(out),
        "--max_steps",
        "4",
        "--disable_tqdm",
        "true",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(out.parent))
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["detr_tiny.yaml", "yolos_tiny.yaml"])
def test_accelerate_launch_recipe(config, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    from hf_galaxy.hub.references import release_info

    out = tmp_path / "run"
    _launch(config, out)
    # valid JSON (no NaN from COCO's "no ground truth" -1) everywhere the Trainer writes metrics
    files = {
        name: json.loads((out / name).read_text(), parse_constant=_no_nan)
        for name in ("test_results.json", "eval_results.json", "all_results.json", "train_results.json")
    }
    results = files["test_results.json"]
    assert 0.0 <= results["test_map"] <= 1.0 and "test_map_50" in results and "test_mar_100" in results
    assert "eval_map" in files["eval_results.json"]  # the validation split
    assert files["all_results.json"]["test_map"] == results["test_map"]
    assert (out / "predictions.png").stat().st_size > 1000
    assert Image.open(out / "predictions.png").format == "PNG"
    card = json.loads((out / "hf_galaxy_card.json").read_text())
    assert card["task"] == "object-detection" and card["label_names"][-2:] == ["neighbour", "star"]
    assert "" not in card["eval_results"] and "epoch" not in card["eval_results"]
    assert card["eval_results"]["map"] == results["test_map"]
    facts = card["dataset"]
    assert facts["release"] and facts["synthetic"] is True and facts["label_scheme"]
    assert facts["mosaics"]["train"] == 8 and facts["box_source"] == "auto"
    assert set(facts["class_balance"]["train"]) == set(card["label_names"])  # boxes per category
    readme = (out / "README.md").read_text()
    assert release_info(facts["release"])[0] in readme and "synthetic galaxies" in readme
    assert "| `` |" not in readme and "|  |" not in readme  # no blank metric row
    assert "expected calibration error" not in readme and "centred on one galaxy" not in readme
    assert "![Predicted boxes" in readme and "(predictions.png)" in readme
    assert "fields like the training mosaics" in readme
    model = AutoModelForObjectDetection.from_pretrained(out)
    assert model.config.id2label[0] == "elliptical"
    AutoImageProcessor.from_pretrained(out)


# ------------------------------------------------------------------------------------------ review fixes
_ORACLE_PROCESSORS = {
    "detr-tiny": "DetrImageProcessorPil",
    "yolos-tiny": "YolosImageProcessorPil",
    "rt-detr-tiny": "RTDetrImageProcessorPil",
}
# (width, height) of non-square images of mixed sizes, and their boxes [x, y, w, h] in original pixels
_ORACLE_IMAGES = [
    ((60, 40), [[4, 6, 20, 12], [30, 20, 25, 16]], [1, 6]),
    ((36, 72), [[2, 40, 30, 28]], [0]),
    ((50, 50), [[10, 10, 30, 30], [1, 1, 8, 6]], [3, 7]),
    ((80, 30), [[50, 2, 28, 25]], [2]),
]


def _oracle_dataset():
    import datasets

    from hf_galaxy.data.detection import detection_features

    rows = []
    for i, ((w, h), boxes, cats) in enumerate(_ORACLE_IMAGES):
        arr = (np.random.default_rng(i).random((h, w, 3)) * 255).astype(np.uint8)
        rows.append(
            {
                "image_id": 10 + i,
                "image": Image.fromarray(arr),
                "width": w,
                "height": h,
                "objects": {
                    "id": list(range(len(boxes))),
                    "area": [float(b[2] * b[3]) for b in boxes],
                    "bbox": boxes,
                    "category": cats,
                },
                "id": f"g{i}",
            }
        )
    return datasets.Dataset.from_list(rows, features=detection_features(CATS))


def test_rt_detr_ignores_pixel_mask_so_it_is_treated_as_maskless():
    from hf_galaxy.models.detection import pixel_mask_changes_output

    truth = {"detr-tiny": True, "yolos-tiny": False, "rt-detr-tiny": False}
    for preset, uses in truth.items():
        torch.manual_seed(0)
        model, _ = load_detector(None, CATS, model_config=preset, image_size=64)
        assert pixel_mask_changes_output(model) is uses, preset
        assert accepts_pixel_mask(model) is uses, preset
    # a model type outside the known lists is probed (and the answer cached on the model)
    model, _ = load_detector(None, CATS, model_config="rt-detr-tiny", image_size=64)
    model.config.model_type = "some_new_detector"
    assert accepts_pixel_mask(model) is False and model._hf_galaxy_uses_pixel_mask is False


@pytest.mark.parametrize("preset", ["detr-tiny", "yolos-tiny", "rt-detr-tiny"])
def test_oracle_predictions_give_perfect_map_through_the_pipeline(preset):
    """Ground-truth boxes, expressed in the frame the model really sees (the unpadded image for a model that
    uses pixel_mask, the padded canvas otherwise), go DetectionTransform -> DetectionCollator -> pack_targets
    -> DetectionMetrics and come back as the absolute boxes with mAP 1, on padded batches of non-square
    images of mixed sizes."""
    import transformers
    from transformers import EvalPrediction

    from hf_galaxy.data.transforms import PAD_MULTIPLE
    from hf_galaxy.inference import post_process
    from hf_galaxy.models.detection import pixel_mask_changes_output
    from hf_galaxy.training import DetectionMetrics

    torch.manual_seed(0)
    model, _ = load_detector(None, CATS, model_config=preset, image_size=64)
    proc = getattr(transformers, _ORACLE_PROCESSORS[preset])(size={"shortest_edge": 32, "longest_edge": 64})
    ds = _oracle_dataset()
    enc = DetectionTransform(proc, CATS)(ds[:])
    examples = [{"pixel_values": v, "labels": lab} for v, lab in zip(enc["pixel_values"], enc["labels"])]
    batch = DetectionCollator(pixel_mask=accepts_pixel_mask(model), pad_to_multiple_of=PAD_MULTIPLE)(examples)
    H, W = batch["pixel_values"].shape[-2:]
    sizes = [tuple(v.shape[-2:]) for v in enc["pixel_values"]]
    assert len(set(sizes)) > 1 and any((h, w) != (H, W) for h, w in sizes)  # the batch is padded

    sees_mask = pixel_mask_changes_output(model)
    model.eval()
    with torch.no_grad():
        inputs = {k: batch[k] for k in ("pixel_values", "pixel_mask") if k in batch}
        n_logits = model(**inputs).logits.shape[-1]
    n_max = max(len(b) for _, b, _ in _ORACLE_IMAGES)
    focal = n_logits == len(CATS)  # RT-DETR: sigmoid scores, no "no object" class
    logits = torch.full((len(ds), n_max, n_logits), -10.0)
    boxes = torch.full((len(ds), n_max, 4), 0.5)
    for i, (((w0, h0), gt, cats), (h, w)) in enumerate(zip(_ORACLE_IMAGES, sizes)):
        sx, sy = (1.0, 1.0) if sees_mask else (w / W, h / H)
        for q, (b, c) in enumerate(zip(gt, cats)):
            cx, cy = (b[0] + b[2] / 2) / w0, (b[1] + b[3] / 2) / h0
            boxes[i, q] = torch.tensor([cx * sx, cy * sy, b[2] / w0 * sx, b[3] / h0 * sy])
            logits[i, q, c] = 10.0
        for q in range(len(gt), n_max):
            if not focal:
                logits[i, q, -1] = 10.0  # "no object"
        # the training targets are in the same frame as the ideal prediction
        torch.testing.assert_close(batch["labels"][i]["boxes"], boxes[i, : len(gt)], atol=1e-5, rtol=0)

    packed = pack_targets(batch["labels"])
    metrics = DetectionMetrics(proc, CATS)(
        EvalPrediction(predictions=[(logits.numpy(), boxes.numpy())], label_ids=[packed.numpy()])
    )
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["mar_100"] == pytest.approx(1.0)
    assert all(np.isfinite(v) for v in metrics.values()) and "map_large" not in metrics  # COCO -1 dropped
    targets = unpack_targets(packed.numpy())
    dets = post_process(proc, logits, boxes, np.stack([t["target_size"] for t in targets]))
    for (_, gt, cats), d in zip(_ORACLE_IMAGES, dets):
        top = np.argsort(-d["scores"])[: len(gt)]
        got = sorted(zip(d["labels"][top].tolist(), d["boxes"][top].round(3).tolist()))
        want = sorted(zip(cats, [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in gt]))
        assert [c for c, _ in got] == [c for c, _ in want]
        np.testing.assert_allclose([b for _, b in got], [b for _, b in want], atol=1e-3)


def test_detection_metrics_leave_out_undefined_coco_values():
    from hf_galaxy.metrics import finite_metrics

    targets = [{"boxes": np.array([[2, 2, 5, 5]]), "labels": np.array([0]), "size": (16, 16)}]
    dets = [{"boxes": np.array([[2, 2, 7, 7]]), "scores": np.array([0.9]), "labels": np.array([0])}]
    raw = coco_map(targets, dets, ["a", "b"])
    assert np.isnan(raw["map_large"]) and np.isnan(raw["map_medium"])  # only small boxes: COCO says -1
    clean = finite_metrics(raw)
    assert "map_large" not in clean and clean["map"] == pytest.approx(1.0)
    json.loads(json.dumps(clean), parse_constant=_no_nan)


def _no_nan(name):
    raise ValueError(f"{name} in a metrics JSON file")


def test_card_metrics_keep_only_prefixed_quality_metrics():
    from hf_galaxy.training import card_metrics

    final = {
        "test_map": 0.5,
        "test_loss": 1.2,
        "epoch": 3.0,
        "test_runtime": 1.0,
        "test_samples_per_second": 9.0,
        "test_samples": 12,
        "test_map_large": float("nan"),
    }
    assert card_metrics(final, "test") == {"map": 0.5, "loss": 1.2}


def test_bench_detr_has_the_issue_baseline_rows():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_detr", ROOT / "benchmarks" / "bench_detr.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    runs = bench.plan_runs(["off", "transformer", "full"], "detr")
    assert runs[:2] == [("off", "as_built"), ("transformer", "as_built")]
    assert runs[2:] == [("off", "detr"), ("transformer", "detr"), ("full", "detr")]
    assert bench.plan_runs(["off"], "as_built") == [("off", "as_built")]
    assert bench.plan_runs(["full"], "detr", baseline=False) == [("full", "detr")]
    row = {
        "mode": "off",
        "train_backbone": "as_built",
        "baseline": True,
        "images_per_s": 1.0,
        "fwd_bwd_peak_mib": 1.0,
        "fwd_bwd_increase_mib": 0.5,
        "peak_mib": 2.0,
        "backbone_blocks_checkpointed": 0,
        "backbone_trainable_params": 0,
    }
    table = bench.format_table([row, {**row, "train_backbone": "detr", "baseline": False, "mode": "full"}])
    assert "as_built (baseline)" in table[1] and table[2].split()[:2] == ["detr", "full"]
