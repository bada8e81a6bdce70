"""hf-rnn-transfer: transfer learning for recurrent networks (LSTM, GRU) on the Hugging Face stack.

Importing the package registers the model family with transformers' Auto classes, so
`AutoModelForSequenceClassification.from_pretrained(...)` resolves `rnn_transfer` checkpoints without remote code.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTimeSeriesPrediction,
    AutoModelForTokenClassification,
)

from .configuration_rnn import RNNConfig
from .modeling_rnn import (
    RNNCausalLMOutput,
    RNNForCausalLM,
    RNNForecastOutput,
    RNNForMultiTaskSequenceClassification,
    RNNForSequenceClassification,
    RNNForTimeSeriesForecasting,
    RNNForTokenClassification,
    RNNModel,
    RNNModelOutput,
    RNNPreTrainedModel,
    RNNSequenceClassifierOutput,
    RNNTokenClassifierOutput,
)

__version__ = "0.1.0"

_AUTO_CLASSES = {
    AutoModel: RNNModel,
    AutoModelForSequenceClassification: RNNForSequenceClassification,
    AutoModelForTokenClassification: RNNForTokenClassification,
    AutoModelForCausalLM: RNNForCausalLM,
    AutoModelForTimeSeriesPrediction: RNNForTimeSeriesForecasting,
}

AutoConfig.register(RNNConfig.model_type, RNNConfig, exist_ok=True)
RNNConfig.register_for_auto_class()
for _auto_class, _model_class in _AUTO_CLASSES.items():
    _auto_class.register(RNNConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)
# No Auto class fits a multi-task model: registering it under AutoModel makes its checkpoints carry the modeling code,
# and remote code then loads the whole multi-task model through AutoModel.
RNNForMultiTaskSequenceClassification.register_for_auto_class("AutoModel")

__all__ = [
    "__version__",
    "RNNConfig",
    "RNNPreTrainedModel",
    "RNNModel",
    "RNNForSequenceClassification",
    "RNNForMultiTaskSequenceClassification",
    "RNNForTokenClassification",
    "RNNForCausalLM",
    "RNNForTimeSeriesForecasting",
    "RNNModelOutput",
    "RNNSequenceClassifierOutput",
    "RNNTokenClassifierOutput",
    "RNNCausalLMOutput",
    "RNNForecastOutput",
]
