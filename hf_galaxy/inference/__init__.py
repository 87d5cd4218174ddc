"""The inference stage: one batched prediction loop (processor geometry, TTA, autocast) for classifiers,
used by ``hf-galaxy evaluate``/``predict``, the recipes and the ensembles; detections for detectors."""

from hf_galaxy.inference.detection import post_process, predict_detections
from hf_galaxy.inference.predict import (
    BatchPreprocessor,
    ImageRows,
    RawPredictions,
    TTAClassifier,
    autocast,
    evaluate_model,
    list_inputs,
    predict_files,
    predict_probs,
    resolve_device,
    rotation_averaged_probs,
)

__all__ = [
    "BatchPreprocessor",
    "ImageRows",
    "RawPredictions",
    "TTAClassifier",
    "autocast",
    "evaluate_model",
    "list_inputs",
    "post_process",
    "predict_detections",
    "predict_files",
    "predict_probs",
    "resolve_device",
    "rotation_averaged_probs",
]
