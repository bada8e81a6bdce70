"""Layer groups, freezing schedules (static, gradual unfreezing, chain-thaw) and discriminative learning rates.

Groups run bottom to top: the embedding (or input projection), each recurrent layer, the head
(`model.get_layer_groups()`). A schedule says which groups train at a point of training; the trainer applies it.

Example:

```python
>>> schedule = FreezingSchedule("gradual", ["embedding", "layer_0", "layer_1", "head"], interval=1, unit="epoch")
>>> schedule.trainable(epoch=0.0, step=0), schedule.trainable(epoch=1.0, step=50)
(['head'], ['layer_1', 'head'])
```
"""

from dataclasses import dataclass

from torch import nn

FREEZING_STRATEGIES = ("none", "embeddings", "layers", "encoder", "gradual", "chain_thaw")
UNFREEZE_UNITS = ("epoch", "step")


@dataclass
class FreezingSchedule:
    """
    Which layer groups train when.

    Args:
        strategy: `"none"` (everything trains), `"embeddings"` (the embedding or input projection is frozen),
            `"layers"` (the embedding and the first `freeze_layers` recurrent layers are frozen), `"encoder"` (only the
            head trains: feature extraction / linear probe), `"gradual"` (ULMFiT: the head first, then one more
            group from the top every `interval`), `"chain_thaw"` (Felbo et al. 2017: the head, then each group alone
            from the bottom up, then everything; one stage per `interval`).
        group_names: the model's groups, bottom to top, the head last.
        freeze_layers: for `"layers"`, how many recurrent layers (from the bottom) stay frozen.
        interval: stage length for the scheduled strategies.
        unit: `"epoch"` or `"step"` (optimizer steps).
    """

    strategy: str
    group_names: list[str]
    freeze_layers: int = 0
    interval: float = 1.0
    unit: str = "epoch"

    def __post_init__(self):
        if self.strategy not in FREEZING_STRATEGIES:
            raise ValueError(
                f"freezing_strategy must be one of {', '.join(FREEZING_STRATEGIES)}; got {self.strategy!r}."
            )
        if self.unit not in UNFREEZE_UNITS:
            raise ValueError(f"unfreeze_unit must be one of {', '.join(UNFREEZE_UNITS)}; got {self.unit!r}.")
        if self.interval <= 0:
            raise ValueError(f"unfreeze_interval must be positive, got {self.interval}.")
        layers = [g for g in self.group_names if g.startswith("layer_")]
        if self.strategy == "layers" and not 0 <= self.freeze_layers <= len(layers):
            raise ValueError(
                f"freeze_layers must be between 0 and {len(layers)} (the model's layers), got {self.freeze_layers}."
            )
        if self.group_names[-1] != "head":
            raise ValueError("freezing schedules need a model with a head (the last layer group).")

    @property
    def num_stages(self) -> int:
        return {"gradual": len(self.group_names), "chain_thaw": len(self.group_names) + 1}.get(self.strategy, 1)

    def stage(self, epoch: float, step: int) -> int:
        progress = epoch if self.unit == "epoch" else step
        return min(int(progress // self.interval + 1e-9), self.num_stages - 1)

    def trainable(self, epoch: float = 0.0, step: int = 0) -> list[str]:
        """The groups that train at this point of training (epoch progress and optimizer steps so far)."""
        names = self.group_names
        if self.strategy == "none":
            return list(names)
        if self.strategy == "embeddings":
            return names[1:]
        if self.strategy == "layers":
            return names[1 + self.freeze_layers :]
        if self.strategy == "encoder":
            return ["head"]
        return self.trainable_at_stage(self.stage(epoch, step))

    def trainable_at_stage(self, stage: int) -> list[str]:
        """The groups that train during `stage` of a scheduled strategy (gradual, chain_thaw)."""
        names = self.group_names
        if self.strategy not in ("gradual", "chain_thaw"):
            return self.trainable()
        if self.strategy == "gradual":
            return names[len(names) - 1 - stage :]
        # chain-thaw: the new head first, then every group alone from the bottom, then all of them
        if stage == 0:
            return ["head"]
        if stage <= len(names) - 1:
            return [names[stage - 1]]
        return list(names)

    def describe(self) -> str:
        unit = f"{self.interval:g} {self.unit}{'s' if self.interval != 1 else ''}"
        return {
            "none": "no freezing: every group trains",
            "embeddings": f"the {self.group_names[0]} is frozen",
            "layers": f"the {self.group_names[0]} and the first {self.freeze_layers} recurrent layer(s) are frozen",
            "encoder": "the encoder is frozen; only the head trains (feature extraction)",
            "gradual": f"gradual unfreezing: the head first, then one more group from the top every {unit}",
            "chain_thaw": f"chain-thaw: the head, then each group alone from the bottom, then all; {unit} per stage",
        }[self.strategy]


def unfreeze_interval_for(epochs: float, num_groups: int) -> float:
    """Epochs per gradual-unfreezing stage: one (ULMFiT), or less when there are fewer epochs than groups, so that
    the last stage (every group training) still gets training."""
    return min(1.0, epochs / num_groups)


def discriminative_learning_rates(group_names: list[str], learning_rate: float, factor: float) -> dict[str, float]:
    """ULMFiT's discriminative fine-tuning: the head at `learning_rate`, each lower group's rate divided by `factor`."""
    if factor <= 0:
        raise ValueError(f"discriminative_lr_factor must be positive, got {factor}.")
    top = len(group_names) - 1
    return {name: learning_rate / factor ** (top - i) for i, name in enumerate(group_names)}


def dropout_modules_by_group(model: nn.Module) -> dict[str, list[nn.Dropout]]:
    """The dropout applied to each group's output: the embedding's, the one after each layer, the head's."""
    encoder = model.base_model
    groups = dict.fromkeys(model.get_layer_groups(), None)
    out: dict[str, list[nn.Dropout]] = {name: [] for name in groups}
    out[next(iter(groups))].append(encoder.embedding_dropout)
    for i, dropout in enumerate(encoder.layer_dropouts):
        out[f"layer_{i}"].append(dropout)
    if "head" in out and isinstance(getattr(model, "dropout", None), nn.Dropout):
        out["head"].append(model.dropout)
    return out
