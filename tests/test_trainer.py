"""TransferTrainer: every strategy on real data, frozen groups cost nothing, resume, L2-SP, and 2-process DDP."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, HfArgumentParser, TrainerCallback

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification
from hf_rnn_transfer import trainer as trainer_module
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments, get_slanted_triangular_schedule
from hf_rnn_transfer.transfer import transfer

from .conftest import ALICE, free_port, launcher_env, torchrun

SCRIPT = Path(__file__).parent / "scripts" / "distributed_unfreezing.py"


@pytest.fixture(scope="module")
def kitchen():
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0).select(range(200))
    tokenizer = train_tokenizer(reviews["text"], vocab_size=2000, model_max_length=48)
    data = reviews.map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text", "title", "rating"]
    ).rename_column("label", "labels")
    return data, tokenizer


def transferred_classifier(tokenizer, dropout=0.0):
    shape = dict(
        vocab_size=len(tokenizer),
        pad_token_id=0,
        embedding_size=16,
        hidden_size=16,
        num_layers=2,
        embedding_dropout=dropout,
        layer_dropout=dropout,
        classifier_dropout=dropout,
    )
    source = RNNForCausalLM(RNNConfig(**shape))
    model, _ = transfer(source, RNNForSequenceClassification(RNNConfig(num_labels=2, pooling="concat", **shape)))
    return model


def make_trainer(model, data, tokenizer, tmp_path, eval_dataset=None, **kwargs):
    values = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=8,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        dataloader_pin_memory=False,
    )
    values.update(kwargs)
    return TransferTrainer(
        model=model,
        args=TransferTrainingArguments(**values),
        train_dataset=data,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed_groups(model, before):
    params = dict(model.named_parameters())
    return [
        g
        for g, names in model.get_layer_groups().items()
        if any(not torch.equal(params[n].cpu(), before[n].cpu()) for n in names)
    ]


@pytest.mark.parametrize(
    ("strategy", "extra", "trained"),
    [
        ("none", {}, ["embedding", "layer_0", "layer_1", "head"]),
        ("embeddings", {}, ["layer_0", "layer_1", "head"]),
        ("layers", {"freeze_layers": 1}, ["layer_1", "head"]),
        ("encoder", {}, ["head"]),
    ],
)
def test_static_freezing_on_real_reviews(strategy, extra, trained, kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    before = snapshot(model)
    trainer = make_trainer(model, data, tokenizer, tmp_path, freezing_strategy=strategy, weight_decay=0.1, **extra)
    trainer.train()
    assert changed_groups(model, before) == trained
    frozen = [n for g, names in model.get_layer_groups().items() if g not in trained for n in names]
    params = dict(model.named_parameters())
    optimizer_state = {id(p) for p in trainer.optimizer.state}
    for name in frozen:  # no weight gradient computed, no optimizer state, no update, no weight decay
        assert not params[name].requires_grad and params[name].grad is None
        assert id(params[name]) not in optimizer_state
        assert torch.equal(params[name].cpu(), before[name].cpu())
    assert not model.training or all(params[n].requires_grad is False for n in frozen)  # model.train() kept it


def test_gradual_unfreezing_with_discriminative_rates_and_slanted_triangular(kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    trainer = make_trainer(
        model,
        data,
        tokenizer,
        tmp_path,
        freezing_strategy="gradual",
        unfreeze_unit="step",
        unfreeze_interval=2,
        discriminative_lr=True,
        lr_scheduler_type="slanted_triangular",
        stlr_cut_frac=0.25,
    )
    seen = []  # what every logging integration (console, TensorBoard, trackio) receives: the callbacks' on_log

    class Recorder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    trainer.add_callback(Recorder())
    trainer.train()
    stages = [e for e in seen if "freezing/stage" in e]
    assert [e["freezing/stage"] for e in stages] == [0, 1, 2, 3]
    assert [e["freezing/layer_1"] for e in stages] == [0, 1, 1, 1] and stages[0]["freezing/head"] == 1
    rates = [e for e in seen if "learning_rate/head" in e]
    assert len(rates) == 8
    assert rates[0]["learning_rate/embedding"] == 0 and rates[0]["learning_rate/layer_0"] == 0  # frozen
    assert rates[0]["learning_rate"] == rates[0]["learning_rate/head"] > 0  # the top group's, not the embedding's
    assert rates[-1]["learning_rate/embedding"] == pytest.approx(rates[-1]["learning_rate/head"] / 2.6**3)
    assert [h["trainable"] for h in trainer.unfreezing_history] == [
        ["head"],
        ["layer_1", "head"],
        ["layer_0", "layer_1", "head"],
        ["embedding", "layer_0", "layer_1", "head"],
    ]
    peak = {g["layer_group"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
    assert peak["head"] == pytest.approx(5e-3) and peak["layer_1"] == pytest.approx(5e-3 / 2.6)
    assert peak["embedding"] == pytest.approx(5e-3 / 2.6**3)
    recipe = trainer.transfer_recipe()
    assert "gradual unfreezing" in recipe["freezing"] and "slanted triangular" in recipe["schedule"]


def test_chain_thaw_trains_one_group_at_a_time(kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    trainer = make_trainer(
        model,
        data,
        tokenizer,
        tmp_path,
        freezing_strategy="chain_thaw",
        unfreeze_unit="step",
        unfreeze_interval=1,
        max_steps=5,
    )
    trainer.train()
    assert [h["trainable"] for h in trainer.unfreezing_history] == [
        ["head"],
        ["embedding"],
        ["layer_0"],
        ["layer_1"],
        ["embedding", "layer_0", "layer_1", "head"],
    ]


def test_slanted_triangular_schedule_shape():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_slanted_triangular_schedule(optimizer, num_training_steps=100, cut_frac=0.1, ratio=32)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1 / 32) and max(rates) == pytest.approx(1.0) and rates.index(1.0) == 10
    assert all(a < b for a, b in zip(rates[:10], rates[1:11])) and all(a > b for a, b in zip(rates[10:-1], rates[11:]))


def test_every_selection_rule_parses_from_the_command_line_and_an_unknown_one_is_refused():
    from hf_rnn_transfer.budget_selection import SELECTION_RULES

    parser = HfArgumentParser(TransferTrainingArguments)
    for rule in SELECTION_RULES:
        (args,) = parser.parse_args_into_dataclasses(["--output_dir", "out", "--select_rule", rule])
        assert args.select_rule == rule
    assert "source_or_best" in parser.format_help()
    with pytest.raises(SystemExit):  # argparse: "invalid choice", with the choices
        parser.parse_args_into_dataclasses(["--output_dir", "out", "--select_rule", "median"])
    with pytest.raises(ValueError, match="select_rule must be one of .*source_or_best.*got 'median'"):
        TransferTrainingArguments(output_dir="out", select_rule="median")


def test_arguments_parse_from_the_command_line_with_help():
    parser = HfArgumentParser(TransferTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            "out",
            "--freezing_strategy",
            "gradual",
            "--discriminative_lr",
            "--lr_scheduler_type",
            "slanted_triangular",
            "--l2sp_alpha",
            "0.01",
            "--report_to",
            "none",
        ]
    )
    assert args.freezing_strategy == "gradual" and args.slanted_triangular and args.uses_l2sp
    help_text = parser.format_help()
    for flag in (
        "--freezing_strategy",
        "--unfreeze_interval",
        "--discriminative_lr_factor",
        "--stlr_cut_frac",
        "--l2sp_alpha",
        "--l2sp_beta",
        "--frozen_dropout",
    ):
        assert flag in help_text
    with pytest.raises(ValueError, match="freezing_strategy must be one of"):
        TransferTrainingArguments(output_dir="o", freezing_strategy="thaw", report_to="none")


def test_l2sp_penalty_replaces_weight_decay(kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    source_values = snapshot(model)
    trainer = make_trainer(model, data, tokenizer, tmp_path, l2sp_alpha=0.5, l2sp_beta=0.1, weight_decay=0.3)
    assert all(g["weight_decay"] == 0.0 for g in trainer.create_optimizer().param_groups)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    moved = {t.target for t in model.transfer_report.tensors if t.status in ("copied", "remapped")}
    expected = sum(
        0.25 * (p - source_values[n].to(p.device)).pow(2).sum() if n in moved else 0.05 * p.pow(2).sum()
        for n, p in model.named_parameters()
    )
    torch.testing.assert_close(trainer.l2sp_penalty(), expected)
    plain = RNNForSequenceClassification(RNNConfig(vocab_size=10, hidden_size=4, embedding_size=4))
    with pytest.raises(ValueError, match="L2-SP needs to know which weights came from the source"):
        make_trainer(plain, data, tokenizer, tmp_path, l2sp_alpha=0.1)


def test_frozen_groups_keep_or_drop_dropout_as_chosen(kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer, dropout=0.3)
    trainer = make_trainer(
        model, data, tokenizer, tmp_path, freezing_strategy="encoder", frozen_dropout=False, max_steps=1
    )
    model.train()
    trainer._apply_frozen_dropout()
    assert not model.rnn.embedding_dropout.training and not model.rnn.layer_dropouts[0].training
    assert model.dropout.training  # the head trains: its dropout stays on
    kept = make_trainer(
        transferred_classifier(tokenizer, dropout=0.3), data, tokenizer, tmp_path, freezing_strategy="encoder"
    )
    kept.model.train()
    kept._apply_frozen_dropout()
    assert kept.model.rnn.embedding_dropout.training  # the default keeps dropout (ULMFiT)


def test_resume_mid_unfreezing_ends_with_the_same_weights(kitchen, tmp_path):
    data, tokenizer = kitchen
    options = dict(
        freezing_strategy="gradual",
        unfreeze_unit="step",
        unfreeze_interval=2,
        discriminative_lr=True,
        lr_scheduler_type="slanted_triangular",
        save_strategy="steps",
        save_steps=3,
        max_steps=8,
    )
    torch.manual_seed(0)
    full = make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path / "a", **options)
    full.train()
    torch.manual_seed(1)  # another initialisation: the checkpoint must restore everything
    resumed = make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path / "b", **options)
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / "checkpoint-3"))
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
    # the stage is derived from the restored step count: at step 3 (stage 1) the top layer trains with the head
    assert resumed.unfreezing_history[1] == {
        "step": 3,
        "epoch": resumed.unfreezing_history[1]["epoch"],
        "trainable": ["layer_1", "head"],
    }


def test_push_to_hub_writes_the_transfer_card(hub, kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    trainer = make_trainer(
        model,
        data,
        tokenizer,
        tmp_path,
        freezing_strategy="gradual",
        unfreeze_unit="step",
        unfreeze_interval=2,
        push_to_hub=True,
        hub_model_id="alice/kitchen-transfer",
        hub_token=ALICE,
        eval_strategy="steps",
        eval_steps=8,
        eval_dataset=data.select(range(32)),
    )
    trainer.train()
    trainer.push_to_hub()
    from huggingface_hub import hf_hub_download

    readme = open(hf_hub_download("alice/kitchen-transfer", "README.md")).read()
    assert "## Transfer recipe" in readme and "gradual unfreezing" in readme and "| `classifier.weight` |" in readme
    assert ALICE not in readme and str(tmp_path) not in readme


def test_bad_trainer_inputs(kitchen, tmp_path):
    data, tokenizer = kitchen
    with pytest.raises(TypeError, match="needs TransferTrainingArguments"):
        from transformers import TrainingArguments

        TransferTrainer(model=transferred_classifier(tokenizer), args=TrainingArguments("o", report_to="none"))
    with pytest.raises(ValueError, match="freeze_layers must be between 0 and 2"):
        make_trainer(
            transferred_classifier(tokenizer), data, tokenizer, tmp_path, freezing_strategy="layers", freeze_layers=5
        )


# ----------------------------------------------------------------------------------------------- distributed


def _run(command, tmp_path, timeout=300):
    env = launcher_env(OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process, timeout=300):
    output = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, output[-4000:]


def _check_distributed(report, single):
    assert report["world_size"] == 2
    stages = report["stages"]
    assert [s["trainable"] for s in stages] == [
        ["head"],
        ["layer_1", "head"],
        ["layer_0", "layer_1", "head"],
        ["embedding", "layer_0", "layer_1", "head"],
    ]
    for stage in stages:
        assert stage["replicas"] == 2 and stage["replicas_identical"], stage  # bitwise-identical replicas
        assert stage["changed"] == stage["trainable"], stage  # frozen groups did not move, unfrozen ones did
    assert single["world_size"] == 1
    assert report["losses"] == pytest.approx(single["losses"], abs=1e-5)  # same global batch, same losses
    for name, values in report["final_weights"].items():
        torch.testing.assert_close(
            torch.tensor(values), torch.tensor(single["final_weights"][name]), atol=1e-5, rtol=1e-4
        )


def _two_processes_train_as_one(tmp_path, *options: str) -> None:
    """The script under torchrun (2 processes of 4 rows, gloo on CPU) against one process of 8 rows."""
    two = _run([*torchrun(free_port()), str(SCRIPT), str(tmp_path / "two.json"), "--per_device_batch", "4", *options],
               tmp_path)  # fmt: skip
    _finish(two)
    one = _run([sys.executable, str(SCRIPT), str(tmp_path / "one.json"), "--per_device_batch", "8", *options],
               tmp_path)  # fmt: skip
    _finish(one)
    _check_distributed(json.loads((tmp_path / "two.json").read_text()), json.loads((tmp_path / "one.json").read_text()))


@pytest.mark.slow
def test_gradual_unfreezing_is_correct_under_ddp_with_two_processes(tmp_path):
    """torchrun, 2 processes, gloo on CPU; against one process with the same global batch."""
    _two_processes_train_as_one(tmp_path)


@pytest.mark.slow
def test_adversarial_training_is_correct_under_ddp_with_two_processes(tmp_path):
    """Each process perturbs its own rows' embeddings: two processes of 4 rows train as one process of 8."""
    _two_processes_train_as_one(tmp_path, "--adversarial_epsilon", "0.1")


