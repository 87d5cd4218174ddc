"""hf-galaxy: fine-tune Hugging Face vision models on Galaxy Zoo data and publish them on the Hub.

The public API is re-exported here lazily, so ``import hf_galaxy`` stays cheap (no torch import)::

    from hf_galaxy import load_galaxy_dataset
    ds = load_galaxy_dataset("GalaxyZoo1_DR_table2.csv", "cutouts/", label_scheme="clean")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_galaxy_dataset": "hf_galaxy.data.dataset",
    "GalaxyDatasetDict": "hf_galaxy.data.dataset",
    "LoadReport": "hf_galaxy.data.dataset",
    "read_catalog": "hf_galaxy.data.catalogs",
    "Catalog": "hf_galaxy.data.catalogs",
    "make_labels": "hf_galaxy.data.labels",
    "make_galaxy_zoo": "hf_galaxy.data.synthetic",
    "GalaxyEnsemble": "hf_galaxy.ensemble",
    "finetune": "hf_galaxy.training",
    "FinetuneResult": "hf_galaxy.training",
    "to_detection": "hf_galaxy.data.detection",
    "make_mosaics": "hf_galaxy.data.detection",
    "export_coco": "hf_galaxy.data.detection",
    "load_coco": "hf_galaxy.data.detection",
}

__all__ = [
    "__version__",
    "load_galaxy_dataset",
    "GalaxyDatasetDict",
    "LoadReport",
    "read_catalog",
    "Catalog",
    "make_labels",
    "make_galaxy_zoo",
    "GalaxyEnsemble",
    "finetune",
    "FinetuneResult",
    "to_detection",
    "make_mosaics",
    "export_coco",
    "load_coco",
]

if TYPE_CHECKING:  # pragma: no cover
    from hf_galaxy.data.catalogs import Catalog, read_catalog
    from hf_galaxy.data.dataset import GalaxyDatasetDict, LoadReport, load_galaxy_dataset
    from hf_galaxy.data.detection import export_coco, load_coco, make_mosaics, to_detection
    from hf_galaxy.data.labels import make_labels
    from hf_galaxy.data.synthetic import make_galaxy_zoo
    from hf_galaxy.ensemble import GalaxyEnsemble
    from hf_galaxy.training import FinetuneResult, finetune


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hf_galaxy' has no attribute {name!r}")
