"""Facts that model cards quote: what each Galaxy Zoo class means, and what to cite for each release.

Class meanings follow the volunteer questions of each release (Lintott et al. 2008 for GZ1, Willett et al. 2013
for GZ2, Walmsley et al. 2022 for GZ DECaLS, the astroNN documentation for Galaxy10, the Galaxy MNIST README).
"""

from __future__ import annotations

import re

#: Class name (snake_case, as used in ``id2label``) -> what volunteers said about such a galaxy.
CLASS_DESCRIPTIONS: dict[str, str] = {
    # Galaxy Zoo 1 (six options per image)
    "elliptical": "Smooth, featureless elliptical galaxy (GZ1 'elliptical' vote).",
    "clockwise_spiral": "Spiral galaxy whose arms wind clockwise as seen in the image.",
    "anticlockwise_spiral": "Spiral galaxy whose arms wind anticlockwise as seen in the image.",
    "edge_on": "Disk galaxy seen edge-on (or spiral with unclear arm direction).",
    "star_or_unknown": "Star, artefact, or the volunteer could not tell ('star/don't know').",
    "merger": "Two or more galaxies merging or strongly interacting.",
    # common coarse classes
    "spiral": "Spiral (or disk) galaxy with visible features.",
    "uncertain": "No morphology reached the confidence threshold.",
    "smooth": "Smooth galaxy with no disk or features (GZ2/DECaLS first question: 'smooth').",
    "featured": "Galaxy with features or a disk (GZ2/DECaLS first question: 'features or disk').",
    "featured_or_disk": "Galaxy with features or a disk (first question: 'features or disk').",
    "artifact": "Image artefact or star rather than a galaxy.",
    "star_or_artifact": "Star or image artefact rather than a galaxy.",
    # GZ2 / galaxy-datasets leaf classes
    "smooth_round": "Smooth galaxy, completely round.",
    "smooth_inbetween": "Smooth galaxy, in-between round and cigar-shaped.",
    "smooth_in_between": "Smooth galaxy, in-between round and cigar-shaped.",
    "smooth_cigar": "Smooth galaxy, cigar-shaped (highly elongated).",
    "edge_on_disk": "Disk galaxy viewed edge-on.",
    "unbarred_spiral": "Face-on disk with spiral arms and no bar.",
    "barred_spiral": "Face-on disk with spiral arms and a bar through the centre.",
    "featured_without_bar_or_spiral": "Featured face-on disk with neither a bar nor spiral arms.",
    "round_elliptical": "Smooth galaxy, completely round.",
    "in_between": "Smooth galaxy, in-between round and cigar-shaped.",
    "cigar": "Smooth galaxy, cigar-shaped.",
    "irregular": "Irregular galaxy.",
    # Galaxy10 (SDSS and DECaLS)
    "disk_face_on_no_spiral": "Face-on disk without spiral arms.",
    "smooth_completely_round": "Smooth galaxy, completely round.",
    "smooth_in_between_round": "Smooth galaxy, in-between round.",
    "smooth_cigar_shaped": "Smooth galaxy, cigar-shaped.",
    "disk_edge_on_rounded_bulge": "Edge-on disk with a rounded central bulge.",
    "disk_edge_on_boxy_bulge": "Edge-on disk with a boxy central bulge.",
    "disk_edge_on_no_bulge": "Edge-on disk with no visible bulge.",
    "disk_face_on_tight_spiral": "Face-on disk with tightly wound spiral arms.",
    "disk_face_on_medium_spiral": "Face-on disk with medium-wound spiral arms.",
    "disk_face_on_loose_spiral": "Face-on disk with loosely wound spiral arms.",
    "disturbed": "Disturbed morphology (tidal features, asymmetry) without a clear merger.",
    "merging": "Two or more galaxies merging.",
    "round_smooth": "Smooth galaxy, completely round.",
    "in_between_round_smooth": "Smooth galaxy, in-between round and cigar-shaped.",
    "cigar_shaped_smooth": "Smooth galaxy, cigar-shaped.",
    "unbarred_tight_spiral": "Face-on spiral without a bar, tightly wound arms.",
    "unbarred_loose_spiral": "Face-on spiral without a bar, loosely wound arms.",
    "edge_on_without_bulge": "Edge-on disk with no visible bulge.",
    "edge_on_with_bulge": "Edge-on disk with a visible bulge.",
}

