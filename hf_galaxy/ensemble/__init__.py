"""Ensembles of fine-tuned galaxy classifiers: voting, weighted voting, stacking, bagging and boosting.

Members are any ``AutoModelForImageClassification`` checkpoints with the same label set: training output
directories (also LoRA runs), their ``adapter/`` folders, or Hub repo ids. Combination methods:

* ``soft``: the (optionally weighted) mean of the members' class probabilities;
* ``hard``: (optionally weighted) majority vote of the members' predicted classes; the returned scores are
  the vote shares, ties broken by the members' mean probability;
* ``weighted``: soft voting with weights on the simplex fitted on the validation split (minimum log-loss);
* ``stacking``: a scikit-learn meta-learner (logistic regression by default) on the members' validation
  probabilities, cross-fitted (:func:`cross_fit_stacking`) so that no validation sample's own label is
  used to produce its meta-prediction.

Members can also be trained here through the training recipe (:func:`train_members`): ``seeds`` (same data,
different seeds), ``bagging`` (bootstrap resamples of the training split) or ``boosting`` (SAMME with
resampling: samples the previous members got wrong are drawn more often; the members vote with weights
``alpha_t``). Seeds and resampling details are recorded in ``ensemble_config.json``.

Inference makes one pass over the data: each batch is decoded and preprocessed once per distinct image
processor configuration, rotated once per test-time-augmentation angle, and fed to every member::

    ens = GalaxyEnsemble(["runs/seed0", "runs/seed1", "user/vit-gz1"], method="stacking")
    ens.fit(dsd["validation"])                  # weights / meta-learner (no-op for soft/hard voting)
    rows = ens.evaluate(dsd["test"])            # one row per member, the mean member and the ensemble
    print(format_table(rows))
    ens.save_pretrained("gz1-ensemble")         # ensemble_config.json (+ README.md card)
    GalaxyEnsemble.from_pretrained("gz1-ensemble").predict_proba(dsd["test"])

Layout: :mod:`~hf_galaxy.ensemble.combine` (the maths, numpy/scikit-learn), :mod:`~hf_galaxy.ensemble.members`
(loading, label checks, one-pass predictions), :mod:`~hf_galaxy.ensemble.core` (:class:`GalaxyEnsemble`,
metrics table, :func:`publish_ensemble`), :mod:`~hf_galaxy.ensemble.strategies` (training members) and
:mod:`~hf_galaxy.ensemble.recipe` (the recipe flow). Cards and the push are :mod:`hf_galaxy.hub.ensemble`'s.
"""

from hf_galaxy.ensemble.combine import (
    StackingFit,
    cross_fit_stacking,
    default_meta_learner,
    fit_vote_weights,
    hard_vote,
    meta_learner_from_json,
    meta_learner_to_json,
    soft_vote,
    stack_features,
)
from hf_galaxy.ensemble.core import (
    ENSEMBLE_CONFIG_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    METHODS,
    README_NAME,
    RESULTS_NAME,
    TABLE_METRICS,
    GalaxyEnsemble,
    evaluation_rows,
    format_table,
    member_metrics,
    publish_ensemble,
)
from hf_galaxy.ensemble.members import (
    MEMBER_FILES,
    EnsemblePredictions,
    LabelMismatchError,
    LoadedMember,
    MemberSpec,
    check_dataset_labels,
    check_label_names,
    export_member,
    load_member,
    predict_members,
)
from hf_galaxy.ensemble.recipe import EnsembleArguments, run_ensemble, summary
from hf_galaxy.ensemble.strategies import STRATEGIES, train_members
from hf_galaxy.hub.ensemble import MEMBERS_SUBDIR, render_ensemble_card

__all__ = [
    "ENSEMBLE_CONFIG_NAME",
    "EnsembleArguments",
    "EnsemblePredictions",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GalaxyEnsemble",
    "LabelMismatchError",
    "LoadedMember",
    "MEMBERS_SUBDIR",
    "MEMBER_FILES",
    "METHODS",
    "MemberSpec",
    "README_NAME",
    "RESULTS_NAME",
    "STRATEGIES",
    "StackingFit",
    "TABLE_METRICS",
    "check_dataset_labels",
    "check_label_names",
    "cross_fit_stacking",
    "default_meta_learner",
    "evaluation_rows",
    "export_member",
    "fit_vote_weights",
    "format_table",
    "hard_vote",
    "load_member",
    "member_metrics",
    "meta_learner_from_json",
    "meta_learner_to_json",
    "predict_members",
    "publish_ensemble",
    "render_ensemble_card",
    "run_ensemble",
    "soft_vote",
    "stack_features",
    "summary",
    "train_members",
]
