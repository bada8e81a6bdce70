"""Token classification transfer: a NER source (CoNLL-2003 news) -> a target with other entity types (WNUT-17 tweets).

    python examples/token_classification/transfer_ner.py \
        --source_train $HF_RNN_TRANSFER_DATA/conll2003/train.jsonl \
        --target_train $HF_RNN_TRANSFER_DATA/wnut17/train.jsonl --target_test $HF_RNN_TRANSFER_DATA/wnut17/test.jsonl \
        --target_examples 1000 --output_dir runs/ner

Any JSON Lines / CSV / parquet files (or Hub datasets, with --source_dataset/--target_dataset) with a column of
pre-split words and a column of word-level tags work. The source's encoder and embeddings move into the target
model; the head is new (the label sets differ). Prints entity-level F1 (seqeval, CoNLL scoring: type and exact
span) on the target's test set for transfer and scratch, same data, same seeds.
"""

from dataclasses import dataclass, field

import numpy as np
from datasets import DatasetDict, load_dataset
from transformers import DataCollatorForTokenClassification, HfArgumentParser, set_seed

from hf_rnn_transfer import RNNConfig, RNNForTokenClassification
from hf_rnn_transfer.data import prepare_token_classification, train_tokenizer
from hf_rnn_transfer.evaluation import entity_metrics, evaluate_classifier
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer


@dataclass
class NerArguments:
    source_train: str | None = field(default=None, metadata={"help": "Source training file (words + tags)."})
    source_dataset: str | None = field(default=None, metadata={"help": "Or a Hub dataset id for the source."})
    target_train: str | None = field(default=None, metadata={"help": "Target training file."})
    target_test: str | None = field(default=None, metadata={"help": "Target test file."})
    target_dataset: str | None = field(default=None, metadata={"help": "Or a Hub dataset id (train/test splits)."})
    tokens_column: str = field(default="tokens", metadata={"help": "Column of words."})
    tags_column: str = field(default="tags", metadata={"help": "Column of word-level tags."})
    source_examples: int | None = field(default=None, metadata={"help": "Source training sentences used."})
    target_examples: int = field(default=1000, metadata={"help": "Target training sentences used."})
    source_epochs: float = field(default=2.0, metadata={"help": "Source epochs."})
    target_epochs: float = field(default=6.0, metadata={"help": "Target epochs (both models)."})
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "Seeds."})
    output_dir: str = field(default="runs/ner", metadata={"help": "Where to write."})


def load(files: dict, dataset: str | None) -> DatasetDict:
    if dataset:
        return load_dataset(dataset)
    return load_dataset("json", data_files={k: v for k, v in files.items() if v})


def main():
    (args,) = HfArgumentParser(NerArguments).parse_args_into_dataclasses()
    source = load({"train": args.source_train}, args.source_dataset)
    target = load({"train": args.target_train, "test": args.target_test}, args.target_dataset)
    if args.source_examples:
        source["train"] = source["train"].select(range(min(args.source_examples, len(source["train"]))))
    target["train"] = target["train"].shuffle(seed=0).select(range(min(args.target_examples, len(target["train"]))))
    words = [" ".join(t) for split in (source["train"], target["train"]) for t in split[args.tokens_column]]
    tokenizer = train_tokenizer(words, vocab_size=30000, min_frequency=2, lowercase=False, model_max_length=128)
    source_data, source_tags = prepare_token_classification(source, tokenizer, args.tokens_column, args.tags_column)
    target_data, target_tags = prepare_token_classification(target, tokenizer, args.tokens_column, args.tags_column)
    collator = DataCollatorForTokenClassification(tokenizer)
    shape = dict(
        cell_type="gru",
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        embedding_size=64,
        hidden_size=64,
        num_layers=1,
        bidirectional=True,
        embedding_dropout=0.1,
        classifier_dropout=0.2,
    )

    def training(epochs, seed, **extra):
        return TransferTrainingArguments.for_experiment(
            f"{args.output_dir}/trainer",
            num_train_epochs=epochs,
            learning_rate=5e-3,
            per_device_train_batch_size=32,
            logging_strategy="epoch",
            disable_tqdm=False,
            seed=seed,
            **extra,
        )

    set_seed(0)
    ner_source = RNNForTokenClassification(
        RNNConfig(**shape, id2label=source_tags.id2label, label2id=source_tags.label2id)
    )
    TransferTrainer(
        model=ner_source,
        args=training(args.source_epochs, 0),
        data_collator=collator,
        train_dataset=source_data["train"].remove_columns("length"),
    ).train()
    ner_source.save_pretrained(f"{args.output_dir}/source")
    tokenizer.save_pretrained(f"{args.output_dir}/source")
    target_config = dict(**shape, id2label=target_tags.id2label, label2id=target_tags.label2id)
    scores = {"transfer": [], "scratch": []}
    for seed in args.seeds:
        set_seed(seed)
        scratch = RNNForTokenClassification(RNNConfig(**target_config))
        transferred, report = transfer(ner_source, RNNForTokenClassification(RNNConfig(**target_config)))
        for name, model, extra in (("transfer", transferred, {"discriminative_lr": True}), ("scratch", scratch, {})):
            TransferTrainer(
                model=model,
                args=training(args.target_epochs, seed, **extra),
                data_collator=collator,
                train_dataset=target_data["train"].remove_columns("length"),
            ).train()
            metrics = evaluate_classifier(
                model, target_data["test"], collator, compute_metrics=entity_metrics(target_tags.names)
            )
            scores[name].append(metrics["test_entity_f1"])
    print(report)
    for name, values in scores.items():
        print(
            f"{name}: entity F1 (seqeval) {np.mean(values):.3f} ± {np.std(values):.3f} "
            f"(seeds {args.seeds}: {[round(v, 3) for v in values]})"
        )


if __name__ == "__main__":
    main()