@pytest.mark.slow
def test_multi_machine_command_as_two_nodes_on_loopback(tmp_path):
    """The README's multi-machine launch (`torchrun --nnodes 2 --node_rank R --master_addr ...`), one process per
    node, both nodes on this machine."""
    port = free_port()
    (tmp_path / "single").mkdir()
    nodes = [
        _run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node_rank",
                str(rank),
                "--nproc_per_node",
                "1",
                "--master_addr",
                "127.0.0.1",
                "--master_port",
                str(port),
                str(SCRIPT),
                str(tmp_path / "nodes.json"),
                "--per_device_batch",
                "4",
            ],
            tmp_path,
        )
        for rank in (0, 1)
    ]
    for node in nodes:
        _finish(node)
    single = _run(
        [sys.executable, str(SCRIPT), str(tmp_path / "single" / "one.json"), "--per_device_batch", "8"],
        tmp_path / "single",
    )
    _finish(single)
    _check_distributed(
        json.loads((tmp_path / "nodes.json").read_text()), json.loads((tmp_path / "single" / "one.json").read_text())
    )


def test_trainer_runs_on_a_plain_dataset_without_padding(tmp_path):
    ids = torch.randint(1, 20, (32, 6), generator=torch.Generator().manual_seed(0))
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": (ids[:, -1] % 2).tolist()}).with_format("torch")
    source = RNNForCausalLM(RNNConfig(vocab_size=20, embedding_size=8, hidden_size=8))
    model, _ = transfer(source, RNNForSequenceClassification(RNNConfig(vocab_size=20, embedding_size=8, hidden_size=8)))
    args = TransferTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    TransferTrainer(model=model, args=args, train_dataset=data).train()


