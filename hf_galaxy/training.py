"""Trainer plumbing shared by the recipes and the ``hf-galaxy train|evaluate|predict`` commands.

* argument dataclasses (:class:`ScriptArguments`, :class:`DataArguments`, :class:`ModelArguments`) and
  :func:`make_parser` (YAML defaults via ``--config``, CLI overrides, unknown YAML keys rejected);
* :func:`resolve_precision` / :func:`apply_precision` (``auto|bf16|fp16|fp32``; never fp16 on a CPU);
* :func:`load_training_data` (catalogue / image folder, ``save_to_disk`` directory or ``synthetic:N``);
* :func:`collate_galaxy`, :func:`soft_label_loss`, :class:`GalaxyTrainer` (hard or vote-fraction labels);
* :class:`TTAClassifier` (test-time augmentation over 90-degree rotations);
* :func:`run_training`: the linear recipe flow (data, model, LoRA, train, evaluate, plots, save, card);
* :func:`train_classifier`: the same flow for an in-memory ``DatasetDict`` (used by the demo).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import HfArgumentParser, Trainer, TrainingArguments
from transformers.modeling_outputs import ImageClassifierOutput

from hf_galaxy.metrics import (
    confusion,
    make_compute_metrics,
    softmax,
    split_label_ids,
)
from hf_galaxy.models import DEFAULT_MODEL, apply_lora, load_classifier, save_lora_model
from hf_galaxy.transforms import AugmentConfig, GalaxyTransform, rotate_pixel_values

logger = logging.getLogger(__name__)

LABEL_NAMES = ["labels", "votes"]
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


# --------------------------------------------------------------------------------------------- arguments
@dataclass
class ScriptArguments:
    """Run-level options of the training recipes."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Catalogue file or image folder (read with load_galaxy_dataset), a DatasetDict directory "
            "saved with save_to_disk, or 'synthetic:N' (N procedural galaxies)."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU), bf16, fp16 or fp32."
        },
    )
    soft_labels: bool = field(
        default=False,
        metadata={"help": "Train on the vote fractions (soft labels); implied by --label_scheme votes."},
    )
    soft_loss: str = field(
        default="ce", metadata={"help": "Soft-label loss: 'ce' (cross-entropy on vote fractions) or 'kl'."}
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split for the final metrics (falls back to validation if absent)."}
    )
    tta: bool = field(
        default=False, metadata={"help": "Also report final metrics with test-time augmentation."}
    )
    tta_rotations: str = field(
        default="0,90,180,270", metadata={"help": "TTA rotation angles (multiples of 90)."}
    )
    save_merged: bool = field(
        default=True, metadata={"help": "LoRA: save the merged plain model at the top of output_dir."}
    )
    num_grid_images: int = field(default=16, metadata={"help": "Images in sample_grid.png (0: no grid)."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Where 'synthetic:N' data is generated (default: OUTPUT_DIR/synthetic_data)."},
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.soft_loss not in ("ce", "kl"):
            raise ValueError(f"--soft_loss must be 'ce' or 'kl', got {self.soft_loss!r}")
        parse_rotations(self.tta_rotations)


@dataclass
class DataArguments:
    """How the dataset is read, labelled, prepared and augmented."""

    image_dir: str | None = field(
        default=None, metadata={"help": "Folder with the cutouts named in the catalogue."}
    )
    label_scheme: str = field(default="plurality", metadata={"help": "plurality, clean, votes or column."})
    question: str | None = field(
        default=None, metadata={"help": "Decision-tree question to label by (GZ2, ...)."}
    )
    threshold: float = field(default=0.8, metadata={"help": "Winning vote fraction of the 'clean' scheme."})
    label_column: str | None = field(default=None, metadata={"help": "Ready label column of the catalogue."})
    classes: str | None = field(
        default=None, metadata={"help": "Class selection/merge preset or comma list."}
    )
    image_size: int | None = field(
        default=None, metadata={"help": "Resize the cutouts once at preparation time (pixels, square)."}
    )
    synthetic_image_size: int = field(default=424, metadata={"help": "Size of 'synthetic:N' galaxy images."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation splits."})
    augment: bool = field(
        default=True, metadata={"help": "Galaxy-aware augmentation of the training images."}
    )
    rotation_fill: str = field(
        default="reflect",
        metadata={
            "help": "'reflect' (reflect-pad, rotate, keep the full field) or 'black' (crop the black corners "
            "away: keeps ~0.79 of the side on average, so training galaxies look larger than at evaluation)."
        },
    )
    crop_scale_min: float = field(
        default=0.9, metadata={"help": "Smallest side fraction of the random crop (< 1 zooms in)."}
    )
    crop_scale_max: float = field(
        default=1.1,
        metadata={
            "help": "Largest side fraction of the random crop (> 1 zooms out by reflect-padding; clipped to 1 "
            "with rotation_fill=black). The default range is centred on 1: no average zoom."
        },
    )
    scale_jitter: float = field(
        default=0.1, metadata={"help": "Zoom jitter: crop side x U(1-j, 1+j) (mean 1)."}
    )
    split_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the train/validation/test split of a catalogue (independent of the training "
            "--seed); the default 0 is that of load_galaxy_dataset, hf-galaxy prepare and hf-galaxy evaluate, "
            "so evaluating on the same catalogue scores the same held-out test galaxies."
        },
    )
    flip: bool = field(default=True, metadata={"help": "Mirror flips with chirality-aware label swap."})
    num_proc: int | None = field(default=None, metadata={"help": "Processes preparing images."})

    def augment_config(self) -> AugmentConfig | None:
        """The :class:`AugmentConfig` these arguments describe (None when augmentation is off)."""
        if not self.augment:
            return None
        return AugmentConfig(
            rotation_fill=self.rotation_fill,
            crop_scale=(self.crop_scale_min, self.crop_scale_max),
            scale_jitter=self.scale_jitter,
            flip=self.flip,
        )


@dataclass
class ModelArguments:
    """Which model to fine-tune, and LoRA settings."""

    model_name_or_path: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Hub id or local checkpoint directory (ignored with --model_config)."},
    )
    model_config: str | None = field(
        default=None,
        metadata={
            "help": "Build the model from a config with random weights: a JSON file, inline JSON, key=value,... "
            "or a preset (vit-tiny, vit-mini[,key=value...])."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of the model."})
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="attention",
        metadata={
            "help": "'attention' (q/k/v/o projections), 'all-linear', or comma-separated name suffixes."
        },
    )
    lora_modules_to_save: str | None = field(
        default=None,
        metadata={
            "help": "Extra fully trained modules (comma-separated name suffixes); the head is always saved."
        },
    )

    def __post_init__(self) -> None:
        # lets a command line switch off a YAML's model_config: --model_config none
        if isinstance(self.model_config, str) and self.model_config.strip().lower() in ("", "none", "null"):
            self.model_config = None


class ConfigError(ValueError):
    """A recipe YAML file that cannot be used (unreadable, not a mapping, unknown keys)."""


def load_yaml_config(path: str | os.PathLike, valid_keys: Sequence[str]) -> dict[str, Any]:
    """Read a recipe YAML file; every key must be one of ``valid_keys`` (the error names the others)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of argument names to values, got {type(data).__name__}")
    valid = set(valid_keys)
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(repr(k) for k in unknown)}: not an argument of this recipe "
            "(run with --help for the valid options)"
        )
    return data


class GalaxyArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` with ``--config FILE.yaml`` defaults (CLI flags override) and precision handling."""

    def __init__(self, dataclass_types: Sequence[type], **kwargs: Any) -> None:
        super().__init__(list(dataclass_types), **kwargs)
        self.add_argument(
            "--config", default=None, help="YAML file with default values for any option below."
        )

    def valid_keys(self) -> list[str]:
        """Names of all options (dataclass fields) the YAML file may set."""
        return [f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init]

    def build(self, explicit: dict[str, Any], config: str | os.PathLike | None = None) -> tuple[Any, ...]:
        """Dataclass instances from parser defaults, then the YAML ``config``, then ``explicit`` values."""
        values = vars(self.parse_args([]))
        values.pop("config", None)
        if config:
            values.update(load_yaml_config(config, self.valid_keys()))
        values.update(explicit)
        return self._construct(values)

    def _construct(self, values: dict[str, Any]) -> tuple[Any, ...]:
        _resolve_namespace_precision(values)
        return tuple(
            dtype(
                **{f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init and f.name in values}
            )
            for dtype in self.dataclass_types
        )

    def parse(self, args: Sequence[str] | None = None) -> tuple[Any, ...]:
        """Parse ``args`` (default ``sys.argv[1:]``) into one instance per dataclass, YAML then CLI."""
        argv = list(sys.argv[1:] if args is None else args)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config:
            try:
                defaults = load_yaml_config(known.config, self.valid_keys())
            except ConfigError as err:
                self.error(str(err))
            self.set_defaults(**defaults)
        namespace = vars(self.parse_args(argv))
        namespace.pop("config", None)
        try:
            return self._construct(namespace)
        except ValueError as err:
            self.error(str(err))


def make_parser(
    use_lora: bool = False, extra_dataclasses: Sequence[type] = (), **kwargs: Any
) -> GalaxyArgumentParser:
    """The recipe parser over (ScriptArguments, TrainingArguments, ModelArguments, DataArguments, *extra)."""
    parser = GalaxyArgumentParser(
        [ScriptArguments, TrainingArguments, ModelArguments, DataArguments, *extra_dataclasses], **kwargs
    )
    parser.set_defaults(use_lora=use_lora, remove_unused_columns=False, report_to="none")
    return parser


# --------------------------------------------------------------------------------------------- precision
def resolve_precision(requested: str = "auto", *, use_cpu: bool = False) -> tuple[str, str | None]:
    """The precision to train in (``bf16``/``fp16``/``fp32``) and a one-line notice when it differs.

    ``auto``: bf16 on GPUs that support it, fp16 on older CUDA GPUs, fp32 on CPU. A request for
    fp16/bf16 without a GPU (e.g. a YAML written for GPUs) falls back to fp32 with a notice.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    cuda = torch.cuda.is_available() and not use_cpu
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    if requested == "fp32":
        return "fp32", None
    if not cuda:
        if requested == "auto":
            return "fp32", "precision auto: no CUDA GPU, training in fp32 on CPU"
        return (
            "fp32",
            f"precision {requested} asked for, but no CUDA GPU is used: training in fp32 on CPU instead",
        )
    if requested == "auto":
        return (
            ("bf16", None)
            if bf16_ok
            else ("fp16", "precision auto: this GPU has no bf16 support, using fp16")
        )
    if requested == "bf16" and not bf16_ok:
        return "fp16", "precision bf16 asked for, but this GPU has no bf16 support: using fp16"
    return requested, None


def _requested_precision(precision: str, fp16: bool, bf16: bool) -> str:
    if precision == "auto" and (fp16 or bf16):
        return "fp16" if fp16 else "bf16"
    return precision


def _resolve_namespace_precision(ns: dict[str, Any]) -> None:
    if not ns.get("use_cpu") and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # launched as several processes (torchrun / accelerate --multi_gpu) on a machine without GPUs:
        # DDP over gloo on the CPU, instead of each process silently training alone
        logger.warning(
            "no CUDA GPU in a %s-process launch: use_cpu=True (DDP over gloo)", os.environ["WORLD_SIZE"]
        )
        ns["use_cpu"] = True
    requested = _requested_precision(ns.get("precision", "auto"), bool(ns.get("fp16")), bool(ns.get("bf16")))
    chosen, notice = resolve_precision(requested, use_cpu=bool(ns.get("use_cpu")))
    if notice:
        logger.warning(notice)
    ns["precision"] = chosen
    ns["fp16"], ns["bf16"] = chosen == "fp16", chosen == "bf16"
    if chosen == "fp32":
        ns["fp16_full_eval"] = ns["bf16_full_eval"] = False


def apply_precision(training_args: TrainingArguments, precision: str = "auto") -> str:
    """Set ``fp16``/``bf16`` (and ``mixed_precision``) on ``training_args`` in place; returns the precision."""
    requested = _requested_precision(precision, bool(training_args.fp16), bool(training_args.bf16))
    chosen, notice = resolve_precision(requested, use_cpu=bool(training_args.use_cpu))
    if notice:
        logger.warning(notice)
    training_args.fp16, training_args.bf16 = chosen == "fp16", chosen == "bf16"
    if chosen == "fp32":
        training_args.fp16_full_eval = training_args.bf16_full_eval = False
    if hasattr(training_args, "mixed_precision"):
        training_args.mixed_precision = {"fp16": "fp16", "bf16": "bf16"}.get(chosen, "no")
    return chosen


# --------------------------------------------------------------------------------------------- data
def load_training_data(
    dataset: str,
    data_args: DataArguments | None = None,
    *,
    output_dir: str | os.PathLike = ".",
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Any:
    """Load ``dataset``: ``synthetic:N``, a ``save_to_disk`` DatasetDict directory, or a catalogue/image folder.

    A catalogue (or image folder) is split with ``data_args.split_seed``, not with ``seed``, so a trained
    model and ``hf-galaxy evaluate`` / ``prepare`` / :func:`load_galaxy_dataset` agree on the test galaxies.
    ``seed`` is the seed of the ``synthetic:N`` catalogue generation (the training runs pass their ``--seed``).
    """
    from datasets import DatasetDict

    from hf_galaxy.commands.prepare import parse_classes
    from hf_galaxy.dataset import load_galaxy_dataset

    data_args = data_args or DataArguments()
    if not dataset:
        raise ValueError(
            "--dataset is required: a catalogue file, an image folder, a saved DatasetDict or synthetic:N"
        )
    kwargs: dict[str, Any] = dict(
        label_scheme=data_args.label_scheme,
        label_column=data_args.label_column,
        question=data_args.question,
        threshold=data_args.threshold,
        seed=data_args.split_seed,
        image_size=data_args.image_size,
        num_proc=data_args.num_proc,
    )
    if data_args.classes:
        kwargs["classes"] = parse_classes(data_args.classes)
    if dataset.startswith("synthetic:"):
        from hf_galaxy.synthetic import make_galaxy_zoo

        try:
            n = int(dataset.split(":", 1)[1])
        except ValueError as err:
            raise ValueError(f"--dataset {dataset!r}: expected synthetic:N with an integer N") from err
        folder = Path(data_dir or Path(output_dir) / "synthetic_data")
        zoo = make_galaxy_zoo(folder, n, seed=seed, image_size=data_args.synthetic_image_size)
        return load_galaxy_dataset(zoo.catalog_path, zoo.image_dir, **kwargs)
    path = Path(dataset).expanduser()
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        return DatasetDict.load_from_disk(str(path))
    if not path.exists():
        raise FileNotFoundError(
            f"--dataset {dataset}: no such file or directory (expected a catalogue, an image folder, a "
            "saved DatasetDict or synthetic:N)"
        )
    return load_galaxy_dataset(path, data_args.image_dir, **kwargs)


def class_names_of(dsd: Any, split: str = "train") -> list[str]:
    """Class names from the ``label`` ClassLabel feature of ``dsd[split]``."""
    feature = dsd[split].features.get("label")
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(
            f"dataset split {split!r} has no ClassLabel 'label' column (features: {dsd[split].features})"
        )
    return list(names)


def _truncate(ds: Any, n: int | None) -> Any:
    return ds.select(range(min(n, len(ds)))) if n is not None and n < len(ds) else ds


# --------------------------------------------------------------------------------------------- loss, trainer
def collate_galaxy(examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack ``pixel_values`` and, when every example has them, ``labels`` (long) and ``votes`` (float)."""
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples])}
    if all(e.get("labels") is not None for e in examples):
        batch["labels"] = torch.tensor([int(e["labels"]) for e in examples], dtype=torch.long)
    if all(e.get("votes") is not None for e in examples):
        batch["votes"] = torch.stack([torch.as_tensor(e["votes"], dtype=torch.float32) for e in examples])
    return batch


