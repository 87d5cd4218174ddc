"""Model presets (random-weight architectures built from a config) and the ``--model_config`` parser.

``model_config`` specification (``--model_config``), any of:

* a path to a JSON file (a ``config.json``);
* an inline JSON object: ``'{"model_type": "vit", "hidden_size": 64, "num_hidden_layers": 2}'``;
* comma-separated ``key=value`` pairs, values parsed as JSON when possible:
  ``model_type=vit,hidden_size=64,num_hidden_layers=2,num_attention_heads=4,image_size=64,patch_size=8``;
* a preset name from :data:`CONFIG_PRESETS` (classifiers: ``vit-tiny``, ``vit-mini``) or
  :data:`DETECTOR_PRESETS` (``detr-tiny``, ``yolos-tiny``, ``detr-small``, ``detr-r50``...), optionally
  followed by ``,key=value`` overrides: ``vit-mini,image_size=48``.

Classifiers default to ``model_type=vit``; a detector config must name an object-detection model type.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hf_galaxy.jsonio import read_json

DEFAULT_MODEL = "google/vit-base-patch16-224-in21k"
DEFAULT_DETECTOR = "facebook/detr-resnet-50"

CONFIG_PRESETS: dict[str, dict[str, Any]] = {
    # for unit tests: ~30k parameters
    "vit-tiny": {
        "model_type": "vit",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 32,
        "patch_size": 8,
    },
    # for the CPU demo: ~0.4M parameters, 64 px images, 8 px patches
    "vit-mini": {
        "model_type": "vit",
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 192,
        "image_size": 64,
        "patch_size": 8,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
}


def _resnet(
    embedding: int,
    hidden: list[int],
    depths: list[int],
    layer: str = "basic",
    out: tuple[str, ...] = ("stage4",),
) -> dict[str, Any]:
    """A random-weight ResNet backbone config."""
    return {
        "model_type": "resnet",
        "embedding_size": embedding,
        "hidden_sizes": hidden,
        "depths": depths,
        "layer_type": layer,
        "out_features": list(out),
    }


def _transformer(d_model: int, layers: int, heads: int, ffn: int, queries: int) -> dict[str, Any]:
    """The encoder/decoder sizes of a DETR-family detector (the same for encoder and decoder)."""
    return {
        "d_model": d_model,
        **{f"{part}_layers": layers for part in ("encoder", "decoder")},
        **{f"{part}_attention_heads": heads for part in ("encoder", "decoder")},
        **{f"{part}_ffn_dim": ffn for part in ("encoder", "decoder")},
        "num_queries": queries,
    }


def _detector(model_type: str, backbone: dict[str, Any], **config: Any) -> dict[str, Any]:
    """A DETR-family preset: ``backbone`` never loads pretrained weights."""
    return {
        "model_type": model_type,
        "backbone_config": backbone,
        "use_pretrained_backbone": False,
        "use_timm_backbone": False,
        **config,
    }


_TINY_RESNET = _resnet(16, [16, 32, 64, 128], [1, 1, 1, 1])
_TINY_RESNET_3 = _resnet(16, [16, 32, 64, 128], [1, 1, 1, 1], out=("stage2", "stage3", "stage4"))

DETECTOR_PRESETS: dict[str, dict[str, Any]] = {
    # tests / CPU demo: ~0.2M parameters
    "detr-tiny": _detector("detr", _TINY_RESNET, **_transformer(64, 2, 4, 128, 20), dropout=0.0),
    "conditional-detr-tiny": _detector("conditional_detr", _TINY_RESNET, **_transformer(64, 2, 4, 128, 20)),
    "yolos-tiny": {
        "model_type": "yolos",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "image_size": [64, 64],
        "patch_size": 8,
        "num_detection_tokens": 20,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
    "deformable-detr-tiny": _detector(
        "deformable_detr",
        _TINY_RESNET_3,
        **{**_transformer(32, 2, 2, 64, 20), "encoder_layers": 1},
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
    ),
    "rt-detr-tiny": _detector(
        "rt_detr",
        {**_TINY_RESNET_3, "model_type": "rt_detr_resnet"},
        d_model=32,
        encoder_hidden_dim=32,
        encoder_in_channels=[32, 64, 128],
        decoder_in_channels=[32, 32, 32],
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_layers=1,
        decoder_layers=1,
        num_queries=20,
        num_denoising=0,
    ),
    # a mid-sized DETR for CPU benchmarks (benchmarks/bench_detr.py's default)
    "detr-small": _detector(
        "detr", _resnet(32, [64, 128, 256, 512], [2, 2, 2, 2]), **_transformer(128, 2, 4, 256, 50)
    ),
    # the DETR-R50 architecture with random weights (benchmarks; no download)
    "detr-r50": _detector("detr", _resnet(64, [256, 512, 1024, 2048], [3, 4, 6, 3], "bottleneck")),
}


def _cnn(model_type: str, hidden: list[int], depths: list[int], **config: Any) -> dict[str, Any]:
    """A from-scratch CNN classifier preset (its image processor follows the prepared image size)."""
    return {"model_type": model_type, "hidden_sizes": hidden, "depths": depths, **config}


CONFIG_PRESETS.update(
    {
        # one basic block per stage, 32-256 channels, ~1.2M parameters (reached 0.80+ on real GZ2 spirals at 64 px)
        "resnet-mini": _cnn(
            "resnet", [32, 64, 128, 256], [1, 1, 1, 1], embedding_size=32, layer_type="basic"
        ),
        # the ResNet-18 layout, ~11M parameters
        "resnet-18": _cnn("resnet", [64, 128, 256, 512], [2, 2, 2, 2], embedding_size=64, layer_type="basic"),
        # a small ConvNeXt, ~1.6M parameters
        "convnext-mini": _cnn("convnext", [32, 64, 128, 256], [2, 2, 2, 2]),
        # the ConvNeXt-Tiny layout (Zoobot's encoder family), ~28M parameters
        "convnext-tiny": _cnn("convnext", [96, 192, 384, 768], [3, 3, 9, 3]),
    }
)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_spec(spec: str | dict[str, Any], presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A ``--model_config`` specification (see the module docstring) as a config dict; the first item may be
    one of ``presets``. The result has a ``model_type`` only when the specification or its preset names one."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    text = spec.strip()
    if not text:
        raise ValueError("--model_config is empty")
    path = Path(text).expanduser()
    if text.startswith("{"):
        try:
            out = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"--model_config: invalid inline JSON ({err}): {text!r}") from err
    elif path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--model_config: JSON file {path} does not exist")
        out = read_json(path, mapping=False)
    else:
        out = {}
        for i, part in enumerate(p.strip() for p in text.split(",")):
            if not part:
                continue
            if "=" not in part:
                if i == 0 and part in presets:
                    out.update(copy.deepcopy(presets[part]))
                    continue
                raise ValueError(
                    f"--model_config: expected key=value, a preset ({', '.join(presets)}), "
                    f"a JSON file or inline JSON; got {part!r} in {text!r}"
                )
            key, value = part.split("=", 1)
            out[key.strip()] = _parse_value(value.strip())
    if not isinstance(out, dict):
        raise ValueError(f"--model_config must describe a JSON object, got {type(out).__name__}")
    return out


def parse_model_config(spec: str | dict[str, Any]) -> dict[str, Any]:
    """A classifier ``--model_config`` (a :data:`CONFIG_PRESETS` name or any form in the module docstring) as a
    config dict; ``model_type`` defaults to ``vit``."""
    cfg = _parse_spec(spec, CONFIG_PRESETS)
    cfg.setdefault("model_type", "vit")
    return cfg


def parse_detector_config(spec: str | dict[str, Any]) -> dict[str, Any]:
    """A detector ``--model_config`` (a :data:`DETECTOR_PRESETS` name or any form in the module docstring),
    which must name an object-detection ``model_type``."""
    cfg = _parse_spec(spec, DETECTOR_PRESETS)
    if "model_type" not in cfg or cfg["model_type"] == "vit":
        raise ValueError(
            f"--model_config {spec!r}: give an object-detection model_type (detr, conditional_detr, "
            f"deformable_detr, yolos, rt_detr) or a preset ({', '.join(DETECTOR_PRESETS)})"
        )
    return cfg
