"""Speech: spoken digits (FSDD). A source trained on five speakers -> the sixth speaker with a few recordings.

    python examples/speech_fsdd/transfer_speaker.py --fsdd $HF_RNN_TRANSFER_DATA/fsdd --target_speaker yweweler \
        --budgets 10 20 50 --output_dir runs/fsdd

Log-mel frames (`transformers.audio_utils`) feed a GRU classifier. The source learns the ten digits from the other
speakers; the target model starts from it (same labels, so the head moves too) and is fine-tuned on a few of the
new speaker's recordings, against the same model from scratch, over seeds, on the rest of that speaker's recordings.
"""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import HfArgumentParser, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import DataCollatorForSeries, prepare_audio, series_statistics
from hf_rnn_transfer.evaluation import accuracy_of, compare
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer

DATA = os.environ.get("HF_RNN_TRANSFER_DATA", "data")  # the folder of the real datasets


@dataclass
class SpeechArguments:
    fsdd: str = field(
        default=os.path.join(DATA, "fsdd"),
        metadata={"help": "FSDD folder (recordings.csv + wavs)."},
    )
    target_speaker: str = field(default="yweweler", metadata={"help": "The new speaker."})
    budgets: list[int] = field(default_factory=lambda: [10, 20, 50], metadata={"help": "Target recordings used."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds."})
    source_epochs: float = field(default=8.0, metadata={"help": "Source epochs."})
    target_epochs: float = field(default=20.0, metadata={"help": "Target epochs (both models)."})
    output_dir: str = field(default="runs/fsdd", metadata={"help": "Where to write the report and the curve."})


def main():
    (args,) = HfArgumentParser(SpeechArguments).parse_args_into_dataclasses()
    rows = list(csv.DictReader((Path(args.fsdd) / "recordings.csv").open()))
    speakers = sorted({r["speaker"] for r in rows})
    if args.target_speaker not in speakers:
        raise ValueError(f"--target_speaker must be one of {speakers}, got {args.target_speaker!r}.")

    def features(selected):
        data = Dataset.from_dict({"file": [r["file"] for r in selected], "label": [int(r["label"]) for r in selected]})
        return prepare_audio(data, root=args.fsdd, sampling_rate=8000, n_mels=20)

    source = features([r for r in rows if r["speaker"] != args.target_speaker])
    target = features([r for r in rows if r["speaker"] == args.target_speaker]).shuffle(seed=0)
    half = len(target) // 2  # the new speaker: budgets come from one half, the other half is the test set
    target_train, target_test = target.select(range(half)), target.select(range(half, len(target)))
    mean, std = series_statistics(source)
    config = dict(
        input_size=20,
        input_mean=mean,
        input_std=std,
        embedding_size=32,
        hidden_size=64,
        num_layers=1,
        cell_type="gru",
        pooling="concat",
        num_labels=10,
        classifier_dropout=0.2,
    )
    collator = DataCollatorForSeries()

    def training(epochs, **extra):
        return TransferTrainingArguments.for_experiment(
            f"{args.output_dir}/trainer",
            num_train_epochs=epochs,
            learning_rate=5e-3,
            per_device_train_batch_size=16,
            disable_tqdm=False,
            **extra,
        )

    set_seed(0)
    speaker_source = RNNForSequenceClassification(RNNConfig(**config))
    TransferTrainer(
        model=speaker_source, args=training(args.source_epochs), train_dataset=source, data_collator=collator
    ).train()
    print(
        f"source on {args.target_speaker}'s held-out recordings, never trained on them: "
        f"{accuracy_of(speaker_source, target_test, collator):.3f}"
    )

    def make_transfer(seed):
        set_seed(seed)
        return transfer(speaker_source, RNNForSequenceClassification(RNNConfig(**config)), transfer_head=True)[0]

    def make_scratch(seed):
        set_seed(seed)
        return RNNForSequenceClassification(RNNConfig(**config))

    result = compare(
        make_transfer,
        make_scratch,
        target_train,
        target_test,
        training(args.target_epochs, discriminative_lr=True),
        collator,
        budgets=args.budgets,
        seeds=args.seeds,
        scratch_args=training(args.target_epochs),
    )
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    result.plot(Path(args.output_dir) / "learning_curve.png")
    print(result.to_markdown())


if __name__ == "__main__":
    main()
