"""The data a command reads (a Hub dataset id, a local dataset folder, a UCR archive folder or local files) and its
encoding for one source: texts through the source's tokenizer, series with the target's own input statistics."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import DatasetDict, load_dataset

from ..data import (
    DataCollatorForSeries,
    LabelMap,
    load_ucr,
    prepare_series,
    prepare_text_classification,
    series_statistics,
)
from ..data.timeseries import IMPUTE

_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


@dataclass
class TargetDataArguments:
    """Where the data is and which columns to read."""

    dataset: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id, local dataset folder, or a UCR archive folder (<name>/<name>_TRAIN.tsv)."},
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Local training file (json/jsonl/csv/parquet; txt for language models)."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Local validation file, evaluated during training (--eval_strategy)."}
    )
    validation_split_percentage: int | None = field(
        default=None,
        metadata={"help": "Hold out this share (1-50) of the training rows as the validation split (stratified)."},
    )
    test_file: str | None = field(default=None, metadata={"help": "Local test file, evaluated after training."})
    text_column: str = field(default="text", metadata={"help": "Column with the texts (token-input models)."})
    values_column: str = field(
        default="values", metadata={"help": "Column with the series, [time] or [time, channels] (series models)."}
    )
    label_column: str = field(default="label", metadata={"help": "Column with the labels."})
    target_text_column: str | None = field(
        default=None,
        metadata={
            "help": "Sequence to sequence (translation, dialogue responses): the column with the output text; "
            "--text_column holds the input. Set, or a sequence-to-sequence source, makes the target a "
            "RNNForSeq2SeqLM scored by BLEU/chrF (sacrebleu)."
        },
    )
    domain_file: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled target-domain texts (json/jsonl/csv/parquet/txt, the --text_column) for "
            "domain-adversarial training (--domain_adversarial_weight), or for rank-sources and auto to score the "
            "sources on them too, pseudo-labelled by a linear model fitted on the labels; never the test data."
        },
    )
    replay_file: str | None = field(
        default=None,
        metadata={
            "help": "The source's labelled texts (same columns and label names as the target's) for source replay "
            "(--source_replay_weight): batches of them are trained on beside the target's; never the test data."
        },
    )
    max_length: int = field(default=256, metadata={"help": "Texts are cut to this many tokens."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    impute: str | None = field(
        default=None,
        metadata={"help": "Series with NaN values: linear or zero (default: refuse them).", "choices": IMPUTE},
    )


def load_target(
    dataset: str | None, train_file: str | None, test_file: str | None, validation_file: str | None = None
) -> DatasetDict:
    """A Hub dataset id, a local dataset folder, a UCR archive folder, or local train/validation/test files."""
    if validation_file and not train_file:
        raise ValueError("--validation_file goes with --train_file (a dataset brings its own validation split).")
    for flag, path in (
        ("--train_file", train_file),
        ("--validation_file", validation_file),
        ("--test_file", test_file),
    ):
        if path:
            check_data_file(flag, path)
    if train_file:
        files = {"train": train_file}
        files.update({split: path for split, path in (("validation", validation_file), ("test", test_file)) if path})
        return load_dataset(_FORMATS[Path(train_file).suffix], data_files=files)
    if not dataset:
        raise ValueError("pass --dataset (a Hub dataset id or folder) or --train_file (and --test_file).")
    folder = Path(dataset)
    if folder.is_dir() and (folder / f"{folder.name}_TRAIN.tsv").exists():
        return load_ucr(folder)
    return load_dataset(dataset)


def check_data_file(flag: str, path: str) -> None:
    """Refuse a data file that is missing, empty, or of a format `load_target` does not read, naming its flag."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag} {path!r} does not exist (or is not a file).")
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{flag} {path!r} is empty: it needs one row per example.")
    if Path(path).suffix not in _FORMATS:
        raise ValueError(f"{flag} must be one of {sorted(_FORMATS)}, got {path!r}.")


