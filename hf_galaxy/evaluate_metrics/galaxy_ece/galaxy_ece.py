"""Expected calibration error as an ``evaluate`` module: the mean gap between confidence and accuracy over
equal-width confidence bins (Guo et al. 2017), through hf_galaxy.metrics."""

import datasets
import evaluate
import numpy as np

from hf_galaxy.metrics import expected_calibration_error

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
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, n_bins=None, class_names=None):
        probs = np.asarray(predictions, dtype=np.float64)
        labels = np.asarray(references, dtype=np.int64)
        return {"ece": expected_calibration_error(probs, labels, n_bins=int(n_bins or 15))}
