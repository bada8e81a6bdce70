"""`hf-rnn-transfer pretrain`: train a source model on a text corpus (causal language model), on series (forecasting)
or on labelled texts or series (classification), from scratch or continued from another source (`--init_from`)."""

from dataclasses import dataclass, field, replace

from .target_data import (
    TargetDataArguments,
    column_texts,
    encode_domain_texts,
    read_target,
    read_texts,
    refuse_unread_options,
)

PRETRAIN_OBJECTIVES = ("causal_lm", "forecasting", "classification")


@dataclass
class PretrainArguments:
    """Arguments of `hf-rnn-transfer pretrain` beyond the data and training ones."""

    objective: str = field(
        default="causal_lm",
        metadata={
            "help": "causal_lm (next-token prediction on the texts, truncated BPTT over contiguous streams), "
            "forecasting (the next --prediction_length values of series from --context_length-step windows) "
            "or classification (supervised on labelled texts or series).",
            "choices": PRETRAIN_OBJECTIVES,
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Continue from this source (repo id or directory) instead of from scratch, e.g. ULMFiT's "
            "target-domain LM stage: a tokenizer is trained on the new texts and the embedding and decoder rows "
            "are remapped by token string (new tokens start at the mean embedding). The shape flags are ignored."
        },
    )
    splits: list[str] = field(
        default_factory=lambda: ["train"],
        metadata={
            "help": "Splits to train on. causal_lm and forecasting read no labels, so the unlabelled rows of "
            "other splits of the source data may be used too (never the target's test data)."
        },
    )
    cell_type: str = field(default="lstm", metadata={"help": "lstm, gru or rnn."})
    embedding_size: int = field(
        default=128, metadata={"help": "Embedding size (the input projection's size for series)."}
    )
    hidden_size: int = field(default=256, metadata={"help": "Hidden size of each layer."})
    num_layers: int = field(default=2, metadata={"help": "Recurrent layers."})
    vocab_size: int = field(default=20_000, metadata={"help": "Largest vocabulary of the trained tokenizer."})
    vocabulary_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "More text files (json/jsonl/csv/parquet/txt, the --text_column) the tokenizer reads, e.g. the "
            "target's unlabelled texts, so its words get rows; never test data."
        },
    )
    embedding_dropout: float | None = field(
        default=None, metadata={"help": "Dropout on the embedding (default 0, or the --init_from source's)."}
    )
    layer_dropout: float | None = field(
        default=None, metadata={"help": "Dropout between recurrent layers (default 0, or the --init_from source's)."}
    )
    classifier_dropout: float | None = field(
        default=None, metadata={"help": "Dropout before the head (default 0, or the --init_from source's)."}
    )
    adaptive_softmax_cutoffs: list[int] | None = field(
        default=None,
        metadata={
            "help": "causal_lm: an adaptive softmax with these cutoffs (e.g. 2000 10000) instead of a full decoder "
            "tied to the embedding: the most frequent tokens form the head, rarer ones smaller clusters computed only "
            "where needed. 5-8x faster LM training with a 40,000-token vocabulary on a CPU (docs/benchmarks.md)."
        },
    )
    bptt: int = field(default=70, metadata={"help": "causal_lm: sequence length of a step (varied as AWD-LSTM)."})
    context_length: int = field(default=48, metadata={"help": "forecasting: steps the model reads."})
    prediction_length: int = field(default=8, metadata={"help": "forecasting: steps it predicts."})
    window_stride: int = field(default=8, metadata={"help": "forecasting: steps between consecutive windows."})
    push_to: str | None = field(default=None, metadata={"help": "Push the source to this repo id."})
    endpoint: str | None = field(default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT or offline Hub)."})
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})


def _training_split(raw, args: PretrainArguments):
    from datasets import concatenate_datasets

    missing = [s for s in args.splits if s not in raw]
    if missing:
        raise ValueError(f"--splits {missing} not in the data; it has {list(raw)}.")
    if args.objective == "classification" and args.splits != ["train"]:
        raise ValueError("classification pretraining reads labels: train on --splits train only.")
    return concatenate_datasets([raw[s] for s in args.splits])


def _vocabulary_texts(args: PretrainArguments, data_args: TargetDataArguments) -> list[str]:
    return [text for path in args.vocabulary_files for text in read_texts(path, data_args)]


def _build(model_class, args: PretrainArguments, token, transfer_options: dict | None = None, **config):
    """A fresh model of `model_class`, or one continued from `--init_from` with `config` overriding the source's."""
    from ..configuration_rnn import RNNConfig

    dropouts = {name: getattr(args, name) for name in ("embedding_dropout", "layer_dropout", "classifier_dropout")}
    if args.init_from is None:
        shape = dict(
            cell_type=args.cell_type,
            embedding_size=args.embedding_size,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            **{name: value or 0.0 for name, value in dropouts.items()},
        )
        return model_class(RNNConfig(**shape, **config))
    # transfer options route from_pretrained through `transfer`, which also takes a new vocabulary or head shape;
    # dropouts given on the command line replace the source's (a classifier wants more than its language model had)
    config.update({name: value for name, value in dropouts.items() if value is not None})
    options = {"transfer_layers": None, **(transfer_options or {})}
    model = model_class.from_pretrained(args.init_from, token=token, **options, **config)
    print(model.transfer_report)
    return model