@pytest.mark.parametrize(
    ("strategy", "extra", "never"),
    [
        ("gradual", dict(num_train_epochs=2, max_steps=-1), "embedding, layer_0 would never train"),
        ("chain_thaw", dict(max_steps=3, unfreeze_unit="step"), "layer_1 would never train"),
        ("gradual", dict(num_train_epochs=0, max_steps=-1), "training of 0 epochs: nothing would train"),
    ],
)
def test_a_freezing_schedule_that_does_not_fit_the_training_is_refused(strategy, extra, never, kitchen, tmp_path):
    data, tokenizer = kitchen
    trainer = make_trainer(
        transferred_classifier(tokenizer), data, tokenizer, tmp_path, freezing_strategy=strategy, **extra
    )
    with pytest.raises(ValueError, match=never):
        trainer.train()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (dict(freeze_layers=1), "freeze_layers=1"),
        (dict(stlr_cut_frac=0.3), "stlr_cut_frac"),
        (dict(discriminative_lr_factor=2.0), "discriminative_lr_factor=2.0"),
        (dict(unfreeze_interval=2.0), "unfreeze_interval"),
    ],
)
def test_options_that_their_enabling_option_leaves_unused_are_reported(options, named, tmp_path):
    with pytest.warns(UserWarning, match=f"{named}.* is ignored"):
        TransferTrainingArguments(output_dir=str(tmp_path), report_to="none", **options)


