"""The recipes' argument dataclasses: one family, a shared base per group and a thin subclass per task.

=====================  ==============================  ===================================================
group                  shared base                     task subclasses
=====================  ==============================  ===================================================
run (script)           :class:`BaseScriptArguments`    :class:`ScriptArguments` (classification),
                                                       :class:`DetectionScriptArguments`
dataset reading        :class:`DatasetArguments`       used as is by ``hf-galaxy evaluate``
data (+ augmentation)  :class:`BaseDataArguments`      :class:`DataArguments`, :class:`DetectionDataArguments`
model                  :class:`BaseModelArguments`     :class:`ModelArguments` (+ LoRA), :class:`DetectionModelArguments`
=====================  ==============================  ===================================================

A recipe option means one thing everywhere: ``--image_size`` is the side cutouts are resized to once at
preparation time (classification); the side a detector's image processor resizes to is ``--processor_size``
(passed to :func:`~hf_galaxy.models.load_detector` as its ``image_size``).
``precision`` defaults to ``auto`` for every task (the detection YAMLs ask for ``fp16`` explicitly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hf_galaxy.models.presets import DEFAULT_DETECTOR, DEFAULT_MODEL, DETECTOR_PRESETS

if TYPE_CHECKING:  # the dataclasses import no torch, so that --help stays fast
    from hf_galaxy.data.transforms import AugmentConfig, DetectionAugmentConfig

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BACKBONE_MODES = ("detr", "all", "none", "as_built")


# --------------------------------------------------------------------------------------------- run
@dataclass
class BaseScriptArguments:
    """Run-level options every recipe has."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Catalogue file or image folder (read with load_galaxy_dataset), a Hub dataset id "
            "(mwalmsley/gz2; --dataset_config_name, --dataset_revision) or a local copy of one, a parquet file "
            "with images, a DatasetDict directory saved with save_to_disk, or 'synthetic:N' (N procedural galaxies)."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on GPUs that support it, fp16 on older GPUs, fp32 on CPU), bf16, fp16 or fp32 "
            "(fp16/bf16 fall back to fp32 on a CPU, with a notice).",
            "choices": list(PRECISIONS),
        },
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split for the final metrics (falls back to validation if absent)."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Where 'synthetic:N' data is generated (default: OUTPUT_DIR/synthetic_data)."},
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class ScriptArguments(BaseScriptArguments):
    """Run-level options of the classification recipes."""

    soft_labels: bool = field(
        default=False,
        metadata={"help": "Train on the vote fractions (soft labels); implied by --label_scheme votes."},
    )
    soft_loss: str = field(
        default="ce", metadata={"help": "Soft-label loss: 'ce' (cross-entropy on vote fractions) or 'kl'."}
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
    tree_loss: str = field(
        default="dirichlet",
        metadata={
            "help": "With --label_scheme tree: 'dirichlet' (Dirichlet-multinomial likelihood of the vote counts, "
            "as Zoobot) or 'soft_ce' (per-question soft cross-entropy on the vote fractions).",
            "choices": ["dirichlet", "soft_ce"],
        },
    )

    def __post_init__(self) -> None:
        from hf_galaxy.data.transforms import parse_rotations

        super().__post_init__()
        if self.soft_loss not in ("ce", "kl"):
            raise ValueError(f"--soft_loss must be 'ce' or 'kl', got {self.soft_loss!r}")
        if self.tree_loss not in ("dirichlet", "soft_ce"):
            raise ValueError(f"--tree_loss must be 'dirichlet' or 'soft_ce', got {self.tree_loss!r}")
        parse_rotations(self.tta_rotations)


@dataclass
class DetectionScriptArguments(BaseScriptArguments):
    """Run-level options of the detection recipe (``recipes/detr.py``)."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "synthetic:N, a catalogue file or image folder (boxes made by to_detection), a COCO "
            "folder (annotations/instances_<split>.json) or a save_to_disk DatasetDict (detection layout "
            "or classification layout)."
        },
    )
    backbone_checkpointing: bool = field(
        default=True,
        metadata={
            "help": "With --gradient_checkpointing, also checkpoint the conv backbone's residual blocks "
            "(transformers only covers the encoder/decoder layers)."
        },
    )
    train_backbone: str = field(
        default="detr",
        metadata={"help": "detr (stem and first stage frozen), all, none or as_built."},
    )
    num_plot_images: int = field(default=8, metadata={"help": "Validation images drawn in predictions.png."})
    plot_score_threshold: float = field(default=0.3, metadata={"help": "Smallest score drawn."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_backbone not in BACKBONE_MODES:
            raise ValueError(
                f"--train_backbone must be detr, all, none or as_built, got {self.train_backbone!r}"
            )


# --------------------------------------------------------------------------------------------- data
@dataclass
class DatasetArguments:
    """How a catalogue is read and labelled: the options of :func:`~hf_galaxy.data.dataset.load_galaxy_dataset`
    that every recipe and ``hf-galaxy evaluate`` share."""

    image_dir: str | None = field(
        default=None, metadata={"help": "Folder with the cutouts named in the catalogue."}
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Config of a Hub dataset given as --dataset (e.g. tiny, default)."}
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Branch, tag or commit of a Hub dataset given as --dataset."}
    )
    label_scheme: str = field(
        default="plurality",
        metadata={
            "help": "plurality, clean, votes, column, or tree (every answer's vote count: a whole-tree model "
            "that predicts the vote fractions of every question)."
        },
    )
    question: str | None = field(
        default=None, metadata={"help": "Decision-tree question to label by (GZ2, ...)."}
    )
    threshold: float = field(default=0.8, metadata={"help": "Winning vote fraction of the 'clean' scheme."})
    tree_questions: str | None = field(
        default=None,
        metadata={
            "help": "With --label_scheme tree: 'complete' keeps only the questions the catalogue has every "
            "answer of (else such a question is an error), or comma-separated questions to keep."
        },
    )
    label_column: str | None = field(default=None, metadata={"help": "Ready label column of the catalogue."})
    classes: str | None = field(
        default=None,
        metadata={
            "help": "Class selection or merge: comma-separated names, a preset (e.g. elliptical-spiral-other) "
            "or a JSON {new: [old, ...]} mapping."
        },
    )
    split_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the train/validation/test split of a catalogue (independent of the training "
            "--seed); the default 0 is that of load_galaxy_dataset, hf-galaxy prepare and hf-galaxy evaluate, "
            "so evaluating on the same catalogue scores the same held-out test galaxies."
        },
    )
    synthetic_image_size: int = field(default=424, metadata={"help": "Size of 'synthetic:N' galaxy images."})
    synthetic_tree: str = field(
        default="decals",
        metadata={
            "help": "With --label_scheme tree, 'synthetic:N' galaxies get the vote counts of this release's "
            "tree: decals (GZD-5) or gz2.",
            "choices": ["decals", "gz2"],
        },
    )
    num_proc: int | None = field(default=None, metadata={"help": "Processes preparing images."})
    max_image_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Images with more pixels are skipped and counted (default: Pillow's limit, ~89 million; "
            "0: no limit)."
        },
    )

    def loader_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``load_galaxy_dataset`` that these options set."""
        from hf_galaxy.data.labels import parse_classes

        kwargs: dict[str, Any] = dict(
            label_scheme=self.label_scheme,
            label_column=self.label_column,
            question=self.question,
            threshold=self.threshold,
            tree_questions=self.tree_questions,
            name=self.dataset_config_name,
            revision=self.dataset_revision,
            seed=self.split_seed,
            num_proc=self.num_proc,
            max_image_pixels=self.max_image_pixels,
        )
        if self.classes:
            kwargs["classes"] = parse_classes(self.classes)
        return kwargs


@dataclass
class BaseDataArguments(DatasetArguments):
    """Dataset reading plus the truncation and augmentation switches every task has."""

    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation splits."})
    augment: bool = field(
        default=True, metadata={"help": "Galaxy-aware augmentation of the training images."}
    )
    flip: bool = field(default=True, metadata={"help": "Mirror flips with the chirality-aware label swap."})


@dataclass
class DataArguments(BaseDataArguments):
    """Classification data: preparation size and the rotation / crop / zoom augmentation."""

    image_size: int | None = field(
        default=None, metadata={"help": "Resize the cutouts once at preparation time (pixels, square)."}
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

    def loader_kwargs(self) -> dict[str, Any]:
        """As :meth:`DatasetArguments.loader_kwargs`, with the preparation ``image_size``."""
        return {**super().loader_kwargs(), "image_size": self.image_size}

    def augment_config(self) -> AugmentConfig | None:
        """The :class:`AugmentConfig` these arguments describe (None when augmentation is off)."""
        from hf_galaxy.data.transforms import AugmentConfig

        if not self.augment:
            return None
        return AugmentConfig(
            rotation_fill=self.rotation_fill,
            crop_scale=(self.crop_scale_min, self.crop_scale_max),
            scale_jitter=self.scale_jitter,
            flip=self.flip,
        )


@dataclass
class DetectionDataArguments(BaseDataArguments):
    """How the detection set is made: boxes, mosaics, processor size, box-aware augmentation."""

    processor_size: int = field(
        default=800, metadata={"help": "Side the detector's image processor resizes to (pixels)."}
    )
    box_source: str = field(
        default="auto", metadata={"help": "auto, catalog or segmentation (see detection)."}
    )
    box_k: float = field(default=1.0, metadata={"help": "Catalogue boxes: half-side = k x radius."})
    box_radius: str = field(default="r90", metadata={"help": "Catalogue radius: r90 or r50."})
    extra_objects: bool = field(default=True, metadata={"help": "Add neighbours and stars as objects."})
    keep_empty: bool = field(default=True, metadata={"help": "Keep images without objects as negatives."})
    mosaics: int = field(
        default=0,
        metadata={
            "help": "Mosaic fields made from the training cutouts (0: none); "
            "the evaluation splits get mosaics // 4 each."
        },
    )
    mosaic_only: bool = field(default=False, metadata={"help": "Train/evaluate on the mosaics only."})
    mosaic_size_min: int = field(default=640, metadata={"help": "Smallest mosaic side (pixels)."})
    mosaic_size_max: int = field(default=800, metadata={"help": "Largest mosaic side (pixels)."})
    mosaic_max_iou: float = field(default=0.1, metadata={"help": "Largest IoU between boxes of a mosaic."})
    rotate90: bool = field(default=True, metadata={"help": "Random rotation by multiples of 90 degrees."})
    scale_jitter: float = field(default=0.2, metadata={"help": "Processed side x U(1-j, 1+j)."})

    def box_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~hf_galaxy.data.detection.to_detection` that these options set."""
        return dict(
            source=self.box_source,
            k=self.box_k,
            radius=self.box_radius,
            extra_objects=self.extra_objects,
            keep_empty=self.keep_empty,
            num_proc=self.num_proc,
        )

    def augment_config(self) -> DetectionAugmentConfig | None:
        """The :class:`DetectionAugmentConfig` (None when augmentation is off)."""
        from hf_galaxy.data.transforms import DetectionAugmentConfig

        if not self.augment:
            return None
        return DetectionAugmentConfig(rotate90=self.rotate90, flip=self.flip, scale_jitter=self.scale_jitter)


# ---------------------------------------------------------------------------------------- pretraining
@dataclass
class PretrainArguments:
    """What to pretrain on, and the masked autoencoder's settings."""

    dataset: list[str] = field(
        default_factory=list,
        metadata={
            "help": "One or more sources of unlabelled cut-outs: image folders (searched recursively; class "
            "sub-folders are ignored), catalogues (with --image_dir), saved DatasetDicts, synthetic:N."
        },
    )
    image_dir: str | None = field(default=None, metadata={"help": "Cut-out folder of catalogue sources."})
    image_size: int = field(
        default=64, metadata={"help": "Side the images are prepared at (and the model's)."}
    )
    model_config: str = field(
        default="vit-mini",
        metadata={
            "help": "The encoder to build with random weights: a ViT preset (vit-tiny, vit-mini[,key=value...]), "
            "inline JSON or a JSON file; decoder_* keys set the MAE decoder."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue from a ViTMAE checkpoint instead (a Hub id such as facebook/vit-mae-base, or a "
            "previous run's DIR/mae); recorded as the card's base_model."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --model_name_or_path."})
    mask_ratio: float = field(default=0.75, metadata={"help": "Fraction of patches hidden from the encoder."})
    norm_pix_loss: bool = field(
        default=True, metadata={"help": "Reconstruct per-patch normalised pixels (the MAE paper's choice)."}
    )
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Fraction of the images held out for the validation loss."}
    )
    max_images: int | None = field(default=None, metadata={"help": "Use at most this many images."})
    augment: bool = field(
        default=True, metadata={"help": "Galaxy-aware augmentation of the training images."}
    )
    num_proc: int | None = field(default=None, metadata={"help": "Processes for preparing the images."})
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of synthetic:N sources."})
    precision: str = field(
        default="auto",
        metadata={"help": "auto, bf16, fp16 or fp32 (as in the other recipes).", "choices": list(PRECISIONS)},
    )

    def __post_init__(self) -> None:
        if isinstance(self.dataset, str):
            self.dataset = [self.dataset]
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"--mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation_fraction must be in [0, 1), got {self.validation_fraction}")


# --------------------------------------------------------------------------------------------- model
@dataclass
class BaseModelArguments:
    """Which model to fine-tune: a checkpoint, or an architecture built from a config."""

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

    def __post_init__(self) -> None:
        # lets a command line switch off a YAML's model_config: --model_config none
        if isinstance(self.model_config, str) and self.model_config.strip().lower() in ("", "none", "null"):
            self.model_config = None

    @property
    def base_model(self) -> str | None:
        """The Hub id or directory the weights come from (None for a model built from a config)."""
        return None if self.model_config else self.model_name_or_path


@dataclass
class ModelArguments(BaseModelArguments):
    """A classifier, and its LoRA settings."""

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


@dataclass
class DetectionModelArguments(BaseModelArguments):
    """Which detector to train."""

    model_name_or_path: str = field(
        default=DEFAULT_DETECTOR,
        metadata={
            "help": "Hub id or local checkpoint of any AutoModelForObjectDetection (ignored with "
            "--model_config)."
        },
    )
    model_config: str | None = field(
        default=None,
        metadata={
            "help": "Random-weight model from a config: a preset ("
            + ", ".join(DETECTOR_PRESETS)
            + ")[,key=value...], inline JSON, a JSON file or model_type=...,key=value."
        },
    )
