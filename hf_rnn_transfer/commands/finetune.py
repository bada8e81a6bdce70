"""`hf-rnn-transfer finetune`: transfer a source (Hub repo or directory) into a classifier for the target data and
fine-tune it with any strategy of `TransferTrainer`."""

from dataclasses import dataclass, field

import numpy as np

from ..configuration_rnn import POOLING_TYPES
from ..hub.repo_id import is_hub_id
from ..transfer_config import TransferArguments, TransferConfig, transfer_config_from_arguments
from .linear_companion import (
    LinearCompanionArguments,
    LinearWeightChoice,
    check_text_classification,
    choose_linear_weight,
    fit_linear_companion,
)
from .target_data import (
    TargetDataArguments,
    encode_domain_texts,
    encode_replay_rows,
    encode_target,
    load_source_config,
    read_target,
    read_texts,
)


@dataclass
class SourceArguments(TransferArguments):
    """The source model, what moves from it (every `TransferConfig` field is a flag), and the Hub it lives on."""

    endpoint: str | None = field(
        default=None, metadata={"help": "Hub URL (default: $HF_ENDPOINT, else the offline Hub on --hub_root)."}
    )
    hub_root: str | None = field(default=None, metadata={"help": "Offline Hub directory."})
    pooling: str | None = field(
        default=None,
        metadata={
            "help": "How the new classifier summarises the sequence: last, mean, max or concat (ULMFiT's "
            "last+max+mean). Default: the source's setting.",
            "choices": [None, *POOLING_TYPES],
        },
    )
    push_to: str | None = field(default=None, metadata={"help": "Push the fine-tuned model to this repo id."})

    def __post_init__(self):
        if not self.source:
            raise ValueError("--source is required: a Hub repo id or a folder written by save_pretrained.")

    def transfer_config(self) -> TransferConfig:
        return transfer_config_from_arguments(self)


def transferred_model(source_args: SourceArguments, target, token):
    """The target model built from the source's config and data, with the source's weights transferred: a
    classifier, or for output texts an `RNNForSeq2SeqLM` (a seq2seq source whole; another source fills the encoder,
    or the decoder with `target_part="decoder"`)."""
    from ..modeling_rnn import RNNForSeq2SeqLM, RNNForSequenceClassification

    if target.is_seq2seq:
        return RNNForSeq2SeqLM.from_pretrained(
            source_args.source, transfer=source_args.transfer_config().replace(source=None), token=token
        )
    return RNNForSequenceClassification.from_pretrained(
        source_args.source,
        transfer=source_args.transfer_config().replace(source=None),
        token=token,
        **({"pooling": source_args.pooling} if source_args.pooling else {}),
        **target.config,
    )


def target_score(target):
    """How a target's models are scored: accuracy, or BLEU of greedy generation for output texts."""
    from ..evaluation import accuracy_of, evaluate_generation

    if target.is_seq2seq:
        return lambda model, rows: evaluate_generation(model, rows, target.tokenizer, target.collator)["bleu"]
    return lambda model, rows: accuracy_of(model, rows, target.collator)


def selection_score(target):
    """What selection inside the budget maximises, row by row so that every selection rule applies: accuracy, or for
    output texts minus each row's loss (generating at every epoch for every mix would cost more than the training)."""
    from ..evaluation import row_accuracy, row_losses

    if target.is_seq2seq:
        return lambda model, rows: -row_losses(model, rows, target.collator)
    return lambda model, rows: row_accuracy(model, rows, target.collator)  # its mean is the accuracy


@dataclass
class FinetuneRun:
    """A fine-tuned model: its trainer, the encoded target, the tokenizer, the results, and (when asked) a copy of
    the model as it was right after the transfer."""

    model: object
    trainer: object
    target: object
    tokenizer: object
    results: dict
    start: object = None
    linear: object = None  # the LinearTextClassifier saved beside the model (--linear_companion)


