"""`TextClassificationWithLinearPipeline`: a text-classification pipeline that averages the RNN's class probabilities
with those of the `LinearTextClassifier` saved beside it (`finetune --linear_companion`).

A checkpoint saved with a linear model names this file in `config.custom_pipelines` (task
`text-classification-with-linear`) and ships it with `linear_model.py`, so
`pipeline("text-classification-with-linear", model=repo, trust_remote_code=True)` works where only transformers is
installed. This file imports only transformers, torch and `linear_model.py`: it runs as remote code.
"""

from __future__ import annotations

import os

import torch
from transformers import TextClassificationPipeline

from .linear_model import LinearTextClassifier

LINEAR_PIPELINE_TASK = "text-classification-with-linear"
# what `config.custom_pipelines` names for LINEAR_PIPELINE_TASK (transformers resolves "pt" against its own classes)
LINEAR_PIPELINE = {
    "impl": "pipeline_linear.TextClassificationWithLinearPipeline",
    "pt": ["AutoModelForSequenceClassification"],
    "type": "text",
}


class TextClassificationWithLinearPipeline(TextClassificationPipeline):
    """
    `pipeline("text-classification")` whose answer is the weighted average of the RNN's and the linear model's class
    probabilities (`linear_weight` is the linear model's share; by default the one saved with the linear model:
    chosen inside the label budget by `finetune`, else 0.5).

    Args:
        linear_model: a `LinearTextClassifier`, or a folder / Hub repo id holding one (default: where the model was
            loaded from; pass `LinearTextClassifier.from_pretrained(repo, revision=..., token=...)` for a pinned
            revision or a private repo).
        linear_weight: the linear model's share of the average, in [0, 1] (default: `linear_model.ensemble_weight`).
        linear_revision: the revision of the repo the linear model is downloaded from (default: its newest; pass the
            model's `revision` when you pin one, so both come from the same commit).

    Example:

    ```python
    >>> from transformers import pipeline
    >>> classify = pipeline("text-classification-with-linear", model="alice/kitchen-lstm", trust_remote_code=True)
    >>> classify("The lid broke after a week.")
    [{'label': 'negative', 'score': 0.93}]
    >>> from hf_rnn_transfer import TextClassificationWithLinearPipeline  # with the package: no remote code
    >>> classify = pipeline("text-classification", model="runs/kitchen",
    ...                     pipeline_class=TextClassificationWithLinearPipeline)
    ```
    """

    def __init__(
        self,
        *args,
        linear_model: LinearTextClassifier | str | None = None,
        linear_weight=None,
        linear_revision: str | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if linear_weight is not None and not 0.0 <= float(linear_weight) <= 1.0:
            raise ValueError(f"linear_weight (the linear model's share) is in [0, 1]; got {linear_weight}")
        if linear_model is None:
            linear_model = self.model.name_or_path
            if not linear_model:
                raise ValueError("the model was not loaded from a folder or repo: pass linear_model=.")
        if isinstance(linear_model, (str, os.PathLike)):
            linear_model = LinearTextClassifier.from_pretrained(os.fspath(linear_model), revision=linear_revision)
        elif not hasattr(linear_model, "predict_proba"):  # the package's class, or remote code's copy of it
            raise TypeError(f"linear_model is a LinearTextClassifier, a folder or a repo id; got {linear_model!r}")
        names = {int(k): v for k, v in self.model.config.id2label.items()}
        if linear_model.id2label != names:
            raise ValueError(
                f"the linear model's labels {linear_model.id2label} are not the RNN's {names}: the two were not "
                "trained for the same task, and their probabilities cannot be averaged."
            )
        self.linear_model = linear_model
        self.linear_weight = float(linear_model.ensemble_weight if linear_weight is None else linear_weight)

    def preprocess(self, inputs, **tokenizer_kwargs):
        if not isinstance(inputs, str):
            raise ValueError(f"{type(self).__name__} classifies single texts (str), got {type(inputs).__name__}.")
        model_inputs = super().preprocess(inputs, **tokenizer_kwargs)
        model_inputs["linear_probabilities"] = torch.from_numpy(self.linear_model.predict_proba([inputs]))
        return model_inputs

    def _forward(self, model_inputs):
        linear = model_inputs.pop("linear_probabilities")
        logits = super()._forward(model_inputs)["logits"]
        rnn = logits.float().softmax(-1)
        average = self.linear_weight * linear.to(rnn) + (1.0 - self.linear_weight) * rnn
        # the parent's postprocess applies softmax to "logits": the log of a distribution comes back unchanged
        return {"logits": average.clamp_min(1e-12).log()}


__all__ = ["LINEAR_PIPELINE", "LINEAR_PIPELINE_TASK", "TextClassificationWithLinearPipeline"]
