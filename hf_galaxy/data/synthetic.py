"""Procedural Galaxy Zoo 1 data: the embedded default data set of hf-galaxy.

:func:`make_galaxy_zoo` writes a small, fully controlled stand-in for the GZ1 release that every
other part of the library can read like the real thing:

``catalog.csv``
    The exact GZ1 Table 2 layout (``OBJID,RA,DEC,NVOTE,P_EL,P_CW,P_ACW,P_EDGE,P_DK,P_MG,P_CS,
    P_EL_DEBIASED,P_CS_DEBIASED,SPIRAL,ELLIPTICAL,UNCERTAIN``): SDSS DR7-style 18-digit objIDs
    (``587...``), sexagesimal RA (hours) and DEC strings, simulated volunteer vote fractions.
``images/<OBJID>.jpg``
    RGB cut-outs (g, r, i bands through a Lupton asinh stretch), the target galaxy at the centre.
``truth.csv``
    ``OBJID,true_class``: the class each galaxy was drawn from (one of :data:`GZ1_CLASSES`).
``truth_boxes.json``
    ``{OBJID: [{"bbox": [x, y, w, h], "category": ..., "target": bool}, ...]}``: the box of every
    object drawn in the cut-out (see *Boxes* below).

Physics
-------
All lengths are defined on the 424-pixel GZ grid and scaled by ``image_size / 424``; surface
brightnesses are in units of the per-band sky noise (``SKY_SIGMA = 1``), so a galaxy looks the same
at every image size. Profiles come from :mod:`astropy.modeling` (``Sersic2D``, ``Moffat2D``):

* ``elliptical``: Sersic n = 3-5, axis ratio 0.5-1, red colours.
* ``clockwise_spiral`` / ``anticlockwise_spiral``: exponential disk (Sersic n = 1) with a small red
  bulge, modulated by 2-4 logarithmic spiral arms (pitch 12-25 deg) that carry bluer light.
  **Chirality convention** (image as displayed: x to the right, y pointing *down*): GZ1's
  "clockwise" answer (``P_CW``) is the *Z-wise* spiral and "anticlockwise" (``P_ACW``) the *S-wise*
  one (Land et al. 2008, table 1), named after the letter the arms trace. Followed outward from the
  centre, the arms of a Z-wise (clockwise) spiral turn **anticlockwise** on the displayed image; the
  name describes the sense in which the galaxy appears to spin if its arms trail. An S-wise
  (anticlockwise) spiral's arms turn clockwise outward. An anticlockwise spiral is rendered by
  mirroring the x axis about the image centre, so for the same parameters it is exactly the
  left-right flip of the clockwise one (:func:`render_galaxy` is deterministic and tested for this).
* ``edge_on``: thin disk (axis ratio 0.1-0.25), small bulge, a dust lane along the major axis in
  half of them (deeper in g than in i).
* ``merger``: two overlapping galaxies with curved tidal tails and sometimes a bridge.
* ``star_or_unknown``: a point source (Moffat core with diffraction spikes) or a faint blob.
* Every cut-out: Gaussian PSF (``scipy.ndimage.gaussian_filter``), sky level and Gaussian sky noise,
  occasional neighbour galaxies and foreground stars, RGB from
  :func:`astropy.visualization.make_lupton_rgb` with the i, r, g bands as red, green, blue.

Boxes
-----
The box of an object is the bounding box of the pixels where its noiseless, PSF-convolved model,
averaged over the three bands, raises the grey image (the mean of the JPEG's R, G, B channels) above
the sky by more than ``BOX_THRESHOLD_SIGMA`` (1.5) times the grey sky noise ``GRAY_SKY_RMS`` (about
6.5 of 255, JPEG compression noise included; the sky sits at ``GRAY_SKY_LEVEL``, 25.5). In model units
that is about 2.1 sigma of the band-mean sky noise. Boxes are ``[x, y, w, h]`` in absolute pixels with
the origin at the top-left corner of the top-left pixel (pixel column ``j`` spans ``[j, j + 1)``).
This is what a source extractor segments on the grey JPEG at 1.5 sigma, for example::

    gray = np.asarray(Image.open(path), dtype=np.float32).mean(axis=2)
    bkg = sep.Background(gray, bw=size // 4, bh=size // 4)
    objects, seg = sep.extract(gray - bkg.back(), 1.5, err=bkg.globalrms, segmentation_map=True,
                               deblend_cont=1.0)

Neighbours and stars are placed so that their boxes do not overlap each other or the target's box
and lie inside the image. A merger is one target box around both galaxies and their tails; sep's
default deblending splits the two nuclei, so compare merger boxes with deblending off
(``deblend_cont=1.0``) or with the union of the segments under the target box.

Votes
-----
Each galaxy has a *clarity* in [0, 1] that sets both how clear its features are (arm contrast,
disk thinness, tail brightness) and how much the volunteers agree (:func:`simulate_votes`): the true
class gets a mean vote share that grows with clarity, most of the rest goes to one rival class drawn
from realistic confusions (clockwise <-> anticlockwise, spiral <-> edge-on, elliptical <-> star/don't
know, merger <-> spiral/elliptical), vote probabilities come from a Dirichlet whose concentration
varies per galaxy, and ``NVOTE`` (20-80) votes are drawn from them. With the default class mix the
plurality class is the true class for ~92% of galaxies and ~50% have a class with >= 80% of the
votes. The debiased columns shift a noisy amount of the elliptical fraction to the combined-spiral
fraction (their sum is kept), as the Bamford et al. (2009) correction does on average.

Determinism
-----------
Galaxy ``i`` uses generators seeded with ``SeedSequence(seed, spawn_key=(i, k))``, so serial and
parallel runs (``num_proc``) write identical files, and galaxy ``i`` (class, parameters, votes, id)
is the same for every ``n`` and every ``image_size``: ``catalog.csv`` and ``truth.csv`` do not depend
on ``image_size`` (the neighbours and stars around it may be placed differently at another size).

Whole-tree votes
----------------
``tree="decals"`` or ``tree="gz2"`` also writes a GZ DECaLS (GZD-5 tree) or galaxy-datasets GZ2 catalogue of
the same galaxies and images with the vote counts of every answer of that tree, and a truth file with the
true answer of every question the galaxy's morphology reaches (see :mod:`hf_galaxy.data.synthetic_tree`).
They use their own seed stream, so the GZ1 files are the same with and without ``tree``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from astropy.modeling.models import Moffat2D, Sersic2D
from astropy.visualization import LuptonAsinhStretch, ManualInterval, make_lupton_rgb
from scipy.ndimage import gaussian_filter
from scipy.optimize import brentq
from scipy.special import gamma as gamma_fn
from scipy.special import gammaincinv, ndtri

from hf_galaxy.data import synthetic_tree
from hf_galaxy.data.catalogs.trees import GZ1_CLASSES  # the canonical class order (P_EL, P_CW, ... P_MG)

logger = logging.getLogger(__name__)

__all__ = [
    "BOX_THRESHOLD_SIGMA",
    "CATALOG_COLUMNS",
    "DEFAULT_CLASS_FRACTIONS",
    "GRAY_SKY_LEVEL",
    "GRAY_SKY_RMS",
    "GZ1_CLASSES",
    "REFERENCE_SIZE",
    "SKY_SIGMA",
    "SyntheticZoo",
    "make_galaxy_zoo",
    "render_galaxy",
    "sample_galaxy_params",
    "simulate_votes",
]


CATALOG_COLUMNS: tuple[str, ...] = (
    "OBJID",
    "RA",
    "DEC",
    "NVOTE",
    "P_EL",
    "P_CW",
    "P_ACW",
    "P_EDGE",
    "P_DK",
    "P_MG",
    "P_CS",
    "P_EL_DEBIASED",
    "P_CS_DEBIASED",
    "SPIRAL",
    "ELLIPTICAL",
    "UNCERTAIN",
)
"""Header of GZ1 Table 2, in file order."""

DEFAULT_CLASS_FRACTIONS: dict[str, float] = {
    "elliptical": 0.30,
    "clockwise_spiral": 0.15,
    "anticlockwise_spiral": 0.15,
    "edge_on": 0.15,
    "star_or_unknown": 0.10,
    "merger": 0.15,
}

REFERENCE_SIZE = 424
"""All lengths in the parameters are in pixels of a 424 x 424 cut-out (the GZ2/Kaggle size)."""
SKY_SIGMA = 1.0
"""Per-band sky noise; surface brightnesses are in these units."""
BOX_THRESHOLD_SIGMA = 1.5
"""Box threshold, in units of the sky noise of the grey (channel-mean) JPEG (see the module docstring)."""

_SKY_LEVEL = 2.5  # sky background per band (in SKY_SIGMA units), so the noise is not clipped at black
_LUPTON_STRETCH = 25.0
_LUPTON_Q = 8.0
_JPEG_QUALITY = 90
# JPEG (quality 90, 4:2:0) adds its own noise to the sky: measured grey sky rms after / before
# compression is 1.29-1.31 at 64-424 px (tests/test_synthetic.py checks it).
_JPEG_NOISE_FACTOR = 1.3
_MIN_PSF_SIGMA = 0.5  # pixels; the scaled PSF never gets narrower than this


def _gray_level(band_mean: float) -> float:
    """Grey JPEG value (0-255) of a pixel whose three bands all equal ``band_mean`` (Lupton mapping)."""
    stretch = LuptonAsinhStretch(stretch=_LUPTON_STRETCH, Q=_LUPTON_Q)
    return 255.0 * float(stretch(np.array([band_mean], dtype=np.float64))[0])


GRAY_SKY_LEVEL = _gray_level(_SKY_LEVEL)
"""Grey (channel-mean) JPEG value of the sky, 0-255."""
GRAY_SKY_RMS = (
    _JPEG_NOISE_FACTOR
    * SKY_SIGMA
    / math.sqrt(3.0)
    * (_gray_level(_SKY_LEVEL + 1e-3) - _gray_level(_SKY_LEVEL - 1e-3))
    / 2e-3
)
"""Expected sky noise of the grey JPEG (0-255 units), JPEG compression noise included."""
# The box threshold in model units (band mean above the sky): where the grey JPEG rises above the
# sky by BOX_THRESHOLD_SIGMA * GRAY_SKY_RMS.
_THRESH = float(
    brentq(
        lambda t: _gray_level(_SKY_LEVEL + t) - GRAY_SKY_LEVEL - BOX_THRESHOLD_SIGMA * GRAY_SKY_RMS, 0.0, 1e3
    )
)
_SDSS_RUNS = (94, 125, 752, 756, 1035, 1140, 1231, 1345, 1350, 1402, 1412, 2126, 2141, 2190, 2248, 2326,
              2328, 2566, 2662, 2738, 2739, 2830, 2873, 2964, 3015, 3031, 3325, 3462, 3525, 3630, 3650, 3813,
              3900, 4192, 4198, 4263, 4576, 4858, 5071, 5237, 5323, 5566, 5759, 5935, 6314, 6433, 7112, 7777)  # fmt: skip

# Seed-stream indices inside SeedSequence(seed, spawn_key=(i, k)).
_STREAM_META, _STREAM_GALAXY, _STREAM_FIELD, _STREAM_NOISE, _STREAM_TREE = 0, 1, 2, 3, 4

# Fast Gaussian noise: inverse-transform sampling from 2**16 equiprobable normal quantiles.
# Sky level plus noise in one look-up table.
_SKY_TABLE = (_SKY_LEVEL + SKY_SIGMA * ndtri((np.arange(65536, dtype=np.float64) + 0.5) / 65536.0)).astype(
    np.float32
)

# Spectral energy distributions (g, r, i), normalised to a band mean of 1 so that a component's
# band-mean image equals its model image.
_SED_RED = np.array([0.60, 1.0, 1.40])
_SED_DISK = np.array([0.85, 1.0, 1.15])
_SED_BLUE = np.array([1.40, 1.0, 0.70])

# Who gets confused with whom: row = true class, columns = share of the non-true votes.
_CONFUSION = np.array(
    [
        # el    cw    acw   edge  dk    mg
        [0.00, 0.08, 0.08, 0.14, 0.50, 0.20],  # elliptical
        [0.15, 0.00, 0.35, 0.20, 0.05, 0.25],  # clockwise
        [0.15, 0.35, 0.00, 0.20, 0.05, 0.25],  # anticlockwise
        [0.30, 0.20, 0.20, 0.00, 0.15, 0.15],  # edge-on
        [0.70, 0.05, 0.05, 0.10, 0.00, 0.10],  # star / don't know
        [0.30, 0.20, 0.20, 0.10, 0.20, 0.00],  # merger
    ]
)


def _norm_sed(sed: Sequence[float]) -> np.ndarray:
    arr = np.asarray(sed, dtype=np.float64)
    return arr / arr.mean()


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index, stream)))


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


def _bn(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


def _sersic_amplitude(radius: float, r_eff: float, n: float, level: float = _THRESH) -> float:
    """Surface brightness at ``r_eff`` that puts ``level`` at ``radius`` (both along the major axis)."""
    return level * math.exp(_bn(n) * ((radius / r_eff) ** (1.0 / n) - 1.0))


def _sersic_radius(amplitude: float, r_eff: float, n: float, level: float = _THRESH) -> float:
    """Major-axis radius where a Sersic profile falls to ``level`` (0 if it never reaches it)."""
    if amplitude * math.exp(_bn(n)) <= level:
        return 0.0
    return r_eff * max(1.0 + math.log(amplitude / level) / _bn(n), 0.0) ** n


def _random_sed(rng: np.random.Generator, red: float) -> list[float]:
    """A colour between blue (red=0) and red (red=1), with a little scatter."""
    sed = (1 - red) * _SED_BLUE + red * _SED_RED
    sed = sed * np.exp(rng.normal(0.0, 0.04, size=3))
    return _norm_sed(sed).tolist()


def _sample_sersic_galaxy(
    rng: np.random.Generator,
    radius: float,
    n_range: tuple[float, float],
    q_range: tuple[float, float],
    concentration: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """A Sersic galaxy whose box radius (major axis) is ``radius``.

    ``concentration`` is the range of ``radius / r_eff``; the larger it is, the brighter the centre
    (default: 2.5-5.5 for n > 2, 1.8-3 otherwise).
    """
    n = float(rng.uniform(*n_range))
    if concentration is None:
        concentration = (2.5, 5.5) if n > 2 else (1.8, 3.0)
    r_eff = radius / float(rng.uniform(*concentration))
    amplitude = _sersic_amplitude(radius, r_eff, n)
    return {
        "n": n,
        "q": float(rng.uniform(*q_range)),
        "theta": float(rng.uniform(0.0, math.pi)),
        "r_eff": r_eff,
        "amplitude": amplitude,
        "extent": radius,
    }


def _sample_elliptical(rng: np.random.Generator, clarity: float) -> dict[str, Any]:
    p = _sample_sersic_galaxy(rng, REFERENCE_SIZE * float(rng.uniform(0.10, 0.30)), (3.0, 5.0), (0.5, 1.0))
    p["sed"] = _random_sed(rng, float(rng.uniform(0.85, 1.0)))
    return p


def _sample_spiral(rng: np.random.Generator, clarity: float) -> dict[str, Any]:
    radius = REFERENCE_SIZE * float(rng.uniform(0.20, 0.32))
    r_eff = radius / float(rng.uniform(2.2, 3.0))
    amplitude = _sersic_amplitude(radius, r_eff, 1.0)
    m = int(rng.choice([2, 3, 4], p=[0.6, 0.3, 0.1]))
    sharpness = float(rng.uniform(2.0, 4.0))
    arm_fraction = float(np.clip(0.45 + 0.4 * clarity + rng.normal(0.0, 0.05), 0.35, 0.9))
    mean_pattern = float(gamma_fn(sharpness + 0.5) / (math.sqrt(math.pi) * gamma_fn(sharpness + 1.0)))
    peak_boost = (1.0 - arm_fraction) + arm_fraction / mean_pattern
    bulge_n = float(rng.uniform(1.5, 3.0))
    bulge_r_eff = r_eff * float(rng.uniform(0.15, 0.30))
    # bulge central surface brightness relative to the disk's
    bulge_central = amplitude * math.exp(_bn(1.0)) * float(rng.uniform(1.0, 4.0))
    bulge_amplitude = bulge_central / math.exp(_bn(bulge_n))
    arm_radius = r_eff * (1.0 + math.log(peak_boost * amplitude / _THRESH) / _bn(1.0))
    return {
        "q": float(rng.uniform(0.65, 1.0)),
        "theta": float(rng.uniform(0.0, math.pi)),
        "r_eff": r_eff,
        "amplitude": amplitude,
        "arms": m,
        "pitch_deg": float(rng.uniform(12.0, 25.0)),
        "arm_phase": float(rng.uniform(0.0, 2.0 * math.pi)),
        "arm_sharpness": sharpness,
        "arm_fraction": arm_fraction,
        "arm_mean": mean_pattern,
        "arm_start": r_eff * float(rng.uniform(0.3, 0.6)),
        "bulge_n": bulge_n,
        "bulge_r_eff": bulge_r_eff,
        "bulge_q": float(rng.uniform(0.75, 1.0)),
        "bulge_amplitude": bulge_amplitude,
        "bulge_sed": _random_sed(rng, 1.0),
        "disk_sed": _norm_sed(_SED_DISK).tolist(),
        "arm_sed": _random_sed(rng, 0.0),
        "extent": max(arm_radius, _sersic_radius(bulge_amplitude, bulge_r_eff, bulge_n)),
    }


def _sample_edge_on(rng: np.random.Generator, clarity: float) -> dict[str, Any]:
    radius = REFERENCE_SIZE * float(rng.uniform(0.22, 0.38))
    r_eff = radius / float(rng.uniform(2.6, 3.6))
    amplitude = _sersic_amplitude(radius, r_eff, 1.0)
    bulge_n = float(rng.uniform(1.5, 3.0))
    bulge_r_eff = r_eff * float(rng.uniform(0.10, 0.22))
    bulge_central = amplitude * math.exp(_bn(1.0)) * float(rng.uniform(0.5, 2.0))
    bulge_amplitude = bulge_central / math.exp(_bn(bulge_n))
    q = float(np.clip(0.26 - 0.14 * clarity + rng.normal(0.0, 0.02), 0.1, 0.25))
    dust = bool(rng.random() < 0.5)
    return {
        "q": q,
        "theta": float(rng.uniform(0.0, math.pi)),
        "r_eff": r_eff,
        "amplitude": amplitude,
        "bulge_n": bulge_n,
        "bulge_r_eff": bulge_r_eff,
        "bulge_q": float(rng.uniform(0.6, 0.9)),
        "bulge_amplitude": bulge_amplitude,
        "dust_depth": float(rng.uniform(0.4, 0.6)) if dust else 0.0,
        "dust_width": float(rng.uniform(0.18, 0.3)) * q * radius,
        "dust_length": radius * float(rng.uniform(0.7, 1.0)),
        "bulge_sed": _random_sed(rng, 1.0),
        "disk_sed": _random_sed(rng, float(rng.uniform(0.4, 0.7))),
        "extent": max(radius, _sersic_radius(bulge_amplitude, bulge_r_eff, bulge_n)),
    }


def _sample_merger(rng: np.random.Generator, clarity: float) -> dict[str, Any]:
    r1 = REFERENCE_SIZE * float(rng.uniform(0.08, 0.15))
    r2 = r1 * float(rng.uniform(0.6, 1.0))
    separation = (r1 + r2) * float(rng.uniform(0.45, 0.8))
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    galaxies = [
        _sample_sersic_galaxy(rng, r1, (1.0, 4.0), (0.5, 1.0)),
        _sample_sersic_galaxy(rng, r2, (1.0, 4.0), (0.5, 1.0)),
    ]
    flux = [g["amplitude"] * g["r_eff"] ** 2 * g["q"] for g in galaxies]
    w2 = flux[1] / (flux[0] + flux[1])
    ux, uy = math.cos(angle), math.sin(angle)
    centres = [
        (-w2 * separation * ux, -w2 * separation * uy),
        ((1 - w2) * separation * ux, (1 - w2) * separation * uy),
    ]
    turn = float(rng.choice([-1.0, 1.0])) * float(rng.uniform(0.5, 1.3))  # radians over a tail
    tails = []
    for j, (g, (cx, cy)) in enumerate(zip(galaxies, centres)):
        if j == 1 and rng.random() < 0.3:
            continue  # a single tail sometimes
        start = 0.5 * g["extent"]
        length = g["extent"] * float(rng.uniform(0.8, 1.5))
        brightness = _THRESH * float(4.0 + 10.0 * clarity + rng.uniform(0.0, 4.0))
        tails.append(
            {
                "x": cx,
                "y": cy,
                "direction": angle + (math.pi if j == 0 else 0.0) + float(rng.uniform(-0.5, 0.5)),
                "curl": turn / math.log(brightness / _THRESH),  # radians turned over one tail scale
                "start": start,
                "scale": length / math.log(brightness / _THRESH),
                "width": g["extent"] * float(rng.uniform(0.12, 0.22)),
                "brightness": brightness,
            }
        )
    bridge = None
    if rng.random() < 0.4:
        bridge = {"brightness": _THRESH * float(rng.uniform(3.0, 8.0)), "width": 0.2 * min(r1, r2)}
    for g, (cx, cy) in zip(galaxies, centres):
        g["x"], g["y"] = cx, cy
        g["sed"] = _random_sed(rng, float(rng.uniform(0.3, 1.0)))

    def reach(level: float) -> float:
        return max(
            *(
                math.hypot(g["x"], g["y"]) + _sersic_radius(g["amplitude"], g["r_eff"], g["n"], level)
                for g in galaxies
            ),
            *(
                math.hypot(t["x"], t["y"]) + t["start"] + t["scale"] * math.log(t["brightness"] / level)
                for t in tails
            ),
        )

    limit = 0.42 * REFERENCE_SIZE
    if reach(_THRESH) > limit:  # shrink the whole system so it fits in the frame
        shrink = limit / reach(_THRESH)
        for g in galaxies:
            for key in ("x", "y", "r_eff", "extent"):
                g[key] *= shrink
        for t in tails:
            for key in ("x", "y", "start", "scale", "width"):
                t[key] *= shrink
        if bridge is not None:
            bridge["width"] *= shrink
    return {
        "galaxies": galaxies,
        "tails": tails,
        "bridge": bridge,
        "tail_sed": _random_sed(rng, float(rng.uniform(0.0, 0.4))),
        "extent": reach(_THRESH),
    }


def _sample_star(
    rng: np.random.Generator, amplitude_range: tuple[float, float], spikes: float
) -> dict[str, Any]:
    """A point source: Moffat core (amplitude log-uniform) and, with probability ``spikes``, 4 spikes."""
    amplitude = float(np.exp(rng.uniform(*np.log(amplitude_range))))
    alpha = float(rng.uniform(2.5, 4.0))
    fwhm = float(rng.uniform(3.0, 5.0))
    gamma = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / alpha) - 1.0))
    core = gamma * math.sqrt(max((amplitude / _THRESH) ** (1.0 / alpha) - 1.0, 0.0))
    p: dict[str, Any] = {
        "kind": "star",
        "amplitude": amplitude,
        "alpha": alpha,
        "gamma": gamma,
        "sed": _random_sed(rng, float(rng.uniform(0.0, 1.0))),
        "spike_amplitude": 0.0,
        "spike_angle": 0.0,
        "spike_scale": 1.0,
        "spike_width": 1.0,
        "extent": core,
    }
    if rng.random() < spikes:
        spike_amplitude = amplitude * float(rng.uniform(0.03, 0.08))
        length = max(core, 1.0) * float(rng.uniform(2.0, 4.0))
        p.update(
            spike_amplitude=spike_amplitude,
            spike_angle=float(rng.choice([0.0, math.pi / 4])) + float(rng.normal(0.0, 0.05)),
            spike_scale=length / max(math.log(spike_amplitude / _THRESH), 0.5),
            spike_width=float(rng.uniform(0.6, 1.0)),
            extent=max(core, length),
        )
    return p


def _sample_star_or_unknown(rng: np.random.Generator, clarity: float) -> dict[str, Any]:
    if rng.random() < 0.6:
        return _sample_star(rng, (300.0, 3000.0), spikes=0.8)
    # a faint, featureless blob: low concentration, so the centre is only ~5-15 sigma above the sky
    radius = REFERENCE_SIZE * float(rng.uniform(0.06, 0.13))
    p = _sample_sersic_galaxy(rng, radius, (0.5, 1.2), (0.6, 1.0), concentration=(1.3, 1.8))
    p["kind"] = "blob"
    p["sed"] = _random_sed(rng, float(rng.uniform(0.2, 1.0)))
    return p


_SAMPLERS: dict[str, Callable[[np.random.Generator, float], dict[str, Any]]] = {
    "elliptical": _sample_elliptical,
    "clockwise_spiral": _sample_spiral,
    "anticlockwise_spiral": _sample_spiral,
    "edge_on": _sample_edge_on,
    "star_or_unknown": _sample_star_or_unknown,
    "merger": _sample_merger,
}


def _check_class(cls: str) -> None:
    if cls not in GZ1_CLASSES:
        raise ValueError(f"unknown GZ1 class {cls!r}; expected one of {', '.join(GZ1_CLASSES)}")


def sample_galaxy_params(cls: str, rng: np.random.Generator, clarity: float | None = None) -> dict[str, Any]:
    """Draw the parameters of one target galaxy of class ``cls`` (lengths in 424-px units).

    Clockwise and anticlockwise spirals use the same sampler (and so the same draws); only the
    rendering differs by a mirror. ``clarity`` (0-1, drawn when None) sets how clear the features are.
    The result also holds the PSF width ``psf_sigma`` (pixels at 424) and the ``clarity`` used.
    """
    _check_class(cls)
    if clarity is None:
        clarity = float(rng.beta(2.5, 1.0))
    elif not 0.0 <= clarity <= 1.0:
        raise ValueError(f"clarity must be in [0, 1], got {clarity}")
    psf_sigma = float(rng.uniform(1.3, 2.3))
    params = _SAMPLERS[cls](rng, clarity)
    params["psf_sigma"] = psf_sigma
    params["clarity"] = clarity
    return params


# --------------------------------------------------------------------------------------------------
# Model images (components)
# --------------------------------------------------------------------------------------------------

Component = tuple[np.ndarray, Sequence[float]]  # (image, SED over g, r, i)


def _sersic(
    dx: np.ndarray, dy: np.ndarray, amplitude: float, r_eff: float, n: float, q: float, theta: float
) -> np.ndarray:
    return Sersic2D.evaluate(dx, dy, amplitude, r_eff, n, 0.0, 0.0, 1.0 - q, theta)


def _sersic_window(
    dx: np.ndarray,
    dy: np.ndarray,
    amplitude: float,
    r_eff: float,
    n: float,
    q: float,
    theta: float,
    level: float = 0.05 * SKY_SIGMA,
) -> np.ndarray:
    """Sersic on the (1, w) x (h, 1) grid, evaluated only within its radius at ``level`` (0 outside).

    For small components (bulges, merging galaxies): the cut is far below the noise.
    """
    reach = _sersic_radius(amplitude, r_eff, n, level)
    out = np.zeros((dy.shape[0], dx.shape[1]))
    cols = np.flatnonzero(np.abs(dx[0]) <= reach)
    rows = np.flatnonzero(np.abs(dy[:, 0]) <= reach)
    if cols.size and rows.size:
        ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        out[ys, xs] = _sersic(dx[:, xs], dy[ys, :], amplitude, r_eff, n, q, theta)
    return out


def _disk_coords(dx: np.ndarray, dy: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Major-axis and (unscaled) minor-axis coordinates for position angle ``theta`` (dtype kept)."""
    c, s = math.cos(theta), math.sin(theta)
    return dx * c + dy * s, -dx * s + dy * c


