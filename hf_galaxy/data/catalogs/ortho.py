"""galaxy-datasets / Hub "ortho" tables of GZ Hubble (``-hubble``), GZ CANDELS (``-candels``), and of several
campaigns side by side (GZ Evo, Walmsley et al. 2024: ``-gz2``, ``-dr5``, ``-dr8``, ``-dr12``, ``-hubble``,
``-candels`` in one table, each galaxy with votes only in the campaigns it was shown in; GZ DESI's own table holds
its ``-dr5``/``-dr8``/``-dr12`` campaigns so).

Columns: ``id_str``, ``file_loc`` (or images inside a Hub dataset), ``ra``/``dec``, and per campaign ``c``,
question ``q`` and answer ``a``: ``{q}-{c}_{a}`` (count), ``{q}-{c}_{a}_fraction`` and ``{q}-{c}_total-votes``.
One GZ2 or GZ DECaLS campaign alone is read by the ``gz2`` / ``decals`` readers. The trees are data
(:data:`~hf_galaxy.data.catalogs.trees.CAMPAIGN_TREES`): one campaign keeps its own question names, several
get the union tree (:func:`~hf_galaxy.data.catalogs.trees.union_tree`) with ``<question>-<campaign>`` names.
Rows with a negative count, or fractions that disagree with their counts, are dropped and counted.

Options: ``campaigns`` (a list: read only those campaigns' votes); ``campaign="dr5"|"dr8"|"dr12"`` reads that
one DECaLS campaign with the ``decals`` reader, as for a GZ DESI table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs import _common as common
from hf_galaxy.data.catalogs.base import Catalog, CatalogError, read_table, require_columns
from hf_galaxy.data.catalogs.trees import CAMPAIGN_TREES, union_tree

FORMAT = "ortho"
RELEASES = {"hubble": "Galaxy Zoo Hubble", "candels": "Galaxy Zoo CANDELS"}
_COLUMN = re.compile(
    r"^(?P<q>[a-z0-9-]+?)-(?P<c>" + "|".join(CAMPAIGN_TREES) + r")_(?P<a>[a-z0-9-]+?)(_fraction)?$"
)


def campaigns_of(columns: Sequence[str]) -> list[str]:
    """The campaigns with at least one vote column of their tree, in :data:`CAMPAIGN_TREES` order."""
    found = set()
    for c in columns:
        m = _COLUMN.match(str(c))
        if m is None:
            continue
        tree = CAMPAIGN_TREES[m.group("c")]
        if any(q.name == m.group("q") and (m.group("a") in q.answers or m.group("a") == "total-votes")
               for q in tree.questions):  # fmt: skip
            found.add(m.group("c"))
    return [c for c in CAMPAIGN_TREES if c in found]


def _release(campaigns: Sequence[str]) -> str:
    """The release name of a table of these campaigns' votes: GZ DESI's own table holds its DECaLS campaigns
    side by side (``-dr5``, ``-dr8``, ``-dr12``); other mixes are GZ Evo."""
    if len(campaigns) == 1:
        return RELEASES.get(campaigns[0]) or (
            "Galaxy Zoo 2" if campaigns[0] == "gz2" else "Galaxy Zoo DECaLS"
        )
    joined = " + ".join(campaigns)
    if set(campaigns) <= {"dr5", "dr8", "dr12"}:
        return f"Galaxy Zoo {'DESI' if 'dr8' in campaigns else 'DECaLS'} (campaigns {joined})"
    return f"Galaxy Zoo Evo ({joined})"


def sniff(path: Path, columns: list[str]) -> bool:
    """True for GZ Hubble or GZ CANDELS vote columns, or for the votes of more than one campaign."""
    found = campaigns_of(columns)
    return len(found) > 1 or any(c in RELEASES for c in found)


def read(
    path: Path,
    image_dir: Path | None,
    *,
    campaigns: Sequence[str] | None = None,
    campaign: str | None = None,
    **unknown: object,
) -> Catalog:
    """Read an ortho table of one or several campaigns into the canonical table (see the module docstring)."""
    if campaign is not None:  # one DECaLS campaign of a multi-campaign table: the DECaLS reader's job
        from hf_galaxy.data.catalogs import decals

        return decals.read(path, image_dir, campaign=campaign, **unknown)  # type: ignore[arg-type]
    common.reject_options(FORMAT, unknown, ("campaigns", "campaign"))
    source = str(path)
    df = read_table(path, id_columns=("id_str", "iauname", "dr7objid", "dr8_id"))
    found = campaigns_of(df.columns)
    if campaigns is not None:
        unknown_c = [c for c in campaigns if c not in found]
        if unknown_c:
            raise CatalogError(
                f"{source}: campaigns={list(campaigns)}: no votes for {unknown_c}; found {found}"
            )
        found = [c for c in found if c in campaigns]
    if not found:
        raise CatalogError(f"{source}: no galaxy-datasets vote columns (<question>-<campaign>_<answer>)")
    single = len(found) == 1
    tree = CAMPAIGN_TREES[found[0]] if single else union_tree(found)
    id_col = common.find_column(list(df.columns), "id_str", "iauname", "dr7objid", "dr8_id")
    if id_col is None:
        require_columns(df, ["id_str"], source, "galaxy-datasets")
    ids = common.ids_as_strings(df[id_col], source, id_col)
    root = common.image_root(path, image_dir)
    out: dict[str, object] = {"id": ids.to_numpy(dtype=object)}
    loc = common.find_column(list(df.columns), "file_loc")
    if loc is not None:
        out["image_path"] = common.resolve_listed_paths(df[loc], root)
    else:
        finder = common.ImageFinder(root)
        out["image_path"] = np.array([finder.find(g, (g[:4],)) for g in ids], dtype=object)
    questions = [
        (f"{q.name}-{c}", q.name if single else f"{q.name}-{c}", q)
        for c in found
        for q in CAMPAIGN_TREES[c].questions
    ]
    consumed, computed, bad = common.ortho_votes(df, questions, out)
    consumed |= {id_col, "file_loc"}
    for c in ("ra", "dec"):
        if c in df.columns:
            out[c] = common.numeric(df[c]).to_numpy()
            consumed.add(c)
    for c in df.columns:
        if c not in consumed and c not in out:
            out[c] = df[c].to_numpy()
    out, dropped = common.drop_rows(out, bad, ids.to_numpy())
    table = pd.DataFrame(out)
    restricted = tree.restrict(list(table.columns))
    release = _release(found)
    meta: dict[str, object] = {
        "tree_version": tree.name,
        "campaigns": found,
        "layout": "galaxy-datasets ortho (" + ", ".join(f"-{c}" for c in found) + " columns)",
        "id_column": id_col,
        "questions": [q.name for q in restricted.questions],
        "n_duplicate_ids": common.count_duplicate_ids(ids),
    }
    if computed:
        meta["fractions_from_counts"] = computed
    return Catalog(table=table, release=release, source=source, tree=restricted, meta=meta, dropped=dropped)
