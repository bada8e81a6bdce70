"""The `finetune` and `rank-sources` commands: a source (Hub repo or directory) and a target dataset (a Hub dataset
id or local files), from the shell."""

from dataclasses import dataclass, field
from pathlib import Path

from datasets import DatasetDict, load_dataset

_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def load_target(dataset: str | None, train_file: str | None, test_file: str | None) -> DatasetDict:
    """A Hub dataset id (or a local dataset folder), or local train/test files (json, jsonl, csv, parquet)."""
    if train_file:
        files = {"train": train_file, **({"test": test_file} if test_file else {})}
        suffix = Path(train_file).suffix
        if suffix not in _FORMATS:
            raise ValueError(f"--train_file must be one of {sorted(_FORMATS)}, got {train_file!r}.")
        return load_dataset(_FORMATS[suffix], data_files=files)
    if not dataset:
        raise ValueError("pass --dataset (a Hub dataset id or folder) or --train_file (and --test_file).")
    return load_dataset(dataset)


@dataclass
class TargetDataArguments:
    """Where the target data is and which columns to read."""

    dataset: str | None = field(default=None, metadata={"help": "Hub dataset id or local dataset folder."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file (json/jsonl/csv/parquet)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file, evaluated after training."})
    text_column: str = field(default="text", metadata={"help": "Column with the texts."})
    label_column: str = field(default="label", metadata={"help": "Column with the labels."})
    max_length: int = field(default=256, metadata={"help": "Texts are cut to this many tokens."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})


@dataclass
class SourceArguments:
    """The source model and the Hub it lives on."""

    source: str = field(metadata={"help": "Source model: a Hub repo id or a local directory."})
    revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of the source repo."})
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT, else the offline Hub on --hub_root)."}
    )
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})
    transfer_layers: int | None = field(default=None, metadata={"help": "Transfer the first k layers (default all)."})
    transfer_head: bool = field(default=False, metadata={"help": "Also transfer the head (same labels only)."})
    push_to: str | None = field(default=None, metadata={"help": "Push the fine-tuned model to this repo id."})


def run_finetune(source_args: SourceArguments, data_args: TargetDataArguments, training_args) -> dict:
    """Transfer the source into a classifier for the target labels, fine-tune it, evaluate it, optionally push it."""
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from .data import prepare_text_classification
    from .evaluation import accuracy_of
    from .hub import CardContent, Metric, is_hub_id, push_model, resolve_hub
    from .modeling_rnn import RNNForSequenceClassification
    from .trainer import TransferTrainer

    raw = load_target(data_args.dataset, data_args.train_file, data_args.test_file)
    if data_args.max_train_examples:
        raw["train"] = raw["train"].select(range(min(data_args.max_train_examples, len(raw["train"]))))
    namespace = (source_args.push_to or "local/x").split("/")[0]
    with resolve_hub(source_args.endpoint, None, source_args.hub_root, namespace=namespace) as (_, token):
        tokenizer = AutoTokenizer.from_pretrained(source_args.source, revision=source_args.revision, token=token)
        encoded, labels = prepare_text_classification(
            raw, tokenizer, data_args.text_column, data_args.label_column, max_length=data_args.max_length
        )
        model = RNNForSequenceClassification.from_pretrained(
            source_args.source,
            revision=source_args.revision,
            token=token,
            id2label=labels.id2label,
            label2id=labels.label2id,
            transfer_layers=source_args.transfer_layers,
            transfer_head=source_args.transfer_head,
        )
        print(model.transfer_report)
        collator = DataCollatorWithPadding(tokenizer)
        trainer = TransferTrainer(
            model=model,
            args=training_args,
            train_dataset=encoded["train"],
            data_collator=collator,
            processing_class=tokenizer,
        )
        trainer.train()
        trainer.save_model(training_args.output_dir)
        results = {"transfer": model.transfer_report.summary, "recipe": trainer.transfer_recipe()}
        if "test" in encoded:
            results["test_accuracy"] = accuracy_of(model, encoded["test"], collator)
            print(f"test accuracy: {results['test_accuracy']:.4f}")
        if source_args.push_to:
            card = CardContent(
                repo_id=source_args.push_to,
                objective=f"text classification ({', '.join(labels.names)}), fine-tuned with hf-rnn-transfer",
                data_description=data_args.dataset or "local files",
                base_model=source_args.source if is_hub_id(source_args.source) else None,
                metrics=[Metric("accuracy", results["test_accuracy"])] if "test_accuracy" in results else [],
                training=results["recipe"],
                transfer=model.transfer_report.to_dict(),
            )
            commit = push_model(model, source_args.push_to, card=card, tokenizer=tokenizer, token=token)
            results["pushed"] = f"{source_args.push_to}@{commit.oid}"
            print(f"pushed {results['pushed']}")
    return results


