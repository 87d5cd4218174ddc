"""Shared helpers for the Hub tests: tiny trained-looking output directories and a patched loopback Hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub.hf_api
import numpy as np
import pytest
import torch
from huggingface_hub import constants

from hf_galaxy.data.catalogs.trees import GZ1_CLASSES as _GZ1_CLASSES
from hf_galaxy.hub.card import GalaxyCardData, library_versions
from tests.hub_server import HubServer

GZ1_CLASSES = list(_GZ1_CLASSES)
TOKEN = "hf_loopback_test_token"
IMAGE_SIZE = 32


def tiny_vit(seed: int = 0):
    """A 2-layer ViT classifier (hidden 32, image 32, patch 8) with the GZ1 label maps."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=IMAGE_SIZE,
        patch_size=8,
        num_labels=len(GZ1_CLASSES),
        id2label=dict(enumerate(GZ1_CLASSES)),
        label2id={n: i for i, n in enumerate(GZ1_CLASSES)},
    )
    return ViTForImageClassification(config).eval()


def tiny_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def galaxy_images(n: int = 4, seed: int = 0) -> list:
    """Small RGB test images (a bright blob on noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    images = []
    for _ in range(n):
        cx, cy, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(3, 8)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
        rgb = np.stack([blob * c for c in rng.uniform(0.5, 1.0, 3)], -1) + rng.normal(
            0, 0.05, (IMAGE_SIZE,) * 2 + (3,)
        )
        images.append(Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)))
    return images


def card_data(lora: dict | None = None, base_model: str | None = None) -> GalaxyCardData:
    """Card data as a recipe would fill it for a tiny GZ1 run."""
    return GalaxyCardData(
        base_model=base_model,
        model_config=None if base_model else "ViTConfig(hidden_size=32, num_hidden_layers=2, patch_size=8)",
        dataset={
            "release": "Galaxy Zoo 1",
            "catalog": "/data/private/GalaxyZoo1_DR_table2.csv",
            "label_scheme": "clean",
            "threshold": 0.8,
            "question": None,
            "class_names": GZ1_CLASSES,
            "split_sizes": {"train": 48, "validation": 6, "test": 6},
            "class_balance": {
                "train": dict(zip(GZ1_CLASSES, [12, 9, 9, 8, 4, 6])),
                "validation": dict.fromkeys(GZ1_CLASSES, 1),
                "test": dict.fromkeys(GZ1_CLASSES, 1),
            },
            "n_dropped": 2,
        },
        label_names=list(GZ1_CLASSES),
        hyperparameters={"learning_rate": 0.001, "num_train_epochs": 2, "per_device_train_batch_size": 8},
        lora=lora,
        precision="fp32",
        hardware="CPU (2 cores)",
        soft_labels=True,
        log_table=[
            {"epoch": 1.0, "step": 6, "training_loss": 1.71, "validation_loss": 1.65, "accuracy": 0.33},
            {"epoch": 2.0, "step": 12, "training_loss": 1.52, "validation_loss": 1.58, "accuracy": 0.5},
        ],
        eval_results={
            "test_accuracy": 0.5,
            "test_macro_f1": 0.4167,
            "test_ece": 0.1234,
            "test_vote_rmse": 0.2101,
            "test_precision_elliptical": 0.75,
            "test_recall_elliptical": 1.0,
            "test_loss": 1.6,
        },
        eval_split="test",
        library_versions=library_versions(),
    )


def _write_run_files(output_dir: Path) -> None:
    """Metrics, trainer state, a confusion matrix plot, and the files that must never be published."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (output_dir / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.5, "epoch": 2.0}))
    (output_dir / "all_results.json").write_text(json.dumps({"test_accuracy": 0.5, "train_loss": 1.6}))
    (output_dir / "trainer_state.json").write_text(json.dumps({"log_history": [{"loss": 1.7, "step": 6}]}))
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.eye(len(GZ1_CLASSES)))
    fig.savefig(output_dir / "confusion_matrix.png")
    plt.close(fig)
    # never published:
    ckpt = output_dir / "checkpoint-6"
    ckpt.mkdir()
    (ckpt / "optimizer.pt").write_bytes(b"optimizer state")
    (ckpt / "model.safetensors").write_bytes(b"not a real checkpoint")
    (output_dir / "training_args.bin").write_bytes(b"pickled args with hub_token")
    (output_dir / "optimizer.pt").write_bytes(b"optimizer state")
    (output_dir / "hub_token.txt").write_text("hf_secret")


