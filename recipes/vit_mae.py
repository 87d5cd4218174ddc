"""Self-supervised pretraining of a ViT encoder on unlabelled galaxy cut-outs: a masked autoencoder (ViTMAE).

No labels are read: any image folder (class sub-folders are ignored), catalogue, saved DatasetDict or
``synthetic:N`` works, and several can be mixed. The encoder is saved as a plain ViT checkpoint that the
classification recipes fine-tune directly::

    python recipes/vit_mae.py --config recipes/configs/vit_mae.yaml --dataset unlabelled_cutouts/ synthetic:2000 \\
        --output_dir outputs/mae
    python recipes/vit_full.py --model_name_or_path outputs/mae --dataset labelled/ --image_size 64

    # several GPUs
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/vit_mae.py \\
        --config recipes/configs/vit_mae.yaml --dataset cutouts/

The output directory holds the encoder (``config.json`` records its pretraining in ``hf_galaxy_pretraining``),
its image processor, the whole autoencoder under ``mae/`` (continue with ``--model_name_or_path DIR/mae``),
``reconstructions.png``, ``training_curves.png`` and a model card.
"""

from __future__ import annotations

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.training import GalaxyArgumentParser, PretrainArguments, run_pretraining
from hf_galaxy.training import make_parser as _make_parser


def make_parser() -> GalaxyArgumentParser:
    """Parser over PretrainArguments and TrainingArguments."""
    return _make_parser(task="pretraining")


def main(args: PretrainArguments, training_args: TrainingArguments) -> dict[str, float]:
    """Pretrain, save the encoder and the autoencoder; returns the final losses."""
    return run_pretraining(args, training_args, args.precision)


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
