"""Dialogue transfer: a response model pretrained on DailyDialog conversations of every topic but one -> that topic,
and its encoder -> dialogue-act classification of utterances.

    python examples/dialogue/transfer_dialogue.py --dailydialog $HF_RNN_TRANSFER_DATA/dailydialog/dailydialog.jsonl.gz \
        --target_topic 6 --output_dir runs/dialogue

1. Response generation: an LSTM encoder-decoder with attention reads the last `--history` turns and writes the next
   one. The source trains on the training dialogues of the other topics; it is moved whole (`transfer`) into a model
   fine-tuned on 100 / 500 dialogues of the target topic (6 = Tourism), against the same model from scratch. Scored on
   the target topic's test dialogues: perplexity of the real responses, BLEU and chrF of greedy responses, and
   distinct-1/2 (diversity).
2. Understanding: the source's encoder moves into a dialogue-act classifier (inform / question / directive /
   commissive) of single utterances, trained on a small budget of the target topic's labelled utterances, against
   scratch and TF-IDF + logistic regression (`compare`, 3 seeds).

DailyDialog is research use only (CC BY-NC-SA 4.0): read its PROVENANCE.md; it never ships with the package.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, load_dataset
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, HfArgumentParser, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSeq2SeqLM, RNNForSequenceClassification
from hf_rnn_transfer.data import prepare_dialogue, prepare_text_classification, token_fields, train_tokenizer
from hf_rnn_transfer.evaluation import compare, evaluate_generation, scratch_arguments
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer

TOPICS = {
    1: "ordinary life",
    2: "school life",
    3: "culture & education",
    4: "attitude & emotion",
    5: "relationship",
    6: "tourism",
    7: "health",
    8: "work",
    9: "politics",
    10: "finance",
}
ACTS = {1: "inform", 2: "question", 3: "directive", 4: "commissive"}


@dataclass
class DialogueArguments:
    dailydialog: str = field(metadata={"help": "dailydialog.jsonl.gz (turns, acts, topic, split)."})
    target_topic: int = field(default=6, metadata={"help": f"The target topic: {TOPICS}."})
    history: int = field(default=2, metadata={"help": "Turns of context before each response."})
    source_dialogues: int = field(default=4000, metadata={"help": "Source training dialogues (other topics)."})
    budgets: list[int] = field(default_factory=lambda: [100, 500], metadata={"help": "Target training dialogues."})
    target_epochs: list[float] = field(default_factory=lambda: [10.0, 5.0], metadata={"help": "One per budget."})
    source_epochs: float = field(default=4.0, metadata={"help": "Epochs of the source."})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the response comparison."})
    act_budgets: list[int] = field(default_factory=lambda: [100, 400], metadata={"help": "Labelled utterances."})
    act_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of the act comparison."})
    test_dialogues: int | None = field(default=None, metadata={"help": "Score on the first N test dialogues only."})
    hidden_size: int = field(default=256, metadata={"help": "Encoder and decoder width."})
    max_length: int = field(default=48, metadata={"help": "Longest context / response kept, in tokens."})
    output_dir: str = field(default="runs/dialogue", metadata={"help": "Where models and results go."})


def training(output_dir, epochs, learning_rate, seed=0, **extra):
    recipe = dict(
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=64,
        train_sampling_strategy="group_by_length",
        warmup_steps=0.05,
        max_grad_norm=1.0,
        logging_strategy="epoch",
        disable_tqdm=False,
        seed=seed,
    )
    return TransferTrainingArguments.for_experiment(output_dir, **{**recipe, **extra})


def utterances(dialogues) -> Dataset:
    """Every utterance with its dialogue act, one row each."""
    rows = [{"text": t, "label": ACTS[a]} for d in dialogues for t, a in zip(d["turns"], d["acts"])]
    return Dataset.from_list(rows)


def main():
    (args,) = HfArgumentParser(DialogueArguments).parse_args_into_dataclasses()
    if args.target_topic not in TOPICS:
        raise ValueError(f"--target_topic must be one of {TOPICS}, got {args.target_topic}.")
    started = time.perf_counter()
    data = load_dataset("json", data_files=args.dailydialog)["train"]
    topic = args.target_topic
    source = data.filter(lambda d: d["split"] == "train" and d["topic"] is not None and d["topic"] != topic)
    source = source.shuffle(seed=0).select(range(min(args.source_dialogues, len(source))))
    target = data.filter(lambda d: d["split"] == "train" and d["topic"] == topic).shuffle(seed=0)
    test = data.filter(lambda d: d["split"] == "test" and d["topic"] == topic)
    if args.test_dialogues:
        test = test.select(range(min(args.test_dialogues, len(test))))
    print(
        f"source: {len(source)} dialogues of other topics; target ({TOPICS[topic]}): {len(target)} training, "
        f"{len(test)} test dialogues"
    )
    texts = [t for split in (source, target) for d in split["turns"] for t in d]
    tokenizer = train_tokenizer(texts, vocab_size=20_000, min_frequency=2, model_max_length=args.max_length)
    encode = dict(
        history=args.history, max_source_length=args.max_length, max_target_length=args.max_length, truncation=True
    )
    keep = ["turns"]
    source_pairs = prepare_dialogue(source.select_columns(keep), tokenizer, **encode)
    test_pairs = prepare_dialogue(test.select_columns(keep), tokenizer, **encode)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    config = RNNConfig(
        embedding_size=args.hidden_size,
        hidden_size=args.hidden_size,
        num_layers=1,
        bidirectional=False,
        attention="luong",
        input_feeding=False,
        tie_word_embeddings=True,
        embedding_dropout=0.2,
        layer_dropout=0.2,
        classifier_dropout=0.2,
        pooling="concat",
        **token_fields(tokenizer),
    )
    out = Path(args.output_dir)

    def score(model):
        return evaluate_generation(model, test_pairs, tokenizer, collator, max_new_tokens=args.max_length)

    set_seed(0)
    general = RNNForSeq2SeqLM(config)
    TransferTrainer(
        model=general,
        args=training(str(out / "source"), args.source_epochs, 2e-3),
        train_dataset=source_pairs.remove_columns("length"),
        data_collator=collator,
    ).train()
    general.save_pretrained(out / "source")
    tokenizer.save_pretrained(out / "source")
    results = {"zero_shot": score(general), "responses": {}, "acts": None}
    print(f"source on {TOPICS[topic]} test dialogues: perplexity {results['zero_shot']['perplexity']:.1f}")
    for budget, epochs in zip(args.budgets, args.target_epochs):
        rows = prepare_dialogue(
            target.select(range(min(budget, len(target)))).select_columns(keep), tokenizer, **encode
        )
        per_seed = {"transfer": [], "scratch": []}
        for seed in args.seeds:
            set_seed(seed)
            transferred, _ = transfer(general, RNNForSeq2SeqLM(config))
            scratch = RNNForSeq2SeqLM(config)
            for name, model, rate in (("transfer", transferred, 1e-3), ("scratch", scratch, 2e-3)):
                run = training(str(out / f"{name}-{budget}-{seed}"), epochs, rate, seed)
                TransferTrainer(
                    model=model, args=run, train_dataset=rows.remove_columns("length"), data_collator=collator
                ).train()
                per_seed[name].append(score(model))
        results["responses"][budget] = per_seed

    # understanding: the response model's encoder into a dialogue-act classifier of single utterances
    acts_train, acts_test = utterances(target), utterances(test)
    encoded_train, labels = prepare_text_classification(acts_train, tokenizer, max_length=args.max_length)
    encoded_test, _ = prepare_text_classification(
        acts_test, tokenizer, max_length=args.max_length, label_names=labels.names, train_split="train"
    )
    classifier_config = RNNConfig(
        **{
            **config.to_dict(),
            "id2label": labels.id2label,
            "label2id": labels.label2id,
            "num_labels": len(labels.names),
        }
    )

    def make_transfer(seed):
        set_seed(seed)
        return transfer(general, RNNForSequenceClassification(classifier_config))[0]

    def make_scratch(seed):
        set_seed(seed)
        return RNNForSequenceClassification(classifier_config)

    act_args = training(
        str(out / "acts"),
        8,
        4e-3,
        freezing_strategy="gradual",
        unfreeze_interval=2,
        discriminative_lr=True,
        disable_tqdm=True,
        logging_strategy="no",
    )
    act_result = compare(
        make_transfer,
        make_scratch,
        encoded_train,
        encoded_test,
        act_args,
        DataCollatorWithPadding(tokenizer),
        budgets=args.act_budgets,
        seeds=args.act_seeds,
        scratch_args=scratch_arguments(act_args, learning_rate=3e-3, num_train_epochs=10),
        texts=(acts_train["text"], acts_test["text"]),
    )
    results["acts"] = act_result.to_card()
    results["seconds"] = round(time.perf_counter() - started)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))

    zero = results["zero_shot"]
    print(f"\nResponses ({TOPICS[topic]} test dialogues, history {args.history} turns, greedy):\n")
    print("| target dialogues | model | perplexity | BLEU | chrF | distinct-1 | distinct-2 |")
    print("|---|---|---|---|---|---|---|")
    metrics = ("perplexity", "bleu", "chrf", "distinct_1", "distinct_2")
    print("| 0 | source only | " + " | ".join(f"{zero[m]:.3g}" for m in metrics) + " |")
    for budget, per_seed in results["responses"].items():
        for name, runs in per_seed.items():
            print(
                f"| {budget} | {name} | " + " | ".join(f"{np.mean([r[m] for r in runs]):.3g}" for m in metrics) + " |"
            )
    print("\nDialogue acts of single utterances (accuracy):\n")
    print(act_result.to_markdown())
    print(f"({results['seconds']} s)")


if __name__ == "__main__":
    main()
