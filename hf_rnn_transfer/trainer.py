"""`TransferTrainer`: a `transformers.Trainer` that fine-tunes with freezing schedules, discriminative learning rates,
the slanted triangular schedule and L2-SP, and stays correct under DistributedDataParallel.

How freezing is applied:

- In one process, frozen parameters get `requires_grad=False`: backward computes no weight gradients for them.
- Under DDP, every parameter keeps `requires_grad=True` (DDP registers the parameters that require grad when it
  wraps the model, so one unfrozen later would never be all-reduced and one frozen later breaks the reducer); the
  gradients of frozen groups are dropped after the all-reduce, so every replica skips them identically.

Either way a frozen parameter has no gradient at the optimizer step, so AdamW gives it no update, no weight decay
and no state. The optimizer holds every group from the start, so gradual unfreezing needs no new optimizer.
"""

import gc
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import SchedulerType, Trainer, TrainingArguments
from transformers.utils import logging

from .budget_selection import DEFAULT_MIXES, SELECTION_RULES
from .freezing import (
    FREEZING_STRATEGIES,
    UNFREEZE_UNITS,
    FreezingSchedule,
    discriminative_learning_rates,
    dropout_modules_by_group,
    unfreeze_interval_for,
)

logger = logging.get_logger(__name__)
SLANTED_TRIANGULAR = "slanted_triangular"


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return accelerator.is_available()
    return torch.cuda.is_available()


