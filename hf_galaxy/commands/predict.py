"""``hf-galaxy predict``: classify every image of a folder or catalogue; writes a CSV of probabilities.

    hf-galaxy predict --model outputs/vit-lora-galaxy-zoo cutouts/ --output preds.csv
    hf-galaxy predict --model user/vit-galaxy-zoo GalaxyZoo1_DR_table2.csv --image_dir cutouts/ --tta

CSV columns: ``id``, ``predicted_class``, ``confidence``, then ``prob_<class>`` for every class. For a
whole-tree model: ``id``, then ``<question>_<answer>_fraction`` for every answer of its tree (the expected
vote fractions; each question's sum to 1). Unreadable images are counted, reported and left out of the CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_galaxy.commands import print_skipped

HELP = "predict classes for an image folder or catalogue with a trained classifier; writes a CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", help="image folder (searched recursively), catalogue file, or Hub dataset id (mwalmsley/gz2)"
    )
    parser.add_argument("--dataset_config_name", default=None, help="config of a Hub dataset INPUT")
    parser.add_argument(
        "--dataset_revision", default=None, help="branch, tag or commit of a Hub dataset INPUT"
    )
    parser.add_argument(
        "--model", required=True, help="training output directory, its adapter/ folder, or Hub repo id"
    )
    parser.add_argument("--output", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    parser.add_argument("--image_dir", default=None, help="cutout folder of a catalogue INPUT")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--tta", action="store_true", help="average predictions over rotations")
    parser.add_argument("--tta_rotations", default="0,90,180,270", help="TTA angles, multiples of 90")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from hf_galaxy.data.tree import tree_layout_of
    from hf_galaxy.inference import fractions_frame, inference_inputs, predict_probs
    from hf_galaxy.models import load_for_inference, model_label_names
    from hf_galaxy.training import parse_rotations

    model, processor = load_for_inference(args.model)
    layout = tree_layout_of(model.config)
    names = model_label_names(model, args.model)
    data = inference_inputs(
        args.input,
        args.image_dir,
        dataset_config_name=args.dataset_config_name,
        revision=args.dataset_revision,
    )
    out = predict_probs(
        [model], [processor], data, batch_size=args.batch_size,
        tta_rotations=parse_rotations(args.tta_rotations) if args.tta else None, device=args.device,
    )  # fmt: skip
    ids, probs, skipped = out.ids, out.probs[0], out.skipped
    if layout is not None:
        frame = fractions_frame(probs, layout, ids)
    else:
        frame = pd.DataFrame(
            {"id": ids, "predicted_class": [names[i] for i in probs.argmax(axis=1)] if len(ids) else []}
        )
        frame["confidence"] = probs.max(axis=1) if len(ids) else []
        for k, name in enumerate(names):
            frame[f"prob_{name}"] = probs[:, k] if len(ids) else []
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False, float_format="%.6g")
    print(f"{len(ids)} predictions written to {output}")
    print_skipped(skipped, len(data))
    return 0
