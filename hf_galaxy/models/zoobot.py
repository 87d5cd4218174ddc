"""Zoobot's timm ConvNeXt encoders as transformers ``ConvNextModel`` checkpoints, without importing timm.

Zoobot (Walmsley et al. 2023) publishes its foundation models as timm checkpoints (``model.safetensors`` with
timm's key names, and timm's ``config.json``). timm needs torchvision, which does not always import beside a CPU
torch wheel, so :func:`convert_timm_convnext` maps the weights by name instead:

=====================================  =====================================================
timm                                    transformers (``ConvNextModel``)
=====================================  =====================================================
``stem.0`` (conv), ``stem.1`` (norm)    ``embeddings.patch_embeddings``, ``embeddings.layernorm``
``stages.i.downsample.0/1``             ``encoder.stages.i.downsampling_layer.0/1``
``stages.i.blocks.j.conv_dw``           ``encoder.stages.i.layers.j.dwconv``
``stages.i.blocks.j.norm``              ``encoder.stages.i.layers.j.layernorm``
``stages.i.blocks.j.mlp.fc1/fc2``       ``encoder.stages.i.layers.j.pwconv1/pwconv2`` (1x1 convs squeezed)
``stages.i.blocks.j.gamma``             ``encoder.stages.i.layers.j.layer_scale_parameter``
``head.norm``                           ``layernorm`` (after the global average pool, as in timm)
=====================================  =====================================================

The architecture (widths, depths, patch size, MLP ratio, layer scale) is read from the weights themselves.
Only timm's ``patch`` stem, 7x7 depthwise kernels and GELU MLPs without GRN (ConvNeXt v1) are supported; other
layouts are refused by name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.+)$")
_BLOCK_PARTS = {
    "conv_dw.weight": "dwconv.weight",
    "conv_dw.bias": "dwconv.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
    "mlp.fc1.weight": "pwconv1.weight",
    "mlp.fc1.bias": "pwconv1.bias",
    "mlp.fc2.weight": "pwconv2.weight",
    "mlp.fc2.bias": "pwconv2.bias",
    "gamma": "layer_scale_parameter",
}
_FIXED = {
    "stem.0.weight": "embeddings.patch_embeddings.weight",
    "stem.0.bias": "embeddings.patch_embeddings.bias",
    "stem.1.weight": "embeddings.layernorm.weight",
    "stem.1.bias": "embeddings.layernorm.bias",
    "head.norm.weight": "layernorm.weight",
    "head.norm.bias": "layernorm.bias",
}
#: timm keys that carry no weights of the encoder (the classifier, which Zoobot encoders do not have anyway)
_IGNORED = re.compile(r"^head\.fc\.")


def _strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (``encoder.``, ``model.``, ``module.``) put in front of timm's names."""
    for prefix in ("encoder.", "model.", "module."):
        if "stem.0.weight" not in state and any(k.startswith(prefix + "stem.") for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def convnext_config_from_timm(state: dict[str, torch.Tensor]) -> Any:
    """The ``ConvNextConfig`` of a timm ConvNeXt state dict, read from the tensor shapes."""
    from transformers import ConvNextConfig

    if "stem.0.weight" not in state or "stem.1.weight" not in state:
        found = sorted({k.split(".")[0] for k in state})
        raise ValueError(
            f"not a timm ConvNeXt with a 'patch' stem: no stem.0/stem.1 weights (top-level keys: {found})"
        )
    if "stem.2.weight" in state or "stem.3.weight" in state:
        raise ValueError(
            "timm ConvNeXt with an 'overlap' stem is not supported (transformers has the patch stem only)"
        )
    if any(".grn." in k for k in state):
        raise ValueError("ConvNeXt-V2 weights (GRN layers) are not supported: convert to ConvNextV2 instead")
    depths: list[int] = []
    for stage in range(8):
        blocks = {int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and int(m.group(1)) == stage}
        if not blocks:
            break
        depths.append(max(blocks) + 1)
    if len(depths) != 4:
        raise ValueError(f"expected 4 ConvNeXt stages in the weights, found {len(depths)}")
    dims = [int(state[f"stages.{i}.blocks.0.conv_dw.weight"].shape[0]) for i in range(4)]
    for i, depth in enumerate(depths):
        for j in range(depth):
            b = f"stages.{i}.blocks.{j}."
            kernel = state[b + "conv_dw.weight"].shape[-1]
            if kernel != 7:
                raise ValueError(
                    f"{b}conv_dw: {kernel}x{kernel} depthwise kernels are not supported (transformers uses 7x7)"
                )
            ratio = state[b + "mlp.fc1.weight"].shape[0] / dims[i]
            if ratio != 4:
                raise ValueError(f"{b}mlp: an MLP ratio of {ratio:g} is not supported (transformers uses 4)")
    if any(k.startswith("head.pre_logits.") for k in state):
        raise ValueError(
            "timm head.pre_logits (head_hidden_size) has no place in ConvNextModel: its features would change"
        )
    layer_scale = "stages.0.blocks.0.gamma" in state
    return ConvNextConfig(
        num_channels=int(state["stem.0.weight"].shape[1]),
        patch_size=int(state["stem.0.weight"].shape[-1]),
        hidden_sizes=dims,
        depths=depths,
        layer_scale_init_value=1e-6 if layer_scale else 0.0,
        layer_norm_eps=1e-6,  # timm's LayerNorm / LayerNorm2d default
        hidden_act="gelu",
    )


def convert_timm_convnext(state: dict[str, torch.Tensor]) -> Any:
    """A transformers ``ConvNextModel`` holding the weights of a timm ConvNeXt state dict (see the module
    docstring for the mapping). Every encoder weight must be used and every model weight filled."""
    from transformers import ConvNextModel

    state = _strip_prefix(dict(state))
    if state.get("stem.0.weight") is not None and state["stem.0.weight"].shape[1] == 1:
        # a greyscale encoder (in_chans=1): an RGB stem that averages the channels computes the same features
        # on grey images, and lets the RGB processors and recipes feed it
        state["stem.0.weight"] = state["stem.0.weight"].repeat(1, 3, 1, 1) / 3
    config = convnext_config_from_timm(state)
    mapped: dict[str, torch.Tensor] = {}
    unused = []
    for key, value in state.items():
        if key in _FIXED:
            mapped[_FIXED[key]] = value
            continue
        m = _BLOCK.match(key)
        if m and m.group(3) in _BLOCK_PARTS:
            target = f"encoder.stages.{m.group(1)}.layers.{m.group(2)}.{_BLOCK_PARTS[m.group(3)]}"
            if m.group(3).startswith("mlp.") and value.dim() == 4:  # conv_mlp: 1x1 convolutions
                value = value.flatten(1)
            mapped[target] = value
            continue
        m = re.match(r"^stages\.(\d+)\.downsample\.([01])\.(weight|bias)$", key)
        if m:
            mapped[f"encoder.stages.{m.group(1)}.downsampling_layer.{m.group(2)}.{m.group(3)}"] = value
            continue
        if not _IGNORED.match(key):
            unused.append(key)
    if unused:
        raise ValueError(f"timm weights with no place in ConvNextModel: {unused[:8]}")
    model = ConvNextModel(config)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ValueError(f"timm -> ConvNextModel: missing {missing[:8]}, unexpected {unexpected[:8]}")
    return model.eval()


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a weights file (``.safetensors``, or a torch pickle read with ``weights_only``), or in
    a folder's ``model.safetensors`` / ``pytorch_model.bin``."""
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return read_weights(path / name)
        raise FileNotFoundError(f"{path}: no timm weights (model.safetensors or pytorch_model.bin)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as err:  # a pickle with objects (a Lightning .ckpt with hyper-parameters...), or not torch
        raise ValueError(
            f"{path}: not a plain torch state dict ({type(err).__name__}); save model.state_dict() or use the "
            "repo's model.safetensors"
        ) from err
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def convert_zoobot(
    source: str | os.PathLike, output_dir: str | os.PathLike, *, revision: str | None = None
) -> Path:
    """Convert a Zoobot/timm ConvNeXt encoder (a Hub id such as ``mwalmsley/zoobot-encoder-convnext_nano``, a
    downloaded folder, or a weights file) into a transformers checkpoint in ``output_dir``: ``ConvNextModel``
    weights, an image processor from timm's ``pretrained_cfg`` (input size, mean, std) and a model card whose
    ``base_model`` is the source repo. Returns ``output_dir``."""
    from transformers import ConvNextImageProcessor

    from hf_galaxy.hub.card import GalaxyCardData, library_versions
    from hf_galaxy.hub.render import is_hub_repo_id, write_model_card
    from hf_galaxy.jsonio import read_json

    src = Path(source).expanduser()
    if not src.exists():
        from hf_galaxy.models.loading import checkpoint_dir

        src = checkpoint_dir(str(source), revision)
    state = read_weights(src)
    folder = src if src.is_dir() else src.parent
    timm_config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    cfg = timm_config.get("pretrained_cfg") or {}
    model = convert_timm_convnext(state)
    architecture = timm_config.get("architecture") or "timm convnext"
    model.config.hf_galaxy_pretraining = {
        "method": "zoobot",
        "source": str(source) if is_hub_repo_id(str(source)) else Path(str(source)).name,
        "architecture": architecture,
        "converted_from": "timm",
    }
    side = int((cfg.get("input_size") or [3, 224, 224])[-1])
    mean, std = list(cfg.get("mean") or (0.485, 0.456, 0.406)), list(cfg.get("std") or (0.229, 0.224, 0.225))
    if len(mean) == 1:  # a greyscale encoder, given an averaging RGB stem above
        mean, std = mean * 3, std * 3
    from PIL import Image

    resample = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}.get(
        str(cfg.get("interpolation", "bicubic")), Image.Resampling.BICUBIC
    )
    processor = ConvNextImageProcessor(
        size={"shortest_edge": side},
        crop_pct=float(cfg.get("crop_pct") or 1.0),
        image_mean=mean,
        image_std=std,
        resample=resample,
    )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    card = GalaxyCardData(
        task="image-feature-extraction",
        base_model=str(source) if is_hub_repo_id(str(source)) else None,
        library_versions=library_versions(),
        extra={"pretraining": model.config.hf_galaxy_pretraining, "image_size": side},
    )
    card.save(out)
    write_model_card(out)
    return out