def _elliptical_components(p: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> list[Component]:
    img = _sersic(dx, dy, p["amplitude"], p["r_eff"] * s, p["n"], p["q"], p["theta"])
    return [(img, p["sed"])]


def _spiral_components(p: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> list[Component]:
    r_eff = p["r_eff"] * s
    disk = _sersic(dx, dy, p["amplitude"], r_eff, 1.0, p["q"], p["theta"])
    u, v = _disk_coords(dx.astype(np.float32), dy.astype(np.float32), p["theta"])
    v = v / np.float32(p["q"])  # deprojected: the arms live in the disk plane
    r = np.hypot(u, v)
    # With y pointing down, increasing atan2(v, u) is clockwise on the displayed image. The arm azimuth
    # *decreases* with log(r), so the arms turn anticlockwise when followed outward: a Z-shaped
    # ("Z-wise") spiral, which GZ1 calls clockwise. The mirror (dx -> -dx) gives the S-wise one.
    phi = np.arctan2(v, u)
    winding = np.log(r / np.float32(r_eff) + np.float32(1e-6)) * np.float32(
        1.0 / math.tan(math.radians(p["pitch_deg"]))
    )
    psi = np.float32(p["arms"]) * (phi - np.float32(p["arm_phase"]) + winding)
    pattern = (np.float32(0.5) * (np.float32(1.0) + np.cos(psi))) ** np.float32(p["arm_sharpness"])
    pattern /= np.float32(p["arm_mean"])
    arm_weight = np.float32(p["arm_fraction"]) * (
        np.float32(1.0) - np.exp(-((r / np.float32(p["arm_start"] * s)) ** 2))
    )
    smooth = disk * (1.0 - arm_weight)
    arms = disk * arm_weight * pattern
    bulge = _sersic_window(
        dx, dy, p["bulge_amplitude"], p["bulge_r_eff"] * s, p["bulge_n"], p["bulge_q"], p["theta"]
    )
    return [(smooth, p["disk_sed"]), (arms, p["arm_sed"]), (bulge, p["bulge_sed"])]


def _edge_on_components(p: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> list[Component]:
    disk = _sersic(dx, dy, p["amplitude"], p["r_eff"] * s, 1.0, p["q"], p["theta"])
    bulge = _sersic_window(
        dx, dy, p["bulge_amplitude"], p["bulge_r_eff"] * s, p["bulge_n"], p["bulge_q"], p["theta"]
    )
    comps: list[Component] = [(disk, p["disk_sed"]), (bulge, p["bulge_sed"])]
    if p["dust_depth"] > 0:
        u, v = _disk_coords(dx.astype(np.float32), dy.astype(np.float32), p["theta"])
        lane = np.exp(-0.5 * (v / (p["dust_width"] * s)) ** 2 - (u / (p["dust_length"] * s)) ** 4)
        # absorbed light: deeper in g than in i (dust reddens); the disk stays positive (1.3 * depth < 1)
        absorb = -p["dust_depth"] * np.array([1.3, 1.0, 0.75])
        comps.append(((disk + bulge) * lane, absorb.tolist()))
    return comps


def _tail_image(t: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> np.ndarray:
    rx = (dx - t["x"] * s).astype(np.float32)
    ry = (dy - t["y"] * s).astype(np.float32)
    r = np.hypot(rx, ry)
    start, scale = t["start"] * s, t["scale"] * s
    along = np.maximum(r - start, 0.0) / scale
    centre_angle = t["direction"] + t["curl"] * along
    dphi = np.mod(np.arctan2(ry, rx) - centre_angle + math.pi, 2.0 * math.pi) - math.pi
    across = dphi * np.maximum(r, start) / (t["width"] * s)
    fade_in = 1.0 - np.exp(-(((r / start) ** 2) * 2.0))
    return t["brightness"] * np.exp(-along - 0.5 * across**2) * fade_in


def _merger_components(p: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> list[Component]:
    comps: list[Component] = []
    for g in p["galaxies"]:
        img = _sersic_window(
            dx - g["x"] * s, dy - g["y"] * s, g["amplitude"], g["r_eff"] * s, g["n"], g["q"], g["theta"]
        )
        comps.append((img, g["sed"]))
    tidal = np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=np.float32)
    for t in p["tails"]:
        tidal += _tail_image(t, dx, dy, s)
    if p["bridge"] is not None:
        (x1, y1), (x2, y2) = ((g["x"] * s, g["y"] * s) for g in p["galaxies"])
        ex, ey = x2 - x1, y2 - y1
        length2 = ex * ex + ey * ey
        px, py = (dx - x1).astype(np.float32), (dy - y1).astype(np.float32)
        frac = np.clip((px * ex + py * ey) / length2, 0.0, 1.0)
        dist = np.hypot(px - frac * ex, py - frac * ey)
        tidal += p["bridge"]["brightness"] * np.exp(-0.5 * (dist / (p["bridge"]["width"] * s)) ** 2)
    comps.append((tidal, p["tail_sed"]))
    return comps


def _star_components(p: Mapping[str, Any], dx: np.ndarray, dy: np.ndarray, s: float) -> list[Component]:
    if p.get("kind") == "blob":
        return _elliptical_components(p, dx, dy, s)
    gamma = max(p["gamma"] * s, 0.3)
    img = Moffat2D.evaluate(dx, dy, p["amplitude"], 0.0, 0.0, gamma, p["alpha"])
    if p["spike_amplitude"] > 0:
        scale, width = p["spike_scale"] * s, max(p["spike_width"] * s, 0.4)
        for angle in (p["spike_angle"], p["spike_angle"] + math.pi / 2):
            along, across = _disk_coords(dx, dy, angle)
            img = img + p["spike_amplitude"] * np.exp(-np.abs(along) / scale - 0.5 * (across / width) ** 2)
    return [(img, p["sed"])]


_BUILDERS: dict[str, Callable[[Mapping[str, Any], np.ndarray, np.ndarray, float], list[Component]]] = {
    "elliptical": _elliptical_components,
    "clockwise_spiral": _spiral_components,
    "anticlockwise_spiral": _spiral_components,
    "edge_on": _edge_on_components,
    "star_or_unknown": _star_components,
    "merger": _merger_components,
    "neighbour": _elliptical_components,
    "star": _star_components,
}


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


@dataclass
class _Stamp:
    """PSF-convolved band images of one object on a sub-grid of the cut-out, and its box."""

    bands: np.ndarray  # (3, h, w) float32: g, r, i
    y0: int
    x0: int
    bbox: tuple[int, int, int, int] | None  # x, y, w, h in cut-out pixels


def _psf_sigma(params: Mapping[str, Any], size: int) -> float:
    return max(params["psf_sigma"] * size / REFERENCE_SIZE, _MIN_PSF_SIGMA)


def _taper(d: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """1 inside ``r_in``, a raised-cosine fall to 0 at ``r_out`` (float32)."""
    edge = np.clip((np.abs(d) - r_in) / (r_out - r_in), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(math.pi * edge))).astype(np.float32)


def _render_object(
    kind: str,
    params: Mapping[str, Any],
    xc: float,
    yc: float,
    size: int,
    psf_sigma: float,
    mirror: bool = False,
) -> _Stamp:
    """Render one object centred on pixel coordinates (xc, yc) (pixel centres are integers).

    The model is multiplied by a smooth radial taper that starts just outside the object's
    threshold radius (``extent``) and reaches zero at the stamp edge, so the stamp edge leaves no
    visible step (the taper only removes light that is below the box threshold, buried in the noise).
    """
    s = size / REFERENCE_SIZE
    reach = params["extent"] * s
    build = _BUILDERS[kind]
    while True:
        r_in = 1.05 * reach + 1.5 * psf_sigma
        half = 1.3 * reach + 3.0 * psf_sigma + 2.0
        x_lo, x_hi = max(math.floor(xc - half), 0), min(math.ceil(xc + half), size - 1)
        y_lo, y_hi = max(math.floor(yc - half), 0), min(math.ceil(yc + half), size - 1)
        dx = (np.arange(x_lo, x_hi + 1, dtype=np.float64) - xc)[None, :]
        dy = (np.arange(y_lo, y_hi + 1, dtype=np.float64) - yc)[:, None]
        if mirror:
            dx = -dx
        shape = (y_hi - y_lo + 1, x_hi - x_lo + 1)
        # radial, so the faint outskirts fade out round rather than as a visible square
        taper = _taper(np.hypot(dy, dx), r_in, half)
        comps = build(params, dx, dy, s)
        blurred = np.empty((len(comps), shape[0] * shape[1]), dtype=np.float32)
        for k, (img, _) in enumerate(comps):
            gaussian_filter(
                img.astype(np.float32) * taper, psf_sigma, mode="constant", output=blurred[k].reshape(shape)
            )
        seds = np.array([sed for _, sed in comps], dtype=np.float32)  # (components, bands)
        # einsum rather than matmul: no BLAS threads for these tiny inner dimensions
        bands = np.einsum("kb,kn->bn", seds, blurred).reshape((3,) + shape)
        mask = np.einsum("k,kn->n", seds.mean(axis=1), blurred).reshape(shape) > _THRESH
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # Light above the threshold inside the taper means `extent` was too small: grow the stamp.
        spread = max(abs(dx[0, cols[[0, -1]]]).max(), abs(dy[rows[[0, -1]], 0]).max()) if rows.size else 0.0
        if spread > r_in and reach < 2 * size:
            reach *= 1.5
            continue
        bbox = None
        if rows.size:
            bbox = (
                x_lo + int(cols[0]),
                y_lo + int(rows[0]),
                int(cols[-1] - cols[0] + 1),
                int(rows[-1] - rows[0] + 1),
            )
        return _Stamp(bands, y_lo, x_lo, bbox)


def _check_size(size: int, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"{name} must be an integer >= 16 (pixels), got {size!r}")
    return int(size)


def render_galaxy(
    cls: str, params: Mapping[str, Any] | np.random.Generator, size: int = REFERENCE_SIZE
) -> np.ndarray:
    """Noiseless, PSF-convolved g, r, i images (shape ``(3, size, size)``, float32) of one target galaxy.

    ``params`` is a dict from :func:`sample_galaxy_params` or a generator to draw one from. The galaxy
    is centred on the image centre; the output is a deterministic function of (cls, params, size), and
    an ``anticlockwise_spiral`` is exactly the left-right mirror of the ``clockwise_spiral`` rendered
    with the same parameters (up to float rounding of the PSF convolution).
    """
    _check_class(cls)
    size = _check_size(size)
    if isinstance(params, np.random.Generator):
        params = sample_galaxy_params(cls, params)
    centre = (size - 1) / 2.0
    stamp = _render_object(
        cls, params, centre, centre, size, _psf_sigma(params, size), cls == "anticlockwise_spiral"
    )
    out = np.zeros((3, size, size), dtype=np.float32)
    h, w = stamp.bands.shape[1:]
    out[:, stamp.y0 : stamp.y0 + h, stamp.x0 : stamp.x0 + w] = stamp.bands
    return out


def _overlaps(box: tuple[int, int, int, int], others: Sequence[tuple[int, int, int, int]], gap: int) -> bool:
    x, y, w, h = box
    for ox, oy, ow, oh in others:
        if x < ox + ow + gap and ox < x + w + gap and y < oy + oh + gap and oy < y + h + gap:
            return True
    return False


def _field_objects(
    rng: np.random.Generator, size: int, psf_sigma: float, taken: list[tuple[int, int, int, int]]
) -> list[tuple[str, _Stamp]]:
    """Neighbour galaxies and foreground stars, placed so that no two boxes overlap or touch.

    Each is tried at up to 8 random positions; one that finds no free place (or whose box would be
    smaller than 3 x 3 pixels) is not drawn.
    """
    n_neighbours = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
    n_stars = int(rng.choice([0, 1, 2, 3], p=[0.55, 0.3, 0.1, 0.05]))
    # Boxes at least `gap` pixels apart, so that noise does not join their segments.
    gap = max(3, round(0.025 * size))
    placed: list[tuple[str, _Stamp]] = []
    for kind in ["neighbour"] * n_neighbours + ["star"] * n_stars:
        if kind == "neighbour":
            p = _sample_sersic_galaxy(
                rng, REFERENCE_SIZE * float(rng.uniform(0.03, 0.08)), (1.0, 4.0), (0.4, 1.0)
            )
            p["sed"] = _random_sed(rng, float(rng.uniform(0.0, 1.0)))
        else:
            p = _sample_star(rng, (15.0, 1500.0), spikes=0.3)
        half = p["extent"] * size / REFERENCE_SIZE + 3.0 * psf_sigma + 2.0
        if 2 * half + 2 >= size:
            continue
        for _ in range(8):
            xc, yc = rng.uniform(half + 1, size - 2 - half, size=2)
            stamp = _render_object(kind, p, float(xc), float(yc), size, psf_sigma)
            box = stamp.bbox
            if box is None or box[2] < 3 or box[3] < 3:
                break  # too faint or too small to see at this size: not drawn
            inside = box[0] > 0 and box[1] > 0 and box[0] + box[2] < size and box[1] + box[3] < size
            if inside and not _overlaps(box, taken, gap):
                taken.append(box)
                placed.append((kind, stamp))
                break
    return placed


def _render_cutout(
    cls: str,
    params: Mapping[str, Any],
    size: int,
    field_rng: np.random.Generator,
    noise_rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The full RGB cut-out (uint8, HxWx3) and its truth boxes."""
    psf_sigma = _psf_sigma(params, size)
    centre = (size - 1) / 2.0
    target = _render_object(cls, params, centre, centre, size, psf_sigma, cls == "anticlockwise_spiral")
    if target.bbox is None:  # cannot happen with the sampled brightnesses; keep the centre pixel
        c = size // 2
        target.bbox = (c, c, 1, 1)
    boxes = [{"bbox": list(target.bbox), "category": cls, "target": True}]
    bands = _SKY_TABLE[noise_rng.integers(0, 65536, size=(3, size, size), dtype=np.uint16)]
    stamps = [target]
    for kind, stamp in _field_objects(field_rng, size, psf_sigma, [target.bbox]):
        stamps.append(stamp)
        boxes.append({"bbox": list(stamp.bbox), "category": kind, "target": False})
    for st in stamps:
        h, w = st.bands.shape[1:]
        bands[:, st.y0 : st.y0 + h, st.x0 : st.x0 + w] += st.bands
    # Black is zero (the sky sits at _SKY_LEVEL); the Lupton mapping never uses the upper limit, and a
    # fixed one spares astropy a max() per band.
    black = [ManualInterval(vmin=0.0, vmax=np.inf)] * 3
    rgb = make_lupton_rgb(bands[2], bands[1], bands[0], interval=black, stretch=_LUPTON_STRETCH, Q=_LUPTON_Q)
    return rgb, boxes


# --------------------------------------------------------------------------------------------------
# Votes and catalogue rows
# --------------------------------------------------------------------------------------------------


def simulate_votes(cls: str, clarity: float, rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """Simulated GZ1 volunteer votes for a galaxy of true class ``cls``.

    Returns ``(nvote, counts)`` with ``counts`` the votes per class in :data:`GZ1_CLASSES` order. The
    true class gets a mean share of 0.25-0.97 that grows with ``clarity``; 70% of the rest goes to
    one rival class drawn from the classes it is confused with (so unclear galaxies can be
    misclassified by the plurality), the rest is spread over them. Probabilities come from a
    Dirichlet whose concentration varies per galaxy (5-80), then ``nvote`` (20-80) votes are drawn.
    """
    _check_class(cls)
    if not 0.0 <= clarity <= 1.0:
        raise ValueError(f"clarity must be in [0, 1], got {clarity}")
    k = GZ1_CLASSES.index(cls)
    share = 0.25 + 0.72 * clarity
    rival = int(rng.choice(len(GZ1_CLASSES), p=_CONFUSION[k]))
    mean = (1.0 - share) * 0.3 * _CONFUSION[k]
    mean[rival] += (1.0 - share) * 0.7
    mean[k] = share
    concentration = float(np.exp(rng.uniform(math.log(5.0), math.log(80.0))))
    probs = rng.dirichlet(np.maximum(concentration * mean, 1e-3))
    nvote = int(np.clip(round(float(rng.lognormal(math.log(38.0), 0.35))), 20, 80))
    counts = rng.multinomial(nvote, probs)
    return nvote, counts


def _thousandths(counts: np.ndarray, total: int) -> np.ndarray:
    """Fractions counts/total in integer thousandths that sum to exactly 1000 (largest remainder)."""
    exact = counts * 1000.0 / total
    out = np.floor(exact).astype(np.int64)
    short = 1000 - int(out.sum())
    order = np.argsort(-(exact - out), kind="stable")
    out[order[:short]] += 1
    return out


def _fmt(thousandths: int) -> str:
    return repr(thousandths / 1000)


def _sdss_objid(rng: np.random.Generator) -> int:
    """A DR7-style objID: skyVersion 1, rerun 40, a real run number, camcol, field and object id."""
    run = int(rng.choice(_SDSS_RUNS))
    camcol = int(rng.integers(1, 7))
    field = int(rng.integers(11, 800))
    obj = int(rng.integers(1, 2000))
    return (1 << 59) | (40 << 48) | (run << 32) | (camcol << 29) | (field << 16) | obj


# --------------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticZoo:
    """Where :func:`make_galaxy_zoo` wrote the synthetic GZ1 release."""

    out_dir: Path
    catalog_path: Path
    image_dir: Path
    truth_path: Path
    boxes_path: Path
    n: int
    #: ``"decals"`` / ``"gz2"`` when a whole-tree catalogue was written, and its catalogue and truth file
    tree: str | None = None
    tree_catalog_path: Path | None = None
    tree_truth_path: Path | None = None


def _draw_galaxy(
    seed: int, index: int, class_probs: tuple[float, ...]
) -> tuple[np.random.Generator, str, dict[str, Any]]:
    """Galaxy ``index``'s generator, class and parameters (the generator then draws its GZ1 votes)."""
    rng = _rng(seed, index, _STREAM_GALAXY)
    cls = GZ1_CLASSES[int(rng.choice(len(GZ1_CLASSES), p=class_probs))]
    return rng, cls, sample_galaxy_params(cls, rng)


def _make_one(
    job: tuple[int, int], seed: int, size: int, class_probs: tuple[float, ...], image_dir: str
) -> tuple[int, int, str, tuple[int, np.ndarray, float], list[dict[str, Any]]]:
    """Render and write galaxy ``index``; return its class, votes and boxes."""
    from PIL import Image

    index, objid = job
    rng, cls, params = _draw_galaxy(seed, index, class_probs)
    nvote, counts = simulate_votes(cls, params["clarity"], rng)
    # Debiasing (Bamford et al. 2009) moves a noisy share of the elliptical votes to spirals.
    shift = float(rng.normal(0.04, 0.05))
    rgb, boxes = _render_cutout(
        cls, params, size, _rng(seed, index, _STREAM_FIELD), _rng(seed, index, _STREAM_NOISE)
    )
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=_JPEG_QUALITY)
    Path(image_dir, f"{objid}.jpg").write_bytes(buf.getvalue())
    return index, objid, cls, (nvote, counts, shift), boxes


def _class_probs(class_fractions: Mapping[str, float] | None) -> tuple[float, ...]:
    fractions = dict(DEFAULT_CLASS_FRACTIONS if class_fractions is None else class_fractions)
    unknown = set(fractions) - set(GZ1_CLASSES)
    if unknown:
        raise ValueError(
            f"class_fractions has unknown classes {sorted(unknown)}; expected names from {GZ1_CLASSES}"
        )
    weights = np.array([float(fractions.get(c, 0.0)) for c in GZ1_CLASSES])
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"class_fractions must be finite, >= 0 and not all zero, got {fractions}")
    return tuple((weights / weights.sum()).tolist())


def _sky_strings(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[list[str], list[str]]:
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    coords = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg, frame="icrs")
    ra = coords.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True)
    dec = coords.dec.to_string(unit=u.deg, sep=":", precision=1, pad=True, alwayssign=True)
    return [str(v) for v in np.atleast_1d(ra)], [str(v) for v in np.atleast_1d(dec)]


def _remove_stale_images(catalog_path: Path, image_dir: Path, keep: set[int]) -> int:
    """Delete the images of a previous catalogue in the same folder that the new one does not list."""
    if not catalog_path.exists():
        return 0
    removed = 0
    with catalog_path.open(newline="") as f:
        for row in csv.DictReader(f):
            objid = str(row.get("OBJID", "")).strip()
            if objid.isdigit() and int(objid) not in keep:
                stale = image_dir / f"{objid}.jpg"
                if stale.exists():
                    stale.unlink()
                    removed += 1
    return removed


def make_galaxy_zoo(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    image_size: int = REFERENCE_SIZE,
    *,
    num_proc: int = 1,
    class_fractions: Mapping[str, float] | None = None,
    show_progress: bool = True,
    tree: str | None = None,
) -> SyntheticZoo:
    """Write a synthetic Galaxy Zoo 1 release of ``n`` galaxies to ``out_dir``.

    Writes ``catalog.csv`` (GZ1 Table 2 layout), ``images/<OBJID>.jpg`` (``image_size`` square RGB
    cut-outs), ``truth.csv`` (``OBJID,true_class``) and ``truth_boxes.json`` (see the module
    docstring for the physics, the box definition and the chirality convention). With ``tree`` it also
    writes that release's whole-tree catalogue and truth file (:mod:`hf_galaxy.data.synthetic_tree`). The
    output is a deterministic function of ``(n, seed, image_size, class_fractions, tree)``: the same
    arguments give byte-identical files whatever ``num_proc`` is. A folder that already holds a complete set made with
    the same arguments is reused as it is (``synthetic_manifest.json`` records them). Images of a previous
    catalogue written to the same folder are removed; other files are left alone.

    Args:
        out_dir: folder to write to (created if missing).
        n: number of galaxies (>= 1).
        seed: non-negative integer seed.
        image_size: side of the cut-outs in pixels (>= 16); smaller than 424 renders directly at that
            size with all lengths scaled by ``image_size / 424``.
        num_proc: worker processes for rendering (1 renders in this process). Workers are started
            with ``spawn``, so a script that uses ``num_proc > 1`` needs the usual
            ``if __name__ == "__main__":`` guard.
        class_fractions: relative class frequencies, keyed by :data:`GZ1_CLASSES` names (missing
            classes get 0); default :data:`DEFAULT_CLASS_FRACTIONS`.
        show_progress: show a tqdm progress bar.
        tree: ``"decals"`` (GZD-5 tree, ``catalog_decals.csv``) or ``"gz2"`` (``catalog_gz2.csv``) to also
            write vote counts of every answer of that decision tree; None (default) for GZ1 only.
    """
    from tqdm.auto import tqdm

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (number of galaxies), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(num_proc, bool) or not isinstance(num_proc, (int, np.integer)) or num_proc < 1:
        raise ValueError(f"num_proc must be a positive integer, got {num_proc!r}")
    n, seed, num_proc = int(n), int(seed), int(num_proc)
    size = _check_size(image_size, "image_size")
    class_probs = _class_probs(class_fractions)
    release = synthetic_tree.check_tree(tree)

    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    zoo = SyntheticZoo(
        out_dir=out,
        catalog_path=out / "catalog.csv",
        image_dir=image_dir,
        truth_path=out / "truth.csv",
        boxes_path=out / "truth_boxes.json",
        n=n,
        tree=tree,
        tree_catalog_path=out / release.catalog_name if release else None,
        tree_truth_path=out / release.truth_name if release else None,
    )

    manifest_path = out / _MANIFEST
    manifest = {
        "version": _GENERATOR_VERSION,
        "n": n,
        "seed": seed,
        "image_size": size,
        "class_probs": [round(float(p), 12) for p in class_probs],
    }
    if tree is not None:
        manifest["tree"] = tree  # absent without a tree, so GZ1-only folders keep their manifest
    if _is_complete(zoo, manifest_path, manifest):
        logger.info("reusing the synthetic galaxies already in %s (same n, seed, size and classes)", out)
        return zoo
    gz1_done = _is_complete(zoo, manifest_path, manifest, ignore_tree=True)
    manifest_path.unlink(missing_ok=True)
    for name in synthetic_tree.tree_file_names():  # a previous run's tree files (rewritten below if asked)
        (out / name).unlink(missing_ok=True)

    objids, ra, dec = _ids_and_positions(n, seed)
    if gz1_done:  # only the tree catalogue changes: the GZ1 files and images stay as they are
        logger.info("reusing the GZ1 galaxies already in %s; writing the tree catalogue only", out)
        _write_tree(zoo, seed, class_probs, objids, ra, dec)
        manifest_path.write_text(json.dumps(manifest) + "\n")
        return zoo
    seen = set(objids)
    ra_str, dec_str = _sky_strings(ra, dec)
    removed = _remove_stale_images(zoo.catalog_path, image_dir, seen)
    if removed:
        logger.info("removed %d images of the previous catalogue in %s", removed, image_dir)
    # The tables are written last: an interrupted run leaves no catalogue that lists missing images.
    for path in (zoo.catalog_path, zoo.truth_path, zoo.boxes_path):
        path.unlink(missing_ok=True)

    worker = partial(_make_one, seed=seed, size=size, class_probs=class_probs, image_dir=str(image_dir))
    jobs = list(enumerate(objids))
    results: list[Any] = [None] * n
    progress = tqdm(total=n, desc="synthesising galaxies", unit="galaxy", disable=not show_progress)
    try:
        if num_proc == 1:
            for job in jobs:
                res = worker(job)
                results[res[0]] = res
                progress.update()
        else:
            ctx = multiprocessing.get_context("spawn")
            chunk = max(1, min(32, n // (num_proc * 8)))
            with ctx.Pool(num_proc) as pool:
                for res in pool.imap_unordered(worker, jobs, chunksize=chunk):
                    results[res[0]] = res
                    progress.update()
    finally:
        progress.close()

    rows: list[list[Any]] = []
    truth: list[tuple[int, str]] = []
    boxes: dict[str, list[dict[str, Any]]] = {}
    for index, objid, cls, (nvote, counts, shift), obj_boxes in results:
        frac = _thousandths(counts, nvote)
        p_cs = int(frac[1] + frac[2] + frac[3])
        total = int(frac[0]) + p_cs
        el_deb = int(np.clip(round(int(frac[0]) - 1000 * shift), 0, total))
        cs_deb = total - el_deb
        spiral, elliptical = int(cs_deb > 800), int(el_deb > 800)
        rows.append(
            [
                str(objid),
                ra_str[index],
                dec_str[index],
                str(nvote),
                *(_fmt(int(v)) for v in frac),
                _fmt(p_cs),
                _fmt(el_deb),
                _fmt(cs_deb),
                str(spiral),
                str(elliptical),
                str(int(not spiral and not elliptical)),
            ]
        )
        truth.append((objid, cls))
        boxes[str(objid)] = obj_boxes

    with zoo.catalog_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CATALOG_COLUMNS)
        writer.writerows(rows)
    with zoo.truth_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["OBJID", "true_class"])
        writer.writerows([str(o), c] for o, c in truth)
    zoo.boxes_path.write_text(json.dumps(boxes, separators=(",", ":")) + "\n")
    _write_tree(zoo, seed, class_probs, objids, ra, dec)
    manifest_path.write_text(json.dumps(manifest) + "\n")  # last: marks the set complete
    return zoo


def _ids_and_positions(n: int, seed: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Objids and sky positions (degrees): serial, so they are unique and independent of num_proc."""
    objids: list[int] = []
    seen: set[int] = set()
    ra = np.empty(n)
    dec = np.empty(n)
    for i in range(n):
        rng = _rng(seed, i, _STREAM_META)
        objid = _sdss_objid(rng)
        while objid in seen:
            objid = _sdss_objid(rng)
        seen.add(objid)
        objids.append(objid)
        ra[i] = rng.uniform(0.0, 359.99)
        # uniform on the sphere between -10 and +70 deg (roughly the SDSS legacy footprint)
        dec[i] = math.degrees(
            math.asin(rng.uniform(math.sin(math.radians(-10.0)), math.sin(math.radians(70.0))))
        )
    return objids, ra, dec


def _write_tree(
    zoo: SyntheticZoo,
    seed: int,
    class_probs: tuple[float, ...],
    objids: Sequence[int],
    ra: np.ndarray,
    dec: np.ndarray,
) -> None:
    """Write ``zoo.tree``'s catalogue and truth file (nothing without a tree). The classes and parameters are
    drawn again from each galaxy's stream (cheap, no rendering); the votes from a stream of their own."""
    if zoo.tree is None:
        return
    galaxies = [
        (objid, *_draw_galaxy(seed, i, class_probs)[1:], _rng(seed, i, _STREAM_TREE))
        for i, objid in enumerate(objids)
    ]
    synthetic_tree.write_tree_release(zoo.out_dir, zoo.tree, galaxies, ra, dec, zoo.image_dir.name)


_MANIFEST = "synthetic_manifest.json"
_GENERATOR_VERSION = "1"  # bump whenever the rendered images or votes change


def _is_complete(
    zoo: SyntheticZoo, manifest_path: Path, manifest: dict[str, Any], ignore_tree: bool = False
) -> bool:
    """True when ``zoo`` already holds a finished set made with the same arguments (so nothing is rewritten,
    file mtimes stay, and the prepared dataset is served from the cache). With ``ignore_tree``: the same
    GZ1 set, whatever tree catalogue it has."""
    try:
        found = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if ignore_tree:
        found = {k: v for k, v in found.items() if k != "tree"} if isinstance(found, dict) else found
        manifest = {k: v for k, v in manifest.items() if k != "tree"}
    if found != manifest:
        return False
    tables = [zoo.catalog_path, zoo.truth_path, zoo.boxes_path]
    if not ignore_tree:
        tables += [p for p in (zoo.tree_catalog_path, zoo.tree_truth_path) if p is not None]
    if not all(p.is_file() for p in tables):
        return False
    with zoo.catalog_path.open() as f:
        ids = [line.split(",", 1)[0] for line in f.read().splitlines()[1:]]
    return len(ids) == zoo.n and all((zoo.image_dir / f"{i}.jpg").is_file() for i in ids)