def finetune(
    source_args: SourceArguments,
    data_args: TargetDataArguments,
    training_args,
    token=None,
    keep_start: bool = False,
    linear_args: LinearCompanionArguments | None = None,
) -> FinetuneRun:
    """
    Transfer the source into a classifier for the target labels, fine-tune it, save it to `output_dir` and score it
    on the test split (through `Trainer.evaluate`). No Hub session of its own: `token` reads the source.

    Texts go through the source's tokenizer; series (a source with continuous input) keep their values and the
    target's own normalisation statistics. With `linear_args` asking for it, a `LinearTextClassifier` on the same
    labels is saved beside the model, and the test split also scores it and the average of the two.
    """
    from transformers import set_seed

    from ..evaluation import classification_metrics, evaluate_generation, snapshot
    from ..trainer import TransferTrainer, checkpoint_to_resume

    if linear_args is not None:
        linear_args.check_linear_source()
        if linear_args.distill_file and training_args.world_size > 1:
            raise ValueError("--distill_file runs in one process: launch without accelerate/torchrun.")
    # launched (torchrun / accelerate): the first process writes the datasets cache, the others then read it
    with training_args.main_process_first(desc="reading and encoding the target"):
        raw = read_target(data_args)
        source_config, tokenizer = load_source_config(source_args.source, source_args.revision, token)
        target = encode_target(raw, source_config, tokenizer, data_args)
    linear_source = None
    if linear_args is not None and linear_args.wanted:  # bad source labels are refused before any training
        check_text_classification(target, "--linear_companion")
        linear_source = linear_args.read_linear_source(target, data_args)
    validation = target.splits.get("validation")
    if training_args.eval_strategy != "no" and validation is None:
        raise ValueError(
            f"--eval_strategy {getattr(training_args.eval_strategy, 'value', training_args.eval_strategy)} needs "
            "validation data: pass --validation_file, --validation_split_percentage, or a dataset with a validation "
            "split."
        )

    def make_model():
        set_seed(training_args.seed)  # the new head is drawn before the Trainer seeds itself
        return transferred_model(source_args, target, token)

    model = make_model()
    if training_args.process_index == 0:
        print(model.transfer_report)
    start = snapshot(model) if keep_start else None
    trainer_kwargs = dict(
        eval_dataset=validation, data_collator=target.collator, processing_class=tokenizer,
        compute_metrics=None if target.is_seq2seq else classification_metrics,
        domain_dataset=encode_domain_texts(data_args, tokenizer, training_args),
        replay_dataset=encode_replay_rows(data_args, tokenizer, training_args, target),
    )  # fmt: skip
    if training_args.select_folds:
        model, chosen = _select_within_budget(make_model, target, training_args, trainer_kwargs)
        # no final run when the transferred model was kept as it is: a trainer only to save and evaluate it
        trainer = chosen.trainer or TransferTrainer(
            model, training_args, train_dataset=target.splits["train"], **trainer_kwargs
        )
    else:
        trainer = TransferTrainer(model, training_args, train_dataset=target.splits["train"], **trainer_kwargs)
        trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args))
    if linear_args is not None and linear_args.wanted:  # the save ships the pipeline's code (remote code)
        from ..pipeline_linear import LINEAR_PIPELINE, LINEAR_PIPELINE_TASK

        model.config.custom_pipelines = {LINEAR_PIPELINE_TASK: dict(LINEAR_PIPELINE)}
    trainer.save_model(training_args.output_dir)
    results = {
        "transfer": model.transfer_report.summary,
        "recipe": trainer.transfer_recipe(),
        "optimizer_steps": trainer.state.global_step,
        "processes": training_args.world_size,
    }
    if training_args.select_folds:
        results["selection"] = model.budget_selection.to_dict()
    if "test" in target.splits and target.is_seq2seq:
        metrics = evaluate_generation(model, target.splits["test"], tokenizer, target.collator)
        results.update({f"test_{name}": value for name, value in metrics.items()})
    elif "test" in target.splits:
        metrics = trainer.evaluate(target.splits["test"], metric_key_prefix="test")
        results["test_accuracy"] = metrics["test_accuracy"]
        results["test_macro_f1"] = metrics["test_macro_f1"]
    linear = None
    if linear_args is not None and linear_args.wanted:
        if linear_args.linear_weight == "auto":  # in every process: cross-fitting trains, collectively when distributed
            selection = getattr(model, "budget_selection", None) if training_args.select_folds else None
            if training_args.process_index == 0:
                print("the linear model's share of the average: 3-fold cross-fitting of both models inside the budget")
            choice = choose_linear_weight(
                _recipe_on_rows(make_model, target, training_args, selection, trainer_kwargs),
                target.splits["train"],
                target.collator,
                [text or "" for text in raw["train"][data_args.text_column]],
                target.labels.id2label,
                linear_source,
                linear_args.linear_target_weight,
                seed=training_args.seed,
            )
        else:
            choice = LinearWeightChoice(float(linear_args.linear_weight), reason="given (--linear_weight)")
        from ..evaluation import class_probabilities

        rnn_test = None
        if "test" in target.splits:  # every process: a distributed prediction gathers from all of them
            rnn_test = class_probabilities(model, target.splits["test"], target.collator)
        if trainer.is_world_process_zero():
            linear = fit_linear_companion(raw, target, data_args, linear_source, linear_args.linear_target_weight)
            linear.ensemble_weight = choice.weight
            linear.training["weight_choice"] = choice.to_dict()
            linear.save_pretrained(training_args.output_dir)
            results["linear_model"] = linear.training
            if rnn_test is not None:
                results.update(_linear_test_accuracies(*rnn_test, linear, target.texts[1]))
            if linear_args.distill_file:
                results["distillation"] = _distil_the_average(
                    model, raw, target, tokenizer, data_args, training_args, linear, linear_args
                )
                trainer.save_model(training_args.output_dir)  # the distilled RNN replaces the teacher's RNN half
                if rnn_test is not None:
                    results["distillation"]["teacher_test_accuracy"] = results.pop("with_linear_test_accuracy")
                    results["distillation"]["teacher_rnn_test_accuracy"] = results["test_accuracy"]
                    metrics = trainer.evaluate(target.splits["test"], metric_key_prefix="test")
                    results["test_accuracy"] = metrics["test_accuracy"]
                    results["test_macro_f1"] = metrics["test_macro_f1"]
                    rnn_test = class_probabilities(model, target.splits["test"], target.collator)
                    results.update(_linear_test_accuracies(*rnn_test, linear, target.texts[1]))
    return FinetuneRun(model, trainer, target, tokenizer, results, start, linear)


