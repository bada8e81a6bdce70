"""`hf-rnn-transfer`: the command line. Each subcommand parses the same dataclasses as the Python API."""

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.errors import StrictDataclassError
from transformers import HfArgumentParser

from . import __version__
from .commands import (
    AutoArguments,
    CompareArguments,
    LinearCompanionArguments,
    PretrainArguments,
    RankSourcesArguments,
    SourceArguments,
    TargetDataArguments,
)
from .demo import DemoArguments, run_demo
from .quickstart import QuickstartArguments, run_quickstart
from .trainer import RecommendedTrainingArguments, TransferTrainingArguments

EPILOG = """examples:
  hf-rnn-transfer demo --output_dir runs/demo
  hf-rnn-transfer quickstart --output_dir runs/quickstart
  hf-rnn-transfer pretrain --objective causal_lm --train_file corpus.txt --max_steps 2000 --output_dir runs/lm
  hf-rnn-transfer pretrain --objective causal_lm --init_from runs/lm --train_file target.jsonl --max_steps 200 \\
      --discriminative_lr --output_dir runs/target-lm
  hf-rnn-transfer pretrain --objective forecasting --dataset UCR/ECGFiveDays --splits train test \\
      --num_train_epochs 5 --output_dir runs/forecaster
  hf-rnn-transfer compare --source runs/forecaster --dataset UCR/TwoLeadECG --budgets 10 all --output_dir runs/ecg
  hf-rnn-transfer finetune --source local/lstm-reviews --train_file train.jsonl --test_file test.jsonl \\
      --output_dir runs/ft --freezing_strategy gradual --discriminative_lr --lr_scheduler_type slanted_triangular
  hf-rnn-transfer compare --source local/lstm-reviews --train_file pool.jsonl --test_file test.jsonl \\
      --output_dir runs/cmp --freezing_strategy gradual --budgets 50 100 200 --report runs/cmp/report.md
  hf-rnn-transfer rank-sources --candidates local/a local/b --train_file train.jsonl
  hf-rnn-transfer auto --candidates runs/books runs/dvd local/reviews-lm --train_file train.jsonl \
      --test_file test.jsonl --budget 100 --output_dir runs/auto
  hf-rnn-transfer finetune finetune-args.json
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
    language: list[str] = field(default_factory=list, metadata={"help": "Languages of the data (ISO 639-1: en de)."})
    license: str | None = field(default=None, metadata={"help": "Licence of the weights, for the card (apache-2.0)."})
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
    max_request_bytes: int = field(default=1 << 20, metadata={"help": "Largest JSON/form request body."})
    max_commit_bytes: int = field(default=1 << 30, metadata={"help": "Largest commit body (spooled to disk)."})
    max_regular_file_bytes: int = field(
        default=16 << 20, metadata={"help": "Largest file inside a commit; larger files must go through LFS."}
    )
    max_file_bytes: int = field(default=50 << 30, metadata={"help": "Largest LFS object."})
    read_timeout: float = field(
        default=30.0, metadata={"help": "Seconds a client may stall while sending a body or reading a response."}
    )
    header_timeout: float = field(
        default=10.0, metadata={"help": "Seconds to send a request's headers; idle connections close after it."}
    )
    max_connections: int = field(default=256, metadata={"help": "Open connections at once; more are refused."})
    backlog: int = field(default=128, metadata={"help": "Connections queued by the kernel before accept."})
    worker_threads: int = field(default=16, metadata={"help": "Threads doing storage work at once."})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-rnn-transfer",
        description="Transfer learning for recurrent networks (LSTM, GRU) on the Hugging Face stack. Every command "
        "also reads its arguments from one JSON or YAML file whose keys are the flag names "
        "(hf-rnn-transfer finetune args.json).",
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

    demo = sub.add_parser(
        "demo",
        help="The whole workflow on shipped reviews: source, push, pull, transfer, fine-tune, compare, push.",
        description="Train an LSTM source on three Amazon domains, push it to a Hub (offline by default), pull it by "
        "repo id, transfer it to the fourth domain with a small label budget (gradual unfreezing, discriminative "
        "learning rates, slanted triangular schedule), compare with scratch and TF-IDF + logistic regression over "
        "seeds, flag negative transfer, and push the fine-tuned model with its card and plots.",
    )
    _add_dataclass_arguments(demo, DemoArguments, _demo)

    pretrain = sub.add_parser(
        "pretrain",
        help="Train a source model: a language model on texts, a forecaster on series, or a classifier.",
        description="Pretrain a source: causal language model on the texts (contiguous streams, truncated BPTT "
        "with carried state; set --max_steps), forecasting on series (windows of --context_length steps predict "
        "the next --prediction_length), or supervised classification of texts or series. From scratch, or "
        "continued from --init_from (ULMFiT's target-domain LM stage: the vocabulary is remapped by token string). "
        "Trains the tokenizer for texts, saves to --output_dir and optionally pushes (--push_to) with its card.",
    )
    _add_dataclass_arguments(pretrain, (PretrainArguments, TargetDataArguments, TransferTrainingArguments), _pretrain)

    finetune = sub.add_parser(
        "finetune",
        help="Transfer a source into a classifier for your labelled texts or series; fine-tune with any strategy.",
        description="Fine-tune a source (Hub repo or directory) on a target dataset (Hub id or local files) with "
        "TransferTrainer: every TransferTrainingArguments/TrainingArguments flag applies (--freezing_strategy, "
        "--discriminative_lr, --lr_scheduler_type slanted_triangular, --l2sp_alpha, ...). Works under torchrun.",
    )
    _add_dataclass_arguments(
        finetune,
        (SourceArguments, TargetDataArguments, RecommendedTrainingArguments, LinearCompanionArguments),
        _finetune,
    )

    comparison = sub.add_parser(
        "compare",
        help="Transfer vs scratch (and TF-IDF + LR for texts) over label budgets and seeds, with the negative-"
        "transfer test.",
        description="Fine-tune the transferred source and the same architecture from scratch on identical nested, "
        "balanced label budgets and seeds; write a markdown report and a learning-curve PNG.",
    )
    _add_dataclass_arguments(
        comparison, (CompareArguments, SourceArguments, TargetDataArguments, RecommendedTrainingArguments), _compare
    )

    rank = sub.add_parser(
        "rank-sources",
        help="Score candidate sources on a target dataset (LogME, LEEP, H-score), without fine-tuning.",
        description="Rank candidate sources by transferability scores computed from one forward pass over the "
        "target training rows.",
    )
    _add_dataclass_arguments(rank, (RankSourcesArguments, TargetDataArguments), _rank_sources)

    auto = sub.add_parser(
        "auto",
        help="Choose the source, the layers and the fine-tuning strategy by validation inside the label budget, "
        "then fine-tune the winner.",
        description="Automated transfer: rank the candidates (LogME by default) on the target's labels, shortlist "
        "the top ones, validate them, the fine-tuning strategies and the layers to move by k-fold cross-validation "
        "inside the budget (never the test split), with scratch as the floor; fine-tune the winner, score it on "
        "the test split, and write auto_report.md/.json, the model, its tokenizer and card to --output_dir.",
    )
    _add_dataclass_arguments(auto, (AutoArguments, TargetDataArguments, RecommendedTrainingArguments), _auto)

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


def _add_dataclass_arguments(subparser: argparse.ArgumentParser, dataclass_types, handler) -> None:
    """Give a subparser the flags of one or more dataclasses, exactly as `HfArgumentParser` derives them."""
    types = dataclass_types if isinstance(dataclass_types, tuple) else (dataclass_types,)
    for action in HfArgumentParser(types)._actions:
        if action.dest != "help":
            subparser._add_action(action)
    subparser.set_defaults(dataclass_types=types, handler=handler)


def _to_dataclasses(namespace: argparse.Namespace) -> list:
    return [
        t(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(t) if f.init})
        for t in namespace.dataclass_types
    ]


def _quickstart(args: QuickstartArguments) -> int:
    results = run_quickstart(args)
    print(json.dumps({k: v for k, v in results.items() if k != "arguments"}, indent=2))
    print(f"Saved model, tokenizer, model card and results.json to {args.output_dir}")
    return 0


def _demo(args: DemoArguments) -> int:
    run_demo(args)
    return 0


def _pretrain(args, data_args, training_args) -> int:
    from .commands import run_pretrain

    run_pretrain(args, data_args, training_args)
    return 0


def _finetune(source_args, data_args, training_args, linear_args) -> int:
    from .commands import run_finetune

    results = run_finetune(source_args, data_args, training_args, linear_args)
    if results:  # empty on the other processes of a distributed run
        print(json.dumps(results, indent=2, default=str))
    return 0


def _compare(compare_args, source_args, data_args, training_args) -> int:
    from .commands import run_compare

    run_compare(compare_args, source_args, data_args, training_args)
    return 0


def _rank_sources(args, data_args) -> int:
    from .commands import run_rank_sources

    run_rank_sources(args, data_args)
    return 0


def _auto(auto_args, data_args, training_args) -> int:
    from .commands import run_auto

    run_auto(auto_args, data_args, training_args)
    return 0


def _push(args: PushArguments) -> int:
    from .hub import CardContent, push_model, resolve_hub

    card = CardContent(
        repo_id=args.repo_id,
        objective=args.objective,
        data_description=args.data_description,
        base_model=args.base_model,
        datasets=args.datasets,
        language=args.language or None,
        license=args.license,
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
    from .hub.server import HubLimits, serve

    tokens = {}
    if args.tokens_file:
        tokens.update(json.loads(Path(args.tokens_file).read_text()))
    for pair in args.token:
        user, sep, token = pair.partition(":")
        if not sep or not user or not token:
            raise ValueError("--token takes USER:TOKEN, got a value without ':' (or an empty part).")
        tokens[token] = user
    limits = HubLimits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(HubLimits)})
    serve(args.root, args.host, args.port, tokens, limits)
    return 0


ARGUMENT_FILES = (".json", ".yaml", ".yml")


def _from_argument_file(parser: argparse.ArgumentParser, argv: list[str]):
    """`hf-rnn-transfer COMMAND args.json` (or .yaml): the command's arguments from a file, as `HfArgumentParser`
    reads them (keys are the flag names; unknown keys are refused). `None` when argv is not of that form."""
    if len(argv) != 2 or not argv[1].endswith(ARGUMENT_FILES) or argv[1].startswith("-"):
        return None
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = subparsers.choices.get(argv[0])
    types = command.get_default("dataclass_types") if command is not None else None
    if types is None:
        return None
    path = Path(argv[1])
    if not path.is_file():
        raise FileNotFoundError(f"arguments file {argv[1]!r} does not exist.")
    reader = HfArgumentParser(types)
    values = reader.parse_json_file(path) if path.suffix == ".json" else reader.parse_yaml_file(path)
    return argparse.Namespace(command=argv[0], handler=command.get_default("handler"), parsed=values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        namespace = _from_argument_file(parser, argv)
    except (ValueError, StrictDataclassError, OSError) as err:
        print(f"hf-rnn-transfer {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    namespace = namespace or parser.parse_args(argv)
    if namespace.command is None:
        parser.print_help()
        return 0
    try:
        parsed = getattr(namespace, "parsed", None) or _to_dataclasses(namespace)
        return namespace.handler(*parsed)
    except (ValueError, StrictDataclassError, FileExistsError, FileNotFoundError, OSError) as err:  # bad input
        print(f"hf-rnn-transfer {namespace.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Under torchrun / accelerate launch: leave the process group cleanly (a live gloo group at interpreter exit
    can abort a process that finished its work, and torchrun then reports a failure)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
