"""`SourceEnsemble` (members with their own tokenizers, probabilities averaged; saved, pushed, pulled, checked on load)
and `cross_validate_ensemble` (held-out correctness of the average, row by row, from each member's held-out
probabilities)."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, set_seed

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, SourceEnsemble
from hf_rnn_transfer.data import prepare_text_classification, train_tokenizer
from hf_rnn_transfer.ensemble import cross_validate_ensemble, ensemble_correctness, held_out_member_probabilities
from hf_rnn_transfer.evaluation import class_probabilities
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

from .conftest import ALICE

LABELS = {0: "negative", 1: "positive"}
# members train on the GPU where there is one: cuDNN orders its float sums differently from batch to batch
ATOL = 1e-4 if torch.cuda.is_available() else 1e-6


def reviews(rows: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(20)]
    texts = []
    for i in range(rows):
        chosen = list(rng.choice(words, size=8))
        chosen[int(rng.integers(0, 8))] = "great" if i % 2 else "awful"
        texts.append(" ".join(chosen))
    return Dataset.from_dict({"text": texts, "label": [LABELS[i % 2] for i in range(rows)]})


def classifier(tokenizer, seed: int, hidden: int = 16):
    set_seed(seed)
    config = RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=hidden, num_layers=1,
                       pooling="max", id2label=LABELS, label2id={v: k for k, v in LABELS.items()})  # fmt: skip
    return RNNForSequenceClassification(config)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two classifiers with different tokenizers (vocabularies of 60 and 200), each trained on the marker task."""
    root = tmp_path_factory.mktemp("members")
    data = reviews(200, 0)
    out = []
    for i, vocab in enumerate((60, 200)):
        tokenizer = train_tokenizer(data["text"], vocab_size=vocab, min_frequency=1, model_max_length=32)
        encoded, _ = prepare_text_classification(data, tokenizer)
        model = classifier(tokenizer, i, hidden=8 + 8 * i)
        args = TransferTrainingArguments.for_experiment(str(root / f"run{i}"), num_train_epochs=4, learning_rate=2e-2,
                                                        per_device_train_batch_size=16)  # fmt: skip
        TransferTrainer(model, args, train_dataset=encoded, data_collator=DataCollatorWithPadding(tokenizer)).train()
        out.append((model.eval(), tokenizer))
    return out


def test_the_ensemble_averages_its_members_and_round_trips_through_a_folder(members, tmp_path):
    (a, ta), (b, tb) = members
    ensemble = SourceEnsemble([a, b], [ta, tb], ["books", "dvd"], weights=[3, 1])
    assert ensemble.weights == [0.75, 0.25]
    test = reviews(30, 5)
    by_hand = []
    for model, tokenizer in members:
        encoded, _ = prepare_text_classification(test, tokenizer)
        by_hand.append(class_probabilities(model, encoded, DataCollatorWithPadding(tokenizer))[0])
    expected = 0.75 * by_hand[0] + 0.25 * by_hand[1]
    np.testing.assert_allclose(ensemble.predict_proba(test["text"]), expected, atol=ATOL)
    assert (expected.argmax(-1) == np.asarray([i % 2 for i in range(30)])).mean() > 0.9
    ensemble.save_pretrained(tmp_path / "ens")
    manifest = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert manifest["members"] == ["member-0", "member-1"] and manifest["sources"] == ["books", "dvd"]
    assert (tmp_path / "ens" / "member-1" / "tokenizer.json").is_file()
    assert not list((tmp_path / "ens").rglob("*.bin")) and not list((tmp_path / "ens").rglob("*.pt"))
    loaded = SourceEnsemble.from_pretrained(tmp_path / "ens")
    np.testing.assert_allclose(loaded.predict_proba(test["text"]), expected, atol=ATOL)
    assert loaded("w1 great w2")[0]["label"] == "positive"  # one text is one input
    assert loaded.sources == ["books", "dvd"] and loaded.id2label == LABELS


def test_bad_members_and_inputs_get_errors_that_name_them(members):
    (a, ta), (b, tb) = members
    with pytest.raises(ValueError, match="1 to 64 members"):
        SourceEnsemble([])
    with pytest.raises(ValueError, match="finite, non-negative and not all zero"):
        SourceEnsemble([a, b], [ta, tb], weights=[1, -1])
    with pytest.raises(ValueError, match="member 1 .dvd. reads tokens but has no tokenizer"):
        SourceEnsemble([a, b], [ta, None], ["books", "dvd"])
    other = RNNForSequenceClassification(RNNConfig(vocab_size=len(ta), hidden_size=8, num_layers=1,
                                                   id2label={0: "a", 1: "b", 2: "c"}))  # fmt: skip
    with pytest.raises(ValueError, match="must share one label set"):
        SourceEnsemble([a, other], [ta, ta])
    series = RNNForSequenceClassification(RNNConfig(input_size=1, hidden_size=8, num_layers=1, id2label=LABELS))
    with pytest.raises(ValueError, match="all read tokens or all read series"):
        SourceEnsemble([a, series], [ta, None])
    ensemble = SourceEnsemble([a, b], [ta, tb])
    with pytest.raises(ValueError, match=r"inputs \[1\] are not non-empty strings"):
        ensemble.predict_proba(["fine", "  "])
    with pytest.raises(ValueError, match="at least one input"):
        ensemble.predict_proba([])


