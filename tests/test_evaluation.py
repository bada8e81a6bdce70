"""compare(): bookkeeping of budgets and seeds, the negative-transfer flag on a constructed negative case, the
classical baseline, the report, the plot, and what moved in each layer."""

import tempfile

import numpy as np
import pytest
import torch
from transformers import DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, prepare_text_classification, train_tokenizer
from hf_rnn_transfer.evaluation import (
    NEVER,
    ComparisonResult,
    accuracy_of,
    answers_mean_the_labels,
    balanced_budget_indices,
    class_probabilities,
    compare,
    layer_change_table,
    linear_cka,
    plot_layer_changes,
    row_losses,
    snapshot,
    what_transferred,
)
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.transfer import transfer


def test_budgets_are_nested_and_balanced():
    labels = [0] * 30 + [1] * 50
    subsets = balanced_budget_indices(labels, [10, 20, None], seed=3)
    assert set(subsets[10]) <= set(subsets[20]) and len(subsets[None]) == 80
    assert sum(labels[i] for i in subsets[20]) == 10
    assert list(subsets[10]) == list(balanced_budget_indices(labels, [10], seed=3)[10])  # seeded
    assert list(subsets[10]) != list(balanced_budget_indices(labels, [10], seed=4)[10])
    with pytest.raises(ValueError, match="a budget of 100 labels needs between 2 and 60 rows"):
        balanced_budget_indices(labels, [100], seed=0)


def test_negative_transfer_test_and_catch_up():
    result = ComparisonResult(budgets=[10, 20], seeds=[0, 1, 2], train_size=20)
    result.scores = {
        "transfer": {10: [0.55, 0.57, 0.54], 20: [0.80, 0.81, 0.79]},
        "scratch": {10: [0.70, 0.71, 0.69], 20: [0.70, 0.72, 0.71]},
    }
    assert result.negative_transfer(10)[0] and not result.negative_transfer(20)[0]
    assert result.catch_up_budget() == 10 and result.labels_scratch_needs(20) is NEVER
    noisy = ComparisonResult(
        budgets=[10], seeds=[0, 1, 2], scores={"transfer": {10: [0.5, 0.9, 0.6]}, "scratch": {10: [0.7, 0.6, 0.75]}}
    )
    assert not noisy.negative_transfer(10)[0]  # worse on average, but within the seed noise
    assert noisy.verdict(10).startswith("no reliable difference")
    assert result.verdict(20).startswith("transfer helps (p=") and result.verdict(10).startswith("NEGATIVE TRANSFER")
    assert "NEGATIVE TRANSFER" in result.to_markdown() and "paired t-test" in result.summary()


@pytest.fixture(scope="module")
def kitchen():
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tokenizer = train_tokenizer(reviews["text"][:1000], vocab_size=3000, model_max_length=64)
    train, _ = prepare_text_classification(reviews.select(range(400)), tokenizer)
    test, _ = prepare_text_classification(reviews.select(range(1000, 1200)), tokenizer)
    return reviews, tokenizer, train, test


SHAPE = dict(embedding_size=16, hidden_size=16, num_layers=1, pad_token_id=0, pooling="concat")