def _recipe_on_rows(make_model, target, training_args, selection, trainer_kwargs: dict):
    """`rows -> model`: the recipe on those training rows, quietly in a temporary folder; with the epochs and mix
    the selection inside the budget chose for the final model, else the plain recipe (with the final run's unlabelled
    target rows and replayed source rows)."""
    import tempfile
    from dataclasses import replace

    from ..budget_selection import fit_selected
    from ..trainer import TransferTrainer

    extras = {k: trainer_kwargs.get(k) for k in ("domain_dataset", "replay_dataset")}

    def train(rows):
        subset = target.splits["train"].select(rows)
        with tempfile.TemporaryDirectory(prefix="linear-weight-") as folder:
            quiet = dict(output_dir=folder, save_strategy="no", report_to="none", disable_tqdm=True)
            args = replace(training_args, logging_strategy="no", **quiet)
            if selection is not None:
                chosen = replace(selection, trainer=None)
                return fit_selected(make_model, subset, args, target.collator, chosen, **extras)
            model = make_model()
            TransferTrainer(model, args, train_dataset=subset, data_collator=target.collator, **extras).train()
            return model

    return train


def _distil_the_average(model, raw, target, tokenizer, data_args, training_args, linear, linear_args) -> dict:
    """Train `model` (in place) on the RNN + linear average's class probabilities over `--distill_file`'s texts (minus
    the target's training and test texts) and the training labels; what it did, as a dict."""
    from dataclasses import replace

    from datasets import Dataset

    from ..distillation import distill, teacher_rows, without_texts
    from ..evaluation import class_probabilities

    texts = read_texts(linear_args.distill_file, data_args)
    known = [*raw["train"][data_args.text_column], *(target.texts[1] if target.texts else [])]
    kept, dropped = without_texts(texts, [text for text in known if text])
    if not kept:
        raise ValueError(
            f"--distill_file {linear_args.distill_file} holds no text outside the training and test splits: it needs "
            "unlabelled target texts."
        )
    encoded = Dataset.from_dict(dict(tokenizer(kept, truncation=True, max_length=data_args.max_length)))
    weight = linear.ensemble_weight
    rnn = class_probabilities(model, encoded, target.collator)[0]
    teacher = weight * linear.predict_proba(kept) + (1 - weight) * rnn
    print(f"distilling the average (linear share {weight:.1f}) into the RNN on {len(kept)} unlabelled texts")
    rows = teacher_rows(encoded, teacher, target.splits["train"])
    # no checkpoints: their step numbers would collide with the fine-tuning's in the same output_dir
    args = replace(
        training_args, save_strategy="no", eval_strategy="no", load_best_model_at_end=False, push_to_hub=False,
        adversarial_epsilon=linear_args.distill_adversarial_epsilon,
    )  # fmt: skip
    trainer = distill(model, rows, args, target.collator, linear_args.distill_epochs)
    return {
        "texts": len(kept),
        "dropped": dropped,
        "epochs": linear_args.distill_epochs,
        "adversarial_epsilon": linear_args.distill_adversarial_epsilon,
        "linear_weight": weight,
        "optimizer_steps": trainer.state.global_step,
    }