def _classifier(args: PretrainArguments, token, labels, **config):
    """A supervised source: ULMFiT's concat pooling ([last, max, mean]) over the sequence."""
    from ..modeling_rnn import RNNForSequenceClassification

    return _build(
        RNNForSequenceClassification,
        args,
        token,
        pooling="concat",
        id2label=labels.id2label,
        label2id=labels.label2id,
        **config,
    )


@dataclass
class _Source:
    """What one objective trains: the model, its data and collator, its tokenizer (texts) and a card line."""

    model: object
    dataset: object
    collator: object
    tokenizer: object
    objective: str


def _is_series(train, data_args: TargetDataArguments) -> bool:
    return data_args.values_column in train.column_names and data_args.text_column not in train.column_names


def _series_source(train, args: PretrainArguments, data_args: TargetDataArguments, token) -> _Source:
    from ..data import DataCollatorForSeries, forecasting_windows, prepare_series, series_statistics
    from ..modeling_rnn import RNNForTimeSeriesForecasting

    if data_args.values_column not in train.column_names:
        raise ValueError(f"missing series column {data_args.values_column!r}; the dataset has {train.column_names}.")
    label_column = data_args.label_column if args.objective == "classification" else None
    series, labels = prepare_series(train, data_args.values_column, label_column, impute=data_args.impute)
    mean, std = series_statistics(series)
    statistics = dict(input_size=len(mean), input_mean=mean, input_std=std)
    if args.objective == "classification":
        model = _classifier(args, token, labels, **statistics)
        objective = f"supervised classification of series ({', '.join(labels.names)})"
        return _Source(model, series, DataCollatorForSeries(), None, objective)
    windows = forecasting_windows(series, args.context_length, args.prediction_length, stride=args.window_stride)
    model = _build(RNNForTimeSeriesForecasting, args, token, **statistics, prediction_length=args.prediction_length)
    objective = (
        f"forecasting: the next {args.prediction_length} steps from {args.context_length}-step windows "
        f"({len(windows)} windows of {len(series)} series)"
    )
    return _Source(model, windows, DataCollatorForSeries(), None, objective)


def _text_source(train, args: PretrainArguments, data_args: TargetDataArguments, training_args, token) -> _Source:
    from transformers import DataCollatorWithPadding

    from ..data import LanguageModelStream, prepare_text_classification, token_fields, train_tokenizer
    from ..modeling_rnn import RNNForCausalLM

    texts = column_texts(train, data_args)
    tokenizer = train_tokenizer(
        texts + _vocabulary_texts(args, data_args), vocab_size=args.vocab_size, model_max_length=data_args.max_length
    )
    tokens = token_fields(tokenizer)
    remap = {"target_tokenizer": tokenizer, "corpus": texts}
    if args.objective == "causal_lm":
        if training_args.max_steps <= 0:
            raise ValueError("causal_lm pretraining reads a stream: set --max_steps.")
        # a fresh LM ties its decoder to the embedding, or has an adaptive softmax; a continued one keeps its own
        decoder = {} if args.init_from else {"tie_word_embeddings": True}
        if args.adaptive_softmax_cutoffs and not args.init_from:
            decoder = {"adaptive_softmax_cutoffs": list(args.adaptive_softmax_cutoffs)}
        model = _build(
            RNNForCausalLM, args, token, **tokens, **decoder, transfer_options={**remap, "transfer_head": True}
        )
        batch_size = training_args.per_device_train_batch_size
        stream = LanguageModelStream(texts, tokenizer, batch_size=batch_size, bptt=args.bptt)
        objective = f"next-token prediction (causal LM), truncated BPTT {args.bptt}"
        return _Source(model, stream, None, tokenizer, objective)
    encoded, labels = prepare_text_classification(
        train, tokenizer, data_args.text_column, data_args.label_column, max_length=data_args.max_length
    )
    model = _classifier(args, token, labels, **tokens, transfer_options=remap)
    objective = f"supervised classification ({', '.join(labels.names)})"
    return _Source(model, encoded, DataCollatorWithPadding(tokenizer), tokenizer, objective)


@dataclass
class PretrainRun:
    """A trained source: the model and its trainer, tokenizer (texts), a card line, and the results."""

    model: object
    trainer: object
    tokenizer: object
    objective: str
    results: dict