@pytest.mark.slow
def test_compare_flags_a_source_trained_on_shuffled_labels(kitchen, tmp_path, monkeypatch):
    """The constructed negative case: a source that learnt noise (shuffled labels), transferred with its head and
    frozen, against scratch trained normally. Its runs leave nothing in the temporary folder."""
    reviews, tokenizer, train, test = kitchen
    scratch_space = tmp_path / "tmp"
    scratch_space.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_space))
    collator = DataCollatorWithPadding(tokenizer)
    set_seed(0)
    noise = RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE))
    shuffled = (
        train.shuffle(seed=1)
        .remove_columns("labels")
        .add_column("labels", list(np.random.default_rng(0).permutation(train["labels"])))
    )
    args = TransferTrainingArguments(
        str(tmp_path / "src"),
        num_train_epochs=8,
        learning_rate=1e-2,
        per_device_train_batch_size=16,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    TransferTrainer(model=noise, args=args, train_dataset=shuffled, data_collator=collator).train()

    def make_transfer(seed):
        set_seed(seed)
        model, _ = transfer(
            noise, RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE)), transfer_head=True
        )
        return model

    def make_scratch(seed):
        set_seed(seed)
        return RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE))

    finetune = TransferTrainingArguments(
        str(tmp_path / "ft"),
        num_train_epochs=6,
        learning_rate=1e-2,
        per_device_train_batch_size=16,
        freezing_strategy="encoder",
        report_to="none",
    )
    scratch = TransferTrainingArguments(
        str(tmp_path / "sc"),
        num_train_epochs=8,
        learning_rate=1e-2,
        per_device_train_batch_size=16,
        report_to="none",
    )
    texts = (reviews["text"][:400], reviews["text"][1000:1200])
    result = compare(
        make_transfer,
        make_scratch,
        train,
        test,
        finetune,
        collator,
        budgets=[200],
        seeds=[0, 1, 2],
        scratch_args=scratch,
        texts=texts,
        progress=False,
    )
    assert set(result.scores) == {"transfer", "scratch", "tfidf_lr"}
    assert all(len(v) == 3 for per in result.scores.values() for v in per.values())
    assert not any(scratch_space.iterdir())  # 6 trainings, no folder left behind
    flagged, p_value = result.negative_transfer(200)
    assert flagged and p_value < 0.05, result.to_markdown()  # 3 seeds (on an H200: p = 0.025)
    assert result.mean("transfer", 200) < result.mean("scratch", 200) - 0.1
    assert result.mean("tfidf_lr", 200) > 0.6
    result.plot(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    card = result.to_card()
    assert card["header"][:4] == ["labels", "transfer", "scratch", "TF-IDF + LR"] and len(card["rows"]) == 1


def test_class_probabilities_are_the_models_softmax_in_dataset_order(kitchen):
    _, tokenizer, train, _ = kitchen
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE)).eval()
    rows = train.select(range(40))
    probabilities, labels = class_probabilities(model, rows, collator, batch_size=16)
    assert probabilities.shape == (40, 2) and np.allclose(probabilities.sum(-1), 1.0)
    assert labels.tolist() == rows["labels"]
    batch = collator([{k: rows[i][k] for k in ("input_ids", "attention_mask")} for i in range(5)])
    with torch.no_grad():
        expected = model(**batch).logits.softmax(-1).numpy()
    assert np.allclose(probabilities[:5], expected, atol=1e-5)
    assert float((probabilities.argmax(-1) == labels).mean()) == pytest.approx(accuracy_of(model, rows, collator))


def test_evaluation_leaves_the_callers_random_state_and_predicts_as_the_trainer(kitchen):
    """An evaluation in the middle of a training (the held-out scoring at each epoch's end inside the budget) must not
    reseed: a Trainer built for it seeds Python, NumPy and torch, and every later epoch would replay the same dropout
    masks. In one process the probabilities come without a Trainer, equal to `Trainer.predict`'s."""
    import random

    from hf_rnn_transfer.evaluation import evaluate_classifier, evaluation_trainer

    _, tokenizer, train, _ = kitchen
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE))
    rows = train.select(range(50))

    def draws():
        return torch.rand(3).tolist(), random.random(), np.random.rand()

    for evaluation in (lambda: class_probabilities(model, rows, collator, batch_size=16),
                       lambda: evaluate_classifier(model, rows, collator, 16)):  # fmt: skip
        for seed in (1, 2):
            set_seed(seed)
            expected = draws()
            set_seed(seed)
            evaluation()
            assert draws() == expected  # the stream goes on where it was, whatever the seed
    probabilities, labels = class_probabilities(model, rows, collator, batch_size=16)
    with evaluation_trainer(model, collator, 16) as trainer:
        output = trainer.predict(rows)
    np.testing.assert_allclose(probabilities, torch.softmax(torch.as_tensor(output.predictions).double(), -1).numpy())
    assert labels.tolist() == output.label_ids.tolist() == rows["labels"]
    with pytest.raises(ValueError, match="at least one row"):
        class_probabilities(model, rows.select([]), collator)


