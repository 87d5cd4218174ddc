"""Expected calibration error as an ``evaluate`` module: the mean gap between confidence and accuracy over
equal-width confidence bins (Guo et al. 2017), through hf_galaxy.metrics."""

import evaluate
import numpy as np

from hf_galaxy.metrics import expected_calibration_error, metric_info

_INPUTS = """
Args:
    predictions: class probabilities, one list of C floats per galaxy.
    references: the true class ids.
    n_bins: confidence bins (default 15).
Returns:
    ece.
"""


class GalaxyEce(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(__doc__, _INPUTS)

    def _compute(self, predictions, references, n_bins=None, class_names=None):
        labels = np.asarray(references, dtype=np.int64)
        ece = expected_calibration_error(
            np.asarray(predictions, dtype=np.float64), labels, n_bins=int(n_bins or 15)
        )
        return {"ece": ece}
