"""Model cards generated from training, and publishing to / pulling from the Hugging Face Hub.

- :class:`GalaxyCardData` / :class:`CardCallback`: what a training run did, recorded while it runs.
- :func:`render_model_card` / :func:`write_model_card`: the model card (README.md) from an output directory.
- :func:`publish`: push an output directory (weights, processor, card, metrics, plots) in one commit;
  :func:`push_plan` is the one push path (also used for ensembles), :func:`strip_local_paths` keeps local paths
  out of published JSON.
- :func:`pull`: download a published model (or find it in the local cache when offline).
- :func:`publish_dataset`: push a prepared dataset (parquet with the images inside) with a generated dataset card.
"""

from hf_galaxy.hub.card import CARD_DATA_FILENAME, CardCallback, GalaxyCardData
from hf_galaxy.hub.datasets import dataset_card_text, publish_dataset
from hf_galaxy.hub.publish import (
    PublishError,
    PublishResult,
    UploadPlan,
    check_repo_id,
    check_revision,
    finish_output_dir,
    publish,
    publish_from_training_args,
    pull,
    push_plan,
    take_over_push,
)
from hf_galaxy.hub.render import render_model_card, write_model_card
from hf_galaxy.hub.sanitize import strip_local_paths
from hf_galaxy.hub.validate import CardValidationError, validate_card_metadata

__all__ = [
    "CARD_DATA_FILENAME",
    "CardCallback",
    "CardValidationError",
    "GalaxyCardData",
    "PublishError",
    "PublishResult",
    "UploadPlan",
    "check_repo_id",
    "check_revision",
    "dataset_card_text",
    "finish_output_dir",
    "publish",
    "publish_dataset",
    "publish_from_training_args",
    "pull",
    "push_plan",
    "render_model_card",
    "strip_local_paths",
    "take_over_push",
    "validate_card_metadata",
    "write_model_card",
]
