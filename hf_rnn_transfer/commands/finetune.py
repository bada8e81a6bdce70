"""`hf-rnn-transfer finetune`: transfer a source (Hub repo or directory) into a classifier for the target data and
fine-tune it with any strategy of `TransferTrainer`."""

from dataclasses import dataclass, field

from ..configuration_rnn import POOLING_TYPES
from ..transfer_config import TransferArguments, TransferConfig, transfer_config_from_arguments
from .target_data import TargetDataArguments, encode_target, load_source_config, read_target


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


def transferred_classifier(source_args: SourceArguments, target, token):
    """The target classifier built from the source's config and data, with the source's weights transferred."""
    from ..modeling_rnn import RNNForSequenceClassification

    return RNNForSequenceClassification.from_pretrained(
        source_args.source,
        transfer=source_args.transfer_config().replace(source=None),
        token=token,
        **({"pooling": source_args.pooling} if source_args.pooling else {}),
        **target.config,
    )


def run_finetune(source_args: SourceArguments, data_args: TargetDataArguments, training_args) -> dict:
    """Transfer the source into a classifier for the target labels, fine-tune it, evaluate it, optionally push it.

    Texts go through the source's tokenizer; series (a source with continuous input) keep their values and the
    target's own normalisation statistics.
    """
    from transformers import set_seed

    from ..evaluation import classification_metrics
    from ..hub import CardContent, Metric, is_hub_id, push_model, resolve_hub
    from ..trainer import TransferTrainer, checkpoint_to_resume

    raw = read_target(data_args)
    namespace = (source_args.push_to or "local/x").split("/")[0]
    with resolve_hub(source_args.endpoint, None, source_args.hub_root, namespace=namespace) as (_, token):
        source_config, tokenizer = load_source_config(source_args.source, source_args.revision, token)
        target = encode_target(raw, source_config, tokenizer, data_args)
        set_seed(training_args.seed)  # the new head is drawn before the Trainer seeds itself
        model = transferred_classifier(source_args, target, token)
        if training_args.process_index == 0:
            print(model.transfer_report)
        validation = target.splits.get("validation")
        if training_args.eval_strategy != "no" and validation is None:
            raise ValueError(
                f"--eval_strategy {getattr(training_args.eval_strategy, 'value', training_args.eval_strategy)} needs "
                "validation data: pass --validation_file, "
                "--validation_split_percentage, or a dataset with a validation split."
            )
        trainer = TransferTrainer(
            model=model,
            args=training_args,
            train_dataset=target.splits["train"],
            eval_dataset=validation,
            data_collator=target.collator,
            processing_class=tokenizer,
            compute_metrics=classification_metrics,
        )
        trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args))
        trainer.save_model(training_args.output_dir)
        test_metrics = (
            trainer.evaluate(target.splits["test"], metric_key_prefix="test") if "test" in target.splits else {}
        )
        if not trainer.is_world_process_zero():
            return {}  # a distributed run's other processes: the first one reports and pushes
        results = {
            "transfer": model.transfer_report.summary,
            "recipe": trainer.transfer_recipe(),
            "optimizer_steps": trainer.state.global_step,
            "processes": training_args.world_size,
        }
        if test_metrics:
            results["test_accuracy"] = test_metrics["test_accuracy"]
            results["test_macro_f1"] = test_metrics["test_macro_f1"]
            print(f"test accuracy: {results['test_accuracy']:.4f}")
        if source_args.push_to:
            card = CardContent(
                repo_id=source_args.push_to,
                objective=f"classification ({', '.join(target.labels.names)}), fine-tuned with hf-rnn-transfer",
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