def test_a_series_ensemble_reads_raw_arrays():
    set_seed(0)
    members = [
        RNNForSequenceClassification(RNNConfig(input_size=1, hidden_size=h, num_layers=1, id2label=LABELS)).eval()
        for h in (4, 8)
    ]
    ensemble = SourceEnsemble(members)
    series = [np.sin(np.linspace(0, 3, 20)), np.cos(np.linspace(0, 3, 12))]
    probabilities = ensemble.predict_proba(series)
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    assert ensemble.predict_proba(series[0]).shape == (1, 2)  # one array is one input


@pytest.mark.parametrize(
    "manifest, error",
    [
        ({"members": ["../outside"]}, "member folders must be distinct names of the form member-<i>"),
        ({"members": ["member-0", "member-0"]}, "must be distinct"),
        ({"members": [f"member-{i}" for i in range(65)]}, "1 to 64 member folders"),
        ({"members": ["member-0"], "weights": ["1"]}, "'weights' must be numbers"),
        ({"members": ["member-0"], "weights": [1, 2]}, "one number per member"),
        ({"members": ["member-0"], "sources": [7]}, "one string per member"),
        ([], "'members' must list"),
    ],
)
def test_a_hostile_manifest_is_refused_before_anything_loads(tmp_path, manifest, error):
    (tmp_path / "ensemble.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=error):
        SourceEnsemble.from_pretrained(tmp_path)


def test_a_folder_without_a_manifest_or_with_broken_json_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no ensemble.json: it is not a saved SourceEnsemble"):
        SourceEnsemble.from_pretrained(tmp_path)
    (tmp_path / "ensemble.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        SourceEnsemble.from_pretrained(tmp_path)


def test_an_ensemble_is_pushed_and_pulled_through_the_hub(members, hub, tmp_path):
    from hf_rnn_transfer.hub import CardContent, push_model

    (a, ta), (b, tb) = members
    ensemble = SourceEnsemble([a, b], [ta, tb], ["books", "dvd"])
    card = CardContent(repo_id="alice/ens", objective="classification", data_description="marker texts", ensemble=2)
    commit = push_model(ensemble, "alice/ens", card=card, token=ALICE)
    pulled = SourceEnsemble.from_pretrained("alice/ens", revision=commit.oid, token=ALICE)
    texts = reviews(10, 7)["text"]
    np.testing.assert_allclose(pulled.predict_proba(texts), ensemble.predict_proba(texts), atol=ATOL)
    from huggingface_hub import hf_hub_download

    readme = open(hf_hub_download("alice/ens", "README.md", token=ALICE)).read()
    assert 'SourceEnsemble.from_pretrained("alice/ens")' in readme and ALICE not in readme


def test_cross_validating_the_average_scores_every_row_once(members):
    data = reviews(24, 3)
    rows, collators, makers = [], [], []
    for i, (_, tokenizer) in enumerate(members):
        encoded, _ = prepare_text_classification(data, tokenizer)
        rows.append(encoded)
        collators.append(DataCollatorWithPadding(tokenizer))
        makers.append(lambda t=tokenizer, s=i: classifier(t, s))
    args = TransferTrainingArguments.for_experiment("unused", num_train_epochs=4, learning_rate=3e-2,
                                                    per_device_train_batch_size=8, seed=0)  # fmt: skip
    calls = []
    correct = cross_validate_ensemble(makers, rows, args, collators, folds=3, on_fold=lambda: calls.append(1))
    assert correct.shape == (24,) and set(np.unique(correct)) <= {0.0, 1.0}
    assert len(calls) == 6  # 2 members x 3 folds
    # each member's held-out probabilities: any top-k average is scored from them without training again
    probabilities, labels = held_out_member_probabilities(makers, rows, args, collators, folds=3)
    assert probabilities.shape == (2, 24, 2) and labels.tolist() == list(rows[0]["labels"])
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(ensemble_correctness(probabilities, labels), correct)  # the same seeded training
    np.testing.assert_array_equal(ensemble_correctness(probabilities, labels, 1), probabilities[0].argmax(-1) == labels)
    with pytest.raises(ValueError, match="an ensemble of 3 from 2 members"):
        ensemble_correctness(probabilities, labels, 3)
    with pytest.raises(ValueError, match="same rows, in the same order"):
        cross_validate_ensemble(makers, [rows[0], rows[1].select(range(20))], args, collators, folds=3)
    with pytest.raises(ValueError, match="cannot be split into 3 folds"):
        cross_validate_ensemble(makers, [r.select(range(4)) for r in rows], args, collators, folds=3)


def test_a_member_whose_weights_are_a_pickle_is_refused(members, tmp_path):
    (a, ta), (b, tb) = members
    SourceEnsemble([a, b], [ta, tb]).save_pretrained(tmp_path)
    (tmp_path / "member-1" / "model.safetensors").unlink()
    (tmp_path / "member-1" / "pytorch_model.bin").write_bytes(b"not loaded")  # what a pickle would sit in
    with pytest.raises(OSError, match="safetensors"):
        SourceEnsemble.from_pretrained(tmp_path)
