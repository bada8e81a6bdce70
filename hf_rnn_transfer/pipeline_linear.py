"""`TextClassificationWithLinearPipeline`: a text-classification pipeline that averages the RNN's class probabilities
with those of the `LinearTextClassifier` saved beside it (`finetune --linear_companion`)."""

from __future__ import annotations

import torch
from transformers import TextClassificationPipeline

from .linear_model import LinearTextClassifier


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

    Example:

    ```python
    >>> from transformers import pipeline
    >>> from hf_rnn_transfer import TextClassificationWithLinearPipeline
    >>> classify = pipeline("text-classification", model="runs/kitchen",
    ...                     pipeline_class=TextClassificationWithLinearPipeline)
    >>> classify("The lid broke after a week.")
    [{'label': 'negative', 'score': 0.93}]
    ```
    """

    def __init__(self, *args, linear_model: LinearTextClassifier | str | None = None, linear_weight=None, **kwargs):
        super().__init__(*args, **kwargs)
        if linear_weight is not None and not 0.0 <= float(linear_weight) <= 1.0:
            raise ValueError(f"linear_weight (the linear model's share) is in [0, 1]; got {linear_weight}")
        if linear_model is None:
            linear_model = self.model.name_or_path
            if not linear_model:
                raise ValueError("the model was not loaded from a folder or repo: pass linear_model=.")
        if not isinstance(linear_model, LinearTextClassifier):
            linear_model = LinearTextClassifier.from_pretrained(linear_model)
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


__all__ = ["TextClassificationWithLinearPipeline"]
