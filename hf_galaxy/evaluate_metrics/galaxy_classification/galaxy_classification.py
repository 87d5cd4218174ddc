"""hf-galaxy's classification metrics as an ``evaluate`` module: accuracy, macro-F1, top-2 accuracy and
per-class precision and recall, from class probabilities (scikit-learn, through hf_galaxy.metrics)."""

import evaluate
import numpy as np

from hf_galaxy.metrics import accuracy_metrics, metric_info

_INPUTS = """
Args:
    predictions: class probabilities, one list of C floats per galaxy.
    references: the true class ids (integers in 0..C-1).
    class_names: the C class names, used in the per-class keys (default: "0", "1", ...).
Returns:
    accuracy, macro_f1, top2_accuracy, precision_<class>, recall_<class>.
"""


class GalaxyClassification(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(__doc__, _INPUTS)

    def _compute(self, predictions, references, class_names=None, n_bins=None):
        probs = np.asarray(predictions, dtype=np.float64)
        names = list(class_names) if class_names is not None else [str(i) for i in range(probs.shape[1])]
        return accuracy_metrics(probs, np.asarray(references, dtype=np.int64), names)