def make_output_dir(output_dir: Path, seed: int = 0) -> Path:
    """A full fine-tuning output directory: tiny ViT, image processor, card data, metrics, plots."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tiny_vit(seed).save_pretrained(output_dir)
    tiny_processor().save_pretrained(output_dir)
    card_data().save(output_dir)
    _write_run_files(output_dir)
    return output_dir


def make_lora_output_dir(
    output_dir: Path, base_model: str | Path, *, save_merged: bool = True, seed: int = 0
) -> Path:
    """A LoRA run's output: merged model at the top level (unless ``save_merged=False``), adapter in ``adapter/``.

    ``base_model`` is recorded as ``base_model_name_or_path`` (a Hub id or a local folder holding the base).
    """
    from peft import LoraConfig, get_peft_model

    from hf_galaxy.hub.card import lora_summary

    output_dir.mkdir(parents=True, exist_ok=True)
    base = tiny_vit(seed)
    base.config._name_or_path = str(base_model)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=["classifier"],
    )
    model = get_peft_model(base, config)
    torch.manual_seed(seed + 1)
    with torch.no_grad():  # make the adapter non-trivial (LoRA B starts at zero)
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.5)
    model.peft_config["default"].base_model_name_or_path = str(base_model)
    summary = lora_summary(model)
    model.save_pretrained(output_dir / "adapter")
    if save_merged:
        model.merge_and_unload().save_pretrained(output_dir)
    tiny_processor().save_pretrained(output_dir)
    card_data(lora=summary, base_model=str(base_model)).save(output_dir)
    _write_run_files(output_dir)
    return output_dir


@contextmanager
def loopback_hub(
    root: Path, monkeypatch: pytest.MonkeyPatch, token: str | None = TOKEN
) -> Iterator[HubServer]:
    """Start the loopback Hub and point huggingface_hub (and so transformers) at it, online."""
    with HubServer(root, token=token) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(
            constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            server.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        # module-level clients built at import time keep their endpoint: huggingface_hub's `api` (behind
        # file_exists, model_info, ... used by peft) and transformers' shared HfApi
        monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", server.endpoint)
        import transformers.utils.hub as transformers_hub

        monkeypatch.setattr(transformers_hub, "_hf_api", None)
        _point_datasets_at(server.endpoint, monkeypatch)
        if token:
            monkeypatch.setenv("HF_TOKEN", token)
        yield server


def _point_datasets_at(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the ``datasets`` client at ``endpoint``, online (its config copies these at import time).

    Also stops the two requests ``load_dataset`` would send elsewhere: the download-count HEAD to S3 and the
    dataset viewer (``datasets-server.<endpoint host>``) parquet-export look-up.
    """
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(
        datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)


def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch huggingface_hub and datasets to offline mode (``HF_HUB_OFFLINE=1``) for the rest of the test."""
    import datasets.config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def isolated_hf_caches(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fresh huggingface_hub and datasets caches under ``root`` for this test (restored afterwards).

    Returns ``{"hub": ..., "datasets": ...}``. Both libraries read these at import time, so the module constants
    are patched (the environment variables too, for subprocesses).
    """
    import datasets.config

    hub_cache, ds_cache = root / "hub", root / "datasets"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(ds_cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", ds_cache)
    monkeypatch.setattr(
        datasets.config, "DOWNLOADED_DATASETS_PATH", ds_cache / datasets.config.DOWNLOADED_DATASETS_DIR
    )
    monkeypatch.setattr(
        datasets.config,
        "EXTRACTED_DATASETS_PATH",
        ds_cache / datasets.config.DOWNLOADED_DATASETS_DIR / datasets.config.EXTRACTED_DATASETS_DIR,
    )
    return {"hub": hub_cache, "datasets": ds_cache}


def file_tree(folder: Path) -> dict[str, bytes]:
    """Relative POSIX path -> bytes of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