def test_tokens_per_second_reach_the_logs(kitchen, tmp_path):
    data, tokenizer = kitchen
    trainer = make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "num_input_tokens_seen" in entry]
    assert logged and logged[-1]["num_input_tokens_seen"] == trainer.state.num_input_tokens_seen > 0
    assert all(entry["train_tokens_per_second"] > 0 for entry in logged if "loss" in entry)  # each logging step
    # real tokens only: fewer than the padded batch positions
    loader = trainer.get_train_dataloader()
    assert trainer.state.num_input_tokens_seen <= sum(b["input_ids"].numel() for b in loader)


def test_bf16_trains_under_autocast_with_fp32_weights_even_without_a_gpu(kitchen, tmp_path):
    data, tokenizer = kitchen
    model = transferred_classifier(tokenizer)
    dtypes = []
    model.rnn.layers[0].register_forward_hook(lambda module, args, out: dtypes.append(out[0].dtype))
    trainer = make_trainer(model, data, tokenizer, tmp_path, bf16=True, max_steps=3)
    if not trainer_module._has_accelerator():  # transformers alone would refuse bf16 here without use_cpu
        assert trainer.args.use_cpu
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the recurrent kernels ran in bf16
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_bf16_on_a_cpu_that_only_emulates_it_warns(monkeypatch, tmp_path):
    monkeypatch.setattr(trainer_module, "_has_accelerator", lambda: False)
    monkeypatch.setattr(trainer_module, "native_bf16_available", lambda: False)
    with pytest.warns(UserWarning, match="bf16 is emulated there and slower than fp32"):
        args = TransferTrainingArguments(str(tmp_path), bf16=True, report_to="none")
    assert args.use_cpu


