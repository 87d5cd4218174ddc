"""The ``hf-galaxy`` command line: ``hf-galaxy <command> --help`` for each command.

Each command lives in its own module under :mod:`hf_galaxy.commands`, exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Any

COMMANDS: dict[str, str] = {
    "synth": "hf_galaxy.commands.synth",
    "prepare": "hf_galaxy.commands.prepare",
    "train": "hf_galaxy.commands.train",
    "evaluate": "hf_galaxy.commands.evaluate",
    "predict": "hf_galaxy.commands.predict",
    "publish": "hf_galaxy.commands.publish",
    "ensemble": "hf_galaxy.commands.ensemble",
    "demo": "hf_galaxy.commands.demo",
}


def configure_logging(training_args: Any = None, level: int | None = None) -> None:
    """Logging for an entry point (the CLI and the recipes' ``__main__``; the library never configures it).

    alignment-handbook style: with ``training_args``, the main process logs hf-galaxy's progress at INFO (or
    ``--log_level``) and replicas at ``--log_level_replica`` (WARNING); transformers follows the same level.
    """
    import logging

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    if level is None and training_args is not None:
        passive = training_args.should_log and training_args.log_level == "passive"
        level = logging.INFO if passive else training_args.get_process_log_level()
    if level is None:
        level = logging.INFO
    logging.getLogger("hf_galaxy").setLevel(level)
    if training_args is not None:
        import transformers

        transformers.utils.logging.set_verbosity(level)


def _available() -> dict[str, str]:
    """Commands whose module is present in this installation."""
    out = {}
    for name, mod in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = mod
    return out


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported (all of them for ``--help``)."""
    parser = argparse.ArgumentParser(prog="hf-galaxy", description=__doc__.splitlines()[0])
    from hf_galaxy import __version__

    parser.add_argument("--version", action="version", version=f"hf-galaxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod_name in _available().items():
        if command is not None and name != command:
            sub.add_parser(name)
            continue
        mod = importlib.import_module(mod_name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hf-galaxy`` console script.

    A user error (a bad path, option, catalogue or model id; a refused upload) prints one line,
    ``hf-galaxy COMMAND: error: ...``, to stderr and exits with 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in _available():
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    configure_logging()
    from hf_galaxy.hub.publish import PublishError

    try:
        return int(args._run(args) or 0)
    except (OSError, ValueError, PublishError) as err:
        print(f"hf-galaxy {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
