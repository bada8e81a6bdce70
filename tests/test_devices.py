"""The same code on every device present: CPU always, CUDA and MPS when this machine has them (`make gpu-check`).

Batches follow the model's device, results come back with `.cpu()`, and packed sequences (cuDNN on CUDA) give the
same outputs as one sequence at a time. Half precision (bf16/fp16 autocast) is checked where the device supports it.
"""

import copy
import math

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerFast

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification
from hf_rnn_transfer.data import train_tokenizer
from hf_rnn_transfer.evaluation import accuracy_of, what_transferred
from hf_rnn_transfer.selection import extract_features
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICES.append("mps")
TOLERANCE = {"cpu": 1e-5, "cuda": 2e-4, "mps": 1e-3}  # cuDNN and Metal reorder float sums


def small(head, cell="lstm", bidirectional=False, vocab=30, device="cpu"):
    config = RNNConfig(
        cell_type=cell,
        vocab_size=vocab,
        pad_token_id=0,
        embedding_size=8,
        hidden_size=12,
        num_layers=2,
        num_labels=3,
        bidirectional=bidirectional and head is not RNNForCausalLM,
        pooling="concat",
    )
    torch.manual_seed(0)
    return head(config).to(device).eval()


def padded_batch(device):
    ids = torch.tensor([[5, 6, 7, 8, 9], [3, 4, 0, 0, 0], [7, 0, 0, 0, 0]], device=device)
    return ids, (ids != 0).long()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("head", [RNNForSequenceClassification, RNNForTokenClassification, RNNForCausalLM])
def test_batched_outputs_equal_one_at_a_time_on_the_device(device, cell, bidirectional, head):
    model = small(head, cell, bidirectional, device=device)
    ids, mask = padded_batch(device)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask).logits
        for row in range(ids.shape[0]):
            length = int(mask[row].sum())
            alone = model(input_ids=ids[row : row + 1, :length]).logits
            got = batched[row : row + 1] if head is RNNForSequenceClassification else batched[row : row + 1, :length]
            assert got.device.type == device
            torch.testing.assert_close(got, alone, atol=TOLERANCE[device], rtol=TOLERANCE[device])
    model.train()
    if head is RNNForSequenceClassification:
        labels = torch.tensor([0, 1, 2], device=device)
    elif head is RNNForTokenClassification:
        labels = (ids % 3).masked_fill(mask == 0, -100)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def tiny_data():
    texts = ["good kettle works great", "awful pan broke fast", "great value good", "broke awful smell"] * 8
    labels = [1, 0, 1, 0] * 8
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_tokenizer(texts, min_frequency=1).backend_tokenizer)
    tokenizer.pad_token = "<pad>"
    encoded = Dataset.from_dict({"text": texts, "labels": labels}).map(
        lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )
    return encoded, tokenizer


@pytest.mark.parametrize("device", DEVICES)
def test_evaluation_and_selection_follow_the_model_to_its_device(device):
    encoded, tokenizer = tiny_data()
    collator = DataCollatorWithPadding(tokenizer)
    model = small(RNNForSequenceClassification, vocab=len(tokenizer), device=device)
    model.config.num_labels = 2
    model.classifier = torch.nn.Linear(model.pooler.output_size, 2).to(device)
    assert 0.0 <= accuracy_of(model, encoded, collator) <= 1.0
    batches = [collator([encoded[i] for i in range(j, j + 8)]) for j in range(0, 32, 8)]
    features, probabilities = extract_features(model, batches)
    assert features.shape == (32, 3 * 12) and probabilities.shape == (32, 2)
    start = copy.deepcopy(model).cpu()  # the start snapshot may live on another device than the tuned model
    with torch.no_grad():
        model.classifier.weight.add_(0.1)
    changes = what_transferred(start, model, encoded, collator)
    assert changes[-1].weight_drift > 0 and all(c.weight_drift == 0 for c in changes[:-1])


@pytest.mark.parametrize("device", DEVICES)
def test_transfer_trainer_trains_on_the_device_with_every_strategy(device, tmp_path):
    encoded, tokenizer = tiny_data()
    model = small(RNNForSequenceClassification, vocab=len(tokenizer))
    args = TransferTrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        freezing_strategy="gradual",
        unfreeze_interval=0.5,
        discriminative_lr=True,
        lr_scheduler_type="slanted_triangular",
        report_to="none",
        save_strategy="no",
        use_cpu=device == "cpu",
        disable_tqdm=True,
    )
    trainer = TransferTrainer(
        model=model, args=args, train_dataset=encoded, data_collator=DataCollatorWithPadding(tokenizer)
    )
    trainer.train()
    assert next(trainer.model.parameters()).device.type == device
    assert trainer.state.log_history[-1]["train_loss"] > 0


HALF = [("cuda", torch.bfloat16), ("cuda", torch.float16)] if "cuda" in DEVICES else []


NO_CUDA = [pytest.param(None, marks=pytest.mark.skip("no CUDA device here"))]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16] if "cuda" in DEVICES else NO_CUDA)
def test_transfer_trainer_mixed_precision_on_cuda(dtype, tmp_path):
    """`bf16=True` / `fp16=True` (the latter with transformers' loss scaler): the recurrent kernels run in that dtype,
    the weights stay fp32 and the loss goes down."""
    encoded, tokenizer = tiny_data()
    model = small(RNNForSequenceClassification, vocab=len(tokenizer)).train()
    ran_in = []
    model.rnn.layers[0].register_forward_hook(lambda module, args, out: ran_in.append(out[0][0].dtype))
    args = TransferTrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=8,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
    )
    trainer = TransferTrainer(
        model=model, args=args, train_dataset=encoded, data_collator=DataCollatorWithPadding(tokenizer)
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert set(ran_in) == {dtype}
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in model.parameters())
    assert all(math.isfinite(v) for v in losses) and sum(losses[-4:]) < sum(losses[:4])


@pytest.mark.parametrize(
    ("device", "dtype"), HALF or [pytest.param("cuda", None, marks=pytest.mark.skip("no CUDA device here"))]
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_half_precision_autocast_with_packed_sequences(device, dtype, cell):
    model = small(RNNForSequenceClassification, cell, bidirectional=True, device=device)
    ids, mask = padded_batch(device)
    ran_in = []  # packed: the layer's output is a PackedSequence, whose first field is the data
    model.rnn.layers[0].register_forward_hook(lambda module, args, out: ran_in.append(out[0][0].dtype))
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        with torch.autocast(device, dtype=dtype):
            half = model(input_ids=ids, attention_mask=mask).logits
    # the recurrent kernels run in the dtype asked for: bf16 too (PyTorch's own cuDNN rule would run them in fp16)
    assert ran_in == [torch.float32, dtype]
    assert torch.isfinite(half).all()
    assert (half.float() - full).norm() / full.norm() < 3e-2
    model.train()
    with torch.autocast(device, dtype=dtype):
        loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2], device=device)).loss
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
