"""Checkpoints load with `trust_remote_code=True` in a process where `hf_rnn_transfer` cannot be imported."""

import json
import textwrap

import torch

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification
from hf_rnn_transfer.data import train_tokenizer

from .conftest import WITHOUT_THE_PACKAGE, run_child

TEXTS = ["a great kettle , works well", "broken after a week , awful", "great value", "awful smell"]

CHILD = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
    try:
        import hf_rnn_transfer  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("hf_rnn_transfer is importable: the test would prove nothing")

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    classifier_dir, lm_dir = sys.argv[1], sys.argv[2]
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(classifier_dir, trust_remote_code=True)
    batch = tokenizer(json.loads(sys.argv[3]), padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    classify = pipeline("text-classification", model=classifier_dir, trust_remote_code=True)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, trust_remote_code=True)
    generated = lm.generate(torch.tensor([[4, 5]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    # a language-model checkpoint into a classifier: the transfer path, without the package
    transferred = AutoModelForSequenceClassification.from_pretrained(lm_dir, trust_remote_code=True, num_labels=2)
    print(json.dumps({
        "module": type(model).__module__,
        "logits": logits.tolist(),
        "pipeline": classify("great kettle")[0]["label"],
        "generated": generated.tolist(),
        "transferred_class": type(transferred).__name__,
    }))
    """
)


def test_remote_code_without_the_package(tmp_path):
    tokenizer = train_tokenizer(TEXTS, min_frequency=1)
    config = RNNConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        embedding_size=8,
        hidden_size=8,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        pooling="concat",
        bidirectional=True,
    )
    model = RNNForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "classifier")
    tokenizer.save_pretrained(tmp_path / "classifier")
    lm = RNNForCausalLM(RNNConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, cell_type="gru")).eval()
    lm.save_pretrained(tmp_path / "lm")
    config_json = json.loads((tmp_path / "classifier" / "config.json").read_text())
    assert config_json["auto_map"]["AutoModelForSequenceClassification"] == "modeling_rnn.RNNForSequenceClassification"

    child = run_child(CHILD, tmp_path / "classifier", tmp_path / "lm", json.dumps(TEXTS), tmp_path=tmp_path)
    assert child["module"].startswith("transformers_modules")
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(torch.tensor(child["logits"]), expected)
    assert child["pipeline"] in {"negative", "positive"}
    with torch.no_grad():
        expected_ids = lm.generate(torch.tensor([[4, 5]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert child["generated"] == expected_ids.tolist()
    assert child["transferred_class"] == "RNNForSequenceClassification"
