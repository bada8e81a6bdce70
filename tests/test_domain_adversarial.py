"""Domain-adversarial training (DANN) in TransferTrainer: the reversal layer, the ramp, features that no longer tell
the domains apart, the logs and recipe, and the refusals."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import default_data_collator, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, RNNForTokenClassification
from hf_rnn_transfer.domain_adversarial import adversarial_ramp, reverse_gradient
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

SHAPE = dict(vocab_size=16, embedding_size=8, hidden_size=16, num_layers=1, pad_token_id=0, pooling="mean")


def domain_rows(rows: int, seed: int, low: int, labelled: bool = True) -> Dataset:
    """The marker task (does token 3 occur?) over a domain's own words: ids low..low+5."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(low, low + 6, size=(rows, 8))
    positive = rng.random(rows) < 0.5
    ids[positive, rng.integers(0, 8, size=positive.sum())] = 3
    columns = {"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * rows}
    return Dataset.from_dict({**columns, "labels": positive.astype(int).tolist()} if labelled else columns)


def test_gradient_reversal_and_ramp():
    x = torch.ones(3, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    assert adversarial_ramp(0.0) == 0.0 and adversarial_ramp(0.5) == pytest.approx(0.9866, abs=1e-4)
    assert adversarial_ramp(1.0) > adversarial_ramp(0.5) > adversarial_ramp(0.1) > 0


def pooled(model, rows) -> np.ndarray:
    """The features the classifier (and the domain classifier) read: the model's own pooling of its encoder."""
    model.eval()
    with torch.no_grad():
        ids, mask = (torch.tensor(rows[k], device=model.device) for k in ("input_ids", "attention_mask"))
        return model.pooler(model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state, mask).cpu().numpy()


def domain_separability(model, source, target) -> float:
    """Held-out accuracy of a logistic regression telling source from target rows by their pooled features."""
    from sklearn.linear_model import LogisticRegression

    features = np.concatenate([pooled(model, source), pooled(model, target)])
    domains = np.array([0] * len(source) + [1] * len(target))
    order = np.random.default_rng(0).permutation(len(domains))
    train, test = order[:300], order[300:]
    probe = LogisticRegression(max_iter=2000).fit(features[train], domains[train])
    return float(probe.score(features[test], domains[test]))


def train(tmp_path, weight: float, target=None):
    set_seed(0)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path),
        num_train_epochs=8,
        learning_rate=5e-3,
        per_device_train_batch_size=16,
        domain_adversarial_weight=weight,
        logging_strategy="epoch",
    )
    trainer = TransferTrainer(
        model, args, train_dataset=domain_rows(320, 0, 4), data_collator=default_data_collator, domain_dataset=target
    )
    trainer.train()
    return model, trainer


def accuracy(model, rows) -> float:
    model.eval()
    with torch.no_grad():
        ids, mask = (torch.tensor(rows[k], device=model.device) for k in ("input_ids", "attention_mask"))
        predicted = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).cpu()
    return float((predicted == torch.tensor(rows["labels"])).float().mean())


def test_dann_transfers_to_an_unlabelled_domain_with_other_words(tmp_path):
    """Source and target share the task (does token 3 occur?) but not their other words; the target's labels are
    never seen. Without adaptation the classifier barely transfers; with DANN its features stop telling the
    domains apart and it does."""
    plain, _ = train(tmp_path / "plain", 0.0)
    adapted, trainer = train(tmp_path / "dann", 0.3, domain_rows(320, 1, 9, labelled=False))
    source_test, target_test = domain_rows(200, 2, 4), domain_rows(200, 3, 9)
    assert accuracy(adapted, target_test) > accuracy(plain, target_test) + 0.2
    assert accuracy(adapted, source_test) > 0.85 and accuracy(adapted, target_test) > 0.85
    assert domain_separability(adapted, source_test, target_test) < domain_separability(plain, source_test, target_test)
    logged = [e for e in trainer.state.log_history if "domain_loss" in e]
    assert len(logged) == 8 and all(0 <= e["domain_accuracy"] <= 1 for e in logged)
    assert "domain-adversarial (DANN)" in trainer.transfer_recipe()["domain adaptation"]
    adapted.save_pretrained(tmp_path / "saved")  # the domain classifier is the trainer's, never the model's
    reloaded = RNNForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert set(reloaded.state_dict()) == set(plain.state_dict())


def test_dann_refuses_what_it_cannot_run(tmp_path):
    rows, unlabelled = domain_rows(16, 0, 4), domain_rows(16, 1, 9, labelled=False)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))
    args = lambda w: TransferTrainingArguments.for_experiment(str(tmp_path), domain_adversarial_weight=w)  # noqa: E731
    with pytest.raises(ValueError, match="needs unlabelled target rows: TransferTrainer.domain_dataset"):
        TransferTrainer(model, args(0.1), train_dataset=rows, data_collator=default_data_collator)
    with pytest.raises(ValueError, match="domain_dataset is read only by domain-adversarial training"):
        TransferTrainer(model, args(0.0), train_dataset=rows, domain_dataset=unlabelled)
    with pytest.raises(ValueError, match="domain_adversarial_weight must be >= 0"):
        args(-1.0)
    tagger = RNNForTokenClassification(RNNConfig(**SHAPE, num_labels=3))
    with pytest.raises(ValueError, match="RNNForTokenClassification has no pooler"):
        TransferTrainer(tagger, args(0.1), train_dataset=rows, domain_dataset=unlabelled)
    with pytest.raises(
        ValueError, match=r"domain_dataset needs the columns \['input_ids'\] .* it lacks \['input_ids'\]"
    ):
        TransferTrainer(model, args(0.1), train_dataset=rows, domain_dataset=Dataset.from_dict({"text": ["a"]}))


def test_finetune_adapts_to_a_domain_file_from_the_command_line(tmp_path, capsys):
    import json

    from hf_rnn_transfer.cli import main
    from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tokenizer = train_tokenizer(reviews["text"][:200], vocab_size=300, model_max_length=32)
    config = RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=8, hidden_size=8, num_layers=1)
    RNNForSequenceClassification(config).save_pretrained(tmp_path / "source")
    tokenizer.save_pretrained(tmp_path / "source")
    with open(tmp_path / "train.jsonl", "w") as handle:
        for row in reviews.select(range(32)):
            handle.write(json.dumps({"text": row["text"], "label": row["label"]}) + "\n")
    (tmp_path / "unlabelled.txt").write_text("\n".join(reviews["text"][100:140]))
    argv = ["finetune", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    argv += ["--output_dir", str(tmp_path / "ft"), "--report_to", "none", "--select_folds", "0", "--max_length", "32"]
    assert main([*argv, "--domain_file", str(tmp_path / "unlabelled.txt"), "--domain_adversarial_weight", "0.1"]) == 0
    out = capsys.readouterr().out
    recipe = json.loads(out[out.index("{\n") :])["recipe"]
    assert recipe["domain adaptation"].endswith("reversal strength up to 0.1, 40 unlabelled target rows")
    for extra, message in [
        (["--domain_file", str(tmp_path / "unlabelled.txt")], "--domain_file is read only by domain-adversarial"),
        (["--domain_adversarial_weight", "0.1"], "--domain_adversarial_weight needs unlabelled target texts"),
    ]:
        assert main([*argv, "--output_dir", str(tmp_path / "other"), *extra]) == 2
        assert message in capsys.readouterr().err