#: GZ2 / GZ DECaLS question slugs -> the question volunteers were asked (for ``<question>_<answer>`` classes).
QUESTIONS: dict[str, str] = {
    "smooth_or_featured": "Is the galaxy smooth, featured (disk), or an artefact?",
    "smooth_or_features": "Is the galaxy smooth, featured (disk), or a star/artefact?",
    "disk_edge_on": "Could this be a disk viewed edge-on?",
    "edgeon": "Could this be a disk viewed edge-on?",
    "has_spiral_arms": "Is there any sign of a spiral-arm pattern?",
    "spiral": "Is there any sign of a spiral-arm pattern?",
    "bar": "Is there a bar through the centre?",
    "bulge_size": "How prominent is the central bulge?",
    "bulge_prominence": "How prominent is the central bulge?",
    "how_rounded": "How rounded is the smooth galaxy?",
    "rounded": "How rounded is the smooth galaxy?",
    "edge_on_bulge": "What shape is the bulge of the edge-on disk?",
    "bulge_shape": "What shape is the bulge of the edge-on disk?",
    "spiral_winding": "How tightly wound are the spiral arms?",
    "arms_winding": "How tightly wound are the spiral arms?",
    "spiral_arm_count": "How many spiral arms are there?",
    "arms_number": "How many spiral arms are there?",
    "merging": "Is the galaxy merging or disturbed?",
    "odd": "Is there anything odd?",
    "odd_feature": "Which odd feature is present?",
}