def pretrain(args: PretrainArguments, data_args: TargetDataArguments, training_args, token=None) -> PretrainRun:
    """
    Train a source on a corpus, series or labelled data and save it to `output_dir` (no Hub session of its own:
    `token` reads an `--init_from` repo). A classifier is also scored on the data's test split, if it has one
    (`results["test_accuracy"]`): with another domain's test set, that is the source's zero-shot accuracy.

    `causal_lm` reads texts, `forecasting` reads series, `classification` reads either (series when the data has
    `--values_column` and no `--text_column`).
    """
    from transformers import set_seed

    from ..evaluation import classification_metrics
    from ..trainer import TransferTrainer, checkpoint_to_resume

    if args.objective not in PRETRAIN_OBJECTIVES:
        raise ValueError(f"--objective must be one of {', '.join(PRETRAIN_OBJECTIVES)}; got {args.objective!r}.")
    if args.adaptive_softmax_cutoffs and (args.objective != "causal_lm" or args.init_from):
        raise ValueError(
            "--adaptive_softmax_cutoffs shapes a new language model's decoder: use it with --objective causal_lm "
            "and without --init_from (a continued language model keeps the decoder it has)."
        )
    with training_args.main_process_first(desc="reading the data"):  # the first process writes the datasets cache
        raw = read_target(data_args)
    train = _training_split(raw, args)
    set_seed(training_args.seed)  # the new weights are drawn before the Trainer seeds itself
    if args.objective == "forecasting" or (args.objective == "classification" and _is_series(train, data_args)):
        source = _series_source(train, args, data_args, token)
    else:
        source = _text_source(train, args, data_args, training_args, token)
    if args.objective == "causal_lm":
        training_args = replace(training_args, carry_recurrent_state=True)
    objective = source.objective + (f", continued from {args.init_from}" if args.init_from else "")
    domain = encode_domain_texts(data_args, source.tokenizer, training_args)
    if domain is not None and args.objective != "classification":
        raise ValueError("--domain_file adapts a classifier: use it with --objective classification.")
    trainer = TransferTrainer(
        model=source.model,
        args=training_args,
        train_dataset=source.dataset,
        data_collator=source.collator,
        processing_class=source.tokenizer,
        compute_metrics=classification_metrics,
        domain_dataset=domain,
    )
    trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args))
    trainer.save_model(training_args.output_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    results = {
        "objective": objective,
        "final_training_loss": losses[-1] if losses else None,
        "output_dir": training_args.output_dir,
    }
    if args.objective == "classification" and "test" in raw:
        test = _encoded_test(raw["test"], source, data_args)
        results["test_accuracy"] = trainer.evaluate(test, metric_key_prefix="test")["test_accuracy"]
    return PretrainRun(source.model, trainer, source.tokenizer, objective, results)


def _encoded_test(test, source: _Source, data_args: TargetDataArguments):
    """The test split encoded as the source's training data was (its tokenizer or series, its label ids)."""
    from datasets import DatasetDict

    from ..data import prepare_series, prepare_text_classification

    config = source.model.config
    names = [config.id2label[i] for i in range(config.num_labels)]
    splits = DatasetDict(test=test)
    if source.tokenizer is not None:
        encoded, _ = prepare_text_classification(
            splits,
            source.tokenizer,
            data_args.text_column,
            data_args.label_column,
            max_length=data_args.max_length,
            label_names=names,
            train_split="test",
        )
    else:
        encoded, _ = prepare_series(
            splits,
            data_args.values_column,
            data_args.label_column,
            impute=data_args.impute,
            label_names=names,
            train_split="test",
        )
    return encoded["test"]


def push_source(run: PretrainRun, repo_id: str, token, data_description: str, args: PretrainArguments, **card):
    """Push a trained source with its tokenizer and a card filled from the trainer's recipe (and its test score)."""
    from ..hub import CardContent, Metric, is_hub_id, push_model

    metrics = card.pop("metrics", None)
    if metrics is None and "test_accuracy" in run.results:
        metrics = [Metric("accuracy", run.results["test_accuracy"])]
    report = getattr(run.model, "transfer_report", None)
    content = CardContent(
        repo_id=repo_id,
        objective=card.pop("objective", run.objective),
        data_description=data_description,
        base_model=args.init_from if args.init_from and is_hub_id(args.init_from) else None,
        metrics=metrics or [],
        training=run.trainer.transfer_recipe(),
        transfer=report.to_dict() if report is not None and args.init_from else None,
        **card,
    )
    return push_model(run.model, repo_id, card=content, tokenizer=run.tokenizer, token=token)


def run_pretrain(args: PretrainArguments, data_args: TargetDataArguments, training_args) -> dict:
    """`hf-rnn-transfer pretrain`: `pretrain` in a Hub session, then `push_source` when `--push_to` is given."""
    from ..hub import resolve_hub

    refuse_unread_options("pretrain", data_args, training_args, reads=("--domain_file", "--domain_adversarial_weight"))

    namespace = (args.push_to or "local/x").split("/")[0]
    with resolve_hub(args.endpoint, None, args.hub_root, namespace=namespace) as (_, token):
        run = pretrain(args, data_args, training_args, token)
        if not run.trainer.is_world_process_zero():
            return {}  # a distributed run's other processes: the first one reports and pushes
        results = dict(run.results)
        if args.push_to:
            commit = push_source(run, args.push_to, token, data_args.dataset or "local files", args)
            results["pushed"] = f"{args.push_to}@{commit.oid}"
    print(results)
    return results