def test_gradient_accumulation_gives_the_full_batch_step_with_token_losses_and_l2sp(tmp_path):
    """Token-level losses are normalised by the tokens of all accumulated micro-batches (transformers' loss
    functions with num_items_in_batch), and L2-SP counts once per optimizer step: 2 x 4 rows = 1 x 8 rows."""
    shape = dict(vocab_size=30, pad_token_id=0, embedding_size=8, hidden_size=8, num_layers=1)
    source = RNNForCausalLM(RNNConfig(**shape))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 30, (8, 6), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate([6, 2, 5, 3, 6, 1, 4, 2]):  # unequal token counts per micro-batch
        mask[row, length:] = 0
    ids = ids * mask
    data = Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "labels": ids.masked_fill(mask == 0, -100).tolist(),
        }
    )
    steps = {}
    for batch, accumulation in ((8, 1), (4, 2)):
        torch.manual_seed(1)
        model, _ = transfer(source, RNNForCausalLM(RNNConfig(**shape)))
        args = TransferTrainingArguments.for_experiment(
            str(tmp_path / f"ga{accumulation}"),
            max_steps=1,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            l2sp_alpha=2.0,
            l2sp_beta=0.5,
        )
        torch.manual_seed(1)
        with torch.no_grad():  # move off the source so the L2-SP pull is not zero
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        TransferTrainer(model=model, args=args, train_dataset=data).train()
        steps[accumulation] = {n: p.detach().clone() for n, p in model.named_parameters()}
    for name, value in steps[1].items():
        torch.testing.assert_close(steps[2][name], value, atol=1e-5, rtol=1e-4)


def test_a_cpu_training_skips_the_objects_that_existed_before_it_in_the_garbage_collection(kitchen, tmp_path):
    import gc

    seen = []

    class FreezeCount(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(gc.get_freeze_count())

    data, tokenizer = kitchen
    gc.unfreeze()  # objects something else froze at start-up (seen on a GPU image) would make the trainer stand aside
    trainer = make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path, use_cpu=True)
    trainer.add_callback(FreezeCount())
    before = len(gc.get_objects())
    trainer.train()
    # during the training the objects from before it are left out of every collection; afterwards they are back
    assert min(seen) >= before * 0.9 and gc.get_freeze_count() == 0

    class Fails(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("stop here")

    failing = make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path, use_cpu=True)
    failing.add_callback(Fails())
    with pytest.raises(RuntimeError, match="stop here"):
        failing.train()
    assert gc.get_freeze_count() == 0  # a failed training leaves the collector as it found it
    gc.freeze()  # a process that froze its own objects keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        make_trainer(transferred_classifier(tokenizer), data, tokenizer, tmp_path, use_cpu=True).train()
        assert gc.get_freeze_count() >= frozen * 0.9  # (a few frozen objects are freed by reference counting)
    finally:
        gc.unfreeze()
