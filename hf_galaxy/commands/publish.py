"""``hf-galaxy publish``: push a training output directory to the Hub with its generated model card."""

from __future__ import annotations

import argparse

HELP = "publish a trained model (weights, processor, generated card, metrics, plots) to the Hugging Face Hub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="training output directory (what a recipe wrote)")
    from hf_galaxy.commands import add_push_arguments

    parser.add_argument("repo_id", help="target repo, 'namespace/model-name'")
    add_push_arguments(parser, "model")
    parser.add_argument(
        "--adapter_only", action="store_true", help="publish the LoRA adapter alone (library_name: peft)"
    )
    parser.add_argument(
        "--no_merge",
        action="store_true",
        help="never merge a LoRA adapter into its base model (fail if the output has no merged model)",
    )
    parser.add_argument("--license", default=None, help="Hub license id for the card (default: mit)")


def run(args: argparse.Namespace) -> int:
    from hf_galaxy.hub.publish import publish

    result = publish(
        args.output_dir,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        dry_run_dir=args.dry_run,
        merge_lora=not args.no_merge,
        push_adapter=args.adapter_only,
        endpoint=args.endpoint,
        license=args.license,
    )
    kind = "LoRA adapter" if result.adapter else "model"
    if result.dry_run_dir is not None:
        print(f"dry run: wrote the {len(result.files)} files of the {kind} to {result.dry_run_dir}")
    else:
        print(
            f"published the {kind} to {result.repo_url} (revision {result.revision}, commit {result.commit_oid})"
        )
        if result.deleted:
            print(f"removed stale files: {', '.join(result.deleted)}")
    for name in result.files:
        print(f"  {name}")
    return 0