#: BibTeX-style citations used by the cards: key -> (short label, full reference).
CITATIONS: dict[str, tuple[str, str]] = {
    "lintott2008": (
        "Lintott et al. 2008",
        "Lintott C. J. et al. 2008, MNRAS 389, 1179: Galaxy Zoo: morphologies derived from visual inspection "
        "of galaxies from the Sloan Digital Sky Survey.",
    ),
    "lintott2011": (
        "Lintott et al. 2011",
        "Lintott C. et al. 2011, MNRAS 410, 166: Galaxy Zoo 1: data release of morphological classifications "
        "for nearly 900,000 galaxies.",
    ),
    "bamford2009": (
        "Bamford et al. 2009",
        "Bamford S. P. et al. 2009, MNRAS 393, 1324: Galaxy Zoo: the dependence of morphology and colour on "
        "environment (classification-bias correction).",
    ),
    "willett2013": (
        "Willett et al. 2013",
        "Willett K. W. et al. 2013, MNRAS 435, 2835: Galaxy Zoo 2: detailed morphological classifications for "
        "304,122 galaxies from the Sloan Digital Sky Survey.",
    ),
    "hart2016": (
        "Hart et al. 2016",
        "Hart R. E. et al. 2016, MNRAS 461, 3663: Galaxy Zoo: comparing the demographics of spiral arm number "
        "and a new method for correcting redshift bias.",
    ),
    "dieleman2015": (
        "Dieleman et al. 2015",
        "Dieleman S., Willett K. W., Dambre J. 2015, MNRAS 450, 1441: Rotation-invariant convolutional neural "
        "networks for galaxy morphology prediction.",
    ),
    "walmsley2022": (
        "Walmsley et al. 2022",
        "Walmsley M. et al. 2022, MNRAS 509, 3966: Galaxy Zoo DECaLS: detailed visual morphology measurements "
        "from volunteers and deep learning for 314,000 galaxies.",
    ),
    "walmsley2023": (
        "Walmsley et al. 2023",
        "Walmsley M. et al. 2023, MNRAS 526, 4768: Galaxy Zoo DESI: detailed morphology measurements for 8.7M "
        "galaxies in the DESI Legacy Imaging Surveys.",
    ),
    "willett2017": (
        "Willett et al. 2017",
        "Willett K. W. et al. 2017, MNRAS 464, 4176: Galaxy Zoo: morphological classifications for 120 000 "
        "galaxies in HST legacy imaging.",
    ),
    "simmons2017": (
        "Simmons et al. 2017",
        "Simmons B. D. et al. 2017, MNRAS 464, 4420: Galaxy Zoo: quantitative visual morphological "
        "classifications for 48 000 galaxies from CANDELS.",
    ),
    "walmsley2024_evo": (
        "Walmsley et al. 2024",
        "Walmsley M. et al. 2024, arXiv:2404.02973: Scaling Laws for Galaxy Images (GZ Evo).",
    ),
    "walmsley2023_zoobot": (
        "Walmsley et al. 2023 (Zoobot)",
        "Walmsley M. et al. 2023, JOSS 8(85), 5312: Zoobot: Adaptable Deep Learning Models for Galaxy Morphology.",
    ),
    "dey2019": (
        "Dey et al. 2019",
        "Dey A. et al. 2019, AJ 157, 168: Overview of the DESI Legacy Imaging Surveys.",
    ),
    "leung2019": (
        "Leung & Bovy 2019",
        "Leung H. W., Bovy J. 2019, MNRAS 483, 3255: Deep learning of multi-element abundances from "
        "high-resolution spectroscopic data (astroNN; Galaxy10 datasets documented at astronn.readthedocs.io).",
    ),
    "walmsley_mnist": (
        "Galaxy MNIST",
        "Walmsley M., Galaxy MNIST (github.com/mwalmsley/galaxy_mnist), built from Galaxy Zoo DECaLS "
        "(Walmsley et al. 2022).",
    ),
    "dosovitskiy2021": (
        "Dosovitskiy et al. 2021",
        "Dosovitskiy A. et al. 2021, ICLR: An Image is Worth 16x16 Words: Transformers for Image Recognition at "
        "Scale (arXiv:2010.11929).",
    ),
    "he2022": (
        "He et al. 2022",
        "He K. et al. 2022, CVPR: Masked Autoencoders Are Scalable Vision Learners (arXiv:2111.06377).",
    ),
    "hu2022": (
        "Hu et al. 2022",
        "Hu E. J. et al. 2022, ICLR: LoRA: Low-Rank Adaptation of Large Language Models (arXiv:2106.09685).",
    ),
    "carion2020": (
        "Carion et al. 2020",
        "Carion N. et al. 2020, ECCV: End-to-End Object Detection with Transformers (arXiv:2005.12872).",
    ),
}

#: Release key -> (display name, survey, citation keys). Matched against ``dataset["release"]``.
RELEASES: dict[str, tuple[str, str, list[str]]] = {
    "gz1": ("Galaxy Zoo 1", "SDSS (DR6/DR7) gri colour composites", ["lintott2008", "lintott2011"]),
    "gz2": ("Galaxy Zoo 2", "SDSS DR7 gri colour composites", ["willett2013", "hart2016"]),
    "kaggle": (
        "Galaxy Zoo - The Galaxy Challenge (Kaggle)",
        "SDSS gri colour composites (Galaxy Zoo 2 images)",
        ["willett2013", "dieleman2015"],
    ),
    "decals": ("Galaxy Zoo DECaLS", "DECaLS DR1/2/5 grz colour composites", ["walmsley2022", "dey2019"]),
    "desi": (
        "Galaxy Zoo DESI",
        "DESI Legacy Imaging Surveys DR8 grz colour composites",
        ["walmsley2023", "dey2019"],
    ),
    "galaxy10_decals": (
        "Galaxy10 DECaLS",
        "DESI Legacy Imaging Surveys DR8 grz colour composites",
        ["leung2019", "walmsley2022", "hart2016"],
    ),
    "galaxy10": ("Galaxy10 SDSS", "SDSS gri colour composites (69x69 px)", ["leung2019", "willett2013"]),
    "galaxy_mnist": (
        "Galaxy MNIST",
        "DECaLS DR1/2 grz colour composites",
        ["walmsley_mnist", "walmsley2022"],
    ),
    "gz_hubble": (
        "Galaxy Zoo Hubble",
        "HST ACS (COSMOS, GOODS, AEGIS, GEMS...) colour composites",
        ["willett2017"],
    ),
    "gz_candels": ("Galaxy Zoo CANDELS", "HST CANDELS WFC3/ACS colour composites", ["simmons2017"]),
    "gz_evo": (
        "Galaxy Zoo Evo",
        "the imaging of each campaign it unites (SDSS, DECaLS, HST ...)",
        ["walmsley2024_evo", "willett2013", "walmsley2022"],
    ),
    "synthetic": (
        "hf-galaxy synthetic Galaxy Zoo",
        "procedurally generated cut-outs with a Galaxy Zoo 1 catalogue layout (not real sky data)",
        ["lintott2011"],
    ),
}

