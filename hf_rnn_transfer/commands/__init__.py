"""The commands behind `hf-rnn-transfer pretrain`, `finetune`, `compare`, `rank-sources` and `auto`: each takes the same
dataclasses the command line parses, so they run from Python too.

Each command is a core that does the work inside a Hub session it is given (`pretrain`, `finetune`,
`compare_transfer`, with `push_source` / `push_finetuned` / `write_comparison` for what it hands over) and a `run_*`
wrapper that opens the session (`resolve_hub`) and prints; the demo composes the cores in one session.
"""

from .auto import AutoArguments, AutoTransferResult, auto_transfer, run_auto, write_auto_report
from .compare import CompareArguments, compare_transfer, parse_budgets, run_compare, write_comparison
from .finetune import FinetuneRun, SourceArguments, finetune, finetuned_card, push_finetuned, run_finetune
from .linear_companion import LinearCompanionArguments, LinearSourceArguments, fit_linear_companion
from .pretrain import PRETRAIN_OBJECTIVES, PretrainArguments, PretrainRun, pretrain, push_source, run_pretrain
from .rank_sources import RankSourcesArguments, run_rank_sources
from .target_data import EncodedTarget, TargetDataArguments, encode_target, load_target, read_target

__all__ = [
    "PRETRAIN_OBJECTIVES",
    "AutoArguments",
    "AutoTransferResult",
    "auto_transfer",
    "run_auto",
    "write_auto_report",
    "CompareArguments",
    "LinearCompanionArguments",
    "LinearSourceArguments",
    "fit_linear_companion",
    "EncodedTarget",
    "FinetuneRun",
    "PretrainArguments",
    "PretrainRun",
    "RankSourcesArguments",
    "SourceArguments",
    "TargetDataArguments",
    "compare_transfer",
    "encode_target",
    "finetune",
    "finetuned_card",
    "load_target",
    "parse_budgets",
    "pretrain",
    "push_finetuned",
    "push_source",
    "read_target",
    "run_compare",
    "run_finetune",
    "run_pretrain",
    "run_rank_sources",
    "write_comparison",
]