def read_target(args: TargetDataArguments) -> DatasetDict:
    """`load_target` from the arguments, with `max_train_examples` applied."""
    raw = load_target(args.dataset, args.train_file, args.test_file, args.validation_file)
    if "train" not in raw:
        raise ValueError(f"the data has no train split; it has {list(raw)}.")
    if args.validation_split_percentage is not None:
        if "validation" in raw:
            raise ValueError("the data already has a validation split: leave out --validation_split_percentage.")
        if not 1 <= args.validation_split_percentage <= 50:
            raise ValueError(f"--validation_split_percentage must be 1-50, got {args.validation_split_percentage}.")
        held = raw["train"].train_test_split(test_size=args.validation_split_percentage / 100, seed=0)
        raw["train"], raw["validation"] = held["train"], held["test"]
    if args.max_train_examples is not None:
        if args.max_train_examples < 1:
            raise ValueError(
                f"--max_train_examples must be at least 1 (or left out for every row), got {args.max_train_examples}."
            )
        raw["train"] = raw["train"].select(range(min(args.max_train_examples, len(raw["train"]))))
    for split, rows in raw.items():
        if len(rows) == 0:
            raise ValueError(f"the {split} split has no rows: give data with at least one example.")
    return raw


@dataclass
class EncodedTarget:
    """A labelled target dataset encoded for one source.

    Args:
        splits: the encoded splits (`labels`, and `input_ids` or `input_values`).
        labels: the class names.
        collator: batches rows of `splits`.
        config: what the target model's config takes from the data: label maps, and for series the target's own
            per-channel statistics (its inputs then reach the transferred layers standardised as the source's did).
        texts: `(train, test)` raw texts, for the TF-IDF + logistic regression row (text targets with a test split).
    """

    splits: DatasetDict
    labels: LabelMap | None
    collator: object
    config: dict
    texts: tuple[list[str], list[str]] | None = None
    tokenizer: object = None

    @property
    def is_seq2seq(self) -> bool:
        """Output texts (labels are token sequences) instead of classes."""
        return self.labels is None


def encode_target(raw: DatasetDict, source_config, tokenizer, args: TargetDataArguments) -> EncodedTarget:
    """Encode labelled target data the way the source reads input: tokens (with `tokenizer`) or series; input/output
    text pairs for a sequence-to-sequence target (`--target_text_column`, or a sequence-to-sequence source)."""
    if args.target_text_column or _is_seq2seq_source(source_config):
        return _encode_pairs(raw, source_config, tokenizer, args)
    if source_config.is_token_input:
        from transformers import DataCollatorWithPadding

        if tokenizer is None:
            raise ValueError("the source reads tokens but has no tokenizer: save or push it with its tokenizer.")
        encoded, labels = prepare_text_classification(
            raw, tokenizer, args.text_column, args.label_column, max_length=args.max_length
        )
        texts = (raw["train"][args.text_column], raw["test"][args.text_column]) if "test" in raw else None
        config = {"id2label": labels.id2label, "label2id": labels.label2id}
        return EncodedTarget(encoded, labels, DataCollatorWithPadding(tokenizer), config, texts)
    encoded, labels = prepare_series(raw, args.values_column, args.label_column, impute=args.impute)
    channels = len(encoded["train"][0]["input_values"][0])
    if channels != source_config.input_size:
        raise ValueError(
            f"the source reads series of {source_config.input_size} channel(s); {args.values_column!r} holds "
            f"{channels}. Select the source's channels, or transfer in Python with channel_names to remap them."
        )
    mean, std = series_statistics(encoded["train"])
    config = {"id2label": labels.id2label, "label2id": labels.label2id, "input_mean": mean, "input_std": std}
    return EncodedTarget(encoded, labels, DataCollatorForSeries(), config)


def is_classifier_of(config, id2label: dict[int, str]) -> bool:
    """Whether a source config is a sequence classifier of exactly these labels (its answers then mean the target's)."""
    same = {int(k): v for k, v in (config.id2label or {}).items()} == id2label
    return "RNNForSequenceClassification" in (config.architectures or []) and same


def _is_seq2seq_source(config) -> bool:
    return "RNNForSeq2SeqLM" in (config.architectures or [])


