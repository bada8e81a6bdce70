"""Transferability scores on known cases, and rank_sources over real candidates (models, paths, Hub repos)."""

import numpy as np
import pytest
import torch

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.selection import (
    degenerate_warnings,
    gbc,
    hscore,
    leep,
    logme,
    nleep,
    rank_sources,
    shrinkage_hscore,
)

from .conftest import ALICE


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    informative = rng.normal(size=(400, 12)) + 1.5 * np.eye(3)[labels] @ rng.normal(size=(3, 12))
    return labels, informative, rng.normal(size=(400, 12))


def test_features_that_separate_the_labels_score_higher(separable):
    labels, informative, noise = separable
    assert logme(informative, labels) > logme(noise, labels) + 0.1
    assert hscore(informative, labels) > 10 * hscore(noise, labels)


def test_newer_scores_order_informative_above_noise(separable):
    labels, informative, noise = separable
    assert shrinkage_hscore(informative, labels) > 10 * shrinkage_hscore(noise, labels)
    assert gbc(informative, labels) > gbc(noise, labels) + 1.0 and gbc(informative, labels) <= 0
    assert nleep(informative, labels) > nleep(noise, labels) + 0.3  # no source head needed


def test_shrinkage_keeps_h_score_from_saturating_with_few_rows_and_many_dimensions():
    # 50 rows, 192 feature dimensions (the case): the plain H-score gives noise its ceiling (C - 1 = 1)
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 25)
    noise = rng.normal(size=(50, 192))
    signal = rng.normal(size=(50, 192))
    signal[:, :4] += 3.0 * labels[:, None]
    assert hscore(noise, labels) > 0.95 and hscore(signal, labels) > 0.95  # saturated: cannot tell them apart
    assert shrinkage_hscore(signal, labels) > 2 * shrinkage_hscore(noise, labels)
    warnings = degenerate_warnings({"hscore": hscore(noise, labels)}, None, classes=2, rows=50, dimensions=192)
    assert warnings and "at its ceiling 1" in warnings[0] and "shrinkage_hscore" in warnings[0]


def test_a_score_no_better_than_an_untrained_encoder_is_flagged():
    flagged = degenerate_warnings({"logme": -0.70, "gbc": -0.2}, {"logme": -0.69, "gbc": -0.9}, 2, 500, 48)
    assert flagged == ["logme -0.7000 is no better than an untrained encoder's (-0.6900)"]
    assert degenerate_warnings({"logme": -0.50}, {"logme": -0.69}, 2, 500, 48) == []


def test_logme_is_the_maximised_evidence():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 4))
    labels = (features[:, 0] + 0.3 * rng.normal(size=40) > 0).astype(int)

    def negative_evidence(log_precisions, target):
        alpha, beta = np.exp(log_precisions)
        covariance = np.eye(40) / beta + features @ features.T / alpha
        return -(
            -20 * np.log(2 * np.pi)
            - np.linalg.slogdet(covariance)[1] / 2
            - target @ np.linalg.solve(covariance, target) / 2
        )

    best = [
        -minimize(
            negative_evidence,
            [0.0, 0.0],
            args=((labels == c).astype(float),),
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 5000},
        ).fun
        / 40
        for c in (0, 1)
    ]
    assert logme(features, labels) == pytest.approx(np.mean(best), abs=1e-6)


def test_leep_rewards_source_predictions_that_inform_the_target(separable):
    labels = separable[0]
    rng = np.random.default_rng(2)
    informative = np.full((400, 4), 0.05)
    informative[np.arange(400), labels] = 0.85  # source class z tracks target class y
    random = rng.dirichlet(np.ones(4), size=400)
    assert leep(informative, labels) > leep(random, labels) + 0.3
    assert leep(informative, labels) <= 0


