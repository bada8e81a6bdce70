"""RNNForSeq2SeqLM: generation equals recomputation (greedy, beams against an exhaustive search), padding invariance,
the loss, learning a task, the Hub/remote-code/pipeline path, the head API, and its layer groups in TransferTrainer."""

import json

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, pipeline

from hf_rnn_transfer import RNNConfig, RNNForSeq2SeqLM, TransferTrainer, TransferTrainingArguments
from hf_rnn_transfer.data import prepare_translation, train_tokenizer
from hf_rnn_transfer.pipeline_rnn import RNNText2TextPipeline

from .conftest import WITHOUT_THE_PACKAGE, run_child

VARIANTS = [
    ("lstm", True, "luong", True),
    ("lstm", False, "bahdanau", True),
    ("gru", True, "bahdanau", False),
    ("gru", False, "luong", False),
    ("rnn", False, "luong", True),
]
BOS, EOS, PAD = 1, 2, 0


def make_model(cell="lstm", bidirectional=True, attention="luong", input_feeding=True, vocab=12, **overrides):
    config = RNNConfig(
        vocab_size=vocab,
        embedding_size=6,
        hidden_size=8,
        num_layers=2,
        cell_type=cell,
        bidirectional=bidirectional,
        attention=attention,
        input_feeding=input_feeding,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        initializer_range=0.5,
        **overrides,
    )
    return RNNForSeq2SeqLM(config).eval()


SOURCE = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
MASK = (SOURCE != PAD).long()


def log_prob(model, source, mask, continuation) -> torch.Tensor:
    """log p(continuation | source), recomputed from scratch (no cache)."""
    decoder = torch.cat([torch.full((continuation.shape[0], 1), BOS), continuation], dim=1)
    with torch.no_grad():
        logits = model(input_ids=source, attention_mask=mask, decoder_input_ids=decoder[:, :-1]).logits
    return logits.log_softmax(-1).gather(-1, continuation[..., None]).squeeze(-1).sum(-1)


