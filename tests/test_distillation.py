"""`distillation.py`: the RNN trained on a teacher's class probabilities (`teacher_probabilities` of the classifier's
forward), the rows it trains on, and the texts it may not see."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.distillation import distill, teacher_rows, without_texts


def _model(seed: int = 0) -> RNNForSequenceClassification:
    torch.manual_seed(seed)
    shape = dict(embedding_size=8, hidden_size=8, num_layers=1, num_labels=2, pooling="concat")
    config = RNNConfig(vocab_size=20, pad_token_id=0, **shape)
    return RNNForSequenceClassification(config)


def test_the_loss_against_teacher_probabilities_is_the_cross_entropy_and_checks_them():
    """One-hot teacher rows give the labels' loss; soft rows the cross-entropy against them; the wrong shape, rows
    that are not probabilities, and labels beside them are refused by name."""
    model = _model().eval()
    ids = torch.tensor([[3, 4, 5], [6, 7, 0]])
    mask = (ids != 0).long()
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        hard = model(input_ids=ids, attention_mask=mask, labels=labels)
        one_hot = model(input_ids=ids, attention_mask=mask, teacher_probabilities=torch.eye(2)[labels])
        soft = torch.tensor([[0.3, 0.7], [0.9, 0.1]])
        out = model(input_ids=ids, attention_mask=mask, teacher_probabilities=soft)
    torch.testing.assert_close(one_hot.loss, hard.loss)
    expected = -(soft * torch.log_softmax(out.logits, -1)).sum(-1).mean()
    torch.testing.assert_close(out.loss, expected)
    for bad, message in [
        (torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), r"the logits' shape \[batch, num_labels\] = \[2, 2\]"),
        (torch.tensor([[0.6, 0.6], [0.5, 0.5]]), "non-negative rows that sum to 1"),
        (torch.tensor([[1.5, -0.5], [0.5, 0.5]]), "non-negative rows that sum to 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            model(input_ids=ids, attention_mask=mask, teacher_probabilities=bad)
    with pytest.raises(ValueError, match="labels or teacher_probabilities, not both"):
        model(input_ids=ids, attention_mask=mask, labels=labels, teacher_probabilities=soft)


def test_teacher_rows_put_the_teacher_on_unlabelled_rows_and_one_hot_rows_on_labelled_ones():
    unlabelled = Dataset.from_dict({"input_ids": [[3, 4], [5]], "attention_mask": [[1, 1], [1]], "length": [2, 1]})
    labelled = Dataset.from_dict({"input_ids": [[6]], "attention_mask": [[1]], "labels": [1]})
    rows = teacher_rows(unlabelled, np.array([[0.2, 0.8], [0.6, 0.4]]), labelled)
    assert rows.column_names == ["input_ids", "attention_mask", "teacher_probabilities"]
    assert rows["input_ids"] == [[3, 4], [5], [6]]
    np.testing.assert_allclose(rows["teacher_probabilities"], [[0.2, 0.8], [0.6, 0.4], [0.0, 1.0]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"one row per unlabelled row \(2\), got shape \[3, 2\]"):
        teacher_rows(unlabelled, np.full((3, 2), 0.5))
    wrong = Dataset.from_dict({"input_ids": [[6]], "attention_mask": [[1]], "labels": [2]})
    with pytest.raises(ValueError, match=r"class ids in \[0, 1\]"):
        teacher_rows(unlabelled, np.full((2, 2), 0.5), wrong)


def test_distill_moves_the_rnn_to_the_teachers_answers(tmp_path):
    """Real training steps: a teacher that answers by one token (3 -> class 1, 4 -> class 0) on unlabelled rows; the
    distilled RNN agrees with it on new rows where the untrained one did not; bad epochs and rows are refused."""
    from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast
    from transformers.trainer_utils import set_seed

    from hf_rnn_transfer.trainer import TransferTrainingArguments

    rng = np.random.default_rng(0)

    def rows(n):
        ids = [[int(rng.choice([3, 4]))] + rng.integers(5, 20, size=int(rng.integers(2, 6))).tolist() for _ in range(n)]
        return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(r) for r in ids]})

    def agreement(model, data):
        model.eval()
        with torch.no_grad():
            answers = [int(model(input_ids=torch.tensor([r])).logits.argmax(-1)) for r in data["input_ids"]]
        return np.mean([a == (r[0] == 3) for a, r in zip(answers, data["input_ids"])])

    train, held_out = rows(160), rows(60)
    teacher = np.array([[0.1, 0.9] if r[0] == 3 else [0.9, 0.1] for r in train["input_ids"]])
    from tokenizers import Tokenizer, models

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[PAD]": 0}, "[PAD]")))
    tokenizer.pad_token = "[PAD]"
    collator = DataCollatorWithPadding(tokenizer)
    set_seed(0)
    model = _model(seed=1)
    before = agreement(model, held_out)
    args = TransferTrainingArguments(
        str(tmp_path / "run"), report_to="none", save_strategy="no", disable_tqdm=True, learning_rate=3e-2,
        per_device_train_batch_size=16, use_cpu=True, seed=0,
    )  # fmt: skip
    trainer = distill(model, teacher_rows(train, teacher), args, collator, epochs=6)
    assert trainer.state.global_step == 60  # 10 batches x 6 epochs
    after = agreement(model, held_out)
    assert after >= 0.95 and after > before + 0.2, (before, after)
    with pytest.raises(ValueError, match="epochs must be positive"):
        distill(model, teacher_rows(train, teacher), args, collator, epochs=0)
    with pytest.raises(ValueError, match="need a teacher_probabilities column"):
        distill(model, train, args, collator, epochs=1)


def test_without_texts_drops_the_banned_and_empty_texts():
    kept, dropped = without_texts(["Great pan", "great  PAN ", "", "Bad lid", "ok"], ["GREAT pan", "ok"])
    assert kept == ["Bad lid"] and dropped == 4
