"""Several labelled source datasets as one multi-task dataset (a `task_ids` column), for multi-task pretraining."""

from datasets import ClassLabel, Dataset, Value, concatenate_datasets


def build_multitask_dataset(
    task_datasets: dict[str, Dataset], label_column: str = "label", seed: int = 0
) -> tuple[Dataset, dict[str, list[str]]]:
    """
    Concatenate one dataset per task, add `task_ids`, and shuffle so that batches interleave the tasks.

    Args:
        task_datasets: `{task name: dataset}`; each has `label_column` as a `ClassLabel` (or integer labels).
        label_column: the column holding each task's class ids (renamed to `labels`).
        seed: the shuffle seed.

    Returns:
        `(dataset, task_labels)`: the mixed dataset (columns of the inputs plus `task_ids` and `labels`), and
        `{task: label names}` for `RNNConfig(task_labels=...)`.

    Example:

    ```python
    >>> mixed, task_labels = build_multitask_dataset({"books": books, "dvd": dvd})
    >>> model = RNNForMultiTaskSequenceClassification(RNNConfig(vocab_size=..., task_labels=task_labels))
    ```
    """
    if not task_datasets:
        raise ValueError("build_multitask_dataset needs at least one task dataset.")
    parts, task_labels = [], {}
    for index, (task, dataset) in enumerate(task_datasets.items()):
        if label_column not in dataset.column_names:
            raise ValueError(f"task {task!r} has no {label_column!r} column; its columns are {dataset.column_names}.")
        feature = dataset.features[label_column]
        if isinstance(feature, ClassLabel):
            names = list(feature.names)
        else:
            names = [str(v) for v in sorted(set(dataset[label_column]))]
            if names != [str(i) for i in range(len(names))]:
                raise ValueError(f"task {task!r}: integer labels must be 0..n-1 (or cast the column to ClassLabel).")
        task_labels[task] = names
        part = dataset.rename_column(label_column, "labels") if label_column != "labels" else dataset
        # each task has its own label names: keep plain class ids, the names go to the config
        part = part.cast_column("labels", Value("int64"))
        parts.append(part.add_column("task_ids", [index] * len(part)))
    columns = set.intersection(*(set(p.column_names) for p in parts))
    parts = [p.remove_columns([c for c in p.column_names if c not in columns]) for p in parts]
    mixed = concatenate_datasets([p.cast(parts[0].features) for p in parts]).shuffle(seed=seed)
    return mixed, task_labels