@pytest.mark.parametrize(("cell", "bidirectional", "attention", "input_feeding"), VARIANTS)
def test_cached_generation_equals_recomputation(cell, bidirectional, attention, input_feeding):
    model = make_model(cell, bidirectional, attention, input_feeding)
    generated = model.generate(
        input_ids=SOURCE, attention_mask=MASK, max_new_tokens=5, do_sample=False, eos_token_id=None
    )
    decoder = torch.full((2, 1), BOS)
    with torch.no_grad():
        for _ in range(5):
            logits = model(input_ids=SOURCE, attention_mask=MASK, decoder_input_ids=decoder).logits
            decoder = torch.cat([decoder, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(generated, decoder)


@pytest.mark.parametrize(("cell", "bidirectional", "attention", "input_feeding"), VARIANTS[:2])
def test_beam_search_matches_an_exhaustive_search(cell, bidirectional, attention, input_feeding):
    vocab, steps = 5, 3
    model = make_model(cell, bidirectional, attention, input_feeding, vocab=vocab)
    source, mask = torch.tensor([[3, 4, 2], [4, 0, 0]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    search = dict(max_new_tokens=steps, do_sample=False, length_penalty=0.0, early_stopping=True, eos_token_id=None)
    out = model.generate(
        input_ids=source,
        attention_mask=mask,
        num_beams=vocab ** (steps - 1),
        num_return_sequences=2,
        output_scores=True,
        return_dict_in_generate=True,
        **search,
    )
    every = torch.cartesian_prod(*[torch.arange(vocab)] * steps)
    for row in range(2):
        exact = log_prob(
            model, source[row : row + 1].expand(len(every), -1), mask[row : row + 1].expand(len(every), -1), every
        )
        best = exact.topk(2)
        assert out.sequences[2 * row : 2 * row + 2, 1:].tolist() == every[best.indices].tolist()
        torch.testing.assert_close(out.sequences_scores[2 * row : 2 * row + 2], best.values, atol=1e-4, rtol=0)
    few = model.generate(
        input_ids=source,
        attention_mask=mask,
        num_beams=3,
        num_return_sequences=3,
        output_scores=True,
        return_dict_in_generate=True,
        **search,
    )
    rescored = log_prob(model, source.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), few.sequences[:, 1:])
    torch.testing.assert_close(few.sequences_scores, rescored, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("cell", "bidirectional", "attention", "input_feeding"), VARIANTS)
def test_padded_sources_and_targets_give_each_row_what_it_gives_alone(cell, bidirectional, attention, input_feeding):
    model = make_model(cell, bidirectional, attention, input_feeding)
    labels = torch.tensor([[5, 6, EOS], [9, EOS, -100]])
    batched = model(input_ids=SOURCE, attention_mask=MASK, labels=labels).logits
    for row, (source_length, target_length) in enumerate([(4, 3), (2, 2)]):
        alone = model(input_ids=SOURCE[row : row + 1, :source_length], labels=labels[row : row + 1, :target_length])
        torch.testing.assert_close(batched[row, :target_length], alone.logits[0], atol=1e-5, rtol=1e-4)


def test_loss_is_the_token_mean_with_labels_shifted_behind_the_start_token():
    model = make_model()
    labels = torch.tensor([[5, 6, EOS], [9, EOS, -100]])
    out = model(input_ids=SOURCE, attention_mask=MASK, labels=labels, output_attentions=True)
    assert model.shift_tokens_right(labels).tolist() == [[BOS, 5, 6], [BOS, 9, EOS]]
    expected = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    weights = out.cross_attentions[0]
    assert weights.shape == (2, 3, 4) and torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert float(weights[1, :, 2:].detach().abs().max()) == 0  # padded source positions get no attention
    with pytest.raises(ValueError, match="target token ids in \\[0, 11\\]"):
        model(input_ids=SOURCE, attention_mask=MASK, labels=torch.tensor([[40, EOS, EOS], [1, 1, 1]]))
    with pytest.raises(ValueError, match="needs decoder_input_ids or labels"):
        model(input_ids=SOURCE, attention_mask=MASK)
    with pytest.raises(ValueError, match="reads tokens"):
        RNNForSeq2SeqLM(RNNConfig(input_size=3))


def _reversal_data(tokenizer, count, seed):
    generator = torch.Generator().manual_seed(seed)
    words = "alpha beta gamma delta omega sigma kappa zeta".split()
    rows = []
    for _ in range(count):
        picked = [
            words[i]
            for i in torch.randint(
                0, len(words), (int(torch.randint(2, 5, (1,), generator=generator)),), generator=generator
            )
        ]
        rows.append({"source": " ".join(picked), "target": " ".join(reversed(picked))})
    return Dataset.from_list(rows), prepare_translation(Dataset.from_list(rows), tokenizer)


def test_learns_to_reverse_a_sentence_and_decodes_it_through_a_pipeline(tmp_path):
    tokenizer = train_tokenizer(["alpha beta gamma delta omega sigma kappa zeta"], min_frequency=1)
    raw, train = _reversal_data(tokenizer, 600, 0)
    test_raw, _ = _reversal_data(tokenizer, 40, 1)
    torch.manual_seed(0)
    config = RNNConfig(
        vocab_size=len(tokenizer),
        embedding_size=32,
        hidden_size=64,
        num_layers=1,
        bidirectional=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = RNNForSeq2SeqLM(config)
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path / "run"), num_train_epochs=6, learning_rate=1e-2, per_device_train_batch_size=32
    )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    TransferTrainer(
        model=model, args=args, train_dataset=train.remove_columns("length"), data_collator=collator
    ).train()
    generate = RNNText2TextPipeline(model=model, tokenizer=tokenizer)
    answers = [out[0]["generated_text"] for out in generate(list(test_raw["source"]), max_new_tokens=8, num_beams=2)]
    correct = sum(a == t for a, t in zip(answers, test_raw["target"]))
    assert correct >= 0.8 * len(answers), list(zip(answers, test_raw["target"]))[:5]

    # saved, reloaded through the Auto class, and run as remote code without the package
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "model")
    assert isinstance(reloaded, RNNForSeq2SeqLM) and reloaded.config.is_encoder_decoder
    assert reloaded.lm_head.weight.data_ptr() == reloaded.decoder_embeddings.weight.data_ptr()  # still tied
    # transformers 5 has no translation pipeline of its own: the checkpoint carries one (remote code)
    translate = pipeline("translation", model=str(tmp_path / "model"), trust_remote_code=True)
    assert [
        o[0]["translation_text"] for o in translate(list(test_raw["source"][:5]), max_new_tokens=8, num_beams=2)
    ] == (answers[:5])
    child = run_child(
        WITHOUT_THE_PACKAGE
        + "from transformers import pipeline\n"
        + "out = pipeline('translation', model=sys.argv[1], trust_remote_code=True)(json.loads(sys.argv[2]),"
        + " max_new_tokens=8, num_beams=2)\n"
        + "print(json.dumps([o[0]['translation_text'] for o in out]))\n",
        tmp_path / "model",
        json.dumps(test_raw["source"][:5]),
        tmp_path=tmp_path,
    )
    assert child == answers[:5]


def test_head_api_and_layer_groups_in_the_trainer(tmp_path):
    model = make_model()
    groups = model.get_layer_groups()
    assert list(groups) == [
        "embedding",
        "layer_0",
        "layer_1",
        "decoder_embedding",
        "decoder_layer_0",
        "decoder_layer_1",
        "attention",
        "head",
    ]
    assert "bridge.weight" in groups["attention"] and "lm_head.weight" in groups["head"]
    assert sum(len(v) for v in groups.values()) == len(list(model.parameters()))
    assert model.get_classifier() is model.lm_head
    before = model.lm_head.weight.clone()
    model.reset_classifier()
    assert not torch.equal(before, model.lm_head.weight)
    with pytest.raises(ValueError, match="one output per target token"):
        model.reset_classifier(3)
    rows = Dataset.from_dict(
        {
            "input_ids": SOURCE.tolist() * 4,
            "attention_mask": MASK.tolist() * 4,
            "labels": [[5, 6, EOS], [9, EOS, -100]] * 4,
        }
    )
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path),
        max_steps=8,
        per_device_train_batch_size=4,
        freezing_strategy="gradual",
        unfreeze_unit="step",
        unfreeze_interval=1,
        discriminative_lr=True,
    )
    trainer = TransferTrainer(model=model.train(), args=args, train_dataset=rows)
    trainer.train()
    assert trainer.unfreezing_history[0]["trainable"] == ["head"]
    assert trainer.unfreezing_history[1]["trainable"] == ["attention", "head"]
    assert trainer.unfreezing_history[-1]["trainable"] == list(groups)


