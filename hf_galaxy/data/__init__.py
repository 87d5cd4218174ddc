"""The data stage: catalogues -> labels -> ``datasets`` image-classification and detection sets.

* :mod:`~hf_galaxy.data.catalogs`: one reader per Galaxy Zoo release, each returning the canonical table;
* :mod:`~hf_galaxy.data.labels`: vote fractions -> labels (plurality, clean, votes, column; class merges);
* :mod:`~hf_galaxy.data.dataset`: :func:`load_galaxy_dataset` (images, splits, cache, skip report) and the
  dataset facts carried to the model cards;
* :mod:`~hf_galaxy.data.detection`: boxes, COCO-style detection sets, mosaics, COCO import/export;
* :mod:`~hf_galaxy.data.synthetic`: the deterministic synthetic Galaxy Zoo generator (the embedded default);
* :mod:`~hf_galaxy.data.transforms`: galaxy-aware augmentation (rotations, chirality-aware flips) for both tasks.
"""
