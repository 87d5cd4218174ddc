"""Self-supervised pretraining on unlabelled cut-outs: a masked autoencoder (transformers' ViTMAE).

:func:`unlabelled_images` gathers the images of any mix of sources (image folders, with or without class
sub-folders, catalogues, saved DatasetDicts, ``synthetic:N``) into one ``datasets.Dataset`` prepared at the
model's size, with every unreadable image counted. :func:`run_pretraining` trains ``ViTMAEForPreTraining`` on
it with the galaxy-aware augmentation of the classifiers (any-angle rotation, crop and scale jitter), then
saves the encoder as a plain ``ViTModel`` checkpoint: ``vit_full.py``/``vit_lora.py --model_name_or_path DIR``
fine-tune it directly, and ``pipeline("image-feature-extraction", model=DIR)`` embeds with it. The whole
autoencoder (with its decoder) goes to ``DIR/mae`` for further pretraining, the provenance of the encoder
into its ``config.json`` (``hf_galaxy_pretraining``) and the model card.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainingArguments

from hf_galaxy.hub.card import PRETRAINING_KEY
from hf_galaxy.training.arguments import PretrainArguments
from hf_galaxy.training.trainer import GalaxyTrainer, start_run

logger = logging.getLogger(__name__)

#: sub-folder of a pretraining output with the whole autoencoder (encoder + decoder)
MAE_SUBDIR = "mae"
#: ViT config keys an MAE encoder shares with the ViT it is exported to
_VIT_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "layer_norm_eps",
    "image_size",
    "patch_size",
    "num_channels",
    "qkv_bias",
)


# ------------------------------------------------------------------------------------------------ data
def _prepare_rows(batch: dict[str, list[Any]], image_size: int) -> dict[str, list[Any]]:
    """``datasets.map`` batch function: the loader's per-image preparation, its failures kept as reasons."""
    from hf_galaxy.data.dataset import prepare_row_image

    images, errors = [], []
    for gid, path, index in zip(batch["id"], batch["path"], batch["index"]):
        image, error = prepare_row_image(
            {"id": gid, "image_path": path or None, "image_index": index}, image_size
        )
        images.append(image)
        errors.append(None if error is None else str(error).splitlines()[0])
    return {"image": images, "error": errors}


def _prepared_files(
    rows: Sequence[tuple[str, str, int | None]], image_size: int, num_proc: int | None, what: str
):
    """``(id, path, index)`` rows read and prepared at ``image_size``: ``(Dataset(id, image), skipped)``."""
    from datasets import Dataset, Features, Image, Value

    table = Dataset.from_dict(
        {"id": [r[0] for r in rows], "path": [r[1] for r in rows], "index": [r[2] for r in rows]},
        features=Features({"id": Value("string"), "path": Value("string"), "index": Value("int64")}),
    )
    table = table.map(
        _prepare_rows,
        batched=True,
        batch_size=64,
        fn_kwargs={"image_size": image_size},
        remove_columns=["path", "index"],
        features=Features({"id": Value("string"), "image": Image(), "error": Value("string")}),
        num_proc=num_proc if num_proc and num_proc > 1 and len(table) > 256 else None,
        desc=f"preparing {what} at {image_size} px",
    )
    errors = table["error"]
    skipped = [(gid, err) for gid, err in zip(table["id"], errors) if err is not None]
    if skipped:
        table = table.select([i for i, err in enumerate(errors) if err is None])
    return table.remove_columns("error"), skipped