def _status(report, name):
    return next(t.status for t in report.tensors if t.target == name)


def test_transfer_into_the_encoder_the_decoder_or_the_whole_model():
    from hf_rnn_transfer import RNNForCausalLM, RNNForSequenceClassification
    from hf_rnn_transfer.transfer import transfer

    shape = dict(
        vocab_size=12,
        embedding_size=6,
        hidden_size=8,
        num_layers=2,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    # an encoder (a bidirectional classifier) into the encoder: the decoder side starts fresh
    classifier = RNNForSequenceClassification(RNNConfig(**shape, bidirectional=True, num_labels=2))
    model, report = transfer(classifier, RNNForSeq2SeqLM(RNNConfig(**shape, bidirectional=True)))
    torch.testing.assert_close(model.rnn.layers[1].weight_hh_l0_reverse, classifier.rnn.layers[1].weight_hh_l0_reverse)
    assert _status(report, "rnn.layers.0.weight_ih_l0") == "copied"
    assert _status(report, "decoder_layers.0.weight_ih_l0") == "reinitialised"
    assert "target_part='encoder'" in next(t.reason for t in report.tensors if t.target == "attention.keys.weight")

    # a causal language model into the decoder: embedding, layers (the first one's input-feeding columns fresh), and
    # with transfer_head the output layer
    lm = RNNForCausalLM(RNNConfig(**shape))
    model, report = transfer(
        lm, RNNForSeq2SeqLM(RNNConfig(**shape, bidirectional=True)), target_part="decoder", transfer_head=True
    )
    torch.testing.assert_close(model.decoder_embeddings.weight, lm.rnn.embeddings.weight)
    torch.testing.assert_close(model.decoder_layers[1].weight_hh_l0, lm.rnn.layers[1].weight_hh_l0)
    torch.testing.assert_close(model.decoder_layers[0].weight_ih_l0[:, :6], lm.rnn.layers[0].weight_ih_l0)
    assert _status(report, "decoder_layers.0.weight_ih_l0") == "remapped"
    torch.testing.assert_close(model.lm_head.weight, lm.decoder.weight)
    assert _status(report, "rnn.embeddings.weight") == "reinitialised"
    assert model.transfer_config.target_part == "decoder"

    # one sequence-to-sequence model into another: everything moves
    general = make_model()
    model, report = transfer(general, RNNForSeq2SeqLM(general.config))
    assert {t.status for t in report.tensors} == {"copied"}
    source = torch.tensor([[3, 4, 5]])
    torch.testing.assert_close(
        model.eval()(input_ids=source, decoder_input_ids=torch.tensor([[BOS, 5]])).logits,
        general(input_ids=source, decoder_input_ids=torch.tensor([[BOS, 5]])).logits,
    )

    with pytest.raises(ValueError, match="target_part='all' needs a sequence-to-sequence source"):
        transfer(lm, RNNForSeq2SeqLM(RNNConfig(**shape)), target_part="all")
    with pytest.raises(ValueError, match="needs a sequence-to-sequence target"):
        transfer(lm, RNNForSequenceClassification(RNNConfig(**shape)), target_part="decoder")
    with pytest.raises(ValueError, match="decoders differ"):
        transfer(general, RNNForSeq2SeqLM(RNNConfig(**{**shape, "bidirectional": True, "target_hidden_size": 10})))


@pytest.mark.parametrize(("cell", "bidirectional", "attention", "input_feeding"), VARIANTS)
def test_every_parameter_gets_a_gradient_and_other_dtypes_run(cell, bidirectional, attention, input_feeding):
    model = make_model(cell, bidirectional, attention, input_feeding).train()
    labels = torch.tensor([[5, 6, EOS], [9, EOS, -100]])
    model(input_ids=SOURCE, attention_mask=MASK, labels=labels).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    reference = model.eval()(input_ids=SOURCE, attention_mask=MASK, labels=labels).logits
    double = model.to(torch.float64)(input_ids=SOURCE, attention_mask=MASK, labels=labels).logits
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), reference, atol=1e-5, rtol=1e-4)
    half = model.to(torch.bfloat16).generate(input_ids=SOURCE, attention_mask=MASK, max_new_tokens=3)
    assert half.shape[0] == 2


