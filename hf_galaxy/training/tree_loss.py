"""Losses of whole-tree models: every Galaxy Zoo question at once, from the vote counts.

Both losses take ``(n, A)`` model outputs and ``(n, A)`` answer counts laid out by a
:class:`~hf_galaxy.data.tree.TreeLayout` and sum over questions; a question nobody answered for a galaxy
contributes nothing, so galaxies with different numbers of volunteers, and questions only some volunteers
reached, are handled as Walmsley et al. (2022) do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: the range of the Dirichlet concentrations, 1 + 99 * sigmoid(output): Zoobot's form (it uses 1 + 100 * sigmoid,
#: zoobot pytorch/estimators/efficientnet_custom.py) with the upper end at 100
MIN_CONCENTRATION, MAX_CONCENTRATION = 1.0, 100.0


def concentrations(outputs: torch.Tensor) -> torch.Tensor:
    """Dirichlet concentrations in (1, 100) from unbounded model outputs (Zoobot's sigmoid form)."""
    return MIN_CONCENTRATION + (MAX_CONCENTRATION - MIN_CONCENTRATION) * torch.sigmoid(outputs)


def dirichlet_multinomial_nll(
    alpha: torch.Tensor, counts: torch.Tensor, slices: Sequence[slice]
) -> torch.Tensor:
    """Per-galaxy negative log-likelihood of the ``counts`` under a Dirichlet-multinomial with concentrations
    ``alpha``, summed over questions (``(n,)``). The full log-pmf, multinomial coefficient included::

        log p(k | a) = lgamma(N+1) - sum lgamma(k_i+1) + lgamma(A) - lgamma(N+A) + sum [lgamma(k_i+a_i) - lgamma(a_i)]

    with N = sum k_i and A = sum a_i over the question's answers. A question with N = 0 gives exactly 0, and
    no gradient, by the formula itself: every term cancels (lgamma(A) - lgamma(0 + A), lgamma(a) - lgamma(0 + a)).
    """
    counts = counts.to(alpha.dtype)
    total = alpha.new_zeros(alpha.shape[0])
    for s in slices:
        a, k = alpha[:, s], counts[:, s]
        n, a0 = k.sum(dim=1), a.sum(dim=1)
        log_p = (
            torch.lgamma(n + 1)
            - torch.lgamma(k + 1).sum(dim=1)
            + torch.lgamma(a0)
            - torch.lgamma(n + a0)
            + (torch.lgamma(k + a) - torch.lgamma(a)).sum(dim=1)
        )
        total = total - log_p
    return total


def tree_soft_cross_entropy(
    logits: torch.Tensor, counts: torch.Tensor, slices: Sequence[slice]
) -> torch.Tensor:
    """Per-galaxy soft cross-entropy of each question's softmax against its vote fractions, summed over the
    questions (``(n,)``): the simpler baseline to the Dirichlet-multinomial. An unanswered question has all-zero
    fractions, so it adds exactly 0 and no gradient."""
    counts = counts.to(logits.dtype)
    total = logits.new_zeros(logits.shape[0])
    for s in slices:
        k = counts[:, s]
        frac = k / k.sum(dim=1, keepdim=True).clamp_min(1)
        total = total - (frac * torch.log_softmax(logits[:, s], dim=1)).sum(dim=1)
    return total


def tree_loss(
    outputs: torch.Tensor, counts: torch.Tensor, slices: Sequence[slice], loss: str
) -> torch.Tensor:
    """The batch mean of the per-galaxy ``loss`` (``"dirichlet"`` on :func:`concentrations` of the outputs, or
    ``"soft_ce"`` on the outputs as per-question logits), in float32."""
    outputs = outputs.float()
    if loss == "dirichlet":
        return dirichlet_multinomial_nll(concentrations(outputs), counts, slices).mean()
    if loss == "soft_ce":
        return tree_soft_cross_entropy(outputs, counts, slices).mean()
    raise ValueError(f"tree loss must be 'dirichlet' or 'soft_ce', got {loss!r}")


def expected_fractions(outputs: torch.Tensor, slices: Sequence[slice], loss: str) -> torch.Tensor:
    """Predicted vote fractions per question: the Dirichlet mean ``alpha / sum(alpha)`` (``loss="dirichlet"``)
    or the per-question softmax (``loss="soft_ce"``)."""
    if loss not in ("dirichlet", "soft_ce"):
        raise ValueError(f"tree loss must be 'dirichlet' or 'soft_ce', got {loss!r}")
    out = torch.empty_like(outputs)
    alpha = concentrations(outputs) if loss == "dirichlet" else None
    for s in slices:
        if alpha is not None:
            out[:, s] = alpha[:, s] / alpha[:, s].sum(dim=1, keepdim=True)
        else:
            out[:, s] = torch.softmax(outputs[:, s], dim=1)
    return out
