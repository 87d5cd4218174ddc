"""LoRA fine-tuning of a ViT image classifier on Galaxy Zoo data.

Defaults come from a YAML file (``--config``); any option given on the command line overrides it::

    # one GPU (or CPU), ViT-B/16 from the Hub
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/vit_lora.py \\
        --config recipes/configs/vit_lora.yaml --dataset GalaxyZoo1_DR_table2.csv --image_dir cutouts/

    # ViT-B/16 at 224 px within 4 GiB of GPU memory (fp16, gradient checkpointing, accumulation)
    accelerate launch recipes/vit_lora.py --config recipes/configs/vit_lora_4gb.yaml --dataset synthetic:2000

    # offline, on CPU: a small ViT built from a config, on synthetic galaxies
    python recipes/vit_lora.py --config recipes/configs/vit_lora_demo.yaml --output_dir outputs/demo

    # two CPU processes (DDP over gloo)
    accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml recipes/vit_lora.py \\
        --config recipes/configs/vit_lora_demo.yaml

The output directory holds the merged model (loadable with ``from_pretrained`` / ``pipeline``), the
adapter in ``adapter/``, metrics JSON files, plots and ``hf_galaxy_card.json``.
"""

from __future__ import annotations

from transformers import TrainingArguments

from hf_galaxy.cli import run_recipe
from hf_galaxy.training import (
    DataArguments,
    GalaxyArgumentParser,
    ModelArguments,
    ScriptArguments,
    run_training,
)
from hf_galaxy.training import make_parser as _make_parser


def make_parser() -> GalaxyArgumentParser:
    """Parser over ScriptArguments, TrainingArguments, ModelArguments, DataArguments (LoRA on by default)."""
    return _make_parser(use_lora=True)


def main(
    script_args: ScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments | None = None,
) -> dict[str, float]:
    """Train, evaluate and save; returns all metrics."""
    return run_training(script_args, training_args, model_args, data_args)


if __name__ == "__main__":
    raise SystemExit(run_recipe(main, make_parser()))
