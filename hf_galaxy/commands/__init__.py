"""The ``hf-galaxy`` subcommands, one module each (``HELP``, ``add_arguments(parser)``, ``run(args) -> int``).

The recipe-backed commands (``train``, ``ensemble``) reuse the recipes' parsers through
:func:`add_recipe_arguments` and :func:`recipe_arguments`, so their options are the recipes' options.
"""

from __future__ import annotations

import argparse
from typing import Any

_UNSET = object()


def add_recipe_arguments(parser: argparse.ArgumentParser, recipe_parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` every option of ``recipe_parser`` (a recipe's ``make_parser(add_help=False)``), each
    defaulting to a sentinel, so :func:`recipe_arguments` can tell command-line values from YAML/defaults."""
    parser._add_container_actions(recipe_parser)
    for action in parser._actions:
        if action.dest not in ("help", argparse.SUPPRESS):
            action.default = _UNSET


def recipe_arguments(args: argparse.Namespace, recipe_parser: Any) -> tuple[Any, ...]:
    """The recipe's dataclasses from defaults, then ``--config`` YAML, then the options given on the command line."""
    explicit = {
        k: v for k, v in vars(args).items() if v is not _UNSET and not k.startswith("_") and k != "command"
    }
    config = explicit.pop("config", None)
    return recipe_parser.build(explicit, config)


def add_push_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The options of every push: ``--private``, ``--revision``, ``--commit_message``, ``--dry_run DIR`` and
    ``--endpoint`` (``what`` is the repo's kind in the help texts)."""
    parser.add_argument("--private", action="store_true", help=f"create the {what} repo as private")
    parser.add_argument("--revision", default=None, help="branch to publish to (created when missing)")
    parser.add_argument("--commit_message", default=None, help="commit title")
    parser.add_argument(
        "--dry_run",
        metavar="DIR",
        default=None,
        help="write the exact folder that would be pushed to DIR; push nothing",
    )
    parser.add_argument(
        "--endpoint", default=None, help="Hub endpoint URL (default: HF_ENDPOINT or huggingface.co)"
    )


def print_skipped(skipped: list[tuple[str, str]], total: int, shown: int = 20) -> None:
    """Report unreadable or missing images on stderr: how many of ``total``, then the first ``shown`` with
    their reasons."""
    import sys

    if not skipped:
        return
    print(f"{len(skipped)} of {total} images skipped (unreadable or missing):", file=sys.stderr)
    for gid, reason in skipped[:shown]:
        print(f"  {gid}: {reason}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"  ... and {len(skipped) - shown} more", file=sys.stderr)


def add_dataclass_arguments(parser: argparse.ArgumentParser, *dataclass_types: type) -> None:
    """Give ``parser`` an option per field of ``dataclass_types``, as the recipes' parsers make them
    (``HfArgumentParser``: ``--name_with_underscores`` and its ``--name-with-dashes`` alias, the field's help)."""
    from transformers import HfArgumentParser

    parser._add_container_actions(HfArgumentParser(list(dataclass_types), add_help=False))


def dataclasses_from(args: argparse.Namespace, *dataclass_types: type) -> tuple[Any, ...]:
    """One instance of each of ``dataclass_types`` from the parsed ``args`` (see :func:`add_dataclass_arguments`)."""
    import dataclasses

    values = vars(args)
    return tuple(
        cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values})
        for cls in dataclass_types
    )