def unlabelled_images(
    sources: Sequence[str | os.PathLike],
    image_size: int,
    *,
    image_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
    synthetic_seed: int = 0,
    work_dir: str | os.PathLike = ".",
) -> tuple[Any, dict[str, Any]]:
    """The images of ``sources`` as one ``datasets.Dataset`` (``id``, ``source``, ``image``) and a report:
    images per source (``images_per_source``) and the unreadable ones (``skipped``: ``(id, reason)``, also
    logged). No labels are read.

    - an image folder is searched recursively (class sub-folders are ignored);
    - a catalogue of any supported release takes its cut-outs from ``image_dir``; every row with an image is
      used, whatever its votes;
    - ``synthetic:N`` generates N procedural galaxies under ``work_dir/synthetic_data``;
    - these are read and prepared at ``image_size``; a saved DatasetDict, or a dataset with its images inside
      (a Hub dataset id such as ``mwalmsley/gz2``, a local copy of one, parquet with images), is used as it is
      (all its splits; the image processor resizes on the fly).
    """
    from datasets import Image, concatenate_datasets, load_from_disk

    from hf_galaxy.data.hub import is_embedded
    from hf_galaxy.inference.predict import inference_inputs, input_rows

    if not sources:
        raise ValueError("--dataset is required: one or more image folders, catalogues or synthetic:N")
    parts, per_source, skipped = [], {}, []
    for source in map(str, sources):
        path = Path(source).expanduser()
        if path.is_dir() and (path / "dataset_dict.json").is_file():
            dsd = load_from_disk(str(path))
            ds = concatenate_datasets([dsd[s].select_columns(["id", "image"]) for s in dsd])
            ds = ds.cast_column("image", Image())
        elif not source.startswith("synthetic:") and is_embedded(source):
            ds = inference_inputs(source).select_columns(["id", "image"])
        else:
            if source.startswith("synthetic:"):
                from hf_galaxy.data.synthetic import make_galaxy_zoo

                try:
                    n = int(source.split(":", 1)[1])
                except ValueError as err:
                    raise ValueError(f"--dataset {source!r}: expected synthetic:N with an integer N") from err
                zoo = make_galaxy_zoo(
                    Path(work_dir) / "synthetic_data", n, seed=synthetic_seed, num_proc=num_proc or 1
                )
                rows, _ = input_rows(zoo.catalog_path, zoo.image_dir)
            else:
                rows, _ = input_rows(path, None if path.is_dir() else image_dir)
            ds, bad = _prepared_files(rows, image_size, num_proc, path.name or source)
            skipped += bad
        per_source[source] = len(ds)
        if len(ds):
            parts.append(ds.add_column("source", [source] * len(ds)))
    for gid, reason in skipped:
        logger.warning("skipped %s: %s", gid, reason)
    if not parts:
        raise ValueError(f"no readable images in {', '.join(map(str, sources))} ({len(skipped)} unreadable)")
    images = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return images, {"images_per_source": per_source, "n_images": len(images), "skipped": skipped}


def source_names(sources: Sequence[str]) -> dict[str, str]:
    """Short, unique, path-free names of pretraining sources for cards (``synthetic``, folder base names)."""
    names: dict[str, str] = {}
    for source in map(str, sources):
        base = "synthetic" if source.startswith("synthetic:") else os.path.basename(os.path.normpath(source))
        name, k = base, 2
        while name in names.values():
            name, k = f"{base}-{k}", k + 1
        names[source] = name
    return names


# ----------------------------------------------------------------------------------------------- model
def mae_config(spec: str | dict[str, Any], image_size: int, mask_ratio: float, norm_pix_loss: bool) -> Any:
    """A ``ViTMAEConfig`` from a ViT ``--model_config`` (preset, JSON, dict); ``decoder_*`` keys set the
    decoder, which defaults to two layers as wide as the encoder (the MAE paper's decoder is light too)."""
    from hf_galaxy.models.loading import config_from_dict
    from hf_galaxy.models.presets import parse_model_config

    cfg = dict(parse_model_config(spec))
    model_type = cfg.pop("model_type", "vit")
    if model_type not in ("vit", "vit_mae"):
        raise ValueError(
            f"--model_config {spec!r}: MAE pretraining needs a ViT (model_type vit), got {model_type}"
        )
    cfg.pop("num_labels", None)
    hidden = int(cfg.get("hidden_size", 768))
    heads = int(cfg.get("num_attention_heads", 12))
    cfg.setdefault("decoder_hidden_size", hidden)
    cfg.setdefault("decoder_num_hidden_layers", 2)
    cfg.setdefault("decoder_num_attention_heads", heads)
    cfg.setdefault("decoder_intermediate_size", 2 * int(cfg["decoder_hidden_size"]))
    cfg.update(image_size=int(image_size), mask_ratio=float(mask_ratio), norm_pix_loss=bool(norm_pix_loss))
    return config_from_dict({"model_type": "vit_mae", **cfg})  # unknown keys are errors naming them


def export_encoder(mae: Any, provenance: dict[str, Any] | None = None) -> Any:
    """The encoder of a ``ViTMAEForPreTraining`` as a ``ViTModel`` (same weights; the MAE's fixed sin-cos
    position embeddings become the ViT's, trainable from there); ``provenance`` goes into its config."""
    from transformers import ViTConfig, ViTModel

    mc = mae.config
    config = ViTConfig(**{k: getattr(mc, k) for k in _VIT_KEYS if hasattr(mc, k)})
    if provenance is not None:
        setattr(config, PRETRAINING_KEY, provenance)
    encoder = ViTModel(config, add_pooling_layer=False)
    weights = {k[len("vit.") :]: v for k, v in mae.state_dict().items() if k.startswith("vit.")}
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"MAE encoder export: missing {missing}, unexpected {unexpected}")
    return encoder


