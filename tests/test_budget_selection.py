"""fit_within_budget: the stopping epoch and the mix with the starting weights chosen by cross-validation inside the
budget; a source the budget cannot improve is kept as it is, one it can is fine-tuned; the commands use it."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import default_data_collator, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.budget_selection import fit_within_budget, fold_indices, mix_weights, starting_weights
from hf_rnn_transfer.evaluation import accuracy_of, compare, row_accuracy
from hf_rnn_transfer.trainer import RecommendedTrainingArguments, TransferTrainer, TransferTrainingArguments

SHAPE = dict(vocab_size=12, embedding_size=8, hidden_size=16, num_layers=1, pad_token_id=0, pooling="max")


def marker_task(rows: int, seed: int, flip: bool = False) -> Dataset:
    """Sequences of 8 tokens; the label says whether token 3 occurs (inverted with `flip`)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, 12, size=(rows, 8))
    positive = rng.random(rows) < 0.5
    ids[positive, rng.integers(0, 8, size=positive.sum())] = 3
    labels = (positive != flip).astype(int)
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * rows, "labels": labels.tolist()})


def score(model, rows):
    return accuracy_of(model, rows, default_data_collator)


def per_row(model, rows):
    """Right (1) or wrong (0) on each row: what the default (paired) rule compares."""
    return row_accuracy(model, rows, default_data_collator)


