"""The end-to-end quick start: shipped reviews -> tokenizer -> LSTM classifier trained with the plain `Trainer`
-> save -> reload through the Auto classes -> predict with a `pipeline`."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    pipeline,
    set_seed,
)

from .configuration_rnn import CELL_TYPES, POOLING_TYPES, RNNConfig
from .data import AMAZON_DOMAINS, load_amazon_reviews, token_fields, train_tokenizer
from .evaluation import classification_metrics
from .hub import CardContent, Metric, build_model_card, push_model, resolve_hub
from .modeling_rnn import RNNForSequenceClassification


@dataclass
class QuickstartArguments:
    """Arguments of `hf-rnn-transfer quickstart`."""

    output_dir: str = field(default="runs/quickstart", metadata={"help": "Where the model and tokenizer are saved."})
    domain: str = field(default="kitchen", metadata={"help": f"Amazon review domain, one of {AMAZON_DOMAINS}."})
    train_size: int = field(default=1000, metadata={"help": "Labelled reviews to train on (the rest is the test set)."})
    cell_type: str = field(default="lstm", metadata={"help": f"Recurrent cell, one of {CELL_TYPES}."})
    hidden_size: int = field(default=128, metadata={"help": "Hidden size of each recurrent layer."})
    num_layers: int = field(default=1, metadata={"help": "Number of recurrent layers."})
    pooling: str = field(default="concat", metadata={"help": f"Sequence pooling, one of {POOLING_TYPES}."})
    max_length: int = field(default=256, metadata={"help": "Reviews are truncated to this many tokens."})
    epochs: float = field(default=4.0, metadata={"help": "Training epochs."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate (AdamW, linear decay)."})
    batch_size: int = field(default=32, metadata={"help": "Training batch size."})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the initialisation and the batches."})
    repo_id: str | None = field(
        default=None, metadata={"help": "Hub repository to push to (default local/quickstart-<cell>-<domain>)."}
    )
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT, else an offline Hub on --hub_root)."}
    )
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory (default <output_dir>/hub)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a previous run in output_dir."})

    def __post_init__(self):
        for name, allowed in (("domain", AMAZON_DOMAINS), ("cell_type", CELL_TYPES), ("pooling", POOLING_TYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")
        for name in ("train_size", "hidden_size", "num_layers", "max_length", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be a positive integer, got {getattr(self, name)}.")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("--epochs and --learning_rate must be positive.")


def run_quickstart(args: QuickstartArguments) -> dict:
    """Run the quick start and return its metrics (also written to `output_dir/results.json`)."""
    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} already holds files; pass --overwrite to replace them or choose --output_dir.")
    set_seed(args.seed)
    reviews = load_amazon_reviews(args.domain)
    if not 0 < args.train_size < len(reviews):
        raise ValueError(f"--train_size must be between 1 and {len(reviews) - 1}, got {args.train_size}.")
    splits = reviews.train_test_split(train_size=args.train_size, seed=args.seed, stratify_by_column="label")
    tokenizer = train_tokenizer(
        splits["train"]["text"], vocab_size=20_000, min_frequency=2, model_max_length=args.max_length
    )

    def tokenize(batch):
        return tokenizer(batch["text"], truncation=True)

    encoded = splits.map(tokenize, batched=True, remove_columns=["text", "title", "rating"])
    label_names = reviews.features["label"].names
    config = RNNConfig(
        cell_type=args.cell_type,
        **token_fields(tokenizer),
        embedding_size=64,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        pooling=args.pooling,
        embedding_dropout=0.1,
        classifier_dropout=0.2,
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    model = RNNForSequenceClassification(config)
    training_args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        warmup_steps=0.1,
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=args.seed,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["test"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=classification_metrics,
    )
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out))  # weights (safetensors), config, modeling code and tokenizer

    repo_id = args.repo_id or f"local/quickstart-{args.cell_type}-{args.domain}"
    card = CardContent(
        repo_id=repo_id,
        objective="sentiment classification (cross-entropy), trained from scratch",
        data_description=f"Amazon {args.domain} reviews (Blitzer et al. 2007): {args.train_size} labelled reviews, "
        f"tested on the other {len(encoded['test'])}",
        metrics=[
            Metric(
                "accuracy",
                metrics["eval_accuracy"],
                dataset_name=f"Amazon {args.domain} reviews",
                dataset_type="amazon_multidomain",
            )
        ],
        training={
            "epochs": args.epochs,
            "peak learning rate": args.learning_rate,
            "batch size": args.batch_size,
            "schedule": "linear decay, 10% warm-up",
            "optimizer": "AdamW, weight decay 0.01",
        },
    )
    (out / "README.md").write_text(str(build_model_card(trainer.model, card, has_tokenizer=True)))

    # Push to a Hub (the offline one unless an endpoint is given), pull it back by repo id, and predict on raw text
    # exactly as a user of the repository would.
    hub_root = args.hub_root or str(out / "hub")
    with resolve_hub(args.endpoint, None, hub_root, namespace=repo_id.split("/")[0]) as (endpoint, token):
        commit = push_model(trainer.model, repo_id, card=card, tokenizer=tokenizer, token=token)
        reloaded = AutoModelForSequenceClassification.from_pretrained(repo_id, revision=commit.oid, token=token)
        pulled_tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=commit.oid, token=token)
    classify = pipeline("text-classification", model=reloaded, tokenizer=pulled_tokenizer)
    examples = [
        "This kettle boils fast and looks great, I love it.",
        "The handle broke after two days and it leaks. Returned it.",
    ]
    results = {
        "domain": args.domain,
        "train_size": args.train_size,
        "test_size": len(encoded["test"]),
        "test_accuracy": round(metrics["eval_accuracy"], 4),
        "test_loss": round(metrics["eval_loss"], 4),
        "repo_id": repo_id,
        "hub": endpoint if args.endpoint else f"offline Hub on {hub_root}",
        "commit": commit.oid,
        "predictions": [{"text": t, **p} for t, p in zip(examples, classify(examples))],
        "arguments": asdict(args),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results