def test_compare_handles_generation_with_a_bleu_score(tmp_path):
    from hf_rnn_transfer.evaluation import compare, evaluate_generation
    from hf_rnn_transfer.transfer import transfer

    tokenizer = train_tokenizer(["alpha beta gamma delta omega sigma kappa zeta"], min_frequency=1)
    _, train = _reversal_data(tokenizer, 60, 0)
    _, test = _reversal_data(tokenizer, 10, 1)
    train, test = train.remove_columns("length"), test.remove_columns("length")
    config = RNNConfig(
        vocab_size=len(tokenizer),
        embedding_size=8,
        hidden_size=8,
        num_layers=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    source = RNNForSeq2SeqLM(config)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)

    def bleu(model, rows):
        return evaluate_generation(model, rows, tokenizer, collator, max_new_tokens=6)["bleu"]

    args = TransferTrainingArguments.for_experiment(str(tmp_path), num_train_epochs=1, per_device_train_batch_size=16)
    result = compare(
        lambda seed: transfer(source, RNNForSeq2SeqLM(config))[0],
        lambda seed: RNNForSeq2SeqLM(config),
        train,
        test,
        args,
        collator,
        budgets=[20, 40],
        seeds=[0, 1],
        zero_shot=source,
        score=bleu,
        metric="BLEU",
        progress=False,
    )
    assert result.metric == "BLEU" and set(result.references) == {"source zero-shot"}
    assert all(len(result.scores[m][b]) == 2 for m in ("transfer", "scratch") for b in (20, 40))
    assert "BLEU on the test set" in result.to_markdown()
    with pytest.raises(ValueError, match="labels are sequences: pass score="):
        compare(lambda s: source, lambda s: source, train, test, args, collator, budgets=[20], seeds=[0])
