"""``hf-galaxy convert-zoobot``: a Zoobot (timm ConvNeXt) encoder as a transformers checkpoint, without timm.

    hf-galaxy convert-zoobot mwalmsley/zoobot-encoder-convnext_nano --output_dir zoobot-nano/
    hf-galaxy convert-zoobot downloaded_encoder/ --output_dir zoobot-nano/
    python recipes/vit_full.py --model_name_or_path zoobot-nano/ --dataset LABELLED --image_size 224

The output loads with ``AutoModel`` (``ConvNextModel``), fine-tunes with the classification recipes, embeds with
``hf-galaxy embed`` and works with ``pipeline("image-feature-extraction")``.
"""

from __future__ import annotations

import argparse

HELP = "convert a Zoobot timm ConvNeXt encoder (Hub id, folder or weights file) to a transformers checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="Hub id, downloaded folder (model.safetensors + config.json) or weights file"
    )
    parser.add_argument("--output_dir", required=True, help="where the transformers checkpoint is written")
    parser.add_argument("--revision", default=None, help="Hub revision of SOURCE")


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.models.zoobot import convert_zoobot

    out = convert_zoobot(args.source, args.output_dir, revision=args.revision)
    print(f"converted {args.source} to a transformers ConvNextModel in {out}")
    return 0