def column_texts(rows, args: TargetDataArguments) -> list[str]:
    """The non-empty texts of the `--text_column` of `rows`."""
    if args.text_column not in rows.column_names:
        raise ValueError(f"missing text column {args.text_column!r}; the dataset has {rows.column_names}.")
    return [t for t in rows[args.text_column] if isinstance(t, str) and t.strip()]


def read_texts(path: str, args: TargetDataArguments) -> list[str]:
    """The non-empty `--text_column` texts of a file (json/jsonl/csv/parquet/txt), read without labels."""
    return column_texts(load_target(None, path, None)["train"], args)


def read_unlabelled_texts(args: TargetDataArguments) -> list[str] | None:
    """The `--domain_file` texts in a fixed random order (`None` without the file), for scoring sources on
    pseudo-labels (the scorer takes the first N)."""
    if args.domain_file is None:
        return None
    texts = _domain_texts(args)
    order = np.random.default_rng(0).permutation(len(texts))
    return [texts[i] for i in order]


def read_labelled_texts(path: str, args: TargetDataArguments, label2id: dict[str, int]) -> tuple[list, list]:
    """The `--text_column` texts and `--label_column` labels of a file, the labels as the target's class ids
    (`label2id`: names, or "0", "1", ... for integer labels); refuses a label the target does not have."""
    return labelled_texts(load_target(None, path, None)["train"], args, label2id, path)


def labelled_texts(rows, args: TargetDataArguments, label2id: dict[str, int], where: str) -> tuple[list, list]:
    """`read_labelled_texts` of a dataset's `rows` (`where` names them in errors); rows without text are left out."""
    from datasets import ClassLabel

    for column in (args.text_column, args.label_column):
        if column not in rows.column_names:
            raise ValueError(f"{where}: missing column {column!r}; the file has {rows.column_names}.")
    feature = rows.features[args.label_column]
    texts, labels = [], []
    for text, value in zip(rows[args.text_column], rows[args.label_column]):
        name = feature.int2str(value) if isinstance(feature, ClassLabel) else str(value)
        if name not in label2id:
            raise ValueError(
                f"{where}: label {value!r} is not one of the target's labels {list(label2id)}; the source's labels "
                "must mean the same as the target's."
            )
        if isinstance(text, str) and text.strip():
            texts.append(text)
            labels.append(label2id[name])
    if not texts:
        raise ValueError(f"{where}: no non-empty texts in {args.text_column!r}.")
    return texts, labels


def _encode_pairs(raw: DatasetDict, source_config, tokenizer, args: TargetDataArguments) -> EncodedTarget:
    from transformers import DataCollatorForSeq2Seq

    from ..data import prepare_translation

    if not source_config.is_token_input or tokenizer is None:
        raise ValueError("a sequence-to-sequence target needs a source that reads tokens and has a tokenizer.")
    if not args.target_text_column:
        raise ValueError(
            "the source is a sequence-to-sequence model: name the output text's column with --target_text_column "
            f"(the input's is --text_column, {args.text_column!r})."
        )
    encoded = prepare_translation(
        raw,
        tokenizer,
        args.text_column,
        args.target_text_column,
        max_source_length=args.max_length,
        max_target_length=args.max_length,
        truncation=True,
    ).remove_columns("length")
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    return EncodedTarget(encoded, None, collator, {}, None, tokenizer)


def refuse_unread_options(command: str, data_args: TargetDataArguments, training_args=None, reads=()) -> None:
    """Refuse, by name, the fine-tuning data options `command` does not read (all but `reads`), rather than train
    as if they had not been given."""
    options = {"--domain_file": data_args.domain_file, "--replay_file": data_args.replay_file}
    if training_args is not None:
        options["--domain_adversarial_weight"] = training_args.domain_adversarial_weight
        options["--source_replay_weight"] = training_args.source_replay_weight
    given = [flag for flag, value in options.items() if value and flag not in reads]
    if given:
        raise ValueError(f"{command} does not read {', '.join(given)}: they are options of `hf-rnn-transfer finetune`.")