def soft_label_loss(
    logits: torch.Tensor, votes: torch.Tensor, labels: torch.Tensor | None = None, kind: str = "ce"
) -> torch.Tensor:
    """Cross-entropy (``kind="ce"``) or KL divergence (``"kl"``) between softmax(logits) and vote fractions.

    Vote rows are renormalised to sum to 1; rows without votes (all zero) fall back to the hard label.
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    target = votes.float().clamp_min(0)
    total = target.sum(dim=-1, keepdim=True)
    if labels is not None:
        one_hot = F.one_hot(labels.clamp_min(0), logits.shape[-1]).float()
        target = torch.where(total > 0, target / total.clamp_min(1e-12), one_hot)
    else:
        target = target / total.clamp_min(1e-12)
    if kind == "ce":
        return -(target * logp).sum(dim=-1).mean()
    if kind == "kl":
        return F.kl_div(logp, target, reduction="batchmean")
    raise ValueError(f"soft-label loss must be 'ce' or 'kl', got {kind!r}")


class GalaxyTrainer(Trainer):
    """``Trainer`` whose loss is hard-label cross-entropy or soft-label CE/KL against vote fractions.

    The batch carries ``labels`` and ``votes`` (``label_names=["labels", "votes"]``), so both reach
    ``compute_metrics``; only ``pixel_values`` go to the model.
    """

    # our compute_loss returns a per-batch mean: let Trainer divide it by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, soft_labels: bool = False, soft_loss: str = "ce", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.soft_labels = soft_labels
        self.soft_loss = soft_loss
        self.model_accepts_loss_kwargs = False

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        votes = inputs.pop("votes", None)
        outputs = model(pixel_values=inputs["pixel_values"])
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if self.soft_labels and votes is not None:
            loss = soft_label_loss(logits, votes, labels, self.soft_loss)
        elif labels is not None:
            loss = F.cross_entropy(
                logits.float(),
                labels,
                ignore_index=-100,
                label_smoothing=float(self.args.label_smoothing_factor),
            )
        else:
            raise ValueError(
                "the batch has no 'labels' (nor 'votes' with soft labels): cannot compute a loss"
            )
        return (loss, outputs) if return_outputs else loss


def build_trainer(
    model: nn.Module | None,
    training_args: TrainingArguments,
    *,
    train_dataset: Any = None,
    eval_dataset: Any = None,
    image_processor: Any = None,
    class_names: Sequence[str],
    soft_labels: bool = False,
    soft_loss: str = "ce",
    callbacks: Sequence[Any] = (),
    model_init: Callable[..., nn.Module] | None = None,
) -> GalaxyTrainer:
    """A :class:`GalaxyTrainer` with the galaxy collator and metrics (``remove_unused_columns=False``)."""
    training_args.remove_unused_columns = False
    training_args.label_names = list(LABEL_NAMES)
    if training_args.use_cpu or not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # pinning needs an accelerator
    return GalaxyTrainer(
        model=model,
        args=training_args,
        data_collator=collate_galaxy,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=image_processor,
        compute_metrics=make_compute_metrics(class_names),
        callbacks=list(callbacks),
        model_init=model_init,
        soft_labels=soft_labels,
        soft_loss=soft_loss,
    )


# --------------------------------------------------------------------------------------------- TTA
def parse_rotations(spec: str | Sequence[int]) -> list[int]:
    """Parse TTA angles (``"0,90,180,270"`` or a list); each must be a multiple of 90 degrees."""
    angles = [int(a) for a in (spec.split(",") if isinstance(spec, str) else spec) if str(a).strip() != ""]
    if not angles:
        raise ValueError("TTA needs at least one rotation angle")
    bad = [a for a in angles if a % 90]
    if bad:
        raise ValueError(f"TTA rotation angles must be multiples of 90 degrees, got {bad}")
    return angles


class TTAClassifier(nn.Module):
    """Wraps a classifier: logits = log of the softmax probabilities averaged over rotated copies."""

    def __init__(self, model: nn.Module, rotations: Sequence[int] = (0, 90, 180, 270)) -> None:
        super().__init__()
        self.model = model
        self.rotations = parse_rotations(rotations)
        self.config = getattr(model, "config", None)

    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> ImageClassifierOutput:
        probs = None
        for angle in self.rotations:
            out = self.model(pixel_values=rotate_pixel_values(pixel_values, angle))
            logits = out["logits"] if isinstance(out, dict) else out[0]
            p = logits.float().softmax(dim=-1)
            probs = p if probs is None else probs + p
        probs = probs / len(self.rotations)
        return ImageClassifierOutput(logits=probs.clamp_min(1e-12).log())


def evaluation_args(
    output_dir: str | os.PathLike, batch_size: int = 32, precision: str = "auto"
) -> TrainingArguments:
    """TrainingArguments for evaluation/prediction only (no logging integrations, no saving)."""
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_eval_batch_size=batch_size,
        report_to="none",
        remove_unused_columns=False,
        save_strategy="no",
    )
    apply_precision(args, precision)
    return args


def predict_dataset(
    model: nn.Module,
    dataset: Any,
    *,
    image_processor: Any,
    class_names: Sequence[str],
    output_dir: str | os.PathLike,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    precision: str = "auto",
    metric_key_prefix: str = "eval",
) -> Any:
    """Run ``model`` (optionally with TTA) over a raw dataset split; returns Trainer's ``PredictionOutput``.

    ``metrics`` are filled when the split has labels. Uses Trainer, so it shows a progress bar and works
    under ``accelerate launch``.
    """
    net = TTAClassifier(model, tta_rotations) if tta_rotations else model
    ds = dataset.with_transform(GalaxyTransform(image_processor, class_names, train=False))
    trainer = build_trainer(
        net,
        evaluation_args(output_dir, batch_size, precision),
        image_processor=image_processor,
        class_names=class_names,
    )
    return trainer.predict(ds, metric_key_prefix=metric_key_prefix)


# --------------------------------------------------------------------------------------------- the recipe flow
@contextlib.contextmanager
def preserve_accelerate_state() -> Any:
    """Keep accelerate's shared state across code that builds a new ``TrainingArguments``.

    Constructing ``TrainingArguments`` resets accelerate's ``AcceleratorState``/``PartialState``, which
    breaks a running ``Trainer``; this restores the state afterwards.
    """
    from accelerate.state import AcceleratorState, PartialState

    saved = [(cls, dict(cls._shared_state)) for cls in (AcceleratorState, PartialState)]
    try:
        yield
    finally:
        for cls, state in saved:
            if state:
                cls._shared_state.clear()
                cls._shared_state.update(state)


def predict_with_tta(trainer: Trainer, dataset: Any, rotations: Sequence[int], metric_key_prefix: str) -> Any:
    """``trainer.predict`` with the model wrapped in :class:`TTAClassifier` (restored afterwards)."""
    model, wrapped = trainer.model, trainer.model_wrapped
    trainer.model = trainer.model_wrapped = TTAClassifier(model, rotations)
    try:
        return trainer.predict(dataset, metric_key_prefix=metric_key_prefix)
    finally:
        trainer.model, trainer.model_wrapped = model, wrapped


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _write_plots(
    output_dir: Path,
    raw_split: Any,
    prediction: Any,
    class_names: Sequence[str],
    log_history: Sequence[dict[str, Any]],
    num_grid_images: int,
    split_name: str,
) -> None:
    from hf_galaxy.plots import plot_confusion_matrix, plot_sample_grid, plot_training_curves

    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    probs = softmax(logits)
    preds = probs.argmax(axis=1)
    labels, _ = split_label_ids(prediction.label_ids)
    if labels is not None and labels.size:
        plot_confusion_matrix(
            confusion(labels, preds, len(class_names)),
            class_names,
            output_dir / "confusion_matrix.png",
            title=f"Confusion matrix ({split_name}, n={int((labels >= 0).sum())})",
        )
    k = min(num_grid_images, len(raw_split), len(preds))
    if k > 0:
        rows = raw_split.select(range(k))
        plot_sample_grid(
            [r["image"] for r in rows],
            [r["label"] for r in rows],
            preds[:k],
            class_names,
            output_dir / "sample_grid.png",
            probs=probs[:k],
        )
    plot_training_curves(log_history, output_dir / "training_curves.png")


def train_classifier(
    dataset_dict: Any,
    output_dir: str | os.PathLike,
    *,
    model_name_or_path: str | None = None,
    model_config: str | dict[str, Any] | None = None,
    lora: bool = True,
    training_args: TrainingArguments | dict[str, Any] | None = None,
    model_args: ModelArguments | dict[str, Any] | None = None,
    data_args: DataArguments | dict[str, Any] | None = None,
    script_args: ScriptArguments | dict[str, Any] | None = None,
) -> dict[str, float]:
    """Train a classifier on an in-memory ``DatasetDict`` and write the standard output directory.

    ``training_args`` may be a TrainingArguments or a dict of its fields (``output_dir`` is set to
    ``output_dir``); ``model_args``/``data_args``/``script_args`` likewise. Returns all metrics.
    """

    def _as(cls: type, value: Any, **over: Any) -> Any:
        if value is None:
            value = {}
        if isinstance(value, dict):
            return cls(**{**value, **over})
        return dataclasses.replace(value, **over) if over else value

    margs = _as(ModelArguments, model_args, use_lora=lora)
    if model_name_or_path is not None:
        margs.model_name_or_path = model_name_or_path
    if model_config is not None:
        margs.model_config = model_config if isinstance(model_config, str) else json.dumps(model_config)
    if isinstance(training_args, TrainingArguments):
        targs = training_args
        targs.output_dir = str(output_dir)
    else:
        targs = TrainingArguments(
            **{
                "report_to": "none",
                "remove_unused_columns": False,
                **(training_args or {}),
                "output_dir": str(output_dir),
            }
        )
    return run_training(
        _as(ScriptArguments, script_args),
        targs,
        margs,
        _as(DataArguments, data_args),
        dataset_dict=dataset_dict,
    )


@dataclass
class PreparedRun:
    """Data splits, transforms and a model factory shared by :func:`run_training` and :func:`run_hpo`."""

    dataset_dict: Any
    class_names: list[str]
    soft: bool
    processor: Any
    train_raw: Any
    val_raw: Any
    final_raw: Any
    final_name: str | None
    base_name: str | None
    train_transform: GalaxyTransform
    eval_transform: GalaxyTransform
    model_args: ModelArguments
    gradient_checkpointing: bool = False
    _first_model: nn.Module | None = None

    def build_model(self, lora_r: int | None = None) -> nn.Module:
        """The classifier (LoRA-wrapped when ``use_lora``); the first call reuses the model loaded up front."""
        margs = self.model_args
        if self._first_model is not None:
            model, self._first_model = self._first_model, None
        else:
            model = load_classifier(
                margs.model_name_or_path,
                self.class_names,
                model_config=margs.model_config,
                revision=margs.revision,
            )[0]
        if margs.use_lora:
            extra = [s.strip() for s in (margs.lora_modules_to_save or "").split(",") if s.strip()]
            model = apply_lora(
                model,
                r=lora_r or margs.lora_r,
                alpha=margs.lora_alpha,
                dropout=margs.lora_dropout,
                target_modules=margs.lora_target_modules,
                modules_to_save=extra,
                base_model_name_or_path=self.base_name,
            )
            if self.gradient_checkpointing:
                model.enable_input_require_grads()
        return model


def prepare_run(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments,
    *,
    dataset_dict: Any = None,
) -> PreparedRun:
    """Load the data (main process first), check the splits, load the model and image processor."""
    if dataset_dict is None:
        with training_args.main_process_first(desc="dataset preparation"):
            dataset_dict = load_training_data(
                script_args.dataset,
                data_args,
                output_dir=training_args.output_dir,
                data_dir=script_args.data_dir,
                seed=training_args.seed,
            )
    if "train" not in dataset_dict:
        raise ValueError(f"the dataset has no 'train' split (splits: {list(dataset_dict)})")
    class_names = class_names_of(dataset_dict)
    soft = bool(script_args.soft_labels or data_args.label_scheme == "votes")
    if soft and "votes" not in dataset_dict["train"].column_names:
        raise ValueError("soft-label training needs a 'votes' column in the dataset")
    val_name = "validation" if "validation" in dataset_dict else None
    final_name = script_args.eval_split if script_args.eval_split in dataset_dict else val_name
    if val_name is None and training_args.eval_strategy != "no":
        raise ValueError(f"eval_strategy={training_args.eval_strategy} needs a 'validation' split")
    model, processor = load_classifier(
        model_args.model_name_or_path,
        class_names,
        model_config=model_args.model_config,
        revision=model_args.revision,
    )
    return PreparedRun(
        dataset_dict=dataset_dict,
        class_names=class_names,
        soft=soft,
        processor=processor,
        train_raw=_truncate(dataset_dict["train"], data_args.max_train_samples),
        val_raw=_truncate(dataset_dict[val_name], data_args.max_eval_samples) if val_name else None,
        final_raw=_truncate(dataset_dict[final_name], data_args.max_eval_samples) if final_name else None,
        final_name=final_name,
        base_name=None if model_args.model_config else model_args.model_name_or_path,
        train_transform=GalaxyTransform(
            processor, class_names, train=data_args.augment, augment=data_args.augment_config()
        ),
        eval_transform=GalaxyTransform(processor, class_names, train=False),
        model_args=model_args,
        gradient_checkpointing=bool(
            getattr(training_args, "activation_checkpointing", False) or training_args.gradient_checkpointing
        ),
        _first_model=model,
    )


def _setup_logging(training_args: TrainingArguments) -> None:
    """alignment-handbook style: the main process logs at INFO (or --log_level), replicas at WARNING."""
    import transformers

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    level = training_args.get_process_log_level()
    logging.getLogger("hf_galaxy").setLevel(level)
    transformers.utils.logging.set_verbosity(level)


def run_training(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    *,
    dataset_dict: Any = None,
    extra_callbacks: Sequence[Any] = (),
) -> dict[str, float]:
    """The recipe: data -> model (-> LoRA) -> train -> evaluate -> plots -> save -> card. Returns all metrics.

    Writes to ``training_args.output_dir`` the files listed in the project's output-directory contract
    (model, preprocessor, metrics JSON, plots, ``hf_galaxy_card.json``, and ``adapter/`` for LoRA).
    Only the main process writes.
    """
    from transformers.trainer_utils import get_last_checkpoint, set_seed

    data_args = data_args or DataArguments()
    _setup_logging(training_args)
    from hf_galaxy.hub import finish_output_dir, take_over_push

    push_to_hub = take_over_push(training_args)  # published once at the end, with the generated card
    output_dir = Path(training_args.output_dir)
    precision = apply_precision(training_args, script_args.precision)
    set_seed(training_args.seed)

    run = prepare_run(script_args, training_args, model_args, data_args, dataset_dict=dataset_dict)
    dataset_dict, class_names, soft, processor = run.dataset_dict, run.class_names, run.soft, run.processor
    train_raw, val_raw, final_raw, final_name = run.train_raw, run.val_raw, run.final_raw, run.final_name
    base_name, eval_tf = run.base_name, run.eval_transform
    model = run.build_model()
    train_ds = train_raw.with_transform(run.train_transform)
    val_ds = val_raw.with_transform(eval_tf) if val_raw is not None else None

    # ---- model card data
    from hf_galaxy.hub.card import CardCallback, GalaxyCardData

    try:
        from hf_galaxy.dataset import describe

        dataset_facts = describe(dataset_dict)
    except Exception as err:  # describe degrades for plain DatasetDicts; never fail a run over card facts
        logger.warning("could not describe the dataset for the model card: %s", err)
        dataset_facts = {}
    card = GalaxyCardData(
        base_model=base_name,
        model_config=model_args.model_config,
        dataset=dataset_facts,
        label_names=class_names,
        lora=getattr(model, "lora_summary", None),
        soft_labels=soft,
        eval_split=final_name or "validation",
    )
    if script_args.dataset:
        card.dataset.setdefault("source", script_args.dataset)

    trainer = build_trainer(
        model,
        training_args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        image_processor=processor,
        class_names=class_names,
        soft_labels=soft,
        soft_loss=script_args.soft_loss,
        callbacks=[CardCallback(card), *extra_callbacks],
    )

    # ---- train
    resume = training_args.resume_from_checkpoint
    if resume in ("last", "latest", "True", "true"):
        resume = get_last_checkpoint(str(output_dir))
        if resume is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {training_args.resume_from_checkpoint}: no checkpoint-* in {output_dir}"
            )
    elif resume is not None and not Path(resume).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {resume}: no such checkpoint directory")
    train_result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, float] = dict(train_result.metrics)
    metrics["train_samples"] = len(train_raw)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", {**train_result.metrics, "train_samples": len(train_raw)})
    trainer.save_state()

    # ---- evaluate
    if val_ds is not None:
        eval_metrics = trainer.evaluate(val_ds, metric_key_prefix="eval")
        eval_metrics["eval_samples"] = len(val_raw)
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    prediction = None
    if final_raw is not None:
        prefix = "test" if final_name == "test" else "eval"
        prediction = trainer.predict(final_raw.with_transform(eval_tf), metric_key_prefix=prefix)
        final = dict(prediction.metrics)
        if script_args.tta:
            tta = predict_with_tta(
                trainer,
                final_raw.with_transform(eval_tf),
                parse_rotations(script_args.tta_rotations),
                metric_key_prefix=f"{prefix}_tta",
            )
            final.update(tta.metrics)
        final[f"{prefix}_samples"] = len(final_raw)
        if prefix == "test":
            trainer.log_metrics("test", final)
            trainer.save_metrics("test", final)
        elif script_args.tta:
            trainer.save_metrics("eval", final)
        metrics.update(final)
        card.eval_results = {
            k[len(prefix) + 1 :]: v
            for k, v in final.items()
            if k.startswith(prefix + "_") and not k.endswith(("_runtime", "_per_second", "_samples"))
        }

    # ---- plots, model, card (main process only)
    if trainer.is_world_process_zero():
        if prediction is not None:
            _write_plots(
                output_dir,
                final_raw,
                prediction,
                class_names,
                trainer.state.log_history,
                script_args.num_grid_images,
                final_name,
            )
        else:
            from hf_galaxy.plots import plot_training_curves

            plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
    if model_args.use_lora:
        save_lora_model(
            trainer.model,
            output_dir,
            processor,
            merge=script_args.save_merged,
            is_main_process=trainer.is_world_process_zero(),
        )
    else:
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        card.precision = precision
        card.extra.setdefault(
            "train_runtime_s", round(float(train_result.metrics.get("train_runtime", 0.0)), 1)
        )
        card.save(output_dir)
        finish_output_dir(output_dir, training_args, push_to_hub)
        logger.warning(
            "hf-galaxy: wrote the %s model, metrics, plots and card data to %s (process %d of %d)",
            "merged LoRA"
            if model_args.use_lora and script_args.save_merged
            else ("LoRA" if model_args.use_lora else "full"),
            output_dir,
            training_args.process_index,
            training_args.world_size,
        )
    trainer.accelerator.wait_for_everyone()
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not math.isnan(float(v))}


def evaluate_model(
    model_name_or_path: str,
    dataset_split: Any,
    *,
    output_dir: str | os.PathLike,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    precision: str = "auto",
    split_name: str = "test",
) -> dict[str, float]:
    """Evaluate a trained model (directory or Hub repo) on a labelled split; writes metrics and plots."""
    from hf_galaxy.models import load_for_inference
    from hf_galaxy.plots import plot_confusion_matrix

    model, processor = load_for_inference(model_name_or_path)
    class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    data_names = list(getattr(dataset_split.features.get("label"), "names", []) or [])
    if data_names and data_names != class_names:
        raise ValueError(
            f"the dataset's classes {data_names} differ from the model's labels {class_names}; "
            "evaluate on a dataset with the model's label scheme"
        )
    out = predict_dataset(
        model,
        dataset_split,
        image_processor=processor,
        class_names=class_names,
        output_dir=output_dir,
        batch_size=batch_size,
        tta_rotations=tta_rotations,
        precision=precision,
        metric_key_prefix=split_name,
    )
    metrics = {k: float(v) for k, v in (out.metrics or {}).items()}
    if _is_main():
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / f"{split_name}_results.json").write_text(json.dumps(metrics, indent=2) + "\n")
        labels, _ = split_label_ids(out.label_ids)
        probs = softmax(out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions)
        plot_confusion_matrix(
            confusion(labels, probs.argmax(axis=1), len(class_names)),
            class_names,
            output_dir / f"{split_name}_confusion_matrix.png",
            title=f"Confusion matrix ({split_name})",
        )
    return metrics


def list_inputs(
    source: str | os.PathLike, image_dir: str | os.PathLike | None = None
) -> list[tuple[str, str, int | None]]:
    """``(id, image_path, hdf5_index)`` rows from an image folder (recursive) or any supported catalogue.

    In a folder, the image files are those with an extension of
    :data:`hf_galaxy.catalogs._common.IMAGE_EXTENSIONS` (the catalogue readers' list); the id is the path
    relative to the folder without that extension (``.fits.gz`` counts as one: ``a/x.fits.gz`` -> ``a/x``).
    """
    from hf_galaxy.catalogs._common import IMAGE_EXTENSIONS, split_image_name

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist (expected an image folder or a catalogue file)")
    if path.is_dir() and image_dir is None:
        rows_dir = []
        for p in sorted(path.rglob("*")):
            parts = split_image_name(p.name) if p.is_file() else None
            if parts is not None:
                rows_dir.append((str(p.relative_to(path).parent / parts[0]), str(p), None))
        if not rows_dir:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
        return rows_dir
    from hf_galaxy.catalogs import read_catalog

    table = read_catalog(path, image_dir).table
    if "image_path" not in table.columns:
        raise ValueError(f"catalogue {path} has no image paths: pass --image_dir with the cutouts")
    index = table["image_index"] if "image_index" in table.columns else [None] * len(table)
    rows = []
    for gid, img, idx in zip(table["id"], table["image_path"], index):
        if img is None or (isinstance(img, float) and math.isnan(img)):
            rows.append((str(gid), "", None))
        else:
            rows.append(
                (
                    str(gid),
                    str(img),
                    None if idx is None or (isinstance(idx, float) and math.isnan(idx)) else int(idx),
                )
            )
    return rows


@torch.no_grad()
def predict_files(
    model: nn.Module,
    image_processor: Any,
    rows: Sequence[tuple[str, str, int | None]],
    *,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Class probabilities for ``rows`` from :func:`list_inputs`.

    Returns ``(ids, probs, skipped)``: ``skipped`` lists ``(id, reason)`` for unreadable images, which get
    no prediction. Shows a tqdm progress bar.
    """
    from tqdm.auto import tqdm

    from hf_galaxy.dataset import open_image
    from hf_galaxy.transforms import ProcessorSpec

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = TTAClassifier(model, tta_rotations) if tta_rotations else model
    net.to(device).eval()
    spec = ProcessorSpec.from_processor(image_processor)
    ids: list[str] = []
    probs: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    bar = tqdm(total=len(rows), desc="predict", unit="img", disable=not progress)
    for start in range(0, len(rows), batch_size):
        batch_ids, tensors = [], []
        for gid, img_path, idx in rows[start : start + batch_size]:
            if not img_path:
                skipped.append((gid, "no image path in the catalogue"))
                continue
            try:
                tensors.append(spec(open_image(img_path, idx)))
                batch_ids.append(gid)
            except (OSError, ValueError) as err:
                skipped.append((gid, str(err)))
        if tensors:
            out = net(pixel_values=torch.stack(tensors).to(device))
            logits = out["logits"] if isinstance(out, dict) else out[0]
            probs.append(logits.float().softmax(dim=-1).cpu().numpy())
            ids.extend(batch_ids)
        bar.update(min(batch_size, len(rows) - start))
    bar.close()
    n_classes = int(getattr(getattr(model, "config", None), "num_labels", 0) or 0)
    return ids, (np.concatenate(probs) if probs else np.zeros((0, n_classes))), skipped


def run_hpo(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
    *,
    n_trials: int = 10,
    metric: str = "eval_accuracy",
    direction: str = "maximize",
    learning_rate: tuple[float, float] = (1e-4, 3e-3),
    lora_ranks: Sequence[int] = (4, 8, 16, 32),
    weight_decay: tuple[float, float] = (0.0, 0.1),
    epochs: tuple[int, int] = (2, 6),
    dataset_dict: Any = None,
) -> dict[str, Any]:
    """Optuna search over learning rate, LoRA rank, weight decay and epochs via ``Trainer.hyperparameter_search``.

    ``model_init`` rebuilds the (LoRA) model with each trial's rank. Writes ``best_trial.json`` (trial number,
    objective, hyperparameters) and ``trials.json`` (every trial) to ``output_dir`` and returns the best trial.
    """
    import optuna

    data_args = data_args or DataArguments()
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not metric.startswith("eval_"):
        metric = f"eval_{metric}"
    _setup_logging(training_args)
    apply_precision(training_args, script_args.precision)
    run = prepare_run(script_args, training_args, model_args, data_args, dataset_dict=dataset_dict)
    if run.val_raw is None:
        raise ValueError("hyperparameter search needs a 'validation' split to score trials")
    ranks = [int(r) for r in lora_ranks]
    trials: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] = {}

    def hp_space(trial: optuna.Trial) -> dict[str, Any]:
        params: dict[str, Any] = {
            "learning_rate": trial.suggest_float("learning_rate", *learning_rate, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *weight_decay),
            "num_train_epochs": trial.suggest_int("num_train_epochs", *epochs),
        }
        if model_args.use_lora:
            params["lora_r"] = trial.suggest_categorical("lora_r", ranks)
        current.clear()
        current.update(number=trial.number, params=dict(params))
        return params

    def model_init(trial: Any = None) -> nn.Module:
        rank = None
        if trial is not None and model_args.use_lora:
            # Trainer may call model_init before hp_space; optuna returns the same value for a repeated name
            rank = (
                int(trial.suggest_categorical("lora_r", ranks))
                if hasattr(trial, "suggest_categorical")
                else int(trial["lora_r"])
            )
        return run.build_model(lora_r=rank)

    def compute_objective(metrics: dict[str, float]) -> float:
        if metric not in metrics:
            raise KeyError(f"hpo metric {metric!r} not among the evaluation metrics {sorted(metrics)}")
        value = float(metrics[metric])
        if current:
            trials[current["number"]] = {"trial": current["number"], **current["params"], metric: value}
        return value

    trainer = build_trainer(
        None,
        training_args,
        train_dataset=run.train_raw.with_transform(run.train_transform),
        eval_dataset=run.val_raw.with_transform(run.eval_transform),
        image_processor=run.processor,
        class_names=run.class_names,
        soft_labels=run.soft,
        soft_loss=script_args.soft_loss,
        model_init=model_init,
    )
    best = trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=compute_objective,
        n_trials=n_trials,
        direction=direction,
        backend="optuna",
        hp_name=lambda trial: f"trial-{trial.number}",
        sampler=optuna.samplers.TPESampler(seed=training_args.seed),
    )
    result = {
        "trial": int(best.run_id),
        "objective": float(best.objective),
        "metric": metric,
        "direction": direction,
        "n_trials": n_trials,
        "hyperparameters": dict(best.hyperparameters),
    }
    if trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "best_trial.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "trials.json").write_text(json.dumps([trials[k] for k in sorted(trials)], indent=2) + "\n")
        logger.warning(
            "best trial %s: %s=%.4f with %s", best.run_id, metric, best.objective, best.hyperparameters
        )
    return result
