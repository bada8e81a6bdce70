"""
Domain-adversarial training (DANN: Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016).

A domain classifier learns to tell the pooled features of labelled (source) rows from those of unlabelled target
rows; a gradient-reversal layer between them sends the opposite of its gradient into the encoder, so the encoder
learns features that solve the task and that the domain classifier cannot tell apart: features that transfer to the
target domain. `TransferTrainer` runs it when `domain_adversarial_weight > 0` and it is given `domain_dataset`.
"""

import math

import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, scale):
        ctx.scale = scale
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def cycled(batches):
    """`batches` again and again, re-iterated each pass (a shuffling DataLoader reshuffles)."""
    while True:
        yield from batches


def reverse_gradient(features: torch.Tensor, scale: float) -> torch.Tensor:
    """The identity forward; the gradient multiplied by `-scale` backward."""
    return _ReverseGradient.apply(features, scale)


def adversarial_ramp(progress: float) -> float:
    """DANN's schedule of the reversal strength over training progress p in [0, 1]: 2 / (1 + exp(-10 p)) - 1, so
    the noisy early domain signal does not disturb the task (0 at the start, 0.99 at p = 0.5)."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class DomainAdversary(nn.Module):
    """
    The domain classifier over a sequence classifier's pooled features, and the stream of unlabelled target
    batches it compares them with.

    Args:
        model: a model with a `pooler` (e.g. `RNNForSequenceClassification`); its pooled features are read through
            a forward hook while `capturing` is set.
        batches: an iterable of unlabelled target batches (`input_ids`, `attention_mask`), cycled.
        weight: the largest reversal strength (`domain_adversarial_weight`).
    """

    def __init__(self, model: nn.Module, batches, weight: float):
        super().__init__()
        if not hasattr(model, "pooler"):
            raise ValueError(
                f"domain-adversarial training reads pooled sequence features: {type(model).__name__} has no pooler "
                "(use a sequence classifier, e.g. RNNForSequenceClassification)."
            )
        size = model.pooler.output_size
        self.classifier = nn.Sequential(nn.Linear(size, 100), nn.ReLU(), nn.Linear(100, 1))
        self.weight = weight
        self.batches = batches
        self._stream = cycled(batches)
        self._features: list[torch.Tensor] = []
        self.capturing = False
        self._hook = model.pooler.register_forward_hook(self._capture)
        self.losses: list[float] = []
        self.accuracies: list[float] = []

    def _capture(self, module, inputs, output):
        if self.capturing:
            self._features.append(output)

    def target_batch(self, device) -> dict:
        batch = next(self._stream)
        return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def loss(self, model: nn.Module, progress: float) -> torch.Tensor:
        """After the labelled forward pass (features captured), run the target batch through `model` and return the
        domain classifier's loss on both, with the reversed gradient into the encoder."""
        if len(self._features) != 1:
            raise RuntimeError(f"expected the labelled batch's pooled features, captured {len(self._features)}.")
        model(**self.target_batch(self._features[0].device))
        source, target = self._features
        self._features.clear()
        features = torch.cat([source, target])
        domains = torch.cat([source.new_zeros(len(source)), source.new_ones(len(target))])
        logits = self.classifier(reverse_gradient(features, self.weight * adversarial_ramp(progress))).squeeze(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), domains.float())
        self.losses.append(float(loss.detach()))
        self.accuracies.append(float(((logits.detach() > 0).float() == domains).float().mean()))
        return loss

    def drain_metrics(self) -> dict[str, float]:
        """Mean domain loss and domain-classifier accuracy since the last call (0.5 accuracy: the features no
        longer tell the domains apart)."""
        if not self.losses:
            return {}
        metrics = {
            "domain_loss": sum(self.losses) / len(self.losses),
            "domain_accuracy": sum(self.accuracies) / len(self.accuracies),
        }
        self.losses.clear()
        self.accuracies.clear()
        return metrics

    def remove(self) -> None:
        """Detach the feature hook from the model."""
        self._hook.remove()
