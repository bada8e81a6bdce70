"""Model cards: lineage, transfer recipe and results, valid metadata, nothing local or secret."""

import pytest
from huggingface_hub import ModelCard

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification, RNNForTimeSeriesForecasting
from hf_rnn_transfer.hub import CardContent, Metric, build_model_card

TRANSFER = {
    "summary": "5 tensors copied, 2 re-initialised.",
    "tensors": [
        {"target": "rnn.embeddings.weight", "status": "copied", "source": "rnn.embeddings.weight", "reason": "same"},
        {"target": "classifier.weight", "status": "reinitialised", "source": None, "reason": "new head"},
    ],
}


def fine_tuned_card() -> ModelCard:
    model = RNNForSequenceClassification(RNNConfig(vocab_size=50, hidden_size=8, embedding_size=4, num_labels=2))
    model.config.architectures = ["RNNForSequenceClassification"]
    content = CardContent(
        repo_id="alice/kitchen-lstm",
        objective="sentiment classification",
        data_description="100 labelled Amazon kitchen reviews",
        datasets=["alice/amazon-kitchen"],
        base_model="alice/reviews-lm",
        metrics=[Metric("accuracy", 0.871, dataset_name="Amazon kitchen", dataset_type="alice/amazon-kitchen")],
        training={"freezing": "gradual unfreezing, one group per epoch", "learning rates": "2e-3 / 2.6 per group"},
        transfer=TRANSFER,
        comparison={
            "summary": "Transfer beats scratch.",
            "header": ["labels", "transfer", "scratch"],
            "rows": [[100, 0.871, 0.62]],
        },
    )
    return build_model_card(model, content, has_tokenizer=True)


def test_fine_tuned_card_states_its_lineage_recipe_and_results():
    card = fine_tuned_card()
    data = card.data.to_dict()
    assert data["base_model"] == "alice/reviews-lm" and data["base_model_relation"] == "finetune"
    assert data["datasets"] == ["alice/amazon-kitchen"] and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "text-classification" and "hf-rnn-transfer" in data["tags"]
    reparsed = ModelCard(str(card))  # metadata and model-index parse back
    [result] = reparsed.data.eval_results
    assert (result.metric_type, result.metric_value, result.task_type) == ("accuracy", 0.871, "text-classification")
    text = card.text
    assert "| `classifier.weight` | reinitialised |" in text and "gradual unfreezing" in text
    assert "| 100 | 0.871 | 0.62 |" in text
    assert 'from_pretrained("alice/kitchen-lstm", trust_remote_code=True)' in text
    assert "import hf_rnn_transfer" in text and "AutoTokenizer" in text
    assert "pip install hf-rnn-transfer" not in text and "pypi.org" not in text  # not a published package


def test_card_metadata_passes_the_hub_validation(hub):
    fine_tuned_card().validate()  # POST /api/validate-yaml on the offline Hub, as the client does before a push


def test_source_card_for_series_models():
    model = RNNForTimeSeriesForecasting(
        RNNConfig(input_size=3, hidden_size=8, prediction_length=4, input_mean=[0.0] * 3, input_std=[1.0] * 3)
    )
    model.config.architectures = ["RNNForTimeSeriesForecasting"]
    card = build_model_card(
        model,
        CardContent(
            repo_id="alice/ecg-forecaster", objective="forecast 4 steps (MSE)", data_description="ECG200 series"
        ),
    )
    assert card.data.pipeline_tag == "time-series-forecasting" and "base_model" not in card.data.to_dict()
    assert "| input channels | 3 |" in card.text and "per-channel mean/std" in card.text


@pytest.mark.parametrize("field", ["repo_id", "base_model", "datasets"])
def test_cards_refuse_local_paths(field, tmp_path):
    model = RNNForSequenceClassification(RNNConfig(vocab_size=50, hidden_size=8, embedding_size=4))
    kwargs = {"repo_id": "alice/x", "objective": "o", "data_description": "d"}
    kwargs[field] = [str(tmp_path)] if field == "datasets" else str(tmp_path)
    with pytest.raises(ValueError, match="cards never name local paths"):
        build_model_card(model, CardContent(**kwargs))


def test_trainer_card_keeps_language_lists_scores_not_loss_and_names_the_schedule(hub, tmp_path):
    import torch
    from datasets import Dataset

    from hf_rnn_transfer import RNNForCausalLM, TransferTrainer, TransferTrainingArguments
    from hf_rnn_transfer.transfer import transfer

    from .conftest import ALICE

    config = RNNConfig(vocab_size=30, hidden_size=8, embedding_size=4, num_layers=1, num_labels=2)
    RNNForCausalLM(config).push_to_hub("alice/card-source", token=ALICE)
    model, _ = transfer("alice/card-source", RNNForSequenceClassification(config), token=ALICE)
    ids = torch.randint(1, 30, (16, 5))
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, 0] > 15).long().tolist()})
    args = TransferTrainingArguments(
        str(tmp_path),
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        report_to="none",
        save_strategy="no",
        lr_scheduler_type="linear",
    )
    from hf_rnn_transfer.evaluation import classification_metrics

    trainer = TransferTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data, compute_metrics=classification_metrics
    )
    trainer.train()
    trainer.create_model_card(language="en", license="apache-2.0")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.language == "en" or card.data.language == ["en"]
    assert card.data.base_model == "alice/card-source"
    metrics = {r.metric_type for r in card.data.eval_results}
    assert metrics == {"accuracy", "macro_f1"}  # the loss is not a result
    assert "| schedule | linear |" in card.text and "SchedulerType" not in card.text


def test_seq2seq_card_names_its_pipeline():
    from hf_rnn_transfer import RNNForSeq2SeqLM

    model = RNNForSeq2SeqLM(RNNConfig(vocab_size=30, hidden_size=8, embedding_size=4, num_layers=1, bos_token_id=1))
    model.config.architectures = ["RNNForSeq2SeqLM"]
    card = build_model_card(model, CardContent(repo_id="alice/de-en", objective="translation", data_description="d"))
    assert card.data.pipeline_tag == "text2text-generation"
    assert 'pipeline("translation", model="alice/de-en", trust_remote_code=True)' in card.text
    assert "AutoModelForSeq2SeqLM" in card.text