def test_row_losses_give_each_output_text_its_own_mean_loss(kitchen):
    """Per-row loss of a sequence-to-sequence model (what selection inside the budget compares row by row): each
    row's value is the model's loss on that row alone, whatever the batch and its padding; a classifier's is minus the
    log-probability of its label."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    from hf_rnn_transfer import RNNForSeq2SeqLM
    from hf_rnn_transfer.data import prepare_translation, token_fields

    tokenizer = train_tokenizer(["alpha beta gamma delta omega sigma kappa zeta"], min_frequency=1)
    torch.manual_seed(0)
    model = RNNForSeq2SeqLM(RNNConfig(**token_fields(tokenizer), embedding_size=8, hidden_size=16, num_layers=1))
    words = "alpha beta gamma delta omega sigma kappa zeta".split()
    texts = [{"question": " ".join(words[: 2 + i % 5]), "answer": " ".join(words[i % 3 : 3 + i % 6])} for i in range(9)]
    pairs = prepare_translation(Dataset.from_list(texts), tokenizer, "question", "answer").remove_columns("length")
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    losses = row_losses(model, pairs, collator, batch_size=4)
    assert losses.shape == (9,) and len(set(np.round(losses, 5))) > 1
    model.eval()
    with torch.no_grad():
        alone = [model(**collator([pairs[i]])).loss.item() for i in range(9)]
    np.testing.assert_allclose(losses, alone, rtol=1e-4)
    _, text_tokenizer, train, _ = kitchen
    classifier = RNNForSequenceClassification(RNNConfig(vocab_size=len(text_tokenizer), **SHAPE))
    rows = train.select(range(6))
    padding = DataCollatorWithPadding(text_tokenizer)
    probabilities, labels = class_probabilities(classifier, rows, padding)
    expected = -np.log(probabilities[np.arange(6), labels])  # a classifier's row loss: minus log p(its label)
    np.testing.assert_allclose(row_losses(classifier, rows, padding), expected, rtol=1e-4)


def test_linear_cka_and_what_transferred(kitchen, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8))
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    assert linear_cka(x, x @ rotation * 3) == pytest.approx(1.0)  # invariant to rotation and scale
    assert linear_cka(x, rng.normal(size=(100, 8))) < 0.3
    _, tokenizer, train, _ = kitchen
    collator = DataCollatorWithPadding(tokenizer)
    model = RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE))
    start = snapshot(model)
    args = TransferTrainingArguments(
        str(tmp_path),
        max_steps=20,
        learning_rate=1e-2,
        freezing_strategy="embeddings",
        per_device_train_batch_size=16,
        report_to="none",
    )
    TransferTrainer(model=model, args=args, train_dataset=train, data_collator=collator).train()
    changes = what_transferred(start, model, train, collator, max_examples=100)
    assert [c.group for c in changes] == ["embedding", "layer_0", "head"]
    assert changes[0].weight_drift == 0 and changes[0].cka == pytest.approx(1.0)  # frozen: unchanged
    assert changes[1].weight_drift > 0 and changes[1].cka < 1.0 and changes[2].cka is None
    assert "| layer_0 |" in layer_change_table(changes)
    plot_layer_changes(changes, tmp_path / "layers.png")
    assert (tmp_path / "layers.png").exists()
    assert torch.equal(start.rnn.embeddings.weight.cpu(), model.rnn.embeddings.weight.cpu())


def test_the_same_gap_on_every_seed_is_not_called_significant():
    same = ComparisonResult(
        budgets=[100], seeds=[0, 1, 2], scores={"transfer": {100: [0.60] * 3}, "scratch": {100: [0.61] * 3}}
    )
    assert same.negative_transfer(100) == (False, None) and same.positive_transfer(100) == (False, None)
    assert same.verdict(100).startswith("the seeds cannot tell")
    tied = ComparisonResult(
        budgets=[100], seeds=[0, 1], scores={"transfer": {100: [0.6, 0.7]}, "scratch": {100: [0.6, 0.7]}}
    )
    assert tied.verdict(100) == "no reliable difference"


def test_catch_up_tells_never_from_the_whole_training_set_and_from_the_start():
    scores = {"transfer": {10: [0.8, 0.8], None: [0.8, 0.8]}, "scratch": {10: [0.5, 0.6], None: [0.9, 0.9]}}
    at_all = ComparisonResult(budgets=[10, None], seeds=[0, 1], scores=scores, train_size=50)
    assert at_all.catch_up_budget() is None  # the budget "all", not "never"
    assert "catches up with transfer at all (50) labels" in at_all.summary()
    never = ComparisonResult(budgets=[10], seeds=[0, 1], scores={k: {10: v[10]} for k, v in scores.items()})
    assert never.catch_up_budget() is NEVER and "never catches up" in never.summary()
    ahead = ComparisonResult(budgets=[10], seeds=[0, 1], scores={"transfer": {10: [0.5]}, "scratch": {10: [0.7]}})
    assert "at or above transfer from the smallest budget" in ahead.summary()


def test_compare_beside_the_linear_model_on_the_source_labels_and_their_average(kitchen, tmp_path):
    """With the source's labelled texts, compare adds the linear model a user would train on the same labels as
    transfer (source labels + the budget's) and its average with transfer; the source labels lift it well above
    the linear model on the budget alone."""
    reviews, tokenizer, train, test = kitchen
    books = load_amazon_reviews("books").shuffle(seed=0).select(range(800))
    collator = DataCollatorWithPadding(tokenizer)
    args = TransferTrainingArguments(
        str(tmp_path), max_steps=4, learning_rate=1e-2, per_device_train_batch_size=8, report_to="none"
    )
    make = lambda seed: RNNForSequenceClassification(RNNConfig(vocab_size=len(tokenizer), **SHAPE))  # noqa: E731
    texts = (reviews["text"][:400], reviews["text"][1000:1200])
    run = dict(budgets=(20,), seeds=(0, 1), texts=texts, progress=False)
    source = (books["text"], books["label"])
    result = compare(make, make, train, test, args, collator, **run, linear_source=source, zero_shot=make(0))
    linear, alone = result.scores["tfidf_lr_source"][20], result.scores["tfidf_lr"][20]
    assert all(with_source > budget_only + 0.05 for with_source, budget_only in zip(linear, alone)), (linear, alone)
    assert all(0.0 <= value <= 1.0 for value in result.scores["transfer_linear"][20])
    assert result.references["linear model on the source labels"] > 0.7
    assert "source zero-shot + that linear model" in result.references
    report = result.to_markdown()
    assert "TF-IDF + LR, source + target labels" in report and "weighted x10" in report
    result.plot(tmp_path / "curve.png")
    with pytest.raises(ValueError, match="linear_source needs a text classification target"):
        compare(make, make, train, test, args, collator, budgets=(20,), linear_source=source)
    with pytest.raises(ValueError, match="same non-zero length"):
        compare(make, make, train, test, args, collator, **run, linear_source=(books["text"], [0]))
    with pytest.raises(ValueError, match="single class"):
        compare(make, make, train, test, args, collator, **run, linear_source=(books["text"][:2], [1, 1]))
    with pytest.raises(ValueError, match="linear_target_weight must be positive"):
        compare(make, make, train, test, args, collator, **run, linear_source=source, linear_target_weight=0)


def test_compare_refuses_repeated_seeds():
    with pytest.raises(ValueError, match=r"seeds must be distinct .* got \[0, 0, 0\]"):
        compare(None, None, [], [], None, None, seeds=(0, 0, 0))


def test_plots_leave_the_callers_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from hf_rnn_transfer.evaluation import LayerChange, plot_layer_changes

    before = matplotlib.get_backend()
    plot_layer_changes([LayerChange("layer_0", 0.1, 0.9)], tmp_path / "changes.png")
    assert matplotlib.get_backend() == before and (tmp_path / "changes.png").stat().st_size > 1000


def test_entity_metrics_score_whole_entities_like_conll():
    import numpy as np

    from hf_rnn_transfer.evaluation import entity_metrics

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    gold = np.array([[-100, 1, 2, 0, 3, -100], [-100, 0, 1, -100, -100, -100]])
    # sentence 1: the person's span is cut short (wrong entity) and the location is right; sentence 2: right
    predicted = np.array([[0, 1, 0, 0, 3, 0], [0, 0, 1, 0, 0, 0]])
    logits = np.eye(4)[predicted]
    metrics = entity_metrics(names)((logits, gold))
    assert metrics["entity_precision"] == pytest.approx(2 / 3) and metrics["entity_recall"] == pytest.approx(2 / 3)
    assert metrics["entity_f1"] == pytest.approx(2 / 3)
    assert metrics["token_accuracy"] == pytest.approx(5 / 6)  # token-level scoring would hide the broken span


def test_a_head_answering_the_target_label_names_is_checked_for_their_meaning(tmp_path):
    """Trained on "token 3 occurs": on the same task it beats the majority class; on the inverted labels (same names,
    other meaning) it falls below, and on rows of one class it cannot beat the majority."""
    from datasets import Dataset
    from transformers import default_data_collator

    rng = np.random.default_rng(0)
    ids = rng.integers(4, 12, size=(300, 8))
    positive = rng.random(300) < 0.5
    ids[positive, rng.integers(0, 8, size=positive.sum())] = 3

    def rows(labels, keep):
        return Dataset.from_dict({"input_ids": ids[keep].tolist(), "attention_mask": [[1] * 8] * len(ids[keep]),
                                  "labels": labels[keep].astype(int).tolist()})  # fmt: skip

    set_seed(0)
    model = RNNForSequenceClassification(RNNConfig(vocab_size=12, embedding_size=8, hidden_size=16, num_layers=1,
                                                   pad_token_id=0, pooling="max", num_labels=2))  # fmt: skip
    args = TransferTrainingArguments.for_experiment(str(tmp_path), num_train_epochs=6, learning_rate=2e-2,
                                                    per_device_train_batch_size=8)  # fmt: skip
    train = rows(positive, slice(0, 200))
    TransferTrainer(model, args, train_dataset=train, data_collator=default_data_collator).train()
    budget = slice(200, 300)
    same, zero_shot, majority = answers_mean_the_labels(model, rows(positive, budget), default_data_collator)
    assert same and zero_shot > 0.9 and 0.3 < majority < 0.7
    same, zero_shot, _ = answers_mean_the_labels(model, rows(~positive, budget), default_data_collator)
    assert not same and zero_shot < 0.1
    one_class = np.flatnonzero(positive[200:]) + 200
    same, zero_shot, majority = answers_mean_the_labels(model, rows(positive, one_class), default_data_collator)
    assert not same and majority == 1.0
