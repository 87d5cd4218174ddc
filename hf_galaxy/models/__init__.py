"""The model stage: classifiers and detectors from a Hub id, a local directory or a config; LoRA.

* :mod:`~hf_galaxy.models.presets`: random-weight presets and the ``--model_config`` parser;
* :mod:`~hf_galaxy.models.loading`: :func:`load_classifier`, :func:`load_detector` (one set of checks),
  :func:`load_for_inference`, :func:`resolve_model_path`;
* :mod:`~hf_galaxy.models.lora`: :func:`apply_lora`, :func:`save_lora_model`;
* :mod:`~hf_galaxy.models.detection`: ``pixel_mask`` use, backbone freezing and activation checkpointing.
"""

from hf_galaxy.models.loading import (
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    ModelNotFoundError,
    build_from_config,
    checkpoint_labels,
    count_parameters,
    default_image_processor,
    head_module_names,
    label_head_modules,
    label_maps,
    load_classifier,
    load_detector,
    load_for_inference,
    load_image_processor,
    load_pretrained,
    model_label_names,
    resolve_model_path,
)
from hf_galaxy.models.lora import apply_lora, lora_target_modules, save_lora_model
from hf_galaxy.models.presets import (
    CONFIG_PRESETS,
    DETECTOR_PRESETS,
    parse_detector_config,
    parse_model_config,
)

__all__ = [
    "CONFIG_PRESETS",
    "DEFAULT_DETECTOR",
    "DEFAULT_MODEL",
    "DETECTOR_PRESETS",
    "ModelNotFoundError",
    "apply_lora",
    "build_from_config",
    "checkpoint_labels",
    "count_parameters",
    "default_image_processor",
    "head_module_names",
    "label_head_modules",
    "label_maps",
    "load_classifier",
    "load_detector",
    "load_for_inference",
    "load_image_processor",
    "load_pretrained",
    "lora_target_modules",
    "model_label_names",
    "parse_detector_config",
    "parse_model_config",
    "resolve_model_path",
    "save_lora_model",
]
