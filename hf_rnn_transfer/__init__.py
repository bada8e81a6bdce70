"""hf-rnn-transfer: transfer learning for recurrent networks (LSTM, GRU) on the Hugging Face stack.

Importing the package registers the model family with transformers' Auto classes, so
`AutoModelForSequenceClassification.from_pretrained(...)` resolves `rnn_transfer` checkpoints without remote code.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTimeSeriesPrediction,
    AutoModelForTokenClassification,
)

from . import modeling_rnn
from .configuration_rnn import RNNConfig
from .modeling_rnn import (
    RNNForCausalLM,
    RNNForMultiTaskSequenceClassification,
    RNNForSeq2SeqLM,
    RNNForSequenceClassification,
    RNNForTimeSeriesForecasting,
    RNNForTokenClassification,
    RNNModel,
)

__version__ = "0.1.0"

_AUTO_CLASSES = {
    AutoModel: RNNModel,
    AutoModelForSequenceClassification: RNNForSequenceClassification,
    AutoModelForTokenClassification: RNNForTokenClassification,
    AutoModelForCausalLM: RNNForCausalLM,
    AutoModelForTimeSeriesPrediction: RNNForTimeSeriesForecasting,
    AutoModelForSeq2SeqLM: RNNForSeq2SeqLM,
}

AutoConfig.register(RNNConfig.model_type, RNNConfig, exist_ok=True)
RNNConfig.register_for_auto_class()
for _auto_class, _model_class in _AUTO_CLASSES.items():
    _auto_class.register(RNNConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)
# No Auto class fits a multi-task model: registering it under AutoModel makes its checkpoints carry the modeling code,
# and remote code then loads the whole multi-task model through AutoModel.
RNNForMultiTaskSequenceClassification.register_for_auto_class("AutoModel")

# Imported on first use: the trainer pulls in the Trainer stack, which loading a model does not need.
_LAZY = {
    "TransferConfig": "transfer_config",
    "TransferReport": "transfer",
    "transfer": "transfer",
    "TransferTrainer": "trainer",
    "TransferTrainingArguments": "trainer",
    "auto_transfer": "commands.auto",
    "fit_within_budget": "budget_selection",
    "rank_sources": "selection",
    "LinearTextClassifier": "linear_model",
    "SourceEnsemble": "ensemble",
    "TextClassificationWithLinearPipeline": "pipeline_linear",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in modeling_rnn.__all__:
        return getattr(modeling_rnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "RNNConfig", *modeling_rnn.__all__, *_LAZY]
