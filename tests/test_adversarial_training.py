"""Adversarial training on word embeddings in TransferTrainer: the perturbation's size and direction, the loss it adds,
robustness it buys, frozen embeddings, the recipe and the refusals."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import default_data_collator, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.adversarial_training import EmbeddingAdversary
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

SHAPE = dict(vocab_size=16, embedding_size=8, hidden_size=16, num_layers=1, pad_token_id=0, pooling="mean")


def marker_rows(rows: int, seed: int) -> Dataset:
    """Does token 3 occur? Rows of 8 tokens out of ids 4..9, the last two padding in every other row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, 10, size=(rows, 8))
    positive = rng.random(rows) < 0.5
    ids[positive, rng.integers(0, 6, size=positive.sum())] = 3
    mask = np.ones_like(ids)
    mask[::2, 6:] = 0
    ids[mask == 0] = 0
    return Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": positive.astype(int).tolist()}
    )


def model_without_dropout() -> RNNForSequenceClassification:
    set_seed(0)
    return RNNForSequenceClassification(
        RNNConfig(**SHAPE, num_labels=2, embedding_dropout=0.0, layer_dropout=0.0, classifier_dropout=0.0)
    )


def batch_of(rows: Dataset) -> dict:
    return {k: torch.tensor(rows[k]) for k in ("input_ids", "attention_mask", "labels")}


def captured_loss(adversary: EmbeddingAdversary, model, batch: dict) -> torch.Tensor:
    """The batch's loss, its embeddings captured for `adversary.perturbation`."""
    adversary.capturing = True
    loss = model(**batch).loss
    adversary.capturing = False
    return loss


def test_perturbation_has_epsilon_of_each_texts_norm_and_leaves_padding():
    model, batch = model_without_dropout(), batch_of(marker_rows(6, 0))
    adversary = EmbeddingAdversary(model, epsilon=0.1)
    loss = captured_loss(adversary, model, batch)
    perturbation = adversary.perturbation(loss, batch["attention_mask"])
    embedded = model.get_input_embeddings()(batch["input_ids"]) * batch["attention_mask"].unsqueeze(-1)
    for row in range(6):
        assert perturbation[row].norm().item() == pytest.approx(0.1 * embedded[row].norm().item(), rel=1e-4)
    assert torch.all(perturbation[0, 6:] == 0) and torch.any(perturbation[1, 6:] != 0)  # row 0 pads its last two
    # the direction raises the loss (a first-order step along the gradient)
    with adversary.perturbed(perturbation):
        raised = model(**batch).loss
    assert raised.item() > loss.item()
    assert model(**batch).loss.item() == pytest.approx(loss.item())  # the perturbation ends with the block
    adversary.remove()


def test_frozen_embeddings_still_give_a_perturbation():
    model, batch = model_without_dropout(), batch_of(marker_rows(4, 1))
    model.get_input_embeddings().weight.requires_grad_(False)
    adversary = EmbeddingAdversary(model, epsilon=0.05)
    loss = captured_loss(adversary, model, batch)
    assert adversary.perturbation(loss, batch["attention_mask"]).abs().sum() > 0
    with pytest.raises(RuntimeError, match="no embeddings captured"):
        adversary.perturbation(loss)


def test_trainer_adds_the_perturbed_loss(tmp_path):
    rows = marker_rows(8, 2)
    model = model_without_dropout()
    args = TransferTrainingArguments.for_experiment(str(tmp_path), adversarial_epsilon=0.2, max_steps=1)
    trainer = TransferTrainer(model, args, train_dataset=rows, data_collator=default_data_collator)
    batch = batch_of(rows)
    model.train()
    total = trainer.compute_loss(model, dict(batch))
    clean = model(**batch).loss  # what the perturbation is built from, computed again by hand
    by_hand = EmbeddingAdversary(model, epsilon=0.2)
    clean_again = captured_loss(by_hand, model, batch)
    trainer.embedding_adversary.remove()
    with by_hand.perturbed(by_hand.perturbation(clean_again, batch["attention_mask"])):
        perturbed = model(**batch).loss
    assert total.item() == pytest.approx(clean.item() + perturbed.item(), rel=1e-5)
    assert perturbed.item() > clean.item()
    assert "0.2 of their norm" in trainer.transfer_recipe()["adversarial training"]


def perturbed_accuracy(model, rows: Dataset, epsilon: float) -> float:
    """Accuracy when every text's embeddings move by `epsilon` of their norm along the loss's gradient."""
    model.eval()
    batch = batch_of(rows)
    if epsilon == 0:
        with torch.no_grad():
            return float((model(**batch).logits.argmax(-1) == batch["labels"]).float().mean())
    adversary = EmbeddingAdversary(model, epsilon)
    loss = captured_loss(adversary, model, batch)
    with adversary.perturbed(adversary.perturbation(loss, batch["attention_mask"])), torch.no_grad():
        predictions = model(**batch).logits.argmax(-1)
    adversary.remove()
    return float((predictions == batch["labels"]).float().mean())


@pytest.mark.parametrize("freezing", ["none", "gradual"])
def test_adversarial_training_learns_and_resists_the_perturbation(tmp_path, freezing):
    train, test = marker_rows(400, 3), marker_rows(200, 4)
    accuracy = {}
    for epsilon in (0.0, 0.3):
        model = model_without_dropout()
        args = TransferTrainingArguments.for_experiment(
            str(tmp_path / f"{epsilon}"), adversarial_epsilon=epsilon, num_train_epochs=8, learning_rate=2e-2,
            per_device_train_batch_size=16, freezing_strategy=freezing,
            unfreeze_interval=2.0 if freezing == "gradual" else 1.0,
        )  # fmt: skip
        TransferTrainer(model, args, train_dataset=train, data_collator=default_data_collator).train()
        accuracy[epsilon] = perturbed_accuracy(model, test, 0.0), perturbed_accuracy(model, test, 0.3)
    assert accuracy[0.3][0] >= 0.85  # it still learns the task (gradual: the embeddings train last)
    # trained against the perturbation, it keeps more of its accuracy under it than the plain model
    assert accuracy[0.3][1] - accuracy[0.3][0] > accuracy[0.0][1] - accuracy[0.0][0] + 0.05, accuracy


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="adversarial_epsilon must be >= 0"):
        TransferTrainingArguments.for_experiment(str(tmp_path), adversarial_epsilon=-0.1)
    series = RNNForSequenceClassification(RNNConfig(input_size=2, hidden_size=8, num_labels=2))
    args = TransferTrainingArguments.for_experiment(str(tmp_path), adversarial_epsilon=0.1)
    with pytest.raises(ValueError, match="reads no tokens"):
        TransferTrainer(series, args, train_dataset=marker_rows(4, 0))
    with pytest.raises(ValueError, match="must be positive"):
        EmbeddingAdversary(model_without_dropout(), epsilon=0.0)
    monkeypatch.setattr(TransferTrainingArguments, "n_gpu", property(lambda self: 2))  # DataParallel over 2 GPUs
    with pytest.raises(ValueError, match="one model replica per process"):
        TransferTrainer(model_without_dropout(), args, train_dataset=marker_rows(4, 0))


def test_logs_the_perturbed_loss(tmp_path):
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path), adversarial_epsilon=0.1, max_steps=4, logging_strategy="steps", logging_steps=2
    )
    trainer = TransferTrainer(model_without_dropout(), args, train_dataset=marker_rows(32, 5))
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all(entry["adversarial_loss"] > 0 for entry in logged)