def native_bf16_available() -> bool:
    """Whether this machine computes bf16 natively where training runs: a CUDA GPU that supports it, or, without an
    accelerator, a CPU with AMX or AVX512-BF16 (there oneDNN's LSTM/GRU kernels run in bf16, ~1.5x fp32; elsewhere
    bf16 on a CPU is emulated and slower)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if _has_accelerator():  # MPS and others: not measured here, so not assumed
        return False
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private but stable since torch 2.1
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def bf16_speeds_up_training() -> bool:
    """Whether bf16 autocast makes recurrent training faster on this machine: on a CPU with AMX or AVX512-BF16, yes
    (~1.5x); on a CUDA GPU, no (cuDNN's bf16 LSTM measured no faster than fp32 on an H200; `fp16=True`, with its loss
    scaler, is the fast choice there: 1.5x); elsewhere not measured, so no."""
    return native_bf16_available() and not _has_accelerator()


_MPI_SIZES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")


def _refuse_a_lone_process_of_many() -> None:
    """`accelerate launch --num_processes N` on a machine without GPUs starts ONE process unless MPI is set up (its
    CPU launcher is mpirun): training would silently run alone. Fail instead, with the launch that works."""
    env = os.environ
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in env and "MASTER_PORT" in env
    if not launched_by_accelerate or "WORLD_SIZE" in env or any(k in env for k in _MPI_SIZES):
        return
    raise ValueError(
        "accelerate launch asked for several processes but started one: without a GPU, accelerate starts several "
        "CPU processes only through MPI (--mpirun_hostfile). Use `accelerate launch --multi_gpu --num_processes N "
        "...` (torch.distributed's launcher; training then runs DDP over gloo on CPU), or `torchrun "
        "--nproc_per_node N -m hf_rnn_transfer ...`, or --num_processes 1."
    )


def get_slanted_triangular_schedule(
    optimizer: torch.optim.Optimizer, num_training_steps: int, cut_frac: float = 0.1, ratio: float = 32.0
) -> LambdaLR:
    """
    ULMFiT's slanted triangular learning rate (Howard & Ruder 2018): a short linear increase over the first
    `cut_frac` of the steps, then a long linear decay, from `lr / ratio` to `lr` and back.

    Every parameter group keeps its own peak rate, so discriminative learning rates keep their ratios.
    """
    if not 0 < cut_frac < 1:
        raise ValueError(f"stlr_cut_frac must be in (0, 1), got {cut_frac}.")
    if ratio < 1:
        raise ValueError(f"stlr_ratio must be >= 1, got {ratio}.")
    cut = max(1, math.floor(num_training_steps * cut_frac))

    def multiplier(step: int) -> float:
        if step < cut:
            p = step / cut
        else:
            p = max(0.0, 1 - (step - cut) / max(1, cut * (1 / cut_frac - 1)))
        return (1 + p * (ratio - 1)) / ratio

    return LambdaLR(optimizer, multiplier)


def checkpoint_to_resume(args: TrainingArguments) -> str | None:
    """
    The checkpoint `--resume_from_checkpoint` names: a checkpoint folder, or `last` (or `true`) for the newest
    `checkpoint-*` in `output_dir`; `None` when not resuming.

    Raises:
        FileNotFoundError: the folder does not exist, or `output_dir` has no checkpoint to resume.
    """
    value = args.resume_from_checkpoint
    if value in (None, "", False):
        return None
    if str(value).lower() in ("last", "true"):
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
        if last is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {value}: {args.output_dir} holds no checkpoint-* folder (save with "
                "--save_strategy steps/epoch to write them)."
            )
        return last
    if not Path(value).is_dir():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {value!r} is not a folder; give a checkpoint-* folder, or 'last' for the newest "
            f"in {args.output_dir}."
        )
    return str(value)


@dataclass
class TransferTrainingArguments(TrainingArguments):
    """
    `TrainingArguments` plus the fine-tuning strategies of transfer learning (every field is in `--help`).

    Example:

    ```python
    >>> args = TransferTrainingArguments(output_dir="out", freezing_strategy="gradual", discriminative_lr=True,
    ...                                  lr_scheduler_type="slanted_triangular", learning_rate=4e-3)
    ```
    """

    lr_scheduler_type: str = field(
        default="linear",
        metadata={
            "help": "The learning-rate schedule: the transformers schedules, or slanted_triangular (ULMFiT; see "
            "--stlr_cut_frac and --stlr_ratio).",
            "choices": [t.value for t in SchedulerType] + [SLANTED_TRIANGULAR],
        },
    )
    freezing_strategy: str = field(
        default="none",
        metadata={
            "help": "Which layer groups train: none | embeddings (embedding frozen) | layers (embedding and the first "
            "--freeze_layers layers frozen) | encoder (only the head: feature extraction) | gradual (ULMFiT gradual "
            "unfreezing from the top) | chain_thaw (head, then each group alone, then all).",
            "choices": FREEZING_STRATEGIES,
        },
    )
    freeze_layers: int = field(default=0, metadata={"help": "With freezing_strategy=layers: frozen bottom layers."})
    unfreeze_interval: float | None = field(
        default=1.0,
        metadata={
            "help": "gradual/chain_thaw: length of a stage, in --unfreeze_unit. None (epochs only): one epoch per "
            "stage, less when there are fewer epochs than layer groups, so that every stage trains."
        },
    )
    unfreeze_unit: str = field(
        default="epoch", metadata={"help": "Unit of --unfreeze_interval: epoch or step.", "choices": UNFREEZE_UNITS}
    )
    discriminative_lr: bool = field(
        default=False, metadata={"help": "Discriminative learning rates: each lower group's rate is divided."}
    )
    discriminative_lr_factor: float = field(
        default=2.6, metadata={"help": "Divisor between neighbouring groups' learning rates (ULMFiT: 2.6)."}
    )
    stlr_cut_frac: float = field(
        default=0.1, metadata={"help": "lr_scheduler_type=slanted_triangular: share of steps spent increasing."}
    )
    stlr_ratio: float = field(
        default=32.0, metadata={"help": "lr_scheduler_type=slanted_triangular: peak rate / lowest rate."}
    )
    l2sp_alpha: float = field(
        default=0.0,
        metadata={
            "help": "L2-SP: strength of the pull of transferred weights towards their source values "
            "(replaces weight decay when > 0)."
        },
    )
    l2sp_beta: float = field(
        default=0.0, metadata={"help": "L2-SP: strength of the pull of new (re-initialised) weights towards zero."}
    )
    include_num_input_tokens_seen: str | None = field(
        default=None,
        metadata={
            "help": "Count the tokens trained on, so the logs show num_input_tokens_seen and train_tokens_per_second: "
            "non_padding (real tokens), all, or no. Default: non_padding on one process, no under torchrun / "
            "accelerate launch (counting adds a collective per step; no also saves a device sync per step).",
            "choices": ["non_padding", "all", "no"],
        },
    )
    frozen_dropout: bool = field(
        default=True,
        metadata={
            "help": "Keep dropout active on the outputs of frozen groups (the default, as in ULMFiT); "
            "--frozen_dropout false turns it off while a group is frozen."
        },
    )

    domain_adversarial_weight: float = field(
        default=0.0,
        metadata={
            "help": "Domain-adversarial training (DANN, Ganin et al. 2016): a domain classifier tells the pooled "
            "features of the labelled rows from those of unlabelled target rows (--domain_file; TransferTrainer's "
            "domain_dataset) and its reversed gradient makes the encoder's features domain-invariant. The largest "
            "reversal strength (ramped up from 0 as in the paper); 0 = off. Sequence classifiers only."
        },
    )
    source_replay_weight: float = field(
        default=0.0,
        metadata={
            "help": "Source replay (rehearsal): each training step also takes a batch of the source's labelled rows "
            "(--replay_file; TransferTrainer's replay_dataset), in the target's labels, and adds its loss times this "
            "weight, so fine-tuning on a few target labels does not forget what thousands of source labels taught "
            "(the linear model a user would pick instead trains on both too). 0 = off; 1 weighs a source batch as a "
            "target one. Classifiers whose source shares the target's labels."
        },
    )
    adversarial_epsilon: float = field(
        default=0.0,
        metadata={
            "help": "Adversarial training on word embeddings (Miyato et al. 2017): each step also trains on its batch "
            "with every text's embeddings moved, in the direction that raises the loss most, by this fraction of "
            "their norm (0.02 is about the paper's step). Costs a second forward and backward pass per step; 0 = off. "
            "Models of tokens only."
        },
    )
    select_folds: int = field(
        default=0,
        metadata={
            "help": "Choose the stopping epoch and how far to move from the transferred weights by k-fold "
            "cross-validation inside the training labels (never the test set): k fine-tunings on k-1 folds, scored "
            "on the held-out fold at every epoch for each --select_mixes weight, then the final run on all labels. "
            "0 (off) trains once for num_train_epochs. Used by finetune and compare (fit_within_budget)."
        },
    )
    select_mixes: list[float] = field(
        default_factory=lambda: list(DEFAULT_MIXES),
        metadata={
            "help": "With --select_folds: the weights of the fine-tuned model in its mix with the transferred start "
            "(WiSE-FT); 0 keeps the source as it is, 1 is the plain fine-tuned model."
        },
    )

    select_rule: str = field(
        default="paired_standard_error",
        metadata={
            "help": "With --select_folds: paired_standard_error (recommended) keeps the candidate closest to the "
            "source (the smallest mix, then the latest epoch) among those within one standard error of the best "
            "held-out score, the error being that of each "
            "candidate's per-row difference from the best on the same rows (noise does not move the model, a gain "
            "seen row after row does); one_standard_error does the same with the binomial error of an accuracy "
            "(more cautious: keeps the source more often); source_or_best keeps the source unless the best "
            "candidate beats it by more than one standard error of their per-row difference, then takes the best "
            "(moves further once the budget shows a gain); fine_tuned_unless_worse uses the same paired errors the "
            "other way: the candidate farthest from the source (largest mix, latest epoch) within one error of the "
            "best, so the full fine-tuning is kept unless the held-out rows show it worse; best takes the highest "
            "score.",
            "choices": list(SELECTION_RULES),
        },
    )

    carry_recurrent_state: bool = field(
        default=False,
        metadata={
            "help": "Truncated BPTT: feed each batch's final recurrent state (detached) into the next one. "
            "Use with a LanguageModelStream (batches in stream order); one process only."
        },
    )

    def __post_init__(self):
        _refuse_a_lone_process_of_many()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not self.use_cpu and not _has_accelerator():
            # Under torchrun on CPU-only machines, transformers would otherwise run one independent, non-distributed
            # copy per process; use_cpu makes Accelerate set up DDP over gloo.
            logger.info("WORLD_SIZE > 1 without an accelerator: using CPU DDP over gloo (use_cpu=True).")
            self.use_cpu = True
        if self.bf16 and not self.use_cpu and not _has_accelerator():
            # transformers refuses bf16 without a GPU unless told to run on the CPU, where it means CPU autocast
            self.use_cpu = True
            if not native_bf16_available():
                warnings.warn(
                    "bf16=True on a CPU without AMX or AVX512-BF16: bf16 is emulated there and slower than fp32; "
                    "leave bf16 off on this machine.",
                    stacklevel=2,
                )
        if self.include_num_input_tokens_seen is None:  # counting gathers across processes at every step
            self.include_num_input_tokens_seen = "no" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "non_padding"
        if self.dataloader_pin_memory and not _has_accelerator():
            self.dataloader_pin_memory = False  # pinned memory only serves a device; on CPU torch warns every epoch
        # transformers validates lr_scheduler_type against its own enum: hold ours aside during that check
        self.slanted_triangular = str(self.lr_scheduler_type) == SLANTED_TRIANGULAR
        if self.slanted_triangular:
            self.lr_scheduler_type = "linear"
        super().__post_init__()
        if self.slanted_triangular:
            self.lr_scheduler_type = SLANTED_TRIANGULAR
        if self.freezing_strategy not in FREEZING_STRATEGIES:
            raise ValueError(
                f"freezing_strategy must be one of {', '.join(FREEZING_STRATEGIES)}; got {self.freezing_strategy!r}."
            )
        if self.unfreeze_unit not in UNFREEZE_UNITS:
            raise ValueError(f"unfreeze_unit must be one of {', '.join(UNFREEZE_UNITS)}; got {self.unfreeze_unit!r}.")
        if self.l2sp_alpha < 0 or self.l2sp_beta < 0:
            raise ValueError("l2sp_alpha and l2sp_beta must be >= 0.")
        if self.discriminative_lr_factor <= 0:
            raise ValueError(f"discriminative_lr_factor must be positive, got {self.discriminative_lr_factor}.")
        unused = []
        if self.freeze_layers and self.freezing_strategy != "layers":
            unused.append(f"freeze_layers={self.freeze_layers} (only freezing_strategy='layers' uses it)")
        if not self.slanted_triangular and (self.stlr_cut_frac != 0.1 or self.stlr_ratio != 32.0):
            unused.append("stlr_cut_frac/stlr_ratio (only lr_scheduler_type='slanted_triangular' uses them)")
        if not self.discriminative_lr and self.discriminative_lr_factor != 2.6:
            unused.append(
                f"discriminative_lr_factor={self.discriminative_lr_factor} (set discriminative_lr=True to use it)"
            )
        if self.unfreeze_interval is None and self.unfreeze_unit != "epoch":
            raise ValueError("unfreeze_interval=None (spread over the epochs) needs unfreeze_unit='epoch'.")
        if self.freezing_strategy not in ("gradual", "chain_thaw") and (
            self.unfreeze_interval not in (1.0, None) or self.unfreeze_unit != "epoch"
        ):
            unused.append("unfreeze_interval/unfreeze_unit (only the gradual and chain_thaw strategies use them)")
        for option in unused:
            warnings.warn(f"TransferTrainingArguments: {option} is ignored.", UserWarning, stacklevel=3)
        if self.domain_adversarial_weight < 0:
            raise ValueError(f"domain_adversarial_weight must be >= 0, got {self.domain_adversarial_weight}.")
        if self.source_replay_weight < 0:
            raise ValueError(f"source_replay_weight must be >= 0, got {self.source_replay_weight}.")
        if self.adversarial_epsilon < 0:
            raise ValueError(f"adversarial_epsilon must be >= 0 (0 turns it off), got {self.adversarial_epsilon}.")
        if self.select_folds < 0 or self.select_folds == 1:
            raise ValueError(f"select_folds must be 0 (off) or at least 2, got {self.select_folds}.")
        if self.select_rule not in SELECTION_RULES:
            raise ValueError(f"select_rule must be one of {', '.join(SELECTION_RULES)}, got {self.select_rule!r}.")
        if any(not 0.0 <= m <= 1.0 for m in self.select_mixes) or not self.select_mixes:
            raise ValueError(f"select_mixes must be weights in [0, 1], got {self.select_mixes}.")
        if self.carry_recurrent_state and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "carry_recurrent_state needs the streams in order on one process; with several processes each would "
                "see other streams' batches. Pretrain the language model on one device, or without carried state."
            )

    @classmethod
    def for_experiment(cls, output_dir: str, **recipe) -> "TransferTrainingArguments":
        """
        Arguments for one run inside an experiment (a comparison, a benchmark, an example's scratch baseline): nothing
        saved, no logging integrations or progress bars, seed 0; `recipe` sets the rest (and may override these).

        Example:

        ```python
        >>> args = TransferTrainingArguments.for_experiment("out", num_train_epochs=4, learning_rate=5e-3)
        ```
        """
        quiet = dict(report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0)
        return cls(output_dir, **{**quiet, **recipe})

    @property
    def uses_l2sp(self) -> bool:
        return self.l2sp_alpha > 0 or self.l2sp_beta > 0


@dataclass
class RecommendedTrainingArguments(TransferTrainingArguments):
    """
    `TransferTrainingArguments` whose defaults are the recommended fine-tuning recipe (ULMFiT's, as the demo runs it):
    gradual unfreezing spread over 8 epochs, discriminative learning rates from a peak of 4e-3, the slanted
    triangular schedule, batches of 16. The `finetune` and `compare` commands parse these, so a user who gives no
    hyper-parameters gets a sound run instead of the Trainer's generic defaults (5e-5 for 3 epochs); every flag
    still overrides.
    """

    learning_rate: float = field(default=4e-3, metadata={"help": "Peak learning rate of the head (recommended 4e-3)."})
    num_train_epochs: float = field(default=8.0, metadata={"help": "Epochs of fine-tuning (recommended 8)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Batch size per device (recommended 16)."})
    lr_scheduler_type: str = field(
        default=SLANTED_TRIANGULAR,
        metadata={
            "help": "The learning-rate schedule (recommended: slanted_triangular).",
            "choices": [t.value for t in SchedulerType] + [SLANTED_TRIANGULAR],
        },
    )
    freezing_strategy: str = field(
        default="gradual",
        metadata={"help": "Which layer groups train (recommended: gradual).", "choices": FREEZING_STRATEGIES},
    )
    unfreeze_interval: float | None = field(
        default=None, metadata={"help": "Length of a stage (default None: spread over the epochs)."}
    )
    discriminative_lr: bool = field(
        default=True, metadata={"help": "Discriminative learning rates (recommended; --discriminative_lr false)."}
    )
    select_folds: int = field(
        default=4,
        metadata={
            "help": "Stopping epoch and mix with the transferred weights chosen by 4-fold cross-validation inside the "
            "labels (recommended; 5 trainings instead of 1; --select_folds 0 turns it off)."
        },
    )


class TransferTrainer(Trainer):
    """
    A `Trainer` for fine-tuning a transferred model: freezing schedules, discriminative learning rates, the slanted
    triangular schedule and L2-SP, all chosen in `TransferTrainingArguments`; everything else is the Trainer's
    (evaluation, checkpoints and resume, logging, mixed precision, `accelerate launch`/`torchrun`, `push_to_hub`, which
    writes this project's model card with the transfer recipe).

    Example:

    ```python
    >>> model = RNNForSequenceClassification.from_pretrained("alice/reviews-lm", num_labels=2, transfer_layers=2)
    >>> args = TransferTrainingArguments("out", freezing_strategy="gradual", discriminative_lr=True,
    ...                                  lr_scheduler_type="slanted_triangular", num_train_epochs=4)
    >>> TransferTrainer(model=model, args=args, train_dataset=train, eval_dataset=test).train()
    ```
    """

    def __init__(
        self, model=None, args: TransferTrainingArguments = None, domain_dataset=None, replay_dataset=None, **kwargs
    ):
        if args is None:
            raise ValueError("TransferTrainer needs TransferTrainingArguments (args=...).")
        if not isinstance(args, TransferTrainingArguments):
            raise TypeError(f"TransferTrainer needs TransferTrainingArguments, got {type(args).__name__}.")
        if model is None or not hasattr(model, "get_layer_groups"):
            raise ValueError("TransferTrainer needs an hf-rnn-transfer model (one with get_layer_groups()).")
        self.layer_groups = model.get_layer_groups()
        interval = args.unfreeze_interval
        if interval is None:
            interval = unfreeze_interval_for(args.num_train_epochs, len(self.layer_groups))
        self.schedule = FreezingSchedule(
            args.freezing_strategy,
            list(self.layer_groups),
            args.freeze_layers,
            interval,
            args.unfreeze_unit,
        )
        self._group_of = {name: group for group, names in self.layer_groups.items() for name in names}
        self._dropouts = dropout_modules_by_group(model)
        self._trainable_groups: list[str] | None = None
        self._carried_state = None
        self.unfreezing_history: list[dict] = []
        self._logged_stage: int | None = None
        self._l2sp_reference = (
            self._l2sp_reference_weights(model, kwargs.get("processing_class")) if args.uses_l2sp else None
        )
        super().__init__(model=model, args=args, **kwargs)
        self.adversary = self._domain_adversary(domain_dataset)
        self.replay = self._source_replay(replay_dataset)
        self.embedding_adversary = self._embedding_adversary()
        self._apply_schedule()

    def _second_stream(
        self, dataset, required, *, name: str, weight: str, flag: str, purpose: str, example: str, needs: str
    ):
        """Shuffled, seeded batches of `dataset`'s `required` columns (and `attention_mask`), collated as the
        training rows, read beside the training batches when the argument `weight` is > 0 (`None` when it is 0);
        refuses the dataset without the weight, the weight without the dataset, missing columns, several processes."""
        from torch.utils.data import DataLoader

        if getattr(self.args, weight) == 0:
            if dataset is not None:
                raise ValueError(
                    f"{name} is read only by {purpose}: set {weight} > 0 (e.g. {example}), or leave {name} out."
                )
            return None
        if dataset is None or len(dataset) == 0:
            raise ValueError(f"{weight} > 0 needs {needs}: TransferTrainer({name}=...) ({flag} in the commands).")
        if self.args.world_size > 1:
            raise ValueError(f"{purpose} runs on one process; train without torchrun/accelerate.")
        missing = [c for c in required if c not in dataset.column_names]
        if missing:
            raise ValueError(f"{name} needs the columns {required} (tokenised {needs}); it lacks {missing}.")
        columns = [c for c in (*required, "attention_mask") if c in dataset.column_names]
        return DataLoader(
            dataset.select_columns(columns),
            batch_size=self.args.per_device_train_batch_size,
            shuffle=True,
            collate_fn=self.data_collator,
            generator=torch.Generator().manual_seed(self.args.seed),
        )

    def _source_replay(self, replay_dataset):
        """The source batches replayed beside the target's, when `source_replay_weight > 0`."""
        from .source_replay import SourceReplay

        batches = self._second_stream(
            replay_dataset, ["input_ids", "labels"], name="replay_dataset", weight="source_replay_weight",
            flag="--replay_file", purpose="source replay", example="1.0", needs="the source's labelled rows",
        )  # fmt: skip
        return None if batches is None else SourceReplay(batches, self.args.source_replay_weight)

    def _domain_adversary(self, domain_dataset):
        """The DANN domain classifier and its target batches, when `domain_adversarial_weight > 0`."""
        from .domain_adversarial import DomainAdversary

        batches = self._second_stream(
            domain_dataset, ["input_ids"], name="domain_dataset", weight="domain_adversarial_weight",
            flag="--domain_file", purpose="domain-adversarial training", example="0.1", needs="unlabelled target rows",
        )  # fmt: skip
        if batches is None:
            return None
        return DomainAdversary(self.model, batches, self.args.domain_adversarial_weight).to(self.args.device)

    def _embedding_adversary(self):
        """The hook that perturbs the word embeddings, when `adversarial_epsilon > 0`."""
        from .adversarial_training import EmbeddingAdversary

        if self.args.adversarial_epsilon == 0:
            return None
        if self.args.n_gpu > 1:  # DataParallel replicas would share one hook and capture each other's embeddings
            raise ValueError(
                "adversarial training needs one model replica per process: with several GPUs, launch with torchrun "
                "or accelerate launch (one process per GPU) instead of one process over all of them."
            )
        return EmbeddingAdversary(self.model, self.args.adversarial_epsilon)

    # -- optimizer and schedule ----------------------------------------------------------------------------------
    @property
    def group_learning_rates(self) -> dict[str, float]:
        names = list(self.layer_groups)
        if self.args.discriminative_lr:
            return discriminative_learning_rates(names, self.args.learning_rate, self.args.discriminative_lr_factor)
        return dict.fromkeys(names, self.args.learning_rate)

    def create_optimizer(self, model=None):
        """One parameter group per layer group (and decay / no decay), frozen groups included from the start."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(opt_model))
            weight_decay = 0.0 if self.args.uses_l2sp else self.args.weight_decay
            if self.args.uses_l2sp and self.args.weight_decay > 0:
                logger.warning("L2-SP replaces weight decay: weight_decay=%s is not applied.", self.args.weight_decay)
            parameters = dict(opt_model.named_parameters())
            groups = []
            for group, lr in self.group_learning_rates.items():
                for decayed in (True, False):
                    params = [parameters[n] for n in self.layer_groups[group] if (n in decay) == decayed]
                    if params:
                        groups.append(
                            {
                                "params": params,
                                "lr": lr,
                                "weight_decay": weight_decay if decayed else 0.0,
                                "layer_group": group,
                            }
                        )
            if getattr(self, "adversary", None) is not None:  # trains from the start, at the head's rate
                groups.append(
                    {"params": list(self.adversary.parameters()), "lr": self.args.learning_rate, "weight_decay": 0.0}
                )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        self._check_schedule_fits(num_training_steps)
        if self.lr_scheduler is None and self.args.slanted_triangular:
            self.lr_scheduler = get_slanted_triangular_schedule(
                optimizer or self.optimizer, num_training_steps, self.args.stlr_cut_frac, self.args.stlr_ratio
            )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    # -- freezing ------------------------------------------------------------------------------------------------
    def _check_schedule_fits(self, num_training_steps: int) -> None:
        """Refuse a gradual / chain-thaw schedule whose last stage would never start: some groups would never train
        while the model card says they were unfrozen."""
        schedule = self.schedule
        if schedule.num_stages <= 1:
            return
        if schedule.unit == "step":
            available, unit = float(num_training_steps), "optimizer steps"
        else:
            unit = "epochs"
            if self.args.max_steps > 0:
                try:
                    per_epoch = max(1, len(self.get_train_dataloader()) // self.args.gradient_accumulation_steps)
                except TypeError:
                    return  # a stream without a length: epochs are not defined
                available = num_training_steps / per_epoch
            else:
                available = float(self.args.num_train_epochs)
        needed = schedule.interval * (schedule.num_stages - 1)  # when the last stage begins
        if available > needed + 1e-9:
            return
        if available <= 0:
            raise ValueError(
                f"freezing_strategy={schedule.strategy!r} with training of 0 {unit}: nothing would train. Set "
                f"num_train_epochs (or max_steps) above {needed:g} {unit} so that every stage runs."
            )
        reached = max(0, math.ceil(available / schedule.interval - 1e-9) - 1)
        trained = {g for stage in range(reached + 1) for g in schedule.trainable_at_stage(stage)}
        never = [g for g in schedule.group_names if g not in trained]
        raise ValueError(
            f"freezing_strategy={schedule.strategy!r} has {schedule.num_stages} stages of {schedule.interval:g} "
            f"{unit}: its last stage starts after {needed:g} {unit}, but training lasts {available:g}"
            + (f", so {', '.join(never)} would never train" if never else "")
            + f". Train longer than {needed:g} {unit} (num_train_epochs / max_steps) or set unfreeze_interval below "
            f"{available / (schedule.num_stages - 1):g}."
        )

    @property
    def is_distributed(self) -> bool:
        return self.args.world_size > 1

    def _apply_schedule(self) -> None:
        epoch = self.state.epoch or 0.0
        trainable = self.schedule.trainable(epoch=epoch, step=self.state.global_step)
        if trainable == self._trainable_groups:
            return
        self._trainable_groups = trainable
        self._frozen_names = [n for g, names in self.layer_groups.items() if g not in trainable for n in names]
        for name, param in self.model.named_parameters():
            # under DDP every parameter stays registered with the reducer; frozen gradients are dropped instead
            param.requires_grad_(self.is_distributed or self._group_of.get(name, "head") in trainable)
        self.unfreezing_history.append({"step": self.state.global_step, "epoch": epoch, "trainable": trainable})
        logger.info("step %d: training %s", self.state.global_step, ", ".join(trainable))

    @property
    def _groups_differ(self) -> bool:
        """Whether layer groups train differently (frozen groups, discriminative rates): only then are per-group
        rates and stages worth logging."""
        return self.args.discriminative_lr or self.args.freezing_strategy != "none"

    def stage_metrics(self) -> dict[str, float]:
        """The freezing stage as numbers every logger takes: the stage (0 = first) and each group's state (1 trains,
        0 frozen)."""
        trainable = set(self._trainable_groups or [])
        metrics = {"freezing/stage": float(len(self.unfreezing_history) - 1)}
        metrics.update({f"freezing/{g}": float(g in trainable) for g in self.layer_groups})
        return metrics

    def group_rates(self) -> dict[str, float]:
        """The rate each layer group trains at now: the scheduled rate, or 0 while the group is frozen."""
        trainable = set(self._trainable_groups or [])
        rates = {}
        for group in self.optimizer.param_groups if self.optimizer is not None else []:
            name = group.get("layer_group")
            if name is not None and name not in rates:
                rates[name] = float(group["lr"]) if name in trainable else 0.0
        return rates

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        """The Trainer's log, plus every layer group's learning rate (`learning_rate/<group>`); `learning_rate`
        itself is the top group's (the Trainer's default would be the first group's, often a frozen embedding)."""
        if "loss" in logs:  # the extra losses' means since the last log (the Trainer may log before they exist)
            for extra in ("adversary", "embedding_adversary", "replay"):
                if getattr(self, extra, None) is not None:
                    logs.update(getattr(self, extra).drain_metrics())
        if "learning_rate" in logs and self._groups_differ:
            rates = self.group_rates()
            if rates:
                logs["learning_rate"] = rates[list(rates)[-1]]
                logs.update({f"learning_rate/{name}": rate for name, rate in rates.items()})
        super().log(logs, *args, **kwargs)

    def _apply_frozen_dropout(self) -> None:
        if self.args.frozen_dropout:
            return
        for group, modules in self._dropouts.items():
            for module in modules:
                module.train(self.model.training and group in self._trainable_groups)

    def train(self, *args, **kwargs):
        """`Trainer.train`. On a CPU, the full garbage collection that transformers runs before every training (to
        hand an accelerator's memory back) leaves out the objects that existed before it: it otherwise walks every
        object of the process, about 0.3 s per training after the imports alone, paid by each fold of the selection
        inside the budget. Those objects are collected as usual afterwards. A process that froze objects itself
        (`gc.freeze()`) keeps them frozen: the training leaves its collector alone."""
        if self.args.device.type != "cpu" or gc.get_freeze_count():
            return super().train(*args, **kwargs)
        gc.freeze()
        try:
            return super().train(*args, **kwargs)
        finally:
            gc.unfreeze()

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._apply_schedule()
        stage = len(self.unfreezing_history)
        if self._groups_differ and self._logged_stage != stage and self.args.logging_strategy != "no":
            self._logged_stage = stage  # a new freezing stage: say so in every log sink
            self.log(self.stage_metrics())
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.is_distributed:
            parameters = dict(self.model.named_parameters())
            for name in self._frozen_names:
                parameters[name].grad = None
        return loss

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if "stream_start" not in self._signature_columns:  # read by compute_loss, not by the model
            self._signature_columns.append("stream_start")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # the Trainer calls model.train() before this: re-apply the chosen dropout of frozen groups
        self._apply_frozen_dropout()
        stream_start = inputs.pop("stream_start", None)
        carry = self.args.carry_recurrent_state and model.training
        if carry:
            starting = stream_start is not None and bool(stream_start.any())
            if not starting and self._carried_state is not None:
                inputs["recurrent_state"] = self._carried_state
        adversarial = self.adversary is not None and model.training
        perturbing = self.embedding_adversary is not None and model.training
        if adversarial:
            self.adversary.capturing = True
        if perturbing:
            self.embedding_adversary.capturing = True
            batch = dict(inputs)  # the Trainer may pop the labels: the perturbed pass needs them again
        try:
            loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
            if perturbing:
                self.embedding_adversary.capturing = False
                task_loss = loss
            if adversarial:
                progress = self.state.global_step / max(1, self.state.max_steps)
                loss = loss + self._per_optimizer_step(self.adversary.loss(model, progress), num_items_in_batch)
        finally:
            if self.adversary is not None:
                self.adversary.capturing = False
            if self.embedding_adversary is not None:
                self.embedding_adversary.capturing = False
        if perturbing:  # after the domain adversary: its hook must not see the perturbed batch
            loss = loss + self._perturbed_loss(model, batch, task_loss, num_items_in_batch)
        if self.replay is not None and model.training:  # after the adversary: its hook must not see source rows
            loss = loss + self._per_optimizer_step(self.replay.loss(model), num_items_in_batch)
        if carry:
            state = outputs.get("recurrent_state") if isinstance(outputs, dict) else None
            if state is None:
                raise ValueError("carry_recurrent_state needs a model that returns recurrent_state (a language model).")
            self._carried_state = tuple(tuple(t.detach() for t in layer) for layer in state)
        if self._l2sp_reference is not None and model.training:
            loss = loss + self._per_optimizer_step(self.l2sp_penalty(), num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _perturbed_loss(self, model, batch: dict, task_loss: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        """The task loss again, on the batch with its embeddings moved along the task loss's gradient."""
        perturbation = self.embedding_adversary.perturbation(task_loss, batch.get("attention_mask"))
        with self.embedding_adversary.perturbed(perturbation):
            loss = super().compute_loss(model, batch, num_items_in_batch=num_items_in_batch)
        self.embedding_adversary.losses.append(float(loss.detach()))
        return loss

    def _per_optimizer_step(self, term: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        """A loss term meant once per optimizer step. When the model normalised its loss by the tokens of all the
        accumulated batches, the Trainer does not divide by the accumulation steps: the term is shared out here."""
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            return term / self.current_gradient_accumulation_steps
        return term

    def _save(self, output_dir: str | None = None, state_dict=None):
        """The Trainer's save, with the training arguments as JSON (`training_args.json`, tokens masked) instead of
        a pickle (`training_args.bin`): nothing this project writes needs unpickling to read."""
        super()._save(output_dir, state_dict)
        folder = Path(output_dir if output_dir is not None else self.args.output_dir)
        pickled = folder / "training_args.bin"
        if pickled.exists():
            pickled.unlink()
            (folder / "training_args.json").write_text(self.args.to_json_string())

    # -- L2-SP ---------------------------------------------------------------------------------------------------
    def _l2sp_reference_weights(self, model, processing_class) -> dict[str, torch.Tensor | None]:
        """The source value of every transferred parameter (`None` for new ones): kept on the model right after a
        transfer, rebuilt from the pinned source after a reload (`source_reference_weights`)."""
        from .transfer import source_reference_weights

        report = getattr(model, "transfer_report", None)
        if report is None:
            raise ValueError(
                "L2-SP needs to know which weights came from the source: build the model with "
                "hf_rnn_transfer.transfer.transfer() or from_pretrained(..., transfer=TransferConfig(...)), or load a "
                "model saved after a transfer (its transfer_config.json and transfer_report.json)."
            )
        tokenizer = processing_class if hasattr(processing_class, "get_vocab") else None
        reference = source_reference_weights(model, target_tokenizer=tokenizer)
        moved = {t.target for t in report.tensors if t.status in ("copied", "remapped")}
        return {
            n: (reference[n].detach().clone().to(p.device) if n in moved and n in reference else None)
            for n, p in model.named_parameters()
        }

    def l2sp_penalty(self) -> torch.Tensor:
        """alpha/2 * sum ||w - w_source||^2 over transferred weights + beta/2 * sum ||w||^2 over new ones."""
        transferred, new = [], []
        for name, param in self.model.named_parameters():
            reference = self._l2sp_reference.get(name)
            if reference is None:
                new.append(param.pow(2).sum())
            else:
                if reference.device != param.device:
                    reference = self._l2sp_reference[name] = reference.to(param.device)
                transferred.append((param - reference).pow(2).sum())
        zero = next(self.model.parameters()).new_zeros(())
        return 0.5 * self.args.l2sp_alpha * sum(transferred, zero) + 0.5 * self.args.l2sp_beta * sum(new, zero)

    # -- reporting -----------------------------------------------------------------------------------------------
    def transfer_recipe(self) -> dict:
        """The fine-tuning recipe in plain words and numbers, for the model card."""
        args = self.args
        recipe = {
            "freezing": self.schedule.describe(),
            "learning rates": ", ".join(f"{g} {lr:.2e}" for g, lr in self.group_learning_rates.items()),
            "schedule": (
                f"slanted triangular (cut_frac {args.stlr_cut_frac}, ratio {args.stlr_ratio:g})"
                if args.slanted_triangular
                else str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
            ),
            "regularisation": (
                f"L2-SP (alpha {args.l2sp_alpha:g} towards the source weights, beta {args.l2sp_beta:g} on new ones)"
                if args.uses_l2sp
                else f"weight decay {args.weight_decay:g}"
            ),
            "optimizer": str(getattr(args.optim, "value", args.optim)),
            "epochs": args.num_train_epochs if args.max_steps <= 0 else f"{args.max_steps} steps",
            "batch size": args.per_device_train_batch_size * max(1, args.world_size) * args.gradient_accumulation_steps,
            "dropout on frozen groups": "kept" if args.frozen_dropout else "off",
        }
        if self.adversary is not None:
            recipe["domain adaptation"] = (
                f"domain-adversarial (DANN): reversal strength up to {args.domain_adversarial_weight:g}, "
                f"{len(self.adversary.batches.dataset):,} unlabelled target rows"
            )
        if self.embedding_adversary is not None:
            recipe["adversarial training"] = (
                f"word embeddings perturbed along the loss gradient by {args.adversarial_epsilon:g} of their norm"
            )
        if self.replay is not None:
            recipe["source replay"] = (
                f"a batch of the source's labelled rows each step, its loss weighted {args.source_replay_weight:g} "
                f"({len(self.replay.batches.dataset):,} source rows)"
            )
        chosen = getattr(self.model, "budget_selection", None)
        if chosen is not None:
            recipe["selection inside the budget"] = chosen.summary()
        return recipe

    def create_model_card(
        self,
        language=None,
        license=None,
        tags=None,
        model_name=None,
        finetuned_from=None,
        tasks=None,
        dataset_tags=None,
        dataset=None,
        dataset_args=None,
        **kwargs,
    ):
        """Write this project's card (lineage, transfer report, recipe, metrics) instead of the generic one."""
        if not self.is_world_process_zero():
            return
        from .hub.model_card import CardContent, Metric, build_model_card, is_hub_id

        report = getattr(self.model, "transfer_report", None)
        metrics = []
        evals = [e for e in self.state.log_history if any(k.startswith("eval_") for k in e)]
        if evals:
            last = evals[-1]
            metrics = [  # scores only: the loss, run times and speeds are not results of the model
                Metric(k[len("eval_") :], float(v), split="eval")
                for k, v in last.items()
                if k.startswith("eval_")
                and k != "eval_loss"
                and not k.endswith(("_runtime", "_per_second"))
                and isinstance(v, int | float)
            ]
        lineage = getattr(self.model, "transfer_config", None)
        base_model = finetuned_from or (lineage.source if lineage is not None else None)
        base_model = base_model if is_hub_id(base_model) else None  # cards name Hub repositories only
        repo_id = self.hub_model_id or model_name or Path(self.args.output_dir).name
        if "/" not in repo_id:
            repo_id = f"local/{repo_id}"
        datasets = [d for d in ([dataset] if isinstance(dataset, str) else dataset or []) if d]
        content = CardContent(
            repo_id=repo_id,
            objective=f"fine-tuning of a {type(self.model).__name__} ({self.schedule.describe()})",
            data_description=", ".join(datasets) or "see the repository's training data",
            datasets=[d for d in datasets if "/" in d],
            base_model=base_model,
            metrics=metrics,
            training=self.transfer_recipe(),
            transfer=report.to_dict() if report is not None else None,
            license=license,
            language=[language] if isinstance(language, str) else language,
            tags=[tags] if isinstance(tags, str) else list(tags or []),
        )
        has_tokenizer = self.processing_class is not None
        card = build_model_card(self.model, content, has_tokenizer=has_tokenizer)
        (Path(self.args.output_dir) / "README.md").write_text(str(card))