def recipe(tmp_path, epochs=4, **extra):
    return TransferTrainingArguments.for_experiment(
        str(tmp_path), **{"num_train_epochs": epochs, "learning_rate": 2e-2, "per_device_train_batch_size": 8, **extra}
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A classifier that solves the marker task."""
    set_seed(0)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))
    args = recipe(tmp_path_factory.mktemp("source"), epochs=6)
    trainer = TransferTrainer(model, args, train_dataset=marker_task(400, 0), data_collator=default_data_collator)
    trainer.train()
    assert score(model, marker_task(200, 9)) > 0.95
    return model


def copy_of(model):
    clone = RNNForSequenceClassification(model.config)
    clone.load_state_dict(model.state_dict())
    return clone


def test_mix_interpolates_floating_weights_between_start_and_trained():
    set_seed(0)
    model = RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))
    start = starting_weights(model)
    trained = {k: v + 1.0 for k, v in start.items()}
    model.load_state_dict(trained, strict=False)
    mix_weights(start, model, 0.25)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, start[name] + 0.25)
    mix_weights(start, model, 0.0)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, start[name])


def test_folds_cover_every_row_once_and_keep_the_class_balance():
    labels = [0] * 30 + [1] * 10
    parts = fold_indices(labels, 4, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
    assert [sum(labels[i] for i in p) for p in parts] == [3, 3, 2, 2] or all(
        2 <= sum(labels[i] for i in p) <= 3 for p in parts
    )
    assert [len(p) for p in parts] == [10, 10, 10, 10]


def test_a_source_the_budget_cannot_improve_is_kept_as_it_is(source, tmp_path):
    budget = marker_task(24, 1)
    model, chosen = fit_within_budget(
        lambda: copy_of(source), budget, recipe(tmp_path), default_data_collator, per_row, folds=3
    )
    assert chosen.mix == 0.0 and chosen.source_score == 1.0 and chosen.trainings == 3  # no final training
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value.cpu(), source.state_dict()[name].cpu())
    assert "3-fold cross-validation" in chosen.summary() and "mix 0 " in chosen.summary()


def test_a_source_with_the_wrong_answers_is_fine_tuned_and_beats_its_zero_shot(source, tmp_path):
    """The target's labels are the source's, inverted: the source scores about 0 and fine-tuning must win."""
    budget, test = marker_task(48, 2, flip=True), marker_task(200, 3, flip=True)
    zero_shot = score(source, test)
    model, chosen = fit_within_budget(
        lambda: copy_of(source),
        budget,
        recipe(tmp_path, epochs=8, learning_rate=5e-2, per_device_train_batch_size=4),
        default_data_collator,
        per_row,
        folds=2,
    )
    assert chosen.rule == "paired_standard_error"  # the default
    assert zero_shot < 0.1 and chosen.mix > 0.0 and chosen.best_score > chosen.source_score + 0.5
    assert score(model, test) > 0.9
    assert len(chosen.scores) == 8 and len(chosen.scores[0]) == len(chosen.mixes)


def test_bad_selection_settings_are_refused(source, tmp_path):
    budget = marker_task(8, 1)
    with pytest.raises(ValueError, match="at least 2 folds, got 1"):
        fit_within_budget(lambda: source, budget, recipe(tmp_path), default_data_collator, score, folds=1)
    with pytest.raises(ValueError, match=r"mixes must be numbers in \[0, 1\]"):
        fit_within_budget(lambda: source, budget, recipe(tmp_path), default_data_collator, score, mixes=[0, 1.5])
    with pytest.raises(ValueError, match="8 training rows cannot be split into 5 folds"):
        fit_within_budget(lambda: source, budget, recipe(tmp_path), default_data_collator, score, folds=5)
    with pytest.raises(ValueError, match="select_folds must be 0 .off. or at least 2, got 1"):
        TransferTrainingArguments(str(tmp_path), select_folds=1)
    with pytest.raises(ValueError, match=r"select_mixes must be weights in \[0, 1\]"):
        TransferTrainingArguments(str(tmp_path), select_mixes=[-0.5])


def test_the_recommended_recipe_selects_inside_the_budget(tmp_path):
    assert RecommendedTrainingArguments(str(tmp_path)).select_folds == 4


def test_compare_selects_inside_each_budget_and_says_what_it_chose(source, tmp_path):
    train, test = marker_task(64, 4), marker_task(100, 5)

    def make_transfer(seed):
        return copy_of(source)

    def make_scratch(seed):
        set_seed(seed)
        return RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))

    result = compare(
        make_transfer,
        make_scratch,
        train,
        test,
        recipe(tmp_path, epochs=2, select_folds=2),
        default_data_collator,
        budgets=[16],
        seeds=[0, 1],
        zero_shot=source,
        progress=False,
    )
    assert result.scores["transfer"][16] == [result.references["source zero-shot"]] * 2  # kept the source
    assert [r["mix"] for r in result.selections["transfer"][16]] == [0.0, 0.0]
    assert all(r["mixes"] == [1.0] for r in result.selections["scratch"][16])  # scratch: only its stopping epoch
    assert all(r["head_transferred"] is False for r in result.selections["scratch"][16])  # not pulled to its start
    assert "2-fold cross-validation inside each budget" in result.summary()


def test_the_one_standard_error_rule_keeps_the_source_unless_the_gain_beats_the_noise():
    from hf_rnn_transfer.budget_selection import _choose

    # [epoch, mix] with mixes (0, 0.5, 1): fine-tuning 2 points better on 100 held-out rows (SE ~0.03): noise
    small = np.array([[0.88, 0.89, 0.90], [0.88, 0.89, 0.90]])
    assert _choose(small, 100, "one_standard_error", source_index=0) == (0, 0)  # the source, reported at epoch 1
    assert _choose(small, 100, "best") == (1, 2)  # ties: the later epoch
    # the same gain over 2,000 rows (SE ~0.007) is real: the smallest mix within one error of the best, latest epoch
    assert _choose(small, 2000, "one_standard_error", source_index=0) == (1, 2)
    large = np.array([[0.60, 0.85, 0.87], [0.60, 0.86, 0.88]])
    assert _choose(large, 100, "one_standard_error", source_index=0) == (1, 1)  # 0.85, 0.86: within one SE of 0.88
    assert _choose(-np.array([[2.0, 1.5]]), 50, "one_standard_error") == (0, 1)  # not a rate: plain best
    with pytest.raises(ValueError, match="rule must be one of"):
        fit_within_budget(None, marker_task(8, 0), None, None, None, rule="median")


def test_the_pull_towards_the_source_is_the_mix_never_an_earlier_epoch():
    from hf_rnn_transfer.budget_selection import _choose

    # [epoch, mix] over 400 held-out rows (binomial SE ~0.015 at 0.90), epochs 1-4, mixes (0, 0.5, 1): mix 0.5 within
    # one error of the best at epoch 1 (a model half-way up the one-cycle schedule) and at epoch 4, the source not
    means = np.array([[0.75, 0.89, 0.86], [0.75, 0.86, 0.87], [0.75, 0.86, 0.88], [0.75, 0.888, 0.90]])
    # the smallest mix within the error, then the latest epoch (the earliest was epoch 1: noise on a small budget)
    assert _choose(means, 400, "one_standard_error", source_index=0) == (3, 1)
    # with the source within the error it is kept, and it is one model at every epoch: reported at epoch 1
    close = means.copy()
    close[:, 0] = 0.89
    assert _choose(close, 400, "one_standard_error", source_index=0) == (0, 0)
    # without a mix 0 among the candidates the smallest mix is no source: its latest epoch within the error
    assert _choose(means[:, 1:], 400, "one_standard_error") == (3, 0)


def test_the_paired_rule_keeps_a_gain_that_is_consistent_row_by_row():
    from hf_rnn_transfer.budget_selection import _choose

    # 500 held-out rows, mixes (0, 1): the source is right on 440; fine-tuning keeps those and fixes 5 more
    source = np.r_[np.ones(440), np.zeros(60)]
    tuned = source.copy()
    tuned[440:445] = 1.0
    rows = np.array([[source, tuned]])  # [epoch, mix, row]
    means = rows.mean(-1)  # 0.88 and 0.89: within one binomial SE (0.014), outside the paired one (0.004)
    assert _choose(means, 500, "one_standard_error") == (0, 0)
    assert _choose(means, 500, "paired_standard_error", rows) == (0, 1)
    # the same two accuracies, right on different rows: the paired error is large and the source is kept
    shuffled = np.random.default_rng(0).permutation(tuned)
    assert _choose(means, 500, "paired_standard_error", np.array([[source, shuffled]])) == (0, 0)
    with pytest.raises(ValueError, match="needs the per-row scores"):
        _choose(means, 500, "paired_standard_error")


def test_the_source_or_best_rule_tests_the_best_against_the_source_and_does_not_shrink_towards_it():
    from hf_rnn_transfer.budget_selection import _choose

    # 1,000 held-out rows, mixes (0, 0.5, 1): the source is right on 880; mix 1.0 fixes 20 more rows; mix 0.5 differs
    # from it on 10 rows, 4 for and 6 against it
    source = np.r_[np.ones(880), np.zeros(120)]
    full = source.copy()
    full[880:900] = 1.0
    half = full.copy()
    half[:6], half[900:904] = 0.0, 1.0
    rows = np.array([[source, half, full]])
    means = rows.mean(-1)  # 0.880, 0.898, 0.900
    # the paired rule takes the mix closest to the source within one error of the best (0.5: 0.002 below, its error
    # 0.003); this one, once the best has beaten the source beyond its error, takes the best
    assert _choose(means, 1000, "paired_standard_error", rows) == (0, 1)
    assert _choose(means, 1000, "source_or_best", rows, source_index=0) == (0, 2)
    # a best that differs from the source on 100 rows, 52 for and 48 against it: the gain (0.004) is noise (error 0.01)
    changed = source.copy()
    changed[:48], changed[880:932] = 0.0, 1.0
    noisy = np.array([[source, source, changed]])
    assert _choose(noisy.mean(-1), 1000, "source_or_best", noisy, source_index=0) == (0, 0)
    # without the source among the candidates there is nothing to test against: the best
    assert _choose(means, 1000, "source_or_best", rows, source_index=None) == (0, 2)
    with pytest.raises(ValueError, match="'source_or_best' needs the per-row scores"):
        _choose(means, 1000, "source_or_best")


def test_the_fine_tuned_unless_worse_rule_keeps_the_full_fine_tuning_unless_the_rows_show_it_worse():
    from hf_rnn_transfer.budget_selection import _choose

    # [epoch, mix, row], 1,000 held-out rows, epochs (1, 2), mixes (0, 0.5, 1): the source right on 880 rows
    source = np.r_[np.ones(880), np.zeros(120)]
    # full fine-tuning (epoch 2, mix 1) trades 52 rows for 48: 0.004 below the source, within its paired error
    full = source.copy()
    full[:52], full[880:928] = 0.0, 1.0
    rows = np.array([[source, source, source], [source, source, full]])
    means = rows.mean(-1)
    assert _choose(means, 1000, "paired_standard_error", rows, source_index=0) == (0, 0)  # noise keeps the source
    assert _choose(means, 1000, "fine_tuned_unless_worse", rows) == (1, 2)  # ... and the full fine-tuning here
    # full fine-tuning 30 rows worse on every one it changes: beyond its error, the farthest candidate within reach
    worse = source.copy()
    worse[:30] = 0.0
    half = source.copy()
    half[:3], half[880:882] = 0.0, 1.0  # 3 rows lost, 2 gained: within the error of the source
    rows = np.array([[source, source, worse], [source, half, worse]])
    assert _choose(rows.mean(-1), 1000, "fine_tuned_unless_worse", rows) == (1, 1)
    with pytest.raises(ValueError, match="'fine_tuned_unless_worse' needs the per-row scores"):
        _choose(means, 1000, "fine_tuned_unless_worse")


def test_every_rule_can_choose_again_from_one_cross_validation(source, tmp_path):
    """`for_rule` re-chooses from the same held-out scores without training: what comparing the rules needs."""
    from hf_rnn_transfer.budget_selection import SELECTION_RULES, _choose, cross_validate

    budget = marker_task(48, 2, flip=True)
    args = recipe(tmp_path, epochs=3, learning_rate=5e-2, per_device_train_batch_size=4)
    chosen = cross_validate(lambda: copy_of(source), budget, args, default_data_collator, per_row, folds=2)
    assert chosen.rule == "paired_standard_error" and chosen.rows == 48 and chosen.row_scores.shape[-1] == 48
    for rule in SELECTION_RULES:
        again = chosen.for_rule(rule)
        index = _choose(chosen.means, 48, rule, chosen.row_scores, source_index=0)
        assert again.rule == rule and (again.epochs, again.mix) == (index[0] + 1, chosen.mixes[index[1]])
        assert again.scores == chosen.scores and again.trainings == chosen.trainings
    assert chosen.for_rule("source_or_best").mix > 0.0  # inverted labels: the source is beaten beyond any noise
    # the two paired pulls choose from the same candidates within one error of the best, at opposite ends
    nearest, farthest = chosen.for_rule("paired_standard_error"), chosen.for_rule("fine_tuned_unless_worse")
    assert (farthest.mix, farthest.epochs) >= (nearest.mix, nearest.epochs)
    with pytest.raises(ValueError, match="rule must be one of"):
        chosen.for_rule("median")
    single = cross_validate(
        lambda: copy_of(source), budget, args, default_data_collator, score, folds=2, rule="one_standard_error"
    )
    assert single.row_scores is None and single.for_rule("best").rule == "best" and single.held_out_rows() is None
    # the chosen candidate's held-out scores, put back in the budget's row order (what auto compares row by row)
    rows = chosen.held_out_rows()
    # exact, not the 6-decimal JSON score: an ensemble scored as the same rows' mean ties with it (auto's tie rule)
    assert rows.shape == (48,) and rows.mean() == pytest.approx(chosen.best_score, abs=1e-12)
    assert chosen.for_rule("best").best_score == pytest.approx(float(chosen.means.max()), abs=1e-12)
    order = np.concatenate(fold_indices(budget["labels"], 2, args.seed))
    assert list(rows[order]) == list(chosen.row_scores[chosen.epochs - 1, chosen.mixes.index(chosen.mix)])
    with pytest.raises(ValueError, match="needs the per-row held-out scores"):
        single.for_rule("source_or_best")


def test_the_default_paired_rule_refuses_a_single_number_and_the_binomial_rule_takes_it(source, tmp_path):
    budget, test = marker_task(48, 2, flip=True), marker_task(200, 3, flip=True)
    assert per_row(source, test).shape == (200,) and per_row(source, test).mean() == score(source, test)
    args = recipe(tmp_path, epochs=8, learning_rate=5e-2, per_device_train_batch_size=4)
    with pytest.raises(ValueError, match="must return one value per held-out row"):
        fit_within_budget(lambda: copy_of(source), budget, args, default_data_collator, score, folds=2)
    model, chosen = fit_within_budget(
        lambda: copy_of(source), budget, args, default_data_collator, score, folds=2, rule="one_standard_error"
    )
    assert chosen.rule == "one_standard_error" and chosen.mix > 0.0 and score(model, test) > 0.9


def test_with_a_new_head_the_rules_pull_towards_the_full_recipe_not_the_start():
    from hf_rnn_transfer.budget_selection import _choose

    # [epoch, mix=1, row], 60 held-out rows, epochs 1-4: a new head is right on 40, 45, 46, 47 rows
    rows = np.zeros((4, 1, 60))
    for epoch, right in enumerate((40, 45, 46, 47)):
        rows[epoch, 0, :right] = 1.0
    means = rows.mean(-1)
    # the latest epoch within one error of the best, whichever way the rule leans (its pull is the mix's)
    assert _choose(means, 60, "one_standard_error") == (3, 0)
    assert _choose(means, 60, "one_standard_error", toward_start=False) == (3, 0)
    assert _choose(means, 60, "paired_standard_error", rows, toward_start=False) == (3, 0)
    # source_or_best tests the best against the full run's last epoch: here that is the best itself
    assert _choose(means, 60, "source_or_best", rows, toward_start=False) == (3, 0)


def test_a_transfer_that_reinitialised_the_head_selects_among_fine_tuned_weights_only(source, tmp_path):
    """The source answers 2 labels, the target 3: the head starts random, so no mix with it is a candidate and the
    choice leans to the full recipe (ties at the best go to the latest epoch)."""
    from hf_rnn_transfer import TransferConfig
    from hf_rnn_transfer.budget_selection import cross_validate

    folder = tmp_path / "source"
    source.save_pretrained(folder)
    budget = marker_task(30, 1).map(lambda row: {"labels": row["labels"] + (row["input_ids"][0] == 4)})

    def make():
        set_seed(0)
        return RNNForSequenceClassification.from_pretrained(folder, transfer=TransferConfig(), num_labels=3)

    assert make().transfer_report.by_status("reinitialised") == ["classifier.weight", "classifier.bias"]
    chosen = cross_validate(make, budget, recipe(tmp_path, epochs=3), default_data_collator, per_row, folds=3)
    assert chosen.mixes == [1.0] and chosen.mix == 1.0 and not chosen.head_transferred
    assert np.asarray(chosen.scores).shape == (3, 1)
    scores = [s[0] for s in chosen.scores]
    assert chosen.epochs >= scores.index(max(scores)) + 1  # the latest within the error: never before the best
    assert "a random head" in chosen.summary() and chosen.to_dict()["head_transferred"] is False
    # the source's own labels: the head moves with it, mix 0 stays a candidate
    same = cross_validate(lambda: copy_of(source), marker_task(24, 1), recipe(tmp_path, epochs=2),
                          default_data_collator, per_row, folds=3)  # fmt: skip
    assert same.head_transferred and 0.0 in same.mixes


def test_a_model_from_scratch_is_not_pulled_towards_its_random_start(tmp_path):
    """`random_start=True` (compare's and auto's scratch runs): mix 1 only and the latest epoch within the error;
    without it a model with no transfer report counts as a trained start (every mix, leaning to it)."""
    from hf_rnn_transfer.budget_selection import cross_validate

    def fresh():
        set_seed(0)
        return RNNForSequenceClassification(RNNConfig(**SHAPE, num_labels=2))

    budget = marker_task(30, 1)
    chosen = cross_validate(fresh, budget, recipe(tmp_path, epochs=3), default_data_collator, per_row, folds=3,
                            random_start=True)  # fmt: skip
    assert chosen.mixes == [1.0] and not chosen.head_transferred
    scores = [s[0] for s in chosen.scores]
    assert chosen.epochs >= scores.index(max(scores)) + 1
    trained_start = cross_validate(fresh, budget, recipe(tmp_path, epochs=2), default_data_collator, per_row, folds=3)
    assert trained_start.head_transferred and 0.0 in trained_start.mixes
