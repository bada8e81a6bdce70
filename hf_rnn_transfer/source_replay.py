"""
Source replay (rehearsal): fine-tune on the target's labels while still training on the source's.

A source trained on thousands of labelled texts knows more than a target budget of a hundred can teach it; plain
fine-tuning on the budget alone drifts away from it (catastrophic forgetting), which is why the selection inside the
budget so often keeps the source untouched. The linear model a user would pick instead trains on the source's labels
and the budget's together. Replay does the same for the RNN: each training step also takes a batch of the source's
labelled rows (in the target's label ids) and adds its loss, times `source_replay_weight`, to the target batch's
(experience replay for continual learning: Robins 1995; Rolnick et al. 2019). `TransferTrainer` runs it when
`source_replay_weight > 0` and it is given `replay_dataset`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .domain_adversarial import cycled


class SourceReplay:
    """
    The stream of source batches and the loss they add.

    Args:
        batches: an iterable of labelled source batches (`input_ids`, `attention_mask`, `labels`), cycled.
        weight: the replayed loss's weight beside the target batch's (`source_replay_weight`).

    Example:

    ```python
    >>> replay = SourceReplay(DataLoader(source_rows, batch_size=16, shuffle=True, collate_fn=collator), 1.0)
    >>> loss = target_loss + replay.loss(model)
    ```
    """

    def __init__(self, batches: Iterable, weight: float):
        self.weight, self.batches = weight, batches
        self._stream = cycled(batches)
        self.losses: list[float] = []

    def loss(self, model: torch.nn.Module) -> torch.Tensor:
        """The next source batch through `model` (on the model's device): its loss times the weight."""
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in next(self._stream).items()}
        loss = model(**batch).loss
        self.losses.append(float(loss.detach()))
        return self.weight * loss

    def drain_metrics(self) -> dict[str, float]:
        """The mean source loss since the last call (`replay_loss`): it rises when the model forgets the source."""
        if not self.losses:
            return {}
        metrics = {"replay_loss": sum(self.losses) / len(self.losses)}
        self.losses.clear()
        return metrics


__all__ = ["SourceReplay"]
