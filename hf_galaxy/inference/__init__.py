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
    inference_inputs,
    list_inputs,
    output_probs,
    predict_files,
    predict_probs,
    resolve_device,
    rotation_averaged_probs,
)
from hf_galaxy.inference.tree import fractions_frame, predict_vote_fractions

__all__ = [
    "BatchPreprocessor",
    "ImageRows",
    "RawPredictions",
    "TTAClassifier",
    "autocast",
    "evaluate_model",
    "fractions_frame",
    "inference_inputs",
    "list_inputs",
    "output_probs",
    "post_process",
    "predict_detections",
    "predict_files",
    "predict_probs",
    "predict_vote_fractions",
    "resolve_device",
    "rotation_averaged_probs",
]