@dataclass
class RankSourcesArguments:
    """Arguments of `hf-rnn-transfer rank-sources`."""

    candidates: list[str] = field(metadata={"help": "Candidate sources: Hub repo ids or local directories."})
    output: str | None = field(default=None, metadata={"help": "Write the ranking table (markdown) here."})
    max_examples: int = field(default=1000, metadata={"help": "Score on this many target rows."})
    endpoint: str | None = field(default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT or offline Hub)."})
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})


def run_rank_sources(args: RankSourcesArguments, data_args: TargetDataArguments) -> str:
    from .hub import resolve_hub
    from .selection import rank_sources

    raw = load_target(data_args.dataset, data_args.train_file, data_args.test_file)
    with resolve_hub(args.endpoint, None, args.hub_root) as (_, token):
        ranking = rank_sources(
            args.candidates,
            raw["train"].shuffle(seed=0),
            text_column=data_args.text_column,
            label_column=data_args.label_column,
            max_examples=args.max_examples,
            token=token,
            max_length=data_args.max_length,
        )
    table = ranking.to_markdown()
    print(table)
    if args.output:
        ranking.write(args.output)
    return table


@dataclass
class CompareArguments:
    """Arguments of `hf-rnn-transfer compare` beyond the source, data and training ones."""

    budgets: list[int] = field(default_factory=lambda: [50, 100, 200, 500], metadata={"help": "Label budgets."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds."})
    scratch_epochs: float = field(default=10.0, metadata={"help": "Epochs of the scratch model."})
    scratch_learning_rate: float = field(default=3e-3, metadata={"help": "Learning rate of the scratch model."})
    report: str = field(default="comparison.md", metadata={"help": "Markdown report (a PNG curve goes beside it)."})


def run_compare(
    compare_args: CompareArguments, source_args: SourceArguments, data_args: TargetDataArguments, training_args
) -> str:
    """Transfer vs scratch (and TF-IDF + LR) on the target data over budgets and seeds; writes the report and plot."""
    from dataclasses import replace

    from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

    from .configuration_rnn import RNNConfig
    from .data import prepare_text_classification
    from .evaluation import compare
    from .hub import resolve_hub
    from .modeling_rnn import RNNForSequenceClassification

    raw = load_target(data_args.dataset, data_args.train_file, data_args.test_file)
    if "test" not in raw:
        raise ValueError("compare needs a test split: pass --test_file (or a dataset with a test split).")
    with resolve_hub(source_args.endpoint, None, source_args.hub_root) as (_, token):
        tokenizer = AutoTokenizer.from_pretrained(source_args.source, revision=source_args.revision, token=token)
        encoded, labels = prepare_text_classification(
            raw, tokenizer, data_args.text_column, data_args.label_column, max_length=data_args.max_length
        )
        options = dict(
            revision=source_args.revision,
            token=token,
            id2label=labels.id2label,
            label2id=labels.label2id,
            transfer_layers=source_args.transfer_layers,
            transfer_head=source_args.transfer_head,
        )
        template = RNNForSequenceClassification.from_pretrained(source_args.source, **options)

        def make_transfer(seed):
            set_seed(seed)
            return RNNForSequenceClassification.from_pretrained(source_args.source, **options)

        def make_scratch(seed):
            set_seed(seed)
            return RNNForSequenceClassification(RNNConfig.from_dict(template.config.to_dict()))

        scratch_args = replace(
            training_args,
            freezing_strategy="none",
            discriminative_lr=False,
            l2sp_alpha=0.0,
            l2sp_beta=0.0,
            num_train_epochs=compare_args.scratch_epochs,
            learning_rate=compare_args.scratch_learning_rate,
            lr_scheduler_type="linear",
        )
        result = compare(
            make_transfer,
            make_scratch,
            encoded["train"],
            encoded["test"],
            training_args,
            DataCollatorWithPadding(tokenizer),
            budgets=compare_args.budgets,
            seeds=compare_args.seeds,
            scratch_args=scratch_args,
            texts=(raw["train"][data_args.text_column], raw["test"][data_args.text_column]),
        )
    report = Path(compare_args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    curve = report.with_suffix(".png")
    result.plot(curve)
    text = result.to_markdown() + f"\n\n![learning curve]({curve.name})\n"
    report.write_text(text)
    print(text)
    return text


PRETRAIN_OBJECTIVES = ("causal_lm", "classification")


@dataclass
class PretrainArguments:
    """Arguments of `hf-rnn-transfer pretrain` beyond the data and training ones."""

    objective: str = field(
        default="causal_lm",
        metadata={
            "help": "causal_lm (next-token prediction on the texts, truncated BPTT over contiguous streams) "
            "or classification (supervised on the labels).",
            "choices": PRETRAIN_OBJECTIVES,
        },
    )
    cell_type: str = field(default="lstm", metadata={"help": "lstm, gru or rnn."})
    embedding_size: int = field(default=128, metadata={"help": "Embedding size."})
    hidden_size: int = field(default=256, metadata={"help": "Hidden size of each layer."})
    num_layers: int = field(default=2, metadata={"help": "Recurrent layers."})
    vocab_size: int = field(default=20_000, metadata={"help": "Largest vocabulary of the trained tokenizer."})
    bptt: int = field(default=70, metadata={"help": "causal_lm: sequence length of a step (varied as AWD-LSTM)."})
    push_to: str | None = field(default=None, metadata={"help": "Push the source to this repo id."})
    endpoint: str | None = field(default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT or offline Hub)."})
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})


def run_pretrain(args: PretrainArguments, data_args: TargetDataArguments, training_args) -> dict:
    """Train a source model from scratch on a corpus (language model) or labelled texts, save it, optionally push."""
    from dataclasses import replace

    from transformers import DataCollatorWithPadding

    from .configuration_rnn import RNNConfig
    from .data import LanguageModelStream, prepare_text_classification, train_tokenizer
    from .hub import CardContent, push_model, resolve_hub
    from .modeling_rnn import RNNForCausalLM, RNNForSequenceClassification
    from .trainer import TransferTrainer

    if args.objective not in PRETRAIN_OBJECTIVES:
        raise ValueError(f"--objective must be one of {', '.join(PRETRAIN_OBJECTIVES)}; got {args.objective!r}.")
    raw = load_target(data_args.dataset, data_args.train_file, data_args.test_file)
    train = raw["train"]
    if data_args.text_column not in train.column_names:
        raise ValueError(f"missing text column {data_args.text_column!r}; the dataset has {train.column_names}.")
    if data_args.max_train_examples:
        train = train.select(range(min(data_args.max_train_examples, len(train))))
    texts = [t for t in train[data_args.text_column] if isinstance(t, str) and t.strip()]
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size, model_max_length=data_args.max_length)
    shape = dict(
        cell_type=args.cell_type,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        embedding_size=args.embedding_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
    )
    if args.objective == "causal_lm":
        if training_args.max_steps <= 0:
            raise ValueError("causal_lm pretraining reads a stream: set --max_steps.")
        model = RNNForCausalLM(RNNConfig(**shape, tie_word_embeddings=True))
        dataset = LanguageModelStream(
            texts, tokenizer, batch_size=training_args.per_device_train_batch_size, bptt=args.bptt
        )
        training_args = replace(training_args, carry_recurrent_state=True)
        collator = None
        objective = f"next-token prediction (causal LM), truncated BPTT {args.bptt}"
    else:
        encoded, labels = prepare_text_classification(
            train, tokenizer, data_args.text_column, data_args.label_column, max_length=data_args.max_length
        )
        model = RNNForSequenceClassification(
            RNNConfig(**shape, pooling="concat", id2label=labels.id2label, label2id=labels.label2id)
        )
        dataset, collator = encoded, DataCollatorWithPadding(tokenizer)
        objective = f"supervised classification ({', '.join(labels.names)})"
    trainer = TransferTrainer(
        model=model, args=training_args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    results = {
        "objective": objective,
        "final_training_loss": losses[-1] if losses else None,
        "output_dir": training_args.output_dir,
    }
    if args.push_to:
        with resolve_hub(args.endpoint, None, args.hub_root, namespace=args.push_to.split("/")[0]) as (_, token):
            card = CardContent(
                repo_id=args.push_to,
                objective=objective,
                data_description=data_args.dataset or "local files",
                training=trainer.transfer_recipe(),
            )
            commit = push_model(model, args.push_to, card=card, tokenizer=tokenizer, token=token)
        results["pushed"] = f"{args.push_to}@{commit.oid}"
    print(results)
    return results
