"""The commands behind `hf-rnn-transfer pretrain`, `finetune`, `compare` and `rank-sources`: each takes the same
dataclasses the command line parses, so they run from Python too."""

from .compare import CompareArguments, parse_budgets, run_compare
from .finetune import SourceArguments, run_finetune
from .pretrain import PRETRAIN_OBJECTIVES, PretrainArguments, run_pretrain
from .rank_sources import RankSourcesArguments, run_rank_sources
from .target_data import EncodedTarget, TargetDataArguments, encode_target, load_target, read_target

__all__ = [
    "PRETRAIN_OBJECTIVES",
    "CompareArguments",
    "EncodedTarget",
    "PretrainArguments",
    "RankSourcesArguments",
    "SourceArguments",
    "TargetDataArguments",
    "encode_target",
    "load_target",
    "parse_budgets",
    "read_target",
    "run_compare",
    "run_finetune",
    "run_pretrain",
    "run_rank_sources",
]
