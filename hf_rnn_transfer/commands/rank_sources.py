"""`hf-rnn-transfer rank-sources`: transferability scores (LogME, LEEP, N-LEEP, H-score, shrinkage H-score, GBC) of
candidate sources on the target's training rows (and, with `--domain_file`, on unlabelled target texts labelled
by a linear model fitted on those rows)."""

from dataclasses import dataclass, field

from ..selection import INPUT_STATISTICS, SCORES
from .target_data import TargetDataArguments, read_target, read_unlabelled_texts, refuse_unread_options


@dataclass
class RankSourcesArguments:
    """Arguments of `hf-rnn-transfer rank-sources`."""

    candidates: list[str] = field(metadata={"help": "Candidate sources: Hub repo ids or local directories."})
    output: str | None = field(default=None, metadata={"help": "Write the ranking table (markdown) here."})
    max_examples: int = field(default=1000, metadata={"help": "Score on this many target rows."})
    rank_by: str = field(default="logme", metadata={"help": "Score that orders the table.", "choices": list(SCORES)})
    feature_layer: int | None = field(
        default=None,
        metadata={"help": "Score this encoder layer's outputs (default: the top one); the layer that will move."},
    )
    max_unlabelled: int = field(
        default=400,
        metadata={"help": "Score on up to this many --domain_file texts too, pseudo-labelled (a fixed random sample)."},
    )
    compare_untrained: bool = field(
        default=True,
        metadata={"help": "Also score each architecture untrained and warn where a source is no better (2x cost)."},
    )
    input_statistics: str = field(
        default="target",
        metadata={
            "help": "Series only: standardise the target rows by their own per-channel statistics before a source "
            "reads them (target: as finetune and auto do, so the scores read the features fine-tuning starts from) "
            "or by each source's training statistics (source).",
            "choices": list(INPUT_STATISTICS),
        },
    )
    endpoint: str | None = field(default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT or offline Hub)."})
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})


def run_rank_sources(args: RankSourcesArguments, data_args: TargetDataArguments) -> str:
    """Rank the candidates (texts are tokenised by each candidate's own tokenizer; series are standardised as
    `--input_statistics` says)."""
    from ..data import prepare_series
    from ..hub import resolve_hub
    from ..selection import rank_sources

    refuse_unread_options("rank-sources", data_args, reads=("--domain_file",))
    raw = read_target(data_args)
    unlabelled = read_unlabelled_texts(data_args)
    train = raw["train"].shuffle(seed=0)
    label_column = data_args.label_column
    if data_args.text_column not in train.column_names and data_args.values_column in train.column_names:
        train, _ = prepare_series(train, data_args.values_column, label_column, impute=data_args.impute)
        label_column = "labels"
    with resolve_hub(args.endpoint, None, args.hub_root) as (_, token):
        ranking = rank_sources(
            args.candidates,
            train,
            text_column=data_args.text_column,
            label_column=label_column,
            max_examples=args.max_examples,
            token=token,
            max_length=data_args.max_length,
            by=args.rank_by,
            feature_layer=args.feature_layer,
            compare_untrained=args.compare_untrained,
            unlabelled_texts=unlabelled,
            max_unlabelled=args.max_unlabelled,
            input_statistics=args.input_statistics,
        )
    table = ranking.to_markdown()
    print(table)
    if args.output:
        ranking.write(args.output)
    return table
