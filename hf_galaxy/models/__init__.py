"""The model stage: classifiers and detectors from a Hub id, a local directory or a config; LoRA.

* :mod:`~hf_galaxy.models.presets`: random-weight presets and the ``--model_config`` parser;
* :mod:`~hf_galaxy.models.loading`: :func:`load_classifier`, :func:`load_detector` (one set of checks),
  :func:`load_for_inference`, :func:`resolve_model_path`;
* :mod:`~hf_galaxy.models.lora`: :func:`apply_lora`, :func:`save_lora_model`;
* :mod:`~hf_galaxy.models.detection`: ``pixel_mask`` use, backbone freezing and activation checkpointing.
"""

from __future__ import annotations

from hf_galaxy._lazy import lazy_getattr

_EXPORTS = {
    "CONFIG_PRESETS": "hf_galaxy.models.presets",
    "DEFAULT_DETECTOR": "hf_galaxy.models.presets",
    "DEFAULT_MODEL": "hf_galaxy.models.presets",
    "DETECTOR_PRESETS": "hf_galaxy.models.presets",
    "ModelNotFoundError": "hf_galaxy.models.loading",
    "apply_lora": "hf_galaxy.models.lora",
    "build_from_config": "hf_galaxy.models.loading",
    "checkpoint_labels": "hf_galaxy.models.loading",
    "count_parameters": "hf_galaxy.models.loading",
    "default_image_processor": "hf_galaxy.models.loading",
    "head_module_names": "hf_galaxy.models.loading",
    "label_head_modules": "hf_galaxy.models.loading",
    "label_maps": "hf_galaxy.models.loading",
    "load_classifier": "hf_galaxy.models.loading",
    "load_detector": "hf_galaxy.models.loading",
    "load_for_inference": "hf_galaxy.models.loading",
    "load_image_processor": "hf_galaxy.models.loading",
    "load_pretrained": "hf_galaxy.models.loading",
    "lora_target_modules": "hf_galaxy.models.lora",
    "model_label_names": "hf_galaxy.models.loading",
    "parse_detector_config": "hf_galaxy.models.presets",
    "parse_model_config": "hf_galaxy.models.presets",
    "resolve_model_path": "hf_galaxy.models.loading",
    "save_lora_model": "hf_galaxy.models.lora",
}
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
__getattr__ = lazy_getattr(__name__, _EXPORTS)
