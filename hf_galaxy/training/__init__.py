"""The training stage: one argument family, one parser, one base ``Trainer`` and thin task subclasses.

* :mod:`~hf_galaxy.training.arguments`: the dataclasses (shared bases + classification/detection subclasses);
* :mod:`~hf_galaxy.training.parser`: :func:`make_parser` (YAML defaults via ``--config``, CLI overrides);
* :mod:`~hf_galaxy.training.precision`: ``auto|bf16|fp16|fp32``;
* :mod:`~hf_galaxy.training.data`: ``--dataset`` -> the run's ``DatasetDict``;
* :mod:`~hf_galaxy.training.trainer`: :class:`GalaxyTrainer` (card, resume, final evaluation, save, publish);
* :mod:`~hf_galaxy.training.classification`: :class:`ClassificationTrainer`, :func:`run_training`,
  :func:`finetune`;
* :mod:`~hf_galaxy.training.detection`: :class:`DetectionTrainer`, :func:`run_detection`;
* :mod:`~hf_galaxy.training.pretraining`: :func:`run_pretraining` (masked autoencoder on unlabelled cut-outs);
* :mod:`~hf_galaxy.training.hpo`: :func:`run_hpo` (Optuna).
"""

from __future__ import annotations

from hf_galaxy._lazy import lazy_getattr

_EXPORTS = {
    "BaseDataArguments": "hf_galaxy.training.arguments",
    "BaseModelArguments": "hf_galaxy.training.arguments",
    "BaseScriptArguments": "hf_galaxy.training.arguments",
    "ClassificationTrainer": "hf_galaxy.training.classification",
    "ConfigError": "hf_galaxy.training.parser",
    "DataArguments": "hf_galaxy.training.arguments",
    "DatasetArguments": "hf_galaxy.training.arguments",
    "DetectionDataArguments": "hf_galaxy.training.arguments",
    "DetectionMetrics": "hf_galaxy.training.detection",
    "DetectionModelArguments": "hf_galaxy.training.arguments",
    "DetectionScriptArguments": "hf_galaxy.training.arguments",
    "DetectionTrainer": "hf_galaxy.training.detection",
    "GalaxyArgumentParser": "hf_galaxy.training.parser",
    "GalaxyTrainer": "hf_galaxy.training.trainer",
    "ModelArguments": "hf_galaxy.training.arguments",
    "PRECISIONS": "hf_galaxy.training.arguments",
    "PretrainArguments": "hf_galaxy.training.arguments",
    "run_pretraining": "hf_galaxy.training.pretraining",
    "unlabelled_images": "hf_galaxy.training.pretraining",
    "ScriptArguments": "hf_galaxy.training.arguments",
    "apply_precision": "hf_galaxy.training.precision",
    "build_detection_trainer": "hf_galaxy.training.detection",
    "build_trainer": "hf_galaxy.training.classification",
    "card_metrics": "hf_galaxy.training.trainer",
    "class_names_of": "hf_galaxy.training.data",
    "collate_galaxy": "hf_galaxy.training.classification",
    "load_detection_data": "hf_galaxy.training.data",
    "load_training_data": "hf_galaxy.training.data",
    "load_yaml_config": "hf_galaxy.training.parser",
    "make_parser": "hf_galaxy.training.parser",
    "pack_targets": "hf_galaxy.training.detection",
    "parse_rotations": "hf_galaxy.data.transforms",
    "prepare_run": "hf_galaxy.training.classification",
    "resolve_checkpoint": "hf_galaxy.training.trainer",
    "resolve_precision": "hf_galaxy.training.precision",
    "run_detection": "hf_galaxy.training.detection",
    "run_hpo": "hf_galaxy.training.hpo",
    "run_training": "hf_galaxy.training.classification",
    "soft_label_loss": "hf_galaxy.training.classification",
    "start_run": "hf_galaxy.training.trainer",
    "finetune": "hf_galaxy.training.classification",
    "FinetuneResult": "hf_galaxy.training.classification",
    "unpack_targets": "hf_galaxy.training.detection",
}
__all__ = [
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
    "PRECISIONS",
    "PretrainArguments",
    "run_pretraining",
    "unlabelled_images",
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
    "finetune",
    "FinetuneResult",
    "unpack_targets",
]
__getattr__ = lazy_getattr(__name__, _EXPORTS)