def test_rank_sources_over_models_paths_and_hub_repos(hub, tmp_path):
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0).select(range(200))
    tokenizer = train_tokenizer(reviews["text"], vocab_size=2000, model_max_length=64)
    shape = dict(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
    classifier = RNNForSequenceClassification(RNNConfig(num_labels=2, **shape))
    classifier.config.name_or_path = "in-memory-classifier"
    torch.manual_seed(0)  # the untrained reference's initialisation: this LM is exactly an untrained encoder
    lm = RNNForCausalLM(RNNConfig(**shape))
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    lm.push_to_hub("alice/rank-lm", token=ALICE)
    tokenizer.push_to_hub("alice/rank-lm", token=ALICE)
    ranking = rank_sources(
        [classifier, str(tmp_path / "lm"), "alice/rank-lm"],
        reviews,
        tokenizers={"in-memory-classifier": tokenizer},
        max_examples=120,
    )
    scores = {s.source: s for s in ranking.scores}
    assert set(scores) == {"in-memory-classifier", str(tmp_path / "lm"), "alice/rank-lm"}
    assert scores["in-memory-classifier"].leep is not None and scores["alice/rank-lm"].leep is None
    assert scores[str(tmp_path / "lm")].logme == pytest.approx(scores["alice/rank-lm"].logme)  # same weights
    assert all(np.isfinite(s.logme) and s.seconds > 0 for s in ranking.scores)
    table = ranking.to_markdown()
    assert table.startswith("| rank | source | LogME | LEEP | N-LEEP | H-score | shrinkage H-score | GBC | seconds |")
    assert "n/a" in table
    assert ranking.ranked("logme")[0] in scores
    lm_score = scores["alice/rank-lm"]
    assert lm_score.nleep is not None and lm_score.untrained["logme"] is not None  # every source kind is scorable
    assert any("untrained encoder" in w for w in lm_score.warnings)  # an untrained LM ties with an untrained encoder
    layer0 = rank_sources([str(tmp_path / "lm")], reviews, max_examples=60, feature_layer=0, compare_untrained=False)
    assert layer0.scores[0].untrained == {} and np.isfinite(layer0.scores[0].logme)
    with pytest.raises(ValueError, match="feature layer 3 does not exist"):
        rank_sources([str(tmp_path / "lm")], reviews, max_examples=60, feature_layer=3)
    with pytest.raises(ValueError, match="unknown score"):
        rank_sources([str(tmp_path / "lm")], reviews, scores=("logme", "fancy"))
    with pytest.raises(ValueError, match="pass tokenizers="):
        rank_sources([RNNForCausalLM(RNNConfig(**shape))], reviews)
    with pytest.raises(ValueError, match="missing label column 'stars'"):
        rank_sources([classifier], reviews, label_column="stars", tokenizers={"in-memory-classifier": tokenizer})


def test_rows_are_read_shortest_first_and_scored_in_their_own_order():
    """rank_sources batches the rows by length (less padding to run) and puts the features back in the rows' order:
    every row's features and head probabilities are those of the row read alone, texts and series alike."""
    from datasets import Dataset

    from hf_rnn_transfer.selection import _batches, _in_row_order, extract_features

    reviews = load_amazon_reviews("kitchen").shuffle(seed=1).select(range(40))
    tokenizer = train_tokenizer(reviews["text"], vocab_size=500, model_max_length=64)
    torch.manual_seed(0)
    text_model = RNNForSequenceClassification(
        RNNConfig(num_labels=2, vocab_size=len(tokenizer), pad_token_id=0, embedding_size=8, hidden_size=8)
    )
    series_model = RNNForSequenceClassification(RNNConfig(num_labels=3, input_size=2, hidden_size=8))
    series = Dataset.from_dict({"input_values": [np.random.default_rng(i).normal(size=(3 + i % 7, 2)).tolist()
                                                 for i in range(30)]})  # fmt: skip
    for model, rows, tokenizers in ((text_model, reviews, {"m": tokenizer}), (series_model, series, None)):
        batches, order = _batches(model, "m", "m", rows, "text", "input_values", tokenizers, 16, 64, None, None)
        lengths = [int(b["attention_mask"].sum(1).max()) for b in batches]
        assert lengths == sorted(lengths) and sorted(order) == list(range(len(rows)))
        features, probabilities = _in_row_order(extract_features(model, batches), order)
        for i in (0, 7, len(rows) - 1):
            alone, _ = _batches(model, "m", "m", rows.select([i]), "text", "input_values", tokenizers, 16, 64, None,
                                None)  # fmt: skip
            one_features, one_probabilities = extract_features(model, alone)
            np.testing.assert_allclose(features[i], one_features[0], rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(probabilities[i], one_probabilities[0], rtol=1e-4, atol=1e-5)


def test_unlabelled_texts_are_scored_with_a_linear_models_labels(tmp_path):
    """`unlabelled_texts`: a TF-IDF + logistic regression fitted on the labelled rows labels them (better than chance
    on real reviews), and every score reads the labelled and pseudo-labelled rows; bad input is refused by name."""
    from datasets import Dataset

    from hf_rnn_transfer.selection import with_pseudo_labels

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    labelled, unlabelled = reviews.select(range(100)), reviews.select(range(100, 500))
    texts = [*unlabelled["text"], "", labelled["text"][0]]  # an empty text and a labelled one are left out
    rows, labels = with_pseudo_labels(labelled, np.asarray(labelled["label"]), texts, max_unlabelled=None)
    kept = [t for t in dict.fromkeys(unlabelled["text"]) if t.strip() and t not in set(labelled["text"])]
    assert rows.column_names == ["text"] and len(rows) == len(labels) == 100 + len(kept) >= 495
    assert list(rows["text"][100:]) == kept and list(labels[:100]) == labelled["label"]  # the given labels, unchanged
    truth = dict(zip(unlabelled["text"], unlabelled["label"]))
    agreement = float(np.mean(labels[100:] == np.asarray([truth[t] for t in kept])))
    assert agreement > 0.65, agreement  # 100 reviews teach the linear model sentiment well above chance
    named, named_labels = with_pseudo_labels(
        Dataset.from_dict({"text": labelled["text"], "label": ["neg", "pos"] * 50}),
        np.asarray(["neg", "pos"] * 50),
        texts,
        max_unlabelled=30,
    )
    assert len(named) == 130 and set(named_labels[100:]) <= {"neg", "pos"}  # label values kept, the cap applied

    tokenizer = train_tokenizer(reviews["text"][:500], vocab_size=1000, model_max_length=64)
    torch.manual_seed(0)
    model = RNNForSequenceClassification(
        RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
    )
    model.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    plain = rank_sources([str(tmp_path / "clf")], labelled, compare_untrained=False)
    pseudo = rank_sources([str(tmp_path / "clf")], labelled, compare_untrained=False, unlabelled_texts=texts,
                          max_unlabelled=200)  # fmt: skip
    assert (plain.labelled_rows, plain.pseudo_labelled_rows) == (100, 0)
    assert (pseudo.labelled_rows, pseudo.pseudo_labelled_rows) == (100, 200)
    assert pseudo.to_dict()["pseudo_labelled_rows"] == 200
    assert "Scored on 100 labelled rows and 200 unlabelled target texts" in pseudo.to_markdown()
    assert "Scored on" not in plain.to_markdown()
    assert pseudo.scores[0].logme != pytest.approx(plain.scores[0].logme)  # 300 rows read, not 100

    series = Dataset.from_dict({"input_values": [[0.0, 1.0]] * 4, "label": [0, 1] * 2})
    with pytest.raises(ValueError, match="pseudo-labelled for a text target.*leave them out for series"):
        with_pseudo_labels(series, np.asarray(series["label"]), ["a review"])
    with pytest.raises(ValueError, match="no text that is not empty and not one of the labelled rows"):
        with_pseudo_labels(labelled, np.asarray(labelled["label"]), ["", labelled["text"][1]])
    with pytest.raises(ValueError, match="a list of texts, not one string"):
        with_pseudo_labels(labelled, np.asarray(labelled["label"]), "one review")
    with pytest.raises(ValueError, match="max_unlabelled must be at least 1"):
        with_pseudo_labels(labelled, np.asarray(labelled["label"]), texts, max_unlabelled=0)
    with pytest.raises(ValueError, match="must hold strings; found int"):
        with_pseudo_labels(labelled, np.asarray(labelled["label"]), [3])


def test_series_are_scored_standardised_as_fine_tuning_reads_them(tmp_path):
    """A series source trained on another scale (GunPoint's raw values beside z-normalised sets): by default its
    features are read from the target rows standardised by their own statistics, as `finetune` and `auto` feed the
    transferred layers; `input_statistics="source"` reads them through the source's own; a model passed in memory
    keeps its statistics; bad values and a channel mismatch are refused by name."""
    from datasets import Dataset

    from hf_rnn_transfer.data import series_statistics
    from hf_rnn_transfer.selection import _batches, _in_row_order, extract_features

    torch.manual_seed(0)
    source = RNNForSequenceClassification(
        RNNConfig(num_labels=2, input_size=1, hidden_size=8, input_mean=[500.0], input_std=[100.0])
    )
    source.save_pretrained(tmp_path / "raw-scale")
    rng = np.random.default_rng(0)
    labels = [i % 2 for i in range(40)]
    series = [(3.0 + 2.0 * np.sin(np.linspace(0, 3 + 3 * y, 24)) + rng.normal(0, 0.3, 24)).reshape(-1, 1).tolist()
              for y in labels]  # fmt: skip
    rows = Dataset.from_dict({"input_values": series, "labels": labels})
    mean, std = series_statistics(rows)

    def logme_read(model):
        batches, order = _batches(model, "m", "m", rows, "text", "input_values", None, 64, 64, None, None)
        return logme(_in_row_order(extract_features(model, batches), order)[0], np.asarray(labels))

    as_target = RNNForSequenceClassification.from_pretrained(tmp_path / "raw-scale")
    as_target.base_model.set_normalization(mean, std)
    expected = {"target": logme_read(as_target), "source": logme_read(source)}
    assert abs(expected["target"] - expected["source"]) > 1e-3  # the two readings differ on these rows
    for how in ("target", "source"):
        for candidate in (str(tmp_path / "raw-scale"), source):
            ranking = rank_sources([candidate], rows, label_column="labels", scores=("logme",), input_statistics=how)
            assert ranking.scores[0].logme == pytest.approx(expected[how], rel=1e-5)
            assert ranking.input_statistics == how and ranking.to_dict()["input_statistics"] == how
    table = rank_sources([source], rows, label_column="labels").to_markdown()
    assert "target rows' own per-channel statistics" in table
    assert source.config.input_mean == [500.0] and source.base_model.input_mean.tolist() == [500.0]

    with pytest.raises(ValueError, match="input_statistics must be one of"):
        rank_sources([source], rows, label_column="labels", input_statistics="global")
    two_channels = Dataset.from_dict({"input_values": [[[0.0, 1.0]] * 5, [[1.0, 0.0]] * 5], "labels": [0, 1]})
    with pytest.raises(ValueError, match="reads series of 1 channel.*holds 2"):
        rank_sources([source], two_channels, label_column="labels")
    texts = Dataset.from_dict({"text": ["good", "bad"], "labels": [1, 0]})
    for how in ("target", "source"):
        with pytest.raises(ValueError, match="reads series, but the target has no 'input_values' column"):
            rank_sources([source], texts, label_column="labels", input_statistics=how)
