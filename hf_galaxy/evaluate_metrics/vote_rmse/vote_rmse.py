"""Vote-fraction RMSE as an ``evaluate`` module: the root-mean-square error between predicted class
probabilities and the volunteers' vote fractions (the 2014 Kaggle Galaxy Challenge metric)."""

import datasets
import evaluate
import numpy as np

from hf_galaxy.metrics import vote_rmse

_INPUTS = """
Args:
    predictions: class probabilities, one list of C floats per galaxy.
    references: the vote fractions of the same C answers, one list per galaxy.
Returns:
    vote_rmse.
"""


class VoteRmse(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Willett et al. 2013, MNRAS 435, 2835; Dieleman et al. 2015, MNRAS 450, 1441",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references):
        return {
            "vote_rmse": vote_rmse(np.asarray(predictions, np.float64), np.asarray(references, np.float64))
        }
