"""Translation domain transfer: a general-domain German->English model (Tatoeba) -> image captions (Multi30k).

    python examples/translation/transfer_translation.py \
        --tatoeba $HF_RNN_TRANSFER_DATA/tatoeba_en_de/en_de.jsonl.gz \
        --multi30k $HF_RNN_TRANSFER_DATA/multi30k/multi30k.jsonl.gz --output_dir runs/translation

An LSTM encoder-decoder with attention (`RNNForSeq2SeqLM`) is trained on the short general-domain sentence pairs of
Tatoeba, then moved whole (`transfer`, target_part="all") into a caption translator fine-tuned on 1k / 5k / 29k
Multi30k pairs, against the same model trained from scratch on the same pairs with the same seeds. Corpus BLEU and
chrF (sacrebleu) on Multi30k's test_2016_flickr split, greedy decoding. Tatoeba pairs whose German or English side is a
Multi30k test sentence are removed first, so the source never saw a test caption. Licences: Multi30k is research use
only, Tatoeba needs attribution (CC BY 2.0 FR): read each PROVENANCE.md; neither ships with the package.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import load_dataset
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, HfArgumentParser, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSeq2SeqLM
from hf_rnn_transfer.data import prepare_translation, token_fields, train_tokenizer
from hf_rnn_transfer.evaluation import evaluate_generation
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer


@dataclass
class TranslationArguments:
    tatoeba: str = field(metadata={"help": "Tatoeba en-de pairs (en_de.jsonl.gz: en, de)."})
    multi30k: str = field(metadata={"help": "Multi30k (multi30k.jsonl.gz: en, de, split)."})
    source_language: str = field(default="de", metadata={"help": "Translate from this side."})
    target_language: str = field(default="en", metadata={"help": "Into this side."})
    source_pairs: int = field(default=50_000, metadata={"help": "Tatoeba pairs the source trains on."})
    budgets: list[int] = field(default_factory=lambda: [1000, 5000, 29000], metadata={"help": "Multi30k pairs."})
    target_epochs: list[float] = field(
        default_factory=lambda: [20.0, 8.0, 4.0], metadata={"help": "Fine-tuning epochs, one per budget."}
    )
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the comparison."})
    source_epochs: float = field(default=5.0, metadata={"help": "Epochs on Tatoeba."})
    hidden_size: int = field(default=256, metadata={"help": "Encoder and decoder width."})
    embedding_size: int = field(default=256, metadata={"help": "Embedding size."})
    max_length: int = field(default=40, metadata={"help": "Longest sentence kept, in tokens."})
    test_pairs: int | None = field(default=None, metadata={"help": "Score on the first N test pairs only."})
    source_dir: str | None = field(
        default=None, metadata={"help": "Reuse a source saved by an earlier run (its folder) instead of training one."}
    )
    methods: list[str] = field(
        default_factory=lambda: ["transfer", "scratch"], metadata={"help": "Which of transfer and scratch to run."}
    )
    output_dir: str = field(default="runs/translation", metadata={"help": "Where models and results go."})


def training(output_dir, epochs, learning_rate, seed=0):
    return TransferTrainingArguments.for_experiment(
        output_dir,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=64,
        train_sampling_strategy="group_by_length",
        lr_scheduler_type="linear",
        warmup_steps=0.05,
        max_grad_norm=1.0,
        logging_strategy="epoch",
        disable_tqdm=False,
        seed=seed,
    )


def main():
    (args,) = HfArgumentParser(TranslationArguments).parse_args_into_dataclasses()
    started = time.perf_counter()
    src, tgt = args.source_language, args.target_language
    multi30k = load_dataset("json", data_files=args.multi30k)["train"]
    test = multi30k.filter(lambda r: r["split"] == "test_2016_flickr")
    if args.test_pairs:
        test = test.select(range(min(args.test_pairs, len(test))))
    captions = multi30k.filter(lambda r: r["split"] == "train").shuffle(seed=0)
    held_out = {" ".join(t.lower().split()) for side in (src, tgt) for t in test[side]}
    tatoeba = load_dataset("json", data_files=args.tatoeba)["train"].shuffle(seed=0)
    tatoeba = tatoeba.filter(
        lambda r: " ".join(r[src].lower().split()) not in held_out and " ".join(r[tgt].lower().split()) not in held_out
    )
    tatoeba = tatoeba.select(range(min(args.source_pairs, len(tatoeba))))
    # one shared word vocabulary (a pipeline decodes with one tokenizer); built from training text only
    texts = list(tatoeba[src]) + list(tatoeba[tgt]) + list(captions[src]) + list(captions[tgt])
    if args.source_dir:  # the vocabulary the saved source was trained with
        tokenizer = AutoTokenizer.from_pretrained(args.source_dir)
    else:
        tokenizer = train_tokenizer(texts, vocab_size=30_000, min_frequency=2, model_max_length=args.max_length)
    encode = dict(
        source_column=src,
        target_column=tgt,
        max_source_length=args.max_length,
        max_target_length=args.max_length,
        truncation=True,
    )
    source_data = prepare_translation(tatoeba, tokenizer, **encode)
    caption_data = prepare_translation(captions, tokenizer, **encode)
    test_data = prepare_translation(test, tokenizer, **encode)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    config = RNNConfig(
        embedding_size=args.embedding_size,
        hidden_size=args.hidden_size,
        num_layers=1,
        bidirectional=True,
        attention="luong",
        input_feeding=False,
        tie_word_embeddings=True,
        embedding_dropout=0.2,
        layer_dropout=0.2,
        classifier_dropout=0.2,
        **token_fields(tokenizer),
    )
    out = Path(args.output_dir)

    def score(model):
        return evaluate_generation(model, test_data, tokenizer, collator, max_new_tokens=args.max_length)

    set_seed(0)
    if args.source_dir:
        general = RNNForSeq2SeqLM.from_pretrained(args.source_dir)
    else:
        general = RNNForSeq2SeqLM(config)
        print(f"source: {len(source_data):,} Tatoeba pairs, {sum(p.numel() for p in general.parameters()):,} weights")
        TransferTrainer(
            model=general,
            args=training(str(out / "source"), args.source_epochs, 2e-3),
            train_dataset=source_data.remove_columns("length"),
            data_collator=collator,
        ).train()
        general.save_pretrained(out / "source")
        tokenizer.save_pretrained(out / "source")
    results = {"zero_shot": score(general), "budgets": {}}
    print(f"source on the Multi30k test, no captions: BLEU {results['zero_shot']['bleu']:.1f}")
    for budget, epochs in zip(args.budgets, args.target_epochs):
        rows = caption_data.select(range(min(budget, len(caption_data)))).remove_columns("length")
        per_seed = {name: [] for name in args.methods}
        for seed in args.seeds:
            set_seed(seed)
            transferred, _ = transfer(general, RNNForSeq2SeqLM(config))
            scratch = RNNForSeq2SeqLM(config)
            for name, model, rate in (("transfer", transferred, 1e-3), ("scratch", scratch, 2e-3)):
                if name not in args.methods:
                    continue
                run = training(str(out / f"{name}-{budget}-{seed}"), epochs, rate, seed)
                TransferTrainer(model=model, args=run, train_dataset=rows, data_collator=collator).train()
                per_seed[name].append(score(model))
                print(f"{budget} pairs, seed {seed}, {name}: BLEU {per_seed[name][-1]['bleu']:.1f}")
        results["budgets"][budget] = per_seed
    results["seconds"] = round(time.perf_counter() - started)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    zero = results["zero_shot"]
    print("\n| Multi30k pairs | transfer BLEU | scratch BLEU | transfer chrF | scratch chrF |")
    print("|---|---|---|---|---|")
    print(f"| 0 (Tatoeba source only) | {zero['bleu']:.1f} | | {zero['chrf']:.1f} | |")
    for budget, per_seed in results["budgets"].items():
        cells = []
        for metric in ("bleu", "chrf"):
            for name in ("transfer", "scratch"):
                values = [m[metric] for m in per_seed.get(name, [])]
                spread = f" ± {np.std(values):.1f}" if len(values) > 1 else ""
                cells.append(f"{np.mean(values):.1f}{spread}" if values else "not run")
        print(f"| {budget} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    print(f"({results['seconds']} s)")


if __name__ == "__main__":
    main()
