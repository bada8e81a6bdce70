"""The main job, end to end on the reviews that ship with the package:

1. source: an LSTM classifier trained on the labelled reviews of three Amazon domains (books, dvd, electronics);
2. pushed to a Hub (the offline one by default) with its tokenizer and model card;
3. pulled back by repo id and transferred into a classifier for the fourth domain (kitchen);
4. fine-tuned on a small label budget with gradual unfreezing, discriminative learning rates and the slanted
   triangular schedule, against the same architecture from scratch and TF-IDF + logistic regression, over seeds;
5. the fine-tuned model pushed with its card (lineage, transfer report, recipe, comparison), plots and the linear
   model trained on the same labels beside it (`TextClassificationWithLinearPipeline` averages the two).

Why a supervised source: the reference runs (fastai ULMFiT, scratch and TF-IDF + LR on the same split, in
`docs/benchmarks.md`) show a self-pretrained language model giving no reliable gain at this scale (ULMFiT 0.60 at
100 kitchen labels) while the other domains' 6,000 labels give a linear model 0.857 with no kitchen labels at all;
the signal that transfers here is sentiment, not language.

The demo has no training logic of its own: it writes the data as files and composes the commands' cores
(`pretrain`, `push_source`, `compare_transfer`, `finetune`, `push_finetuned`) in one Hub session, exactly as
`hf-rnn-transfer pretrain / compare / finetune` run them.
"""

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from datasets import concatenate_datasets

from .commands import (
    CompareArguments,
    LinearCompanionArguments,
    PretrainArguments,
    SourceArguments,
    TargetDataArguments,
    compare_transfer,
    finetune,
    finetuned_card,
    pretrain,
    push_source,
)
from .configuration_rnn import CELL_TYPES
from .data import AMAZON_DOMAINS, load_amazon_reviews
from .evaluation import balanced_budget_indices, layer_change_table, plot_layer_changes, what_transferred
from .freezing import unfreeze_interval_for
from .hub import Metric, build_model_card, push_model, resolve_hub
from .linear_model import LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME
from .trainer import TransferTrainingArguments, bf16_speeds_up_training

PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class DemoArguments:
    """Arguments of `hf-rnn-transfer demo`."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Where models, plots and report.md are written."})
    target_domain: str = field(
        default="kitchen", metadata={"help": f"The target domain (the other three are the source): {AMAZON_DOMAINS}."}
    )
    label_budget: int = field(default=100, metadata={"help": "Target labels for the fine-tuned model that is pushed."})
    budgets: list[int] = field(
        default_factory=lambda: [50, 100, 200, 500], metadata={"help": "Label budgets of the learning curves."}
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of the comparison."})
    cell_type: str = field(default="lstm", metadata={"help": f"Recurrent cell: {CELL_TYPES}."})
    embedding_size: int = field(default=128, metadata={"help": "Embedding size."})
    hidden_size: int = field(default=256, metadata={"help": "Hidden size of each recurrent layer."})
    num_layers: int = field(default=1, metadata={"help": "Recurrent layers."})
    max_length: int = field(default=256, metadata={"help": "Reviews are cut to this many tokens."})
    source_epochs: float = field(default=3.0, metadata={"help": "Epochs of source training."})
    finetune_epochs: float = field(
        default=8.0, metadata={"help": "Epochs of fine-tuning (gradual unfreezing: one more group per epoch)."}
    )
    finetune_learning_rate: float = field(
        default=4e-3, metadata={"help": "Peak learning rate of the head when fine-tuning (lower groups / 2.6 each)."}
    )
    scratch_epochs: float = field(default=10.0, metadata={"help": "Epochs of the scratch baseline."})
    source_examples: int | None = field(default=None, metadata={"help": "Use only this many source reviews."})
    precision: str = field(
        default="auto",
        metadata={
            "help": "Training precision: 'bf16' (autocast), 'fp32', or 'auto': bf16 on a CPU with AMX/AVX512-BF16 "
            "(~1.5x faster recurrent kernels there), else fp32 (on a CUDA GPU cuDNN's bf16 LSTM is no faster).",
            "choices": PRECISIONS,
        },
    )
    endpoint: str | None = field(
        default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT, else an offline Hub on --hub_root)."}
    )
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory (default <output_dir>/hub)."})
    namespace: str = field(default="local", metadata={"help": "Hub namespace of the pushed repositories."})
    overwrite: bool = field(default=False, metadata={"help": "Replace a previous run in output_dir."})

    def __post_init__(self):
        if self.target_domain not in AMAZON_DOMAINS:
            raise ValueError(f"--target_domain must be one of {', '.join(AMAZON_DOMAINS)}; got {self.target_domain!r}.")
        if self.cell_type not in CELL_TYPES:
            raise ValueError(f"--cell_type must be one of {', '.join(CELL_TYPES)}; got {self.cell_type!r}.")
        if not 2 <= self.label_budget <= 1000 or any(not 2 <= b <= 1000 for b in self.budgets):
            raise ValueError("label budgets must be between 2 and 1000 (the target pool holds 1,000 reviews).")
        if self.label_budget not in self.budgets:
            self.budgets = sorted({*self.budgets, self.label_budget})
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}.")

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16" or (self.precision == "auto" and bf16_speeds_up_training())


def _step(number: int, text: str, started: float) -> None:
    print(f"\n[{number}/6] {text}  (t={time.perf_counter() - started:.0f}s)", flush=True)


def write_demo_data(folder: Path, args: DemoArguments) -> dict[str, Path]:
    """The demo's data as JSON Lines files the commands read: the source domains' labelled reviews (shuffled), the
    target's fixed, balanced 1,000-review test set and 1,000-review pool, and the balanced `label_budget` subset of
    the pool that the shared model trains on (the comparison draws its own nested subsets from the pool)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [d for d in AMAZON_DOMAINS if d != args.target_domain]
    source = concatenate_datasets([load_amazon_reviews(d) for d in sources]).shuffle(seed=0)
    if args.source_examples:
        source = source.select(range(min(args.source_examples, len(source))))
    target = load_amazon_reviews(args.target_domain).train_test_split(
        test_size=1000, seed=0, stratify_by_column="label"
    )
    subset = balanced_budget_indices(target["train"]["label"], [args.label_budget], args.seeds[0])[args.label_budget]
    files = {
        "source": (source, None),
        "pool": (target["train"], None),
        "test": (target["test"], None),
        "budget": (target["train"], subset),
    }
    paths = {}
    for name, (rows, indices) in files.items():
        names = rows.features["label"].names
        paths[name] = folder / f"{name}.jsonl"
        with open(paths[name], "w") as handle:
            for i in indices if indices is not None else range(len(rows)):
                row = rows[int(i)]
                handle.write(json.dumps({"text": row["text"], "label": names[row["label"]]}) + "\n")
    return paths


