"""Whole-tree training: one model predicts the vote fractions of every Galaxy Zoo question at once.

The backbone is any ``AutoModelForImageClassification`` with one output per answer of the tree
(:class:`~hf_galaxy.data.tree.TreeLayout`); the tree and the loss are recorded in ``config.json``
(:func:`~hf_galaxy.data.tree.set_tree_config`). :class:`TreeTrainer` is the classification trainer with the
tree's loss (:func:`~hf_galaxy.training.tree_loss.tree_loss`), metrics (:func:`make_tree_compute_metrics`) and
pictures; the recipe flow is :func:`hf_galaxy.training.classification.run_training`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_galaxy.data.tree import TreeLayout
from hf_galaxy.training.classification import ClassificationTrainer
from hf_galaxy.training.trainer import GalaxyTrainer
from hf_galaxy.training.tree_loss import expected_fractions, tree_loss

#: the batch key a whole-tree trainer treats as its labels (``TrainingArguments.label_names``)
TREE_LABEL_NAMES = ["counts"]


def collate_tree(examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack ``pixel_values`` and, when every example has them, the answer ``counts`` (float)."""
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples])}
    if all(e.get("counts") is not None for e in examples):
        batch["counts"] = torch.stack([torch.as_tensor(e["counts"], dtype=torch.float32) for e in examples])
    return batch


def tree_fractions(outputs: np.ndarray, layout: TreeLayout, loss: str) -> np.ndarray:
    """``(n, A)`` predicted vote fractions per question from a whole-tree model's raw outputs."""
    x = torch.as_tensor(np.asarray(outputs, dtype=np.float32))
    return expected_fractions(x, layout.slices(), loss).double().numpy()


def make_tree_compute_metrics(layout: TreeLayout, loss: str) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for ``Trainer``: raw outputs and answer counts in,
    :func:`~hf_galaxy.metrics.tree_metrics` out (per-question vote RMSE/MAE/calibration, confident accuracy)."""
    from hf_galaxy.metrics import tree_metrics

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        outputs = eval_pred.predictions
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[0]
        counts = eval_pred.label_ids
        if isinstance(counts, (tuple, list)):
            counts = counts[0]
        if outputs.shape[-1] != layout.n_answers:
            raise ValueError(f"the model has {outputs.shape[-1]} outputs; the tree has {layout.n_answers}")
        return tree_metrics(tree_fractions(outputs, layout, loss), np.asarray(counts), layout)

    return compute_metrics


class TreeTrainer(ClassificationTrainer):
    """:class:`ClassificationTrainer` for whole-tree models: the loss is :func:`tree_loss` of the answer
    ``counts`` (Dirichlet-multinomial or per-question soft cross-entropy), summed over questions and averaged
    over galaxies; unanswered questions add nothing. The pictures are the predicted against the volunteers'
    fractions of every question, and a sample grid of the first question."""

    def __init__(self, *args: Any, tree: TreeLayout, tree_loss: str = "dirichlet", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tree = tree
        self.tree_loss = tree_loss

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        counts = inputs.get("counts")
        if counts is None:
            raise ValueError(
                "the batch has no 'counts': a whole-tree model trains on the vote count of every answer"
            )
        outputs, logits = self.forward_images(model, inputs)
        loss = tree_loss(logits, counts, self.tree.slices(), self.tree_loss)
        return (loss, outputs) if return_outputs else loss

    def predict_with_tta(self, dataset: Any, rotations: Sequence[int], metric_key_prefix: str) -> Any:
        """TTA of a tree model: each question's fractions averaged over the rotations. The wrapped model's
        logits are their logs, which the per-question softmax reads back exactly; its loss is not the
        training loss, so it is left out."""
        metrics_fn = self.compute_metrics
        self.compute_metrics = make_tree_compute_metrics(self.tree, "soft_ce")
        try:
            result = super().predict_with_tta(dataset, rotations, metric_key_prefix)
        finally:
            self.compute_metrics = metrics_fn
        result.metrics.pop(f"{metric_key_prefix}_loss", None)
        return result

    def write_plots(self, output_dir: Path) -> None:
        """Training curves, ``tree_fractions.png`` (predicted against volunteer fractions, per question) and
        the sample grid (first question) of the final split."""
        from hf_galaxy.plots import plot_sample_grid, plot_tree_fractions

        GalaxyTrainer.write_plots(self, output_dir)  # the curves; not the classifier's confusion matrix
        prediction, split = self.final_prediction, self.plot_split
        if prediction is None or split is None:
            return
        outputs = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        fractions = tree_fractions(outputs, self.tree, self.tree_loss)
        name = self.card.eval_split or "test"
        if prediction.label_ids is not None:
            plot_tree_fractions(
                fractions, np.asarray(prediction.label_ids), self.tree, output_dir / "tree_fractions.png",
                title=f"Predicted vs volunteer vote fractions ({name}, n={len(fractions)})",
            )  # fmt: skip
        root = self.tree.slices()[0]
        k = min(self.num_grid_images, len(split), len(fractions))
        if k > 0:
            rows = split.select(range(k))
            plot_sample_grid(
                [r["image"] for r in rows],
                [int(np.argmax(r["counts"][root])) for r in rows],
                fractions[:k, root].argmax(axis=1),
                list(self.tree.answers[0]),
                output_dir / "sample_grid.png",
                probs=fractions[:k, root],
            )