_ALIASES = {
    "galaxy_zoo_1": "gz1",
    "galaxyzoo1": "gz1",
    "galaxy_zoo_2": "gz2",
    "galaxyzoo2": "gz2",
    "gz2_hart16": "gz2",
    "gz_decals": "decals",
    "gzd": "decals",
    "gz_desi": "desi",
    "galaxy10_sdss": "galaxy10",
    "galaxy10_decals": "galaxy10_decals",
    "galaxymnist": "galaxy_mnist",
    "galaxy_zoo_hubble": "gz_hubble",
    "galaxy_zoo_candels": "gz_candels",
    "galaxy_zoo_evo": "gz_evo",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")


def release_info(release: str | None) -> tuple[str, str, list[str]] | None:
    """Display name, survey and citation keys for a release name such as ``"gz1"`` or ``"GZ DECaLS"``.

    Returns ``None`` for an unknown or missing release.
    """
    if not release:
        return None
    slug = _slug(release)
    slug = _ALIASES.get(slug, slug)
    slug = next(
        (v for k, v in _ALIASES.items() if slug.startswith(k + "_")), slug
    )  # "galaxy_zoo_evo_gz2_dr5"
    if slug in RELEASES:
        return RELEASES[slug]
    for key in sorted(RELEASES, key=len, reverse=True):  # longest key first: galaxy10_decals before galaxy10
        if key in slug:
            return RELEASES[key]
    return None


def describe_class(name: str, question: str | None = None) -> str:
    """What a class means in Galaxy Zoo terms; falls back to the question/answer wording, then to ``""``."""
    slug = _slug(name)
    if slug in CLASS_DESCRIPTIONS:
        return CLASS_DESCRIPTIONS[slug]
    if question:
        q = QUESTIONS.get(_slug(question))
        if q:
            return f"Answer '{name}' to: {q}"
    for q_slug in sorted(QUESTIONS, key=len, reverse=True):  # '<question>_<answer>' class names
        if slug.startswith(q_slug + "_"):
            answer = slug[len(q_slug) + 1 :].replace("_", " ")
            return f"Answer '{answer}' to: {QUESTIONS[q_slug]}"
    return ""


def citation_keys(release: str | None, *, task: str, lora: bool, pretraining: str | None = None) -> list[str]:
    """Citation keys for a card: the release's papers, then the architecture, the encoder's pretraining
    (``pretraining``: ``"mae"`` or ``"zoobot"``) and LoRA papers."""
    info = release_info(release)
    keys = list(info[2]) if info else []
    if pretraining == "zoobot":
        keys.append("walmsley2023_zoobot")
    else:
        keys.append("carion2020" if task == "object-detection" else "dosovitskiy2021")
    if pretraining == "mae":
        keys.append("he2022")
    if lora:
        keys.append("hu2022")
    return list(dict.fromkeys(keys))