def _linear_test_accuracies(rnn: np.ndarray, labels: np.ndarray, linear, test_texts) -> dict:
    """Test accuracy of the linear companion alone, of its average with the RNN's probabilities `rnn` at the chosen
    share, and of the equal average."""
    alone = linear.predict_proba(test_texts)
    accuracy = lambda p: round(float((p.argmax(-1) == labels).mean()), 6)  # noqa: E731
    weight = linear.ensemble_weight
    return {
        "linear_test_accuracy": accuracy(alone),
        "with_linear_test_accuracy": accuracy(weight * alone + (1 - weight) * rnn),
        "linear_weight": weight,
        "equal_average_test_accuracy": accuracy((alone + rnn) / 2),
    }


def _select_within_budget(make_model, target, training_args, trainer_kwargs: dict):
    """`fit_within_budget` on the training split (the stopping epoch and the mix chosen by cross-validation); the
    final run gets `trainer_kwargs` (its validation data and metrics)."""
    from ..budget_selection import fit_within_budget

    if training_args.resume_from_checkpoint:
        raise ValueError("--select_folds trains several fresh models: --resume_from_checkpoint does not apply.")
    kwargs = {k: v for k, v in trainer_kwargs.items() if k != "data_collator"}
    model, chosen = fit_within_budget(
        make_model,
        target.splits["train"],
        training_args,
        target.collator,
        score=selection_score(target),
        folds=training_args.select_folds,
        mixes=training_args.select_mixes,
        rule=training_args.select_rule,
        progress=not training_args.disable_tqdm,
        **kwargs,
    )
    if training_args.process_index == 0:
        print(chosen.summary())
    return model, chosen


def finetuned_card(run: FinetuneRun, repo_id: str, data_description: str, **card):
    """The card of a fine-tuned model: its lineage (`transfer_config`), transfer report, the trainer's recipe and its
    test score; `card` adds or overrides `CardContent` fields (e.g. `comparison`, `metrics`)."""
    from ..hub import CardContent, Metric

    metrics = card.pop("metrics", None)
    if metrics is None and "test_accuracy" in run.results:
        metrics = [Metric("accuracy", run.results["test_accuracy"])]
    if metrics is None and "test_bleu" in run.results:
        metrics = [Metric("bleu", run.results["test_bleu"]), Metric("chrf", run.results["test_chrf"])]
    if run.linear is not None and "summary" not in card:
        card["summary"] = linear_companion_summary(run, repo_id)
    lineage = run.model.transfer_config
    task = (
        "sequence to sequence (text2text generation)"
        if run.target.is_seq2seq
        else f"classification ({', '.join(run.target.labels.names)})"
    )
    return CardContent(
        repo_id=repo_id,
        objective=card.pop("objective", f"{task}, fine-tuned with hf-rnn-transfer"),
        data_description=data_description,
        base_model=lineage.source if lineage.source and is_hub_id(lineage.source) else None,
        metrics=metrics or [],
        training=run.trainer.transfer_recipe(),
        transfer=run.model.transfer_report.to_dict(),
        **card,
    )


