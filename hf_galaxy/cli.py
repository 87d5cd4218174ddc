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
    "embed": "hf_galaxy.commands.embed",
    "similar": "hf_galaxy.commands.similar",
    "convert-zoobot": "hf_galaxy.commands.convert_zoobot",
    "publish": "hf_galaxy.commands.publish",
    "publish-dataset": "hf_galaxy.commands.publish_dataset",
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


def _debug() -> bool:
    import os

    return os.environ.get("HF_GALAXY_DEBUG", "").lower() not in ("", "0", "false", "no")


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input (a path, an option, a catalogue, a model id, a refused upload):
    entry points print them as one line and exit 2, without a traceback."""
    from hf_galaxy.hub.publish import PublishError

    return (OSError, ValueError, PublishError)


def run_recipe(main: Any, parser: Any, argv: Sequence[str] | None = None) -> int:
    """A recipe's ``__main__``: parse (YAML + CLI), configure logging, run ``main``; a user error prints
    ``PROG: error: ...`` on one line and returns 2 (``HF_GALAXY_DEBUG=1`` shows the traceback instead)."""
    args = parser.parse(argv)
    configure_logging(args[1])
    try:
        main(*args)
    except user_errors() as err:
        if _debug():
            raise
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def _available() -> dict[str, str]:
    """Commands whose module is present in this installation."""
    out = {}
    for name, mod in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = mod
    return out


def add_spelling_aliases(parser: argparse.ArgumentParser) -> None:
    """Accept every ``--long_option`` also as ``--long-option`` (and the other way round): hf-galaxy writes its
    options with underscores, as the Hugging Face examples do."""
    for action in list(parser._actions):
        for option in list(action.option_strings):
            if not option.startswith("--"):
                continue
            for twin in ("--" + option[2:].replace("-", "_"), "--" + option[2:].replace("_", "-")):
                if twin != option and twin not in parser._option_string_actions:
                    action.option_strings.append(twin)
                    parser._option_string_actions[twin] = action


def build_parser(
    command: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and the subcommand parsers. Only ``command``'s options are built (its module
    may import torch); the other commands contribute their one-line ``HELP``, so ``hf-galaxy --help`` is fast."""
    parser = argparse.ArgumentParser(prog="hf-galaxy", description=__doc__.splitlines()[0])
    from hf_galaxy import __version__

    parser.add_argument("--version", action="version", version=f"hf-galaxy {__version__}")
    parser.add_argument(  # its own dest: the training commands have TrainingArguments' --debug option
        "--debug",
        dest="_traceback",
        action="store_true",
        help="show the full traceback of an error (also HF_GALAXY_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, mod_name in _available().items():
        mod = importlib.import_module(mod_name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        if name == command:
            mod.add_arguments(p)
            add_spelling_aliases(p)
            p.set_defaults(_run=mod.run)
        subparsers[name] = p
    return parser, subparsers


#: Commands whose options include the ~100 fields of ``transformers.TrainingArguments``, whose import takes
#: seconds (it imports torch and accelerate): their ``--help`` text is rendered once and cached.
_CACHED_HELP = ("train", "ensemble")


def _cached_help(command: str) -> str:
    """``hf-galaxy COMMAND --help``, from a cache keyed by the versions of hf-galaxy and transformers and the
    modification times of the modules that define the options (rendered, and cached, when missing)."""
    import hashlib
    import importlib.metadata
    import os
    from pathlib import Path

    here = Path(__file__).parent
    sources = [
        here / "commands" / f"{command}.py",
        here / "training" / "arguments.py",
        here / "ensemble" / "recipe.py",
    ]
    key = "|".join(
        [
            command,
            importlib.metadata.version("transformers"),
            *(f"{p}:{p.stat().st_mtime_ns}" for p in sources),
        ]
    )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hf_galaxy" / "help"
    path = cache / f"{command}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.txt"
    if path.is_file():
        return path.read_text()
    text = build_parser(command)[1][command].format_help()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError:  # a read-only home: no cache, the help is still printed
        pass
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hf-galaxy`` console script.

    A user error (a bad path, option, catalogue or model id; a refused upload) prints one line,
    ``hf-galaxy COMMAND: error: ...``, to stderr and exits with 2; ``--debug`` (or ``HF_GALAXY_DEBUG=1``)
    shows the traceback instead. An unknown option is reported with the subcommand's own usage.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in _available():
        command = None
    if command in _CACHED_HELP and argv[1:] in (["--help"], ["-h"]):
        print(_cached_help(command), end="")
        return 0
    parser, subparsers = build_parser(command)
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    if extra:
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging()
    try:
        return int(args._run(args) or 0)
    except user_errors() as err:
        if args._traceback or _debug():
            raise
        print(f"hf-galaxy {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
