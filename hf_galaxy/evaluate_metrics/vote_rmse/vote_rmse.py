"""Vote-fraction RMSE as an ``evaluate`` module: the root-mean-square error between predicted class
probabilities and the volunteers' vote fractions (the 2014 Kaggle Galaxy Challenge metric)."""

import evaluate
import numpy as np

from hf_galaxy.metrics import metric_info, vote_rmse

_INPUTS = """
Args:
    predictions: class probabilities, one list of C floats per galaxy.
    references: the vote fractions of the same C answers, one list per galaxy.
Returns:
    vote_rmse.
"""
_CITATION = "Willett et al. 2013, MNRAS 435, 2835; Dieleman et al. 2015, MNRAS 450, 1441"


class VoteRmse(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(__doc__, _INPUTS, references="fractions", citation=_CITATION)

    def _compute(self, predictions, references):
        return {
            "vote_rmse": vote_rmse(np.asarray(predictions, np.float64), np.asarray(references, np.float64))
        }
