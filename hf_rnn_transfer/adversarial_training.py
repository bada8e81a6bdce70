"""
Adversarial training on word embeddings (Miyato, Dai & Goodfellow, "Adversarial Training Methods for Semi-Supervised
Text Classification", ICLR 2017).

Each training step also trains on its batch with every text's word embeddings moved a small step in the direction
that raises the loss most: the loss's gradient at the embeddings, scaled per text to `epsilon` times the norm of that
text's embeddings. The model learns to answer the same for texts whose words are slightly perturbed, a regulariser
that the paper found to lift LSTM text classifiers beyond dropout alone. `TransferTrainer` runs it when
`adversarial_epsilon > 0`.
"""

from contextlib import contextmanager

import torch
from torch import nn


class EmbeddingAdversary:
    """
    Reads a model's word embeddings through a forward hook and perturbs them for the adversarial pass.

    Args:
        model: a model with token input (`get_input_embeddings()` returns its embedding layer).
        epsilon: the perturbation's norm relative to the norm of a text's embeddings (the paper's 5.0 on normalised
            300-dimensional embeddings of ~400-word texts is about 0.02 of theirs).

    Example:

    ```python
    >>> adversary = EmbeddingAdversary(model, epsilon=0.02)
    >>> adversary.capturing = True
    >>> loss = model(**batch).loss
    >>> adversary.capturing = False
    >>> with adversary.perturbed(adversary.perturbation(loss, batch["attention_mask"])):
    ...     adversarial_loss = model(**batch).loss
    ```
    """

    def __init__(self, model: nn.Module, epsilon: float):
        get_embeddings = getattr(model, "get_input_embeddings", None)
        embeddings = get_embeddings() if get_embeddings is not None else None
        if embeddings is None:
            raise ValueError(
                f"adversarial training perturbs word embeddings: {type(model).__name__} reads no tokens (a model of "
                "continuous features has no embedding layer to perturb); set adversarial_epsilon to 0."
            )
        if not epsilon > 0:
            raise ValueError(f"adversarial epsilon must be positive, got {epsilon}.")
        self.epsilon = epsilon
        self.capturing = False
        self._captured: torch.Tensor | None = None
        self._perturbation: torch.Tensor | None = None
        self._hook = embeddings.register_forward_hook(self._read_or_perturb)
        self.losses: list[float] = []

    def _read_or_perturb(self, module, inputs, output):
        if self._perturbation is not None:
            return output + self._perturbation
        if self.capturing:
            if not output.requires_grad:  # a frozen embedding layer: the gradient is still wanted at its output
                output = output.detach().requires_grad_()
            self._captured = output
            return output
        return None

    def perturbation(self, loss: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The perturbation of the embeddings captured in the forward pass that gave `loss`: its gradient there, with
        each text's part scaled to `epsilon` times that text's embedding norm (padding left untouched)."""
        if self._captured is None:
            raise RuntimeError("no embeddings captured: set capturing = True around the forward pass that gives loss.")
        embedded, self._captured = self._captured, None
        (gradient,) = torch.autograd.grad(loss, embedded, retain_graph=True)
        dtype = embedded.dtype
        gradient, embedded = gradient.detach().float(), embedded.detach().float()
        if attention_mask is not None:
            keep = attention_mask.to(gradient.dtype).unsqueeze(-1)
            gradient, embedded = gradient * keep, embedded * keep
        per_text = tuple(range(1, gradient.dim()))
        scale = embedded.norm(dim=per_text, keepdim=True) / gradient.norm(dim=per_text, keepdim=True).clamp_min(1e-12)
        return (self.epsilon * scale * gradient).to(dtype)

    @contextmanager
    def perturbed(self, perturbation: torch.Tensor):
        """Inside: every forward pass adds `perturbation` to the embeddings."""
        self._perturbation = perturbation
        try:
            yield
        finally:
            self._perturbation = None

    def drain_metrics(self) -> dict[str, float]:
        """Mean loss on the perturbed batches (`adversarial_loss`) since the last call; compare it with the loss."""
        if not self.losses:
            return {}
        metrics = {"adversarial_loss": sum(self.losses) / len(self.losses)}
        self.losses.clear()
        return metrics

    def remove(self) -> None:
        """Detach the hook from the model."""
        self._hook.remove()
