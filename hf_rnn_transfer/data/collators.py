"""Batching continuous input: pad `input_values` `[time, channels]` to the batch's longest, with `attention_mask`.

Token input uses transformers' own collators: `DataCollatorWithPadding` (classification) and
`DataCollatorForTokenClassification` (labels padded with -100).
"""

from dataclasses import dataclass

import torch


@dataclass
class DataCollatorForSeries:
    """
    Right-pad `input_values` of different lengths and add `attention_mask`; `labels` are stacked (class ids or
    forecasting targets) or, for per-step labels of different lengths, padded with `label_pad_value`.

    Example:

    ```python
    >>> collate = DataCollatorForSeries()
    >>> batch = collate([{"input_values": [[0.1], [0.2]], "labels": 1}, {"input_values": [[0.3]], "labels": 0}])
    >>> batch["input_values"].shape, batch["attention_mask"].tolist()
    (torch.Size([2, 2, 1]), [[1, 1], [1, 0]])
    ```
    """

    pad_value: float = 0.0
    label_pad_value: int = -100

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features or "input_values" not in features[0]:
            raise ValueError("DataCollatorForSeries needs rows with an `input_values` field.")
        values = [torch.as_tensor(f["input_values"], dtype=torch.float32) for f in features]
        if any(v.dim() != 2 for v in values):
            raise ValueError("each `input_values` must be [time, channels].")
        channels = {v.shape[1] for v in values}
        if len(channels) > 1:
            raise ValueError(f"a batch mixes series with {sorted(channels)} channels.")
        longest = max(v.shape[0] for v in values)
        batch = {
            "input_values": torch.stack(
                [torch.nn.functional.pad(v, (0, 0, 0, longest - len(v)), value=self.pad_value) for v in values]
            ),
            "attention_mask": torch.stack([(torch.arange(longest) < len(v)).long() for v in values]),
        }
        if "labels" in features[0]:
            labels = [torch.as_tensor(f["labels"]) for f in features]
            if labels[0].dim() == 0 or all(label.shape == labels[0].shape for label in labels):
                batch["labels"] = torch.stack(labels)
            else:
                width = max(len(label) for label in labels)
                batch["labels"] = torch.stack(
                    [
                        torch.nn.functional.pad(label, (0, width - len(label)), value=self.label_pad_value)
                        for label in labels
                    ]
                )
        return batch
