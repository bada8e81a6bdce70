"""`hf-rnn-transfer finetune`, `compare` and `rank-sources` from the shell (texts and series), against an offline Hub
on disk, in one process and under torchrun / accelerate launch (`pretrain`: test_commands_pretrain.py)."""

import json
import re
import sys

import numpy as np
import pytest
import torch

from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification
from hf_rnn_transfer.data import load_amazon_reviews, train_tokenizer
from hf_rnn_transfer.hub import LocalHub, hub_endpoint

from .conftest import ALICE, launcher_env, run_cli, run_command, tiny_text_source, torchrun, write_jsonl


@pytest.mark.slow
def test_finetune_and_rank_sources_commands(tmp_path, capsys):
    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    write_jsonl(reviews.select(range(120)), tmp_path / "train.jsonl")
    write_jsonl(reviews.select(range(1000, 1100)), tmp_path / "test.jsonl")
    tokenizer = train_tokenizer(reviews["text"][:500], vocab_size=2000, model_max_length=64)
    root = tmp_path / "hub"
    with LocalHub(root, tokens={ALICE: "alice"}) as hub, hub_endpoint(hub.endpoint):
        for name in ("src-a", "src-b"):
            model = RNNForSequenceClassification(
                RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
            )
            model.push_to_hub(f"alice/{name}", token=ALICE)
            tokenizer.push_to_hub(f"alice/{name}", token=ALICE)
    cli = [sys.executable, "-m", "hf_rnn_transfer"]
    files = ["--train_file", str(tmp_path / "train.jsonl"), "--test_file", str(tmp_path / "test.jsonl")]
    result = run_command(
        [
            *cli,
            "finetune",
            "--source",
            "alice/src-a",
            "--hub_root",
            str(root),
            *files,
            "--output_dir",
            str(tmp_path / "ft"),
            "--num_train_epochs",
            "2",
            "--freezing_strategy",
            "gradual",
            "--unfreeze_interval",
            "0.5",
            "--discriminative_lr",
            "--lr_scheduler_type",
            "slanted_triangular",
            "--per_device_train_batch_size",
            "16",
            "--report_to",
            "none",
            "--push_to",
            "alice/kitchen-ft",
            "--select_folds",  # selection inside the budget: the launcher test below and test_budget_selection.py
            "0",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert 0 <= summary["test_accuracy"] <= 1 and "gradual unfreezing" in summary["recipe"]["freezing"]
    assert summary["pushed"].startswith("alice/kitchen-ft@") and (tmp_path / "ft" / "model.safetensors").exists()
    # the shell path is proven above; the rest runs the same entry point in this process (seconds of imports each)
    ranked = run_cli(
        [
            "rank-sources",
            "--candidates",
            "alice/src-a",
            "alice/src-b",
            "--hub_root",
            str(root),
            *files,
            "--output",
            str(tmp_path / "ranking.md"),
            "--max_examples",
            "80",
        ],
        capsys,
    )
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = (tmp_path / "ranking.md").read_text()
    assert "| 1 |" in table and "alice/src-a" in table and "alice/src-b" in table
    # unlabelled target texts (--domain_file): scored too, pseudo-labelled by a linear model fitted on the labels
    (tmp_path / "unlabelled.txt").write_text("\n".join(reviews["text"][1500:1650]) + "\n")
    ranked = run_cli(
        ["rank-sources", "--candidates", "alice/src-a", "--hub_root", str(root), *files, "--max_examples", "80",
         "--domain_file", str(tmp_path / "unlabelled.txt"), "--max_unlabelled", "100", "--output",
         str(tmp_path / "pseudo.md")],
        capsys,
    )  # fmt: skip
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    assert "Scored on 80 labelled rows and 100 unlabelled target texts" in (tmp_path / "pseudo.md").read_text()
    missing = run_cli(["rank-sources", "--candidates", "alice/src-a", "--hub_root", str(root), *files,
                       "--domain_file", str(tmp_path / "nowhere.txt")], capsys)  # fmt: skip
    assert missing.returncode == 2 and "--domain_file" in missing.stderr and "does not exist" in missing.stderr
    compared = run_cli(
        [
            "compare",
            "--source",
            "alice/src-a",
            "--hub_root",
            str(root),
            *files,
            "--output_dir",
            str(tmp_path / "cmp"),
            "--budgets",
            "20",
            "40",
            "--seeds",
            "0",
            "1",
            "--num_train_epochs",
            "1",
            "--scratch_epochs",
            "1",
            "--freezing_strategy",
            "gradual",
            "--unfreeze_interval",
            "0.25",
            "--report",
            str(tmp_path / "cmp" / "report.md"),
            "--report_to",
            "none",
            "--select_folds",  # selection inside each budget: tests/test_budget_selection.py
            "0",
        ],
        capsys,
    )
    assert compared.returncode == 0, compared.stderr[-3000:]
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| 20 |" in report and "| 40 |" in report and "TF-IDF + LR" in report and "paired t-test" in report
    assert (tmp_path / "cmp" / "report.png").exists()
    bad = run_cli(["finetune", "--source", "alice/src-a", "--hub_root", root], capsys)
    assert bad.returncode == 2 and "pass --dataset" in bad.stderr


# accelerate launch, every default given (it warns about each one left out)
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no"]
ACCELERATE += ["--dynamo_backend", "no"]
LAUNCHERS = {
    "torchrun": torchrun,
    # accelerate's CPU launcher starts several processes only through MPI; --multi_gpu uses torch.distributed's
    # launcher, which works on CPU (the trainer then runs DDP over gloo)
    "accelerate": lambda port: [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "--main_process_port", port],
}
# torchrun runs the whole recipe (selection inside the budget, the linear companion's cross-fitting) over two
# processes; accelerate launch, which starts the same torch.distributed processes, trains once: the suite pays for
# the recipe's distributed path one time, not two
LAUNCHED_RECIPE = {
    # 2 folds (the recipe's 4 cost two more trainings and test nothing more); the linear companion's cross-fitting
    # trains in both processes, one process saves it
    "torchrun": ["--select_folds", "2", "--linear_companion"],
    "accelerate": ["--select_folds", "0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_finetune_under_torchrun_trains_one_model_over_two_processes_and_pushes_once(launcher, tmp_path):
    import socket

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    write_jsonl(reviews.select(range(64)), tmp_path / "train.jsonl")
    write_jsonl(reviews.select(range(1000, 1064)), tmp_path / "test.jsonl")
    tokenizer = train_tokenizer(reviews["text"][:300], vocab_size=1000, model_max_length=64)
    source = RNNForSequenceClassification(
        RNNConfig(vocab_size=len(tokenizer), pad_token_id=0, embedding_size=16, hidden_size=16, num_layers=1)
    )
    source.save_pretrained(tmp_path / "source")
    tokenizer.save_pretrained(tmp_path / "source")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launched = run_command(
        [
            *LAUNCHERS[launcher](port),
            "-m",
            "hf_rnn_transfer",
            "finetune",
            "--source",
            tmp_path / "source",
            "--train_file",
            tmp_path / "train.jsonl",
            "--test_file",
            tmp_path / "test.jsonl",
            "--output_dir",
            tmp_path / "ft",
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--freezing_strategy",
            "gradual",
            "--unfreeze_interval",
            "0.25",
            "--report_to",
            "none",
            "--push_to",
            "me/kitchen-ddp",
            "--hub_root",
            tmp_path / "hub",
            *LAUNCHED_RECIPE[launcher],
        ],
        env=launcher_env(),
    )
    # a failing rank's own error line first: the other rank's traceback, printed after it, fills the tail
    errors = "\n".join(line for line in launched.stderr.splitlines() if ": error: " in line)
    assert launched.returncode == 0, errors + "\n" + launched.stderr[-3000:]
    summary = json.loads(launched.stdout[launched.stdout.index("{\n") :])
    # 64 rows, 8 per process, 2 processes: 4 optimizer steps for the epoch (one process alone would take 8)
    assert summary["processes"] == 2 and summary["optimizer_steps"] == 4
    assert launched.stdout.count("test accuracy:") == 1 and launched.stdout.count("pushed me/kitchen-ddp@") == 1
    assert (tmp_path / "ft" / "model.safetensors").exists()
    if launcher == "torchrun":
        assert summary["selection"]["folds"] == 2 and summary["selection"]["trainings"] == 3
        assert (tmp_path / "ft" / "linear_model.safetensors").exists()
        assert launched.stdout.count("linear model saved beside it") == 1
        assert summary["linear_model"]["target_texts"] == 64
    else:
        assert "selection" not in summary and "linear_model" not in summary


def test_accelerate_launch_of_several_cpu_processes_that_starts_one_fails_loudly(tmp_path):
    finetune = ["-m", "hf_rnn_transfer", "finetune", "--source", "./missing", "--output_dir", tmp_path / "ft"]
    launched = run_command([*ACCELERATE, "--num_processes", "2", *finetune, "--train_file", tmp_path / "none.jsonl"])
    assert launched.returncode != 0
    assert "accelerate launch asked for several processes but started one" in launched.stderr
    assert "accelerate launch --multi_gpu --num_processes N" in launched.stderr


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("finetune", ["--source", "./missing"], "--source './missing': no such folder"),
        ("finetune", ["--source", "{empty_dir}"], "has no config.json"),
        ("finetune", ["--source", "alice/x", "--train_file", "{empty_file}"], "is empty: it needs one row"),
        ("finetune", ["--source", "./m", "--max_train_examples", "0"], "--max_train_examples must be at least 1"),
        ("pretrain", ["--objective", "causal_lm", "--train_file", "{empty_file}"], "is empty"),
        ("compare", ["--source", "./m", "--seeds", "-1"], r"--seeds takes distinct non-negative integers"),
        ("compare", ["--source", "./m", "--scratch_select_folds", "1"], r"must be 0 \(off\) or at least 2, got 1"),
        ("finetune", ["--source", "./m", "--select_folds", "1"], r"select_folds must be 0 \(off\) or at least 2"),
        ("compare", ["--source", "./m", "--seeds", "0", "0", "0"], r"got \[0, 0, 0\]"),
        ("finetune", ["--source", "./m", "--train_file", "{tmp}/nope.jsonl"], "--train_file .* does not exist"),
    ],
)
def test_bad_command_inputs_get_one_clear_line(command, extra, message, tmp_path, capsys):
    from hf_rnn_transfer.cli import main

    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    values = {
        "empty_dir": str(tmp_path / "empty_dir"),
        "empty_file": str(tmp_path / "empty.jsonl"),
        "tmp": str(tmp_path),
    }
    argv = [command, *[a.format(**values) for a in extra], "--output_dir", str(tmp_path / "out")]
    if "--train_file" not in argv:
        argv += ["--train_file", str(rows)]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_finetune_from_an_arguments_file_with_validation_and_resume(tmp_path, capsys):
    from hf_rnn_transfer.cli import main

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tiny_text_source(tmp_path / "source", reviews["text"][:200])
    write_jsonl(reviews.select(range(40)), tmp_path / "train.jsonl")
    write_jsonl(reviews.select(range(100, 120)), tmp_path / "test.jsonl")
    arguments = {
        "source": str(tmp_path / "source"),
        "train_file": str(tmp_path / "train.jsonl"),
        "test_file": str(tmp_path / "test.jsonl"),
        "validation_split_percentage": 20,
        "output_dir": str(tmp_path / "ft"),
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "report_to": "none",
        "select_folds": 0,  # one run, so that it can be resumed
    }
    (tmp_path / "args.json").write_text(json.dumps(arguments))
    assert main(["finetune", str(tmp_path / "args.json")]) == 0
    out = capsys.readouterr().out
    first = json.loads(out[out.index("{\n") :])
    assert first["optimizer_steps"] == 8  # 32 training rows (8 held out), 4 batches, 2 epochs
    state = json.loads((tmp_path / "ft" / "checkpoint-8" / "trainer_state.json").read_text())
    assert [round(e["epoch"]) for e in state["log_history"] if "eval_accuracy" in e] == [1, 2]
    assert 0 <= first["test_accuracy"] <= 1 and "test_macro_f1" in first
    # resume: the checkpoint's optimizer, schedule and step are picked up, and training continues to epoch 3
    flags = [f"--{k}={v}" for k, v in arguments.items()]
    assert main(["finetune", *flags, "--num_train_epochs=3", "--resume_from_checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{\n") :])["optimizer_steps"] == 12
    state = json.loads((tmp_path / "ft" / "checkpoint-12" / "trainer_state.json").read_text())
    assert [round(e["epoch"]) for e in state["log_history"] if "eval_accuracy" in e] == [1, 2, 3]
    for folder in (tmp_path / "ft", tmp_path / "ft" / "checkpoint-12"):  # arguments as JSON, never a pickle
        assert (folder / "training_args.json").exists() and not (folder / "training_args.bin").exists()

    (tmp_path / "bad.json").write_text(json.dumps({**arguments, "learning_rat": 0.1}))
    without_validation = [f for f in flags if "validation_split" not in f]
    for argv, message in [
        (["finetune", str(tmp_path / "bad.json")], "learning_rat"),
        (["finetune", *flags, "--resume_from_checkpoint", str(tmp_path / "nope")], "is not a folder"),
        (
            ["finetune", *flags, "--output_dir", str(tmp_path / "new"), "--resume_from_checkpoint", "last"],
            "holds no checkpoint",
        ),
        (["finetune", *without_validation], "--eval_strategy epoch needs validation data"),
        (["finetune", *flags, "--validation_split_percentage", "80"], "must be 1-50"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_finetune_without_hyper_parameters_runs_the_recommended_recipe(tmp_path, capsys):
    from hf_rnn_transfer.cli import main

    reviews = load_amazon_reviews("kitchen").shuffle(seed=0)
    tiny_text_source(tmp_path / "source", reviews["text"][:200])
    write_jsonl(reviews.select(range(32)), tmp_path / "train.jsonl")
    argv = ["finetune", "--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    assert main([*argv, "--output_dir", str(tmp_path / "ft"), "--report_to", "none"]) == 0
    out = capsys.readouterr().out
    recipe = json.loads(out[out.index("{\n") :])["recipe"]
    assert "gradual unfreezing" in recipe["freezing"] and recipe["schedule"].startswith("slanted triangular")
    assert recipe["learning rates"].endswith("head 4.00e-03") and recipe["epochs"] == 8.0
    assert recipe["batch size"] == 16
    assert recipe["selection inside the budget"].startswith("chosen by 4-fold cross-validation inside the budget")
    selection = json.loads(out[out.index("{\n") :])["selection"]
    assert selection["folds"] == 4 and len(selection["scores"]) == 8 and selection["trainings"] in (4, 5)


def _reversal_pairs(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = "alpha beta gamma delta omega sigma kappa zeta".split()
    rows = []
    for _ in range(count):
        picked = list(rng.choice(words, size=int(rng.integers(2, 5))))
        rows.append({"question": " ".join(picked), "answer": " ".join(reversed(picked))})
    return rows


def test_finetune_and_compare_take_sequence_to_sequence_targets(tmp_path, capsys):
    """A seq2seq source (sentence reversal) fine-tuned and compared on text pairs from the command line: BLEU on the
    test pairs, selection inside the budget on the held-out loss, the source's own BLEU as the zero-shot line."""
    from transformers import DataCollatorForSeq2Seq

    from hf_rnn_transfer import RNNForSeq2SeqLM
    from hf_rnn_transfer.cli import main
    from hf_rnn_transfer.data import prepare_translation, token_fields
    from hf_rnn_transfer.trainer import TransferTrainer, TransferTrainingArguments

    tokenizer = train_tokenizer(["alpha beta gamma delta omega sigma kappa zeta"], min_frequency=1)
    torch.manual_seed(0)
    config = RNNConfig(**token_fields(tokenizer), embedding_size=16, hidden_size=32, num_layers=1, bidirectional=True)
    source = RNNForSeq2SeqLM(config)
    from datasets import Dataset

    pairs = prepare_translation(Dataset.from_list(_reversal_pairs(300, 0)), tokenizer, "question", "answer")
    args = TransferTrainingArguments.for_experiment(
        str(tmp_path / "run"), num_train_epochs=3, learning_rate=1e-2, per_device_train_batch_size=32
    )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    TransferTrainer(source, args, train_dataset=pairs.remove_columns("length"), data_collator=collator).train()
    source.save_pretrained(tmp_path / "source")
    tokenizer.save_pretrained(tmp_path / "source")
    for name, rows in (("train", _reversal_pairs(40, 1)), ("test", _reversal_pairs(30, 2))):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = ["--source", str(tmp_path / "source"), "--train_file", str(tmp_path / "train.jsonl")]
    data += ["--test_file", str(tmp_path / "test.jsonl"), "--text_column", "question", "--report_to", "none"]
    quick = ["--num_train_epochs", "2", "--select_folds", "2", "--learning_rate", "5e-3"]
    argv = ["finetune", *data, *quick, "--output_dir", str(tmp_path / "ft")]
    assert main([*argv, "--target_text_column", "answer"]) == 0
    out = capsys.readouterr().out
    results = json.loads(out[out.index("{\n") :])
    assert 0 <= results["test_bleu"] <= 100 and results["test_perplexity"] > 1 and results["selection"]["folds"] == 2
    assert isinstance(RNNForSeq2SeqLM.from_pretrained(tmp_path / "ft"), RNNForSeq2SeqLM)

    report = tmp_path / "cmp" / "report.md"
    compare = ["compare", *data, *quick, "--target_text_column", "answer", "--output_dir", str(tmp_path / "cmp")]
    assert main([*compare, "--budgets", "16", "--seeds", "0", "1", "--report", str(report)]) == 0
    text = report.read_text()
    assert "BLEU on the test set" in text and "source zero-shot" in text and "majority" not in text
    assert (tmp_path / "cmp" / "report.png").exists()

    assert main(argv) == 2  # a seq2seq source needs to know which column holds the output
    assert "name the output text's column with --target_text_column" in capsys.readouterr().err


def test_rank_sources_standardises_series_as_the_target_unless_told(tmp_path, capsys):
    """`rank-sources` on a series target: each source reads the rows standardised by the target's own statistics
    (what finetune and auto feed the transferred layers), or by its own with `--input_statistics source`."""
    import numpy as np
    import torch

    from hf_rnn_transfer import RNNConfig, RNNForSequenceClassification

    torch.manual_seed(0)
    RNNForSequenceClassification(
        RNNConfig(num_labels=2, input_size=1, hidden_size=8, input_mean=[500.0], input_std=[100.0])
    ).save_pretrained(tmp_path / "raw-scale")
    rng = np.random.default_rng(0)
    rows = [{"values": (3 + 2 * np.sin(np.linspace(0, 3 + 3 * (i % 2), 24)) + rng.normal(0, 0.3, 24)).tolist(),
             "label": i % 2} for i in range(30)]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tables = {}
    for how in ("target", "source"):
        result = run_cli(["rank-sources", "--candidates", tmp_path / "raw-scale", "--train_file",
                          tmp_path / "train.jsonl", "--input_statistics", how, "--output", tmp_path / f"{how}.md"],
                         capsys)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        tables[how] = (tmp_path / f"{how}.md").read_text()
    assert "Series standardised by the target rows' own per-channel statistics" in tables["target"]
    assert "Series standardised by each source's own training statistics" in tables["source"]
    assert tables["target"].split("\n")[2] != tables["source"].split("\n")[2]  # the scores differ
    wrong = run_cli(["rank-sources", "--candidates", tmp_path / "raw-scale", "--train_file", tmp_path / "train.jsonl",
                     "--input_statistics", "global"], capsys)  # fmt: skip
    assert wrong.returncode == 2 and "--input_statistics" in wrong.stderr and "target" in wrong.stderr
