"""The training stage: one argument family, one parser, one base ``Trainer`` and thin task subclasses.

* :mod:`~hf_galaxy.training.arguments`: the dataclasses (shared bases + classification/detection subclasses);
* :mod:`~hf_galaxy.training.parser`: :func:`make_parser` (YAML defaults via ``--config``, CLI overrides);
* :mod:`~hf_galaxy.training.precision`: ``auto|bf16|fp16|fp32``;
* :mod:`~hf_galaxy.training.data`: ``--dataset`` -> the run's ``DatasetDict``;
* :mod:`~hf_galaxy.training.trainer`: :class:`GalaxyTrainer` (card, resume, final evaluation, save, publish);
* :mod:`~hf_galaxy.training.classification`: :class:`ClassificationTrainer`, :func:`run_training`,
  :func:`train_classifier`;
* :mod:`~hf_galaxy.training.detection`: :class:`DetectionTrainer`, :func:`run_detection`;
* :mod:`~hf_galaxy.training.hpo`: :func:`run_hpo` (Optuna).
"""

from hf_galaxy.training.arguments import (
    PRECISIONS,
    BaseDataArguments,
    BaseModelArguments,
    BaseScriptArguments,
    DataArguments,
    DatasetArguments,
    DetectionDataArguments,
    DetectionModelArguments,
    DetectionScriptArguments,
    ModelArguments,
    ScriptArguments,
    parse_rotations,
)
from hf_galaxy.training.classification import (
    ClassificationTrainer,
    build_trainer,
    collate_galaxy,
    prepare_run,
    run_training,
    soft_label_loss,
    train_classifier,
)
from hf_galaxy.training.data import class_names_of, load_detection_data, load_training_data
from hf_galaxy.training.detection import (
    DetectionMetrics,
    DetectionTrainer,
    build_detection_trainer,
    pack_targets,
    run_detection,
    unpack_targets,
)
from hf_galaxy.training.hpo import run_hpo
from hf_galaxy.training.parser import ConfigError, GalaxyArgumentParser, load_yaml_config, make_parser
from hf_galaxy.training.precision import apply_precision, resolve_precision
from hf_galaxy.training.trainer import GalaxyTrainer, card_metrics, resolve_checkpoint, start_run

__all__ = [
    "PRECISIONS",
    "BaseDataArguments",
    "BaseModelArguments",
    "BaseScriptArguments",
    "ClassificationTrainer",
    "ConfigError",
    "DataArguments",
    "DatasetArguments",
    "DetectionDataArguments",
    "DetectionMetrics",
    "DetectionModelArguments",
    "DetectionScriptArguments",
    "DetectionTrainer",
    "GalaxyArgumentParser",
    "GalaxyTrainer",
    "ModelArguments",
    "ScriptArguments",
    "apply_precision",
    "build_detection_trainer",
    "build_trainer",
    "card_metrics",
    "class_names_of",
    "collate_galaxy",
    "load_detection_data",
    "load_training_data",
    "load_yaml_config",
    "make_parser",
    "pack_targets",
    "parse_rotations",
    "prepare_run",
    "resolve_checkpoint",
    "resolve_precision",
    "run_detection",
    "run_hpo",
    "run_training",
    "soft_label_loss",
    "start_run",
    "train_classifier",
    "unpack_targets",
]