def _file_with_its_weight(file, weight, file_flag, weight_flag, purpose, example, needs) -> bool:
    """Whether a data file read only when its weight is > 0 is in use; refuses one without the other."""
    if file is None:
        if weight > 0:
            raise ValueError(f"{weight_flag} needs {needs}: pass {file_flag}.")
        return False
    if weight == 0:
        raise ValueError(f"{file_flag} is read only by {purpose}: set {weight_flag} (e.g. {example}).")
    return True


def encode_domain_texts(args: TargetDataArguments, tokenizer, training_args):
    """The `--domain_file` texts tokenised for domain-adversarial training (`None` without one); refuses the file
    without the weight that reads it, and the weight without the file."""
    if not _file_with_its_weight(
        args.domain_file, training_args.domain_adversarial_weight, "--domain_file", "--domain_adversarial_weight",
        "domain-adversarial training", "0.1", "unlabelled target texts",
    ):  # fmt: skip
        return None
    if tokenizer is None:
        raise ValueError("--domain_file holds texts, but this source reads series: domain adaptation needs texts.")
    from datasets import Dataset

    texts = _domain_texts(args)
    return Dataset.from_dict(dict(tokenizer(texts, truncation=True, max_length=args.max_length)))


def _domain_texts(args: TargetDataArguments) -> list[str]:
    """The `--domain_file` texts; refuses a missing or empty file, or one without any text, by that flag's name."""
    check_data_file("--domain_file", args.domain_file)
    texts = read_texts(args.domain_file, args)
    if not texts:
        raise ValueError(f"--domain_file {args.domain_file} holds no non-empty text.")
    return texts


def encode_replay_rows(args: TargetDataArguments, tokenizer, training_args, target):
    """The `--replay_file` rows tokenised, with their labels as the target's class ids, for source replay (`None`
    without one); refuses the file without the weight that reads it, the weight without the file, and labels the
    target does not have."""
    if not _file_with_its_weight(
        args.replay_file, training_args.source_replay_weight, "--replay_file", "--source_replay_weight",
        "source replay", "1.0", "the source's labelled texts",
    ):  # fmt: skip
        return None
    if tokenizer is None or target.labels is None or target.is_seq2seq:
        raise ValueError("--replay_file replays labelled texts: it needs a text classification target.")
    if not Path(args.replay_file).is_file():
        raise ValueError(f"--replay_file {args.replay_file} does not exist.")
    texts, labels = read_labelled_texts(args.replay_file, args, target.labels.label2id)
    from datasets import Dataset

    encoded = dict(tokenizer(texts, truncation=True, max_length=args.max_length))
    return Dataset.from_dict({**encoded, "labels": labels})


def check_source(source: str) -> None:
    """A source that names a local path must be a saved model folder; anything else is taken for a Hub repo id.
    (Without this a mistyped `./runs/lm` is sent to the Hub as a repo id and fails with a confusing message.)"""
    from ..hub import is_local_path

    path = Path(source).expanduser()
    if is_local_path(source):
        if not path.exists():
            raise FileNotFoundError(
                f"--source {source!r}: no such folder (and not a Hub repo id 'namespace/name'); give a folder written "
                "by save_pretrained or a repo id."
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--source {source!r} has no config.json: give a folder written by save_pretrained (weights, "
                "config.json, tokenizer)."
            )


def load_source_config(source: str, revision: str | None, token: str | None):
    """The source's config and, for token input, its tokenizer (`None` for series)."""
    from transformers import AutoConfig, AutoTokenizer

    from ..configuration_rnn import RNNConfig

    check_source(source)
    try:
        config = AutoConfig.from_pretrained(source, revision=revision, token=token)
    except ValueError as err:
        if "model_type" not in str(err) and "Unrecognized" not in str(err):
            raise
        raise ValueError(
            f"{source}: its config.json has no (known) `model_type`; hf-rnn-transfer sources are saved with "
            "model_type 'rnn_transfer' (save_pretrained of an RNN model)."
        ) from None
    if not isinstance(config, RNNConfig):
        raise ValueError(f"{source} is a {config.model_type!r} model; hf-rnn-transfer sources are 'rnn_transfer'.")
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, token=token) if config.is_token_input else None
    return config, tokenizer