def mae_reconstructions(
    model: Any, pixel_values: Sequence[Any], processor: Any, seed: int = 0
) -> dict[str, Any]:
    """Original, masked input and reconstruction (visible patches pasted back) of a few processed images, as
    ``(n, H, W, 3)`` float arrays in [0, 1]; the masks are drawn from ``seed``."""
    import numpy as np
    import torch

    x = torch.stack([torch.as_tensor(p) for p in pixel_values]).to(model.device, torch.float32)
    n_patches = (model.config.image_size // model.config.patch_size) ** 2
    noise = torch.rand(len(x), n_patches, generator=torch.Generator().manual_seed(seed)).to(x.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=x, noise=noise)
        pred = out.logits.float()
        if model.config.norm_pix_loss:  # predictions are per-patch normalised pixels: undo with the input's
            target = model.patchify(x)
            pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
        recon = model.unpatchify(pred)
        mask = out.mask.unsqueeze(-1).repeat(1, 1, pred.shape[-1])
        mask = model.unpatchify(mask)  # 1 where hidden
    model.train(was_training)
    mean = torch.tensor(getattr(processor, "image_mean", [0.5] * 3), device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(getattr(processor, "image_std", [0.5] * 3), device=x.device).view(1, 3, 1, 1)

    def to_image(t: torch.Tensor) -> np.ndarray:
        return (t * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    return {
        "original": to_image(x),
        "masked": to_image(x * (1 - mask)) * (1 - mask.permute(0, 2, 3, 1).cpu().numpy()),
        "reconstruction": to_image(x * (1 - mask) + recon * mask),
    }


# ---------------------------------------------------------------------------------------------- trainer
class MAEPretrainer(GalaxyTrainer):
    """``GalaxyTrainer`` for ``ViTMAEForPreTraining``: saves the encoder (``ViTModel``) at the output root,
    the autoencoder under ``mae/`` and draws reconstructions of held-out galaxies. The encoder's provenance is
    the card's ``extra["pretraining"]``."""

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: Any = None
    ) -> tuple[Any, None, None]:
        """The reconstruction loss of a batch (the model takes no labels, so ``Trainer`` would skip it)."""
        import torch

        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = model(**inputs).loss
        return loss.detach().mean(), None, None

    def write_plots(self, output_dir: Path) -> None:
        """Training curves and ``reconstructions.png`` (original, masked input, reconstruction)."""
        super().write_plots(output_dir)
        if self.eval_dataset is not None and len(self.eval_dataset):
            from hf_galaxy.plots import plot_reconstructions

            n = min(8, len(self.eval_dataset))
            batch = [self.eval_dataset[i]["pixel_values"] for i in range(n)]
            model = self.accelerator.unwrap_model(self.model)
            panels = mae_reconstructions(model, batch, self.processing_class)
            plot_reconstructions(
                panels, output_dir / "reconstructions.png", mask_ratio=model.config.mask_ratio
            )

    def save_final_model(self, output_dir: Path) -> str:
        """The encoder (with its image processor) at ``output_dir``, the autoencoder at ``output_dir/mae``."""
        mae_dir = output_dir / MAE_SUBDIR
        self.save_model(str(mae_dir))
        if self.is_world_process_zero():
            model = self.accelerator.unwrap_model(self.model)
            provenance = {
                **self.card.extra["pretraining"],
                "final_loss": self.card.extra.get("final_eval_loss"),
            }
            export_encoder(model, provenance).save_pretrained(str(output_dir))
            if self.processing_class is not None:
                self.processing_class.save_pretrained(str(output_dir))
        return "MAE encoder"


def run_pretraining(
    args: PretrainArguments, training_args: TrainingArguments, precision: str = "auto"
) -> dict[str, float]:
    """Pretrain a masked autoencoder on ``args.dataset``; save the encoder, the autoencoder, plots and card.

    Returns the final metrics (``train_loss``, ``eval_loss``: the masked-patch reconstruction error).
    """
    from collections import Counter

    from transformers import IntervalStrategy, ViTMAEConfig, ViTMAEForPreTraining

    from hf_galaxy.data.transforms import AugmentConfig, GalaxyTransform
    from hf_galaxy.hub.card import GalaxyCardData, describe_hardware, library_versions
    from hf_galaxy.hub.render import display_name, is_hub_repo_id
    from hf_galaxy.models.loading import default_image_processor, load_image_processor
    from hf_galaxy.training.data import truncate

    run = start_run(training_args, precision)
    output_dir = Path(training_args.output_dir)
    start_from = _mae_checkpoint(args.model_name_or_path, args.revision) if args.model_name_or_path else None
    if start_from is not None:
        config = ViTMAEConfig.from_pretrained(start_from, revision=args.revision)
        image_size = int(config.image_size)  # prepare at the checkpoint's size, not --image_size
    else:
        config = mae_config(args.model_config, args.image_size, args.mask_ratio, args.norm_pix_loss)
        image_size = args.image_size
    with training_args.main_process_first(desc="pretraining images"):
        images, report = unlabelled_images(
            args.dataset,
            image_size,
            image_dir=args.image_dir,
            num_proc=args.num_proc,
            synthetic_seed=args.synthetic_seed,
            work_dir=output_dir,
        )
    images = truncate(images.shuffle(seed=training_args.seed), args.max_images)
    n_val = int(round(args.validation_fraction * len(images)))
    if args.validation_fraction > 0 and len(images) > 1:
        n_val = max(1, n_val)
    splits = {"train": images.select(range(n_val, len(images)))}
    if n_val:
        splits["validation"] = images.select(range(n_val))
    elif training_args.eval_strategy != "no":
        logger.warning(
            "no validation images (--validation_fraction %s): eval_strategy set to 'no'",
            args.validation_fraction,
        )
        training_args.eval_strategy = IntervalStrategy.NO

    if start_from is not None:
        model = ViTMAEForPreTraining.from_pretrained(
            start_from, revision=args.revision, mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss
        )
        processor = load_image_processor(start_from, "vit", image_size, revision=args.revision)
    else:
        model = ViTMAEForPreTraining(config)
        processor = default_image_processor("vit", image_size)
    augment = AugmentConfig(flip=True) if args.augment else None
    splits["train"].set_transform(GalaxyTransform(processor, [], train=args.augment, augment=augment))
    if "validation" in splits:
        splits["validation"].set_transform(GalaxyTransform(processor, []))

    names = source_names(args.dataset)
    counts = Counter(images["source"])
    base_model = args.model_name_or_path
    provenance = {
        "method": "mae",
        "mask_ratio": args.mask_ratio,
        "norm_pix_loss": args.norm_pix_loss,
        "n_images": len(images),
        "images_per_source": {names[s]: counts.get(s, 0) for s in map(str, args.dataset)},
        "synthetic": any(s.startswith("synthetic:") for s in map(str, args.dataset)),
        "epochs": None,  # filled in after training (trainer.state.epoch, which --max_steps may cut short)
        "image_size": image_size,
        "base_model": base_model if is_hub_repo_id(base_model) else display_name(base_model),
    }
    card = GalaxyCardData(
        task="image-feature-extraction",
        base_model=base_model,
        model_config=None if base_model else args.model_config,
        dataset={
            "source": ", ".join(map(str, args.dataset)),
            "split_sizes": {s: len(d) for s, d in splits.items()},
            "n_dropped": len(report["skipped"]),
            "synthetic": provenance["synthetic"],
        },
        hardware=describe_hardware(training_args),
        library_versions=library_versions(),
        extra={"pretraining": provenance, "image_size": image_size},
    )
    training_args.remove_unused_columns = False
    trainer = MAEPretrainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("validation"),
        processing_class=processor,
        card=card,
    )
    metrics = trainer.train_and_record(len(splits["train"]))
    provenance["epochs"] = round(float(trainer.state.epoch or 0), 2)
    if "validation" in splits:
        val = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", val)
        trainer.save_metrics("eval", val)
        metrics.update(val)
        card.extra["final_eval_loss"] = round(float(val["eval_loss"]), 5)
        card.eval_results = {"reconstruction_loss": float(val["eval_loss"])}
        card.eval_split = "validation"
    return trainer.finish(run, metrics)


def _mae_checkpoint(name_or_path: str, revision: str | None) -> str:
    """The ViTMAE checkpoint to continue from: a Hub id or folder, or a previous run's ``DIR`` (its ``DIR/mae``);
    the errors say what was expected."""
    from hf_galaxy.jsonio import read_json
    from hf_galaxy.models.loading import checkpoint_dir

    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / MAE_SUBDIR / "config.json").is_file():
        path = path / MAE_SUBDIR  # a previous vit_mae.py output: its encoder alone has no decoder
    folder = checkpoint_dir(str(path) if path.is_dir() else name_or_path, revision)
    model_type = read_json(folder / "config.json").get("model_type")
    if model_type != "vit_mae":
        raise ValueError(
            f"--model_name_or_path {name_or_path}: not a ViTMAE checkpoint (model_type {model_type!r}); pass "
            "a vit_mae checkpoint such as facebook/vit-mae-base"
        )
    return str(folder)
