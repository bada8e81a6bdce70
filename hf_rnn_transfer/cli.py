"""`hf-rnn-transfer`: the command line. Each subcommand parses the same dataclasses as the Python API."""

import argparse
import json
import sys

from transformers import HfArgumentParser

from . import __version__
from .quickstart import QuickstartArguments, run_quickstart

EPILOG = """examples:
  hf-rnn-transfer quickstart --output_dir runs/quickstart
  hf-rnn-transfer quickstart --cell_type gru --domain books --epochs 2
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-rnn-transfer",
        description="Transfer learning for recurrent networks (LSTM, GRU) on the Hugging Face stack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hf-rnn-transfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    quick = sub.add_parser(
        "quickstart",
        help="Train an LSTM classifier on shipped Amazon reviews, save, reload and predict.",
        description="End-to-end quick start on the reviews that ship with the package: tokenizer, LSTM classifier "
        "trained with the transformers Trainer, save_pretrained, reload with the Auto classes, pipeline predictions.",
    )
    _add_dataclass_arguments(quick, QuickstartArguments)
    quick.set_defaults(handler=_quickstart)
    return parser


def _add_dataclass_arguments(subparser: argparse.ArgumentParser, dataclass_type) -> None:
    """Give a subparser the flags of a dataclass, exactly as `HfArgumentParser` derives them."""
    hf_parser = HfArgumentParser(dataclass_type)
    for action in hf_parser._actions:
        if action.dest == "help":
            continue
        subparser._add_action(action)
    subparser.set_defaults(dataclass_type=dataclass_type)


def _quickstart(namespace: argparse.Namespace) -> int:
    args = _to_dataclass(namespace)
    results = run_quickstart(args)
    print(json.dumps({k: v for k, v in results.items() if k != "arguments"}, indent=2))
    print(f"Saved model, tokenizer and results.json to {args.output_dir}")
    return 0


def _to_dataclass(namespace: argparse.Namespace):
    dataclass_type = namespace.dataclass_type
    names = dataclass_type.__dataclass_fields__.keys()
    return dataclass_type(**{name: getattr(namespace, name) for name in names})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if namespace.command is None:
        parser.print_help()
        return 0
    try:
        return namespace.handler(namespace)
    except (ValueError, FileExistsError, FileNotFoundError) as err:  # bad input: one clear line, no traceback
        print(f"hf-rnn-transfer {namespace.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