def run_demo(args: DemoArguments) -> dict:
    """Run the demo and return its results (also written to `output_dir/results.json` and `report.md`)."""
    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"{out} already holds files; pass --overwrite to replace them or choose --output_dir.")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = [d for d in AMAZON_DOMAINS if d != args.target_domain]
    _step(
        1,
        f"Data: labelled reviews of {', '.join(sources)} (source); {args.target_domain} split into a fixed, "
        f"balanced test set of 1,000 and a pool of 1,000; training in {'bf16' if args.bf16 else 'fp32'}",
        started,
    )
    files = write_demo_data(out / "data", args)
    target_files = dict(test_file=str(files["test"]), max_length=args.max_length)
    source_recipe = PretrainArguments(
        objective="classification",
        cell_type=args.cell_type,
        embedding_size=args.embedding_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        vocab_size=30_000,
        vocabulary_files=[str(files["pool"])],  # the pool's text (unlabelled use), never the test reviews
        embedding_dropout=0.1,
        layer_dropout=0.2,
        classifier_dropout=0.3,
    )
    source_training = TransferTrainingArguments(
        str(out / "source"),
        num_train_epochs=args.source_epochs,
        learning_rate=3e-3,
        per_device_train_batch_size=32,
        train_sampling_strategy="group_by_length",
        weight_decay=0.01,
        lr_scheduler_type="slanted_triangular",
        report_to="none",
        save_strategy="no",
        logging_strategy="epoch",
        seed=0,
        bf16=args.bf16,
    )
    finetune_training = TransferTrainingArguments(
        str(out / "finetune"),
        num_train_epochs=args.finetune_epochs,
        learning_rate=args.finetune_learning_rate,
        per_device_train_batch_size=16,
        freezing_strategy="gradual",
        unfreeze_interval=unfreeze_interval_for(args.finetune_epochs, args.num_layers + 2),
        unfreeze_unit="epoch",
        discriminative_lr=True,
        discriminative_lr_factor=2.6,
        lr_scheduler_type="slanted_triangular",
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        bf16=args.bf16,
    )
    hub_root = args.hub_root or str(out / "hub")
    source_repo = f"{args.namespace}/{args.cell_type}-reviews-{'-'.join(sources)}"
    target_repo = f"{args.namespace}/{args.cell_type}-{args.target_domain}-from-{'-'.join(sources)}"
    kitchen = dict(dataset_name=f"Amazon {args.target_domain} reviews", dataset_type="amazon_multidomain")
    with resolve_hub(args.endpoint, None, hub_root, namespace=args.namespace) as (endpoint, token):
        _step(
            2, f"Source: {args.cell_type.upper()} classifier on the labelled reviews of {', '.join(sources)}", started
        )
        source = pretrain(
            source_recipe, TargetDataArguments(train_file=str(files["source"]), **target_files), source_training, token
        )
        zero_shot = source.results["test_accuracy"]
        print(
            f"source accuracy on {args.target_domain} test reviews, with no {args.target_domain} labels: "
            f"{zero_shot:.3f}"
        )

        _step(3, f"Push the source to {source_repo} ({'offline Hub' if not args.endpoint else endpoint})", started)
        source_commit = push_source(
            source,
            source_repo,
            token,
            f"Amazon reviews (Blitzer et al. 2007) of {', '.join(sources)}: {len(source.trainer.train_dataset):,} "
            "labelled reviews",
            source_recipe,
            objective="sentiment classification (cross-entropy): the source of a cross-domain transfer",
            metrics=[
                Metric("accuracy", zero_shot, **{**kitchen, "dataset_name": kitchen["dataset_name"] + ", zero-shot"})
            ],
        )
        # every later step pulls it by repo id at the pushed commit, with its tokenizer
        pulled = SourceArguments(source=source_repo, revision=source_commit.oid, transfer_head=True)

        _step(
            4,
            f"Fine-tune on {args.budgets} {args.target_domain} labels (seeds {args.seeds}) against scratch, TF-IDF + "
            "logistic regression (on the budget, and on the source + budget labels), the source zero-shot and the "
            "majority class",
            started,
        )
        comparison = CompareArguments(
            budgets=[str(b) for b in args.budgets],
            seeds=args.seeds,
            scratch_epochs=args.scratch_epochs,
            scratch_learning_rate=3e-3,
            scratch_warmup=0.1,
            linear_source_file=str(files["source"]),  # the linear model on the same labels as transfer
        )
        result = compare_transfer(
            comparison,
            pulled,
            TargetDataArguments(train_file=str(files["pool"]), **target_files),
            finetune_training,
            token,
        )
        result.plot(out / "learning_curve.png")

        _step(
            5,
            f"The model to share: seed {args.seeds[0]}, {args.label_budget} labels; what moved in each layer",
            started,
        )
        shared = finetune(
            pulled,
            TargetDataArguments(train_file=str(files["budget"]), **target_files),
            replace(finetune_training, output_dir=str(out / "model"), seed=args.seeds[0]),
            token,
            keep_start=True,
            # the linear model on the same labels ships beside it; the pipeline averages the two
            linear_args=LinearCompanionArguments(linear_source_file=str(files["source"])),
        )
        test_rows = shared.target.splits["test"]
        changes = what_transferred(shared.start, shared.model, test_rows, shared.target.collator)
        plot_layer_changes(changes, out / "layer_changes.png")
        final_accuracy = shared.results["test_accuracy"]

        _step(6, f"Push the fine-tuned model to {target_repo} with its card and plots", started)
        card = finetuned_card(
            shared,
            target_repo,
            f"{args.label_budget} labelled Amazon {args.target_domain} reviews (a balanced subset of a 1,000-review "
            "pool); tested on 1,000 other reviews",
            objective=f"sentiment classification of {args.target_domain} reviews, fine-tuned from {source_repo}",
            metrics=[Metric("accuracy", final_accuracy, **kitchen)],
            comparison=result.to_card(),
        )
        extra_files = {name: out / name for name in ("learning_curve.png", "layer_changes.png")}
        extra_files.update({name: out / "model" / name for name in (LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME)})
        commit = push_model(
            shared.model, target_repo, card=card, tokenizer=shared.tokenizer, token=token, extra_files=extra_files
        )
        (out / "README.md").write_text(str(build_model_card(shared.model, card, has_tokenizer=True)))

    report = shared.model.transfer_report
    tfidf = result.mean("tfidf_lr", args.label_budget)
    linear = result.mean("tfidf_lr_source", args.label_budget)
    together = result.mean("transfer_linear", args.label_budget)
    transfer_mean = result.mean("transfer", args.label_budget)
    scratch_mean = result.mean("scratch", args.label_budget)
    flagged, p_value = result.negative_transfer(args.label_budget)
    results = {
        "source_repo": source_repo,
        "source_commit": source_commit.oid,
        "target_repo": target_repo,
        "target_commit": commit.oid,
        "hub": endpoint if args.endpoint else f"offline Hub on {hub_root}",
        "zero_shot_accuracy": round(zero_shot, 4),
        "majority_class_accuracy": round(result.references["majority class"], 4),
        "label_budget": args.label_budget,
        "transfer_accuracy": round(transfer_mean, 4),
        "scratch_accuracy": round(scratch_mean, 4),
        "tfidf_lr_accuracy": round(tfidf, 4),
        "linear_same_labels_accuracy": round(linear, 4),
        "transfer_plus_linear_accuracy": round(together, 4),
        "difference": round(transfer_mean - scratch_mean, 4),
        "negative_transfer": flagged,
        "negative_transfer_p_value": p_value,
        "pushed_model_accuracy": round(final_accuracy, 4),
        "pushed_model_with_linear_accuracy": round(shared.results["with_linear_test_accuracy"], 4),
        "pushed_model_linear_weight": shared.results["linear_weight"],
        "scores": {m: {str(b): v for b, v in per.items()} for m, per in result.scores.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "precision": "bf16" if args.bf16 else "fp32",
        "arguments": asdict(args),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report_text = "\n\n".join(
        [
            f"# Transfer demo: {', '.join(sources)} -> {args.target_domain}",
            f"Source `{source_repo}` (commit {source_commit.oid[:10]}): {zero_shot:.3f} on the "
            f"{args.target_domain} test set with no target labels. Training precision: "
            f"{'bf16 autocast' if args.bf16 else 'fp32'} ({time.perf_counter() - started:.0f} s in all).",
            "## Transfer vs scratch\n\n" + result.to_markdown() + "\n\n![learning curve](learning_curve.png)",
            "## What moved in each layer (seed 0 model)\n\n"
            + layer_change_table(changes)
            + "\n\n![layer changes](layer_changes.png)",
            "## Transfer report\n\n```\n" + str(report) + "\n```",
        ]
    )
    (out / "report.md").write_text(report_text + "\n")
    print("\n" + result.to_markdown())
    print(
        f"\nAt {args.label_budget} {args.target_domain} labels: transfer {transfer_mean:.3f}, scratch "
        f"{scratch_mean:.3f} ({transfer_mean - scratch_mean:+.3f}), TF-IDF + LR {tfidf:.3f} (on the source labels "
        f"too: {linear:.3f}; averaged with transfer: {together:.3f}), source zero-shot {zero_shot:.3f}; negative "
        f"transfer: {'YES' if flagged else 'no'}."
    )
    print(
        f"The pushed model (seed {args.seeds[0]}): {final_accuracy:.3f} alone, "
        f"{results['pushed_model_with_linear_accuracy']:.3f} averaged with the linear model shipped beside it (its "
        f"share {results['pushed_model_linear_weight']:.1f}, chosen inside the budget; "
        "pipeline_class=TextClassificationWithLinearPipeline)."
    )
    print(f"Pushed {source_repo} and {target_repo}; report, plots and models in {out} ({results['seconds']:.0f}s).")
    return results
