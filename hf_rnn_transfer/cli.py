"""`hf-rnn-transfer`: the command line. Each subcommand parses the same dataclasses as the Python API."""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from . import __version__
from .quickstart import QuickstartArguments, run_quickstart

EPILOG = """examples:
  hf-rnn-transfer quickstart --output_dir runs/quickstart
  hf-rnn-transfer push --model_dir runs/quickstart --repo_id local/kitchen-lstm
  hf-rnn-transfer hub serve --root hub-data --port 8088 --tokens_file tokens.json
"""


@dataclass
class PushArguments:
    """Arguments of `hf-rnn-transfer push`."""

    model_dir: str = field(metadata={"help": "Directory written by save_pretrained (model, config, tokenizer)."})
    repo_id: str = field(metadata={"help": "Target repository, namespace/name."})
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT, else the offline Hub on --hub_root)."}
    )
    hub_root: str | None = field(
        default=None, metadata={"help": "Offline Hub directory (default ~/.cache/hf-rnn-transfer/hub)."}
    )
    private: bool = field(default=False, metadata={"help": "Create the repository private."})
    objective: str = field(default="not stated", metadata={"help": "Training objective, for the model card."})
    data_description: str = field(default="not stated", metadata={"help": "Training data, for the model card."})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the source model, if fine-tuned."})
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub ids of the training datasets."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (default main)."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})


@dataclass
class HubServeArguments:
    """Arguments of `hf-rnn-transfer hub serve`."""

    root: str = field(metadata={"help": "Directory holding the repositories (created if missing, kept on restart)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8088, metadata={"help": "Port to listen on."})
    tokens_file: str | None = field(
        default=None,
        metadata={"help": 'JSON file {"<token>": "<user>"} or {"<token>": {"name": user, "orgs": [...]}}.'},
    )
    token: list[str] = field(
        default_factory=list, metadata={"help": "USER:TOKEN pairs (prefer --tokens_file: argv is visible to ps)."}
    )


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
        help="Train an LSTM classifier on shipped Amazon reviews, push it to a Hub, pull it back and predict.",
        description="End-to-end quick start on the reviews that ship with the package: tokenizer, LSTM classifier "
        "trained with the transformers Trainer, pushed with its card to a Hub (the offline Hub by default), pulled "
        "back by repo id through the Auto classes, and a pipeline's predictions.",
    )
    _add_dataclass_arguments(quick, QuickstartArguments, _quickstart)

    push = sub.add_parser(
        "push",
        help="Push a saved model with its tokenizer and model card to a Hub.",
        description="Push a save_pretrained directory (weights, config, code, tokenizer) with an hf-rnn-transfer "
        "model card in one commit. Uses --endpoint/$HF_ENDPOINT and $HF_TOKEN for a real Hub, else the offline Hub.",
    )
    _add_dataclass_arguments(push, PushArguments, _push)

    hub = sub.add_parser("hub", help="The offline Hub.", description="The offline Hub server.")
    hub_sub = hub.add_subparsers(dest="hub_command", metavar="HUB_COMMAND", required=True)
    serve = hub_sub.add_parser(
        "serve",
        help="Serve repositories from a directory over the real Hub HTTP protocol.",
        description="Serve an offline Hub. Clients use it with HF_ENDPOINT=http://HOST:PORT HF_HUB_DISABLE_XET=1.",
    )
    _add_dataclass_arguments(serve, HubServeArguments, _hub_serve)
    return parser


def _add_dataclass_arguments(subparser: argparse.ArgumentParser, dataclass_type, handler) -> None:
    """Give a subparser the flags of a dataclass, exactly as `HfArgumentParser` derives them."""
    for action in HfArgumentParser(dataclass_type)._actions:
        if action.dest != "help":
            subparser._add_action(action)
    subparser.set_defaults(dataclass_type=dataclass_type, handler=handler)


def _to_dataclass(namespace: argparse.Namespace):
    dataclass_type = namespace.dataclass_type
    return dataclass_type(**{name: getattr(namespace, name) for name in dataclass_type.__dataclass_fields__})


def _quickstart(args: QuickstartArguments) -> int:
    results = run_quickstart(args)
    print(json.dumps({k: v for k, v in results.items() if k != "arguments"}, indent=2))
    print(f"Saved model, tokenizer, model card and results.json to {args.output_dir}")
    return 0


def _push(args: PushArguments) -> int:
    from .hub import CardContent, push_model, resolve_hub

    card = CardContent(
        repo_id=args.repo_id,
        objective=args.objective,
        data_description=args.data_description,
        base_model=args.base_model,
        datasets=args.datasets,
    )
    namespace = args.repo_id.split("/")[0]
    with resolve_hub(args.endpoint, None, args.hub_root, namespace=namespace) as (endpoint, token):
        info = push_model(
            args.model_dir,
            args.repo_id,
            card=card,
            token=token,
            private=args.private,
            revision=args.revision,
            create_pr=args.create_pr,
        )
    print(f"Pushed {args.model_dir} to {args.repo_id} at {endpoint}: commit {info.oid}")
    return 0


def _hub_serve(args: HubServeArguments) -> int:
    from .hub import serve

    tokens = {}
    if args.tokens_file:
        tokens.update(json.loads(Path(args.tokens_file).read_text()))
    for pair in args.token:
        user, sep, token = pair.partition(":")
        if not sep or not user or not token:
            raise ValueError("--token takes USER:TOKEN, got a value without ':' (or an empty part).")
        tokens[token] = user
    serve(args.root, args.host, args.port, tokens)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if namespace.command is None:
        parser.print_help()
        return 0
    try:
        return namespace.handler(_to_dataclass(namespace))
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as err:  # bad input: one clear line
        print(f"hf-rnn-transfer {namespace.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
