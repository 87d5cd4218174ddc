"""Kaggle "Galaxy Zoo - The Galaxy Challenge" (2013-14): ``training_solutions_rev1.csv``.

Columns: ``GalaxyID`` and the 37 tree-weighted ``Class1.1`` ... ``Class11.6`` values. Within a question
the answer shares were multiplied by the value of the answer that leads to it (Q6 is the exception and
sums to 1), so the reader divides each question by its parent column to recover the conditional vote
fractions of the canonical table. Where the parent is 0 the question was not asked: NaN.

Extra columns: ``<question>_proportion_volunteers_asked`` (the parent value, 1 for Q1 and Q6) and the
original ``ClassN.M`` values (needed for the competition's RMSE metric).
Images: ``<image_dir>/<GalaxyID>.jpg`` (or ``<image_dir>/images_training_rev1/<GalaxyID>.jpg``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs import _common as common
from hf_galaxy.data.catalogs.base import Catalog, read_table, require_columns
from hf_galaxy.data.catalogs.trees import GZ2_TREE, KAGGLE_NATIVE, KAGGLE_PARENT_COLUMN

FORMAT = "kaggle"
RELEASE = "Kaggle Galaxy Challenge"
TOLERANCE = 1e-5
"""Deviation of a question's sum from its parent value counted as a constraint violation."""


def sniff(path: Path, columns: list[str]) -> bool:
    """True when the table has Kaggle ``Class1.1`` ... columns."""
    lower = {c.lower() for c in columns}
    return "class1.1" in lower and "class1.2" in lower


def read(path: Path, image_dir: Path | None, **options: object) -> Catalog:
    """Read Kaggle solutions into the canonical table (GZ2 tree, conditional fractions); no options."""
    common.reject_options(FORMAT, options, ())
    source = str(path)
    df = read_table(path, id_columns=("GalaxyID",))
    id_col = common.find_column(df.columns, "GalaxyID")
    native = [c for c, _, _ in KAGGLE_NATIVE]
    rename = {
        common.find_column(df.columns, c): c for c in native if common.find_column(df.columns, c) is not None
    }
    df = df.rename(columns=rename)
    require_columns(df, [id_col or "GalaxyID", *native], source, RELEASE)

    ids = common.ids_as_strings(df[id_col], source, id_col)
    root = common.image_root(path, image_dir)
    finder = common.ImageFinder(root)
    out: dict[str, object] = {
        "id": ids.to_numpy(dtype=object),
        "image_path": np.array([finder.find(i, ("images_training_rev1",)) for i in ids], dtype=object),
    }
    raw = {c: common.numeric(df[c]).to_numpy() for c in native}
    violations = np.zeros(len(df), dtype=bool)
    not_asked: dict[str, int] = {}
    for question in GZ2_TREE.questions:
        cols = [c for c, q, _ in KAGGLE_NATIVE if q == question.name]
        parent_col = KAGGLE_PARENT_COLUMN[question.name]
        parent = np.ones(len(df)) if parent_col is None else raw[parent_col]
        weighted = np.column_stack([raw[c] for c in cols])
        with np.errstate(invalid="ignore"):
            asked = parent > 0
            violations |= np.abs(np.nansum(weighted, axis=1) - np.nan_to_num(parent)) > TOLERANCE
        safe = np.where(asked, parent, 1.0)
        conditional = weighted / safe[:, None]
        conditional[~asked, :] = np.nan
        for answer, j in zip(question.answers, range(len(cols))):
            out[f"{question.name}_{answer}"] = conditional[:, j]
        out[f"{question.name}_proportion_volunteers_asked"] = parent.astype(float)
        not_asked[question.name] = int((~asked).sum())
    out.update(raw)

    meta = {
        "tree_version": GZ2_TREE.name,
        "fraction": "conditional (un-weighted Kaggle targets)",
        "image_dir": str(root),
        "n_duplicate_ids": common.count_duplicate_ids(ids),
        "n_constraint_violations": int(violations.sum()),
        "n_not_asked": not_asked,
    }
    if (
        c := common.find_column(list(df.columns), "split")
    ) is not None:  # the catalogue's own train/validation/test split
        out["split"] = df[c].to_numpy(dtype=object)
    common.pass_through(df, out)
    return Catalog(table=pd.DataFrame(out), release=RELEASE, source=source, tree=GZ2_TREE, meta=meta)