def linear_companion_summary(run: FinetuneRun, repo_id: str) -> str:
    """The card's paragraph on the linear model shipped beside the RNN: what it learnt from, how to use it, scores."""
    trained = run.linear.training
    text = (
        f"A linear model (TF-IDF of word 1-2 grams + logistic regression) trained on the same labels ships beside "
        f"the RNN (`linear_model.json`, `linear_model.safetensors`; {trained.get('source_texts', 0)} source and "
        f"{trained.get('target_texts', 0)} target labelled texts, target weight {trained.get('target_weight')}). "
        f'`pipeline("text-classification-with-linear", model="{repo_id}", trust_remote_code=True)` answers with '
        f"the average of both models' class probabilities, the linear model's share {run.linear.ensemble_weight:.1f} "
        "(with hf-rnn-transfer installed: "
        '`pipeline("text-classification", model=..., pipeline_class=TextClassificationWithLinearPipeline)`).'
    )
    distilled = run.results.get("distillation")
    if distilled:
        epsilon, adversarial = distilled.get("adversarial_epsilon"), ""
        if epsilon:
            adversarial = f", with adversarial training on its word embeddings at {epsilon:g} of their norm"
        text += (
            f" The RNN was then trained {distilled['epochs']:g} more epochs on that average's class probabilities over "
            f"{distilled['texts']} unlabelled target texts (distillation{adversarial}), so it carries part of the "
            "average's gain alone."
        )
        if "teacher_rnn_test_accuracy" in distilled:
            text += f" Its test accuracy before the distillation: {distilled['teacher_rnn_test_accuracy']:.4f}."
    if "with_linear_test_accuracy" in run.results:
        text += (
            f" Test accuracy: RNN {run.results['test_accuracy']:.4f}, linear model "
            f"{run.results['linear_test_accuracy']:.4f}, their average {run.results['with_linear_test_accuracy']:.4f}."
        )
    return text


def push_finetuned(run: FinetuneRun, repo_id: str, token, data_description: str, extra_files=None, **card):
    """Push a fine-tuned model with its tokenizer and `finetuned_card` (and `extra_files`, e.g. plots; the linear
    companion's two files when it has one)."""
    import os

    from ..hub import push_model
    from ..linear_model import LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME

    content = finetuned_card(run, repo_id, data_description, **card)
    if run.linear is not None:
        folder = run.trainer.args.output_dir
        names = (LINEAR_CONFIG_NAME, LINEAR_WEIGHTS_NAME)
        extra_files = {**{name: os.path.join(folder, name) for name in names}, **(extra_files or {})}
    return push_model(run.model, repo_id, card=content, tokenizer=run.tokenizer, token=token, extra_files=extra_files)


def run_finetune(
    source_args: SourceArguments,
    data_args: TargetDataArguments,
    training_args,
    linear_args: LinearCompanionArguments | None = None,
) -> dict:
    """`hf-rnn-transfer finetune`: `finetune` in a Hub session, then `push_finetuned` when `--push_to` is given."""
    from ..hub import resolve_hub

    namespace = (source_args.push_to or "local/x").split("/")[0]
    with resolve_hub(source_args.endpoint, None, source_args.hub_root, namespace=namespace) as (_, token):
        run = finetune(source_args, data_args, training_args, token, linear_args=linear_args)
        if not run.trainer.is_world_process_zero():
            return {}  # a distributed run's other processes: the first one reports and pushes
        results = dict(run.results)
        if "test_accuracy" in results:
            print(f"test accuracy: {results['test_accuracy']:.4f}")
        if "linear_model" in results:
            choice = results["linear_model"]["weight_choice"]
            print(f"linear model saved beside it, its share of the average {choice['weight']:.1f}: {choice['reason']}")
        distilled = results.get("distillation")
        if distilled:
            print(
                f"distilled the RNN + linear average into the RNN on {distilled['texts']} unlabelled texts "
                f"({distilled['dropped']} dropped: empty or in the training/test splits)"
                + (
                    f"; RNN test accuracy {distilled['teacher_rnn_test_accuracy']:.4f} before, "
                    f"{results['test_accuracy']:.4f} after (the average before: "
                    f"{distilled['teacher_test_accuracy']:.4f})"
                    if "teacher_rnn_test_accuracy" in distilled
                    else ""
                )
            )
        if "with_linear_test_accuracy" in results:
            print(
                f"test accuracy of the linear model: {results['linear_test_accuracy']:.4f}; of the average: "
                f"{results['with_linear_test_accuracy']:.4f} (equal: {results['equal_average_test_accuracy']:.4f})"
            )
        if "test_bleu" in results:
            print(f"test BLEU: {results['test_bleu']:.2f}, chrF: {results['test_chrf']:.2f}")
        if source_args.push_to:
            commit = push_finetuned(run, source_args.push_to, token, data_args.dataset or "local files")
            results["pushed"] = f"{source_args.push_to}@{commit.oid}"
            print(f"pushed {results['pushed']}")
    return results
