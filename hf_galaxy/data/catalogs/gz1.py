"""Galaxy Zoo 1 (Lintott et al. 2008, 2011): Tables 2 and 3, their SkyServer copies and FITS versions.

Accepted layouts (CSV, CSV.gz, Parquet or FITS; column names matched case-insensitively):

* ``GalaxyZoo1_DR_table2.csv``: ``OBJID,RA,DEC,NVOTE,P_EL,P_CW,P_ACW,P_EDGE,P_DK,P_MG,P_CS,
  P_EL_DEBIASED,P_CS_DEBIASED,SPIRAL,ELLIPTICAL,UNCERTAIN``; ``RA``/``DEC`` sexagesimal (RA in hours).
* ``GalaxyZoo1_DR_table3.csv``: the same up to ``P_CS`` (no debiased fractions, no flags).
* SkyServer ``zooSpec`` / ``zooNoSpec``: lower-case, ``dr7objid`` (the id used here), ``objid`` (DR8
  objID, kept as ``dr8objid``), ``specobjid``, ``ra``/``dec`` already in degrees.

Cut-outs are looked up as ``<image_dir>/<id>.<ext>`` (GZ1 published no images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hf_galaxy.data.catalogs import _common as common
from hf_galaxy.data.catalogs.base import Catalog, read_table, require_columns
from hf_galaxy.data.catalogs.trees import GZ1_CLASSES, GZ1_FRACTION_COLUMNS, GZ1_TREE

FORMAT = "gz1"
RELEASE = "Galaxy Zoo 1"
FLAG_CLASSES = ["elliptical", "spiral", "uncertain"]
"""Class names of the ready label column ``gz1_flag_class`` (Table 2 flags)."""

_ID_COLUMNS = ("dr7objid", "OBJID", "specobjid")
#: Optional Table 2 columns kept under canonical names: the combined spiral and the debiased fractions
#: (``p_cs``, ``p_el_debiased``, ``p_cs_debiased``) and the clean-sample flags (``flag_spiral``, ...).
_EXTRA = {c: c.lower() for c in ("P_CS", "P_EL_DEBIASED", "P_CS_DEBIASED")} | {
    c: f"flag_{c.lower()}" for c in ("SPIRAL", "ELLIPTICAL", "UNCERTAIN")
}


def sniff(path: Path, columns: list[str]) -> bool:
    """True when the six GZ1 vote-fraction columns (any case) are present."""
    lower = {c.lower() for c in columns}
    return all(c.lower() in lower for c in GZ1_FRACTION_COLUMNS)


def read(path: Path, image_dir: Path | None, **options: object) -> Catalog:
    """Read a GZ1 table into the canonical table (vote columns ``gz1_<answer>``); takes no options."""
    common.reject_options(FORMAT, options, ())
    source = str(path)
    df = read_table(path, id_columns=(*_ID_COLUMNS, "objid"))
    cols = list(df.columns)

    dr7 = common.find_column(cols, "dr7objid")
    objid = common.find_column(cols, "OBJID")
    id_col = dr7 or objid
    if id_col is None:
        require_columns(df, ["OBJID (or dr7objid)"], source, RELEASE)
    fractions = [common.find_column(cols, c) for c in GZ1_FRACTION_COLUMNS]
    nvote = common.find_column(cols, "NVOTE", "nvote_tot")
    missing = [want for want, got in zip(GZ1_FRACTION_COLUMNS, fractions) if got is None]
    if nvote is None:
        missing.append("NVOTE")
    require_columns(df, missing, source, RELEASE)

    layout = "skyserver" if dr7 is not None else "table"
    has_flags = all(common.find_column(cols, c) is not None for c in ("SPIRAL", "ELLIPTICAL", "UNCERTAIN"))
    has_debiased = common.find_column(cols, "P_EL_DEBIASED") is not None
    table_kind = "table2" if (has_flags or has_debiased) else "table3"

    ids = common.ids_as_strings(df[id_col], source, id_col)
    out: dict[str, object] = {"id": ids.to_numpy(dtype=object)}

    root = common.image_root(path, image_dir)
    finder = common.ImageFinder(root)
    out["image_path"] = np.array([finder.find(i) for i in ids], dtype=object)

    meta: dict[str, object] = {
        "layout": f"{layout}:{table_kind}",
        "id_column": id_col,
        "image_dir": str(root),
        "tree_version": GZ1_TREE.name,
        "fraction": "fraction",
        "n_duplicate_ids": common.count_duplicate_ids(ids),
    }
    radec = common.radec_degrees(df, source, ("RA", "DEC"))
    if radec is not None:
        out["ra"], out["dec"], meta["coordinates"] = radec
    else:
        meta["coordinates"] = "none"

    for answer, col in zip(GZ1_CLASSES, fractions):
        out[f"gz1_{answer}"] = common.numeric(df[col]).to_numpy()
    votes = common.numeric(df[nvote]).to_numpy()
    out["gz1_total-votes"] = votes
    out["nvotes"] = votes

    for native, name in _EXTRA.items():
        col = common.find_column(cols, native)
        if col is not None:
            out[name] = common.numeric(df[col]).to_numpy() if name.startswith("p_") else df[col].to_numpy()
    if dr7 is not None:
        dr8 = common.find_column(cols, "objid")
        if dr8 is not None:
            out["dr8objid"] = df[dr8].to_numpy(dtype=object)
    spec = common.find_column(cols, "specobjid")
    if spec is not None:
        out["specobjid"] = df[spec].to_numpy(dtype=object)

    if (
        c := common.find_column(cols, "split")
    ) is not None:  # the catalogue's own train/validation/test split
        out["split"] = df[c].to_numpy(dtype=object)
    common.pass_through(df, out)
    table = pd.DataFrame(out)
    for name in ("flag_spiral", "flag_elliptical", "flag_uncertain"):
        if name in table:
            table[name] = pd.to_numeric(table[name], errors="coerce").astype("Int64")

    label_columns: tuple[str, ...] = ()
    class_names: dict[str, list[str]] = {}
    if has_flags:
        table["gz1_flag_class"], conflicts = _flag_class(table)
        label_columns = ("gz1_flag_class",)
        class_names = {"gz1_flag_class": list(FLAG_CLASSES)}
        meta["gz1_flag_class_unassigned"] = conflicts

    return Catalog(
        table=table,
        release=RELEASE,
        source=source,
        tree=GZ1_TREE,
        label_columns=label_columns,
        class_names=class_names,
        meta=meta,
    )


def _flag_class(table: pd.DataFrame) -> tuple[pd.Series, int]:
    """3-class label from the Table 2 flags: 0 elliptical, 1 spiral, 2 uncertain; <NA> if inconsistent."""
    e = table["flag_elliptical"].fillna(-1).to_numpy() == 1
    s = table["flag_spiral"].fillna(-1).to_numpy() == 1
    u = table["flag_uncertain"].fillna(-1).to_numpy() == 1
    known = (
        table["flag_elliptical"].notna() & table["flag_spiral"].notna() & table["flag_uncertain"].notna()
    ).to_numpy()
    exactly_one = (e.astype(int) + s.astype(int) + u.astype(int)) == 1
    label = np.select([e, s, u], [0, 1, 2], default=-1)
    valid = known & exactly_one
    out = pd.Series(pd.array(np.where(valid, label, 0), dtype="Int64"), index=table.index)
    out[~valid] = pd.NA
    return out, int((~valid).sum())
