"""The offline Hub through the real clients over real HTTP: huggingface_hub, transformers and datasets."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request

import pytest
import torch
from datasets import Dataset, load_dataset
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, pipeline

from hf_rnn_transfer import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNForTokenClassification
from hf_rnn_transfer.data import train_tokenizer
from hf_rnn_transfer.hub import LocalHub, client_environment, hub_endpoint

from .conftest import ALICE, BOB, HUB_TOKENS, WITHOUT_THE_PACKAGE, free_port, run_child, wait_for_hub

TEXTS = ["a great kettle", "an awful kettle", "great value", "awful smell", "works great"]


def small_classifier(vocab_size=40):
    config = RNNConfig(vocab_size=vocab_size, embedding_size=8, hidden_size=8, num_labels=2, pad_token_id=0)
    return RNNForSequenceClassification(config).eval()


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_push_and_pull_by_repo_id_and_by_sha_in_a_fresh_cache(hub, tmp_path):
    model, tokenizer = small_classifier(), train_tokenizer(TEXTS, min_frequency=1)
    model.push_to_hub("alice/pull-test", token=ALICE)
    tokenizer.push_to_hub("alice/pull-test", token=ALICE)
    api = HfApi(token=ALICE)
    sha = api.model_info("alice/pull-test").sha
    assert len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
    ids = torch.tensor([[4, 5, 6]])
    by_id = AutoModelForSequenceClassification.from_pretrained("alice/pull-test", cache_dir=tmp_path / "c1")
    by_sha = AutoModelForSequenceClassification.from_pretrained(
        "alice/pull-test", revision=sha, cache_dir=tmp_path / "c2"
    )
    short = AutoModelForSequenceClassification.from_pretrained(
        "alice/pull-test", revision=sha[:7], cache_dir=tmp_path / "c3"
    )
    for pulled in (by_id, by_sha, short):
        assert torch.equal(logits(pulled.eval(), ids), logits(model, ids))
    pulled_tok = AutoTokenizer.from_pretrained("alice/pull-test", cache_dir=tmp_path / "c1")
    assert pulled_tok("great kettle")["input_ids"] == tokenizer("great kettle")["input_ids"]
    # an older commit stays reachable by sha after a new push
    small_classifier().push_to_hub("alice/pull-test", token=ALICE)
    again = AutoModelForSequenceClassification.from_pretrained(
        "alice/pull-test", revision=sha, cache_dir=tmp_path / "c4"
    )
    assert torch.equal(logits(again.eval(), ids), logits(model, ids))


def test_download_headers_ranges_and_lfs(hub):
    api = HfApi(token=ALICE)
    api.create_repo("alice/files")
    payload = os.urandom(3000)
    api.upload_file(path_or_fileobj=payload, path_in_repo="weights/model.safetensors", repo_id="alice/files")
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="notes.txt", repo_id="alice/files")
    url = f"{hub.endpoint}/alice/files/resolve/main/weights/model.safetensors"
    status, headers, body = http("HEAD", url, {"Accept-Encoding": "identity"})
    assert status == 200 and body == b"" and len(headers["X-Repo-Commit"]) == 40
    assert headers["ETag"] == f'"{hashlib.sha256(payload).hexdigest()}"'  # LFS: the sha256
    assert headers["X-Linked-Size"] == "3000"
    status, headers, body = http("GET", url, {"Range": "bytes=10-19"})
    assert status == 206 and body == payload[10:20]
    assert headers["Content-Range"] == "bytes 10-19/3000"
    status, headers, _ = http("GET", f"{hub.endpoint}/alice/files/resolve/main/missing.bin")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and len(headers["X-Repo-Commit"]) == 40
    info = api.model_info("alice/files", files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["weights/model.safetensors"].lfs.sha256 == hashlib.sha256(payload).hexdigest()
    assert siblings["notes.txt"].lfs is None and siblings["notes.txt"].size == 6
    tree = {e.path for e in api.list_repo_tree("alice/files", recursive=True)}
    assert tree == {".gitattributes", "weights", "weights/model.safetensors", "notes.txt"}
    assert [e.path for e in api.get_paths_info("alice/files", ["notes.txt", "missing.txt"])] == ["notes.txt"]
    assert api.file_exists("alice/files", "notes.txt") and not api.file_exists("alice/files", "nope.txt")


def test_branches_tags_pull_requests_and_history(hub, tmp_path):
    api = HfApi(token=ALICE)
    api.create_repo("alice/refs")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="v.txt", repo_id="alice/refs").oid
    api.create_tag("alice/refs", tag="v1.0")
    api.create_branch("alice/refs", branch="feat/x")
    api.upload_file(path_or_fileobj=b"branch", path_in_repo="v.txt", repo_id="alice/refs", revision="feat/x")
    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="v.txt", repo_id="alice/refs", create_pr=True)
    assert pr.pr_url.endswith("/discussions/1")
    read = lambda rev: open(hf_hub_download("alice/refs", "v.txt", revision=rev, cache_dir=tmp_path), "rb").read()  # noqa: E731
    assert read("main") == b"v1" and read("v1.0") == b"v1" and read(first) == b"v1"
    assert read("feat/x") == b"branch" and read("refs/pr/1") == b"pr"
    refs = api.list_repo_refs("alice/refs", include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "feat/x"}
    assert [t.name for t in refs.tags] == ["v1.0"] and refs.pull_requests[0].ref == "refs/pr/1"
    assert [c.title for c in api.list_repo_commits("alice/refs")][-1] == "initial commit"
    assert api.revision_exists("alice/refs", "feat/x") and not api.revision_exists("alice/refs", "nope")
    api.delete_branch("alice/refs", branch="feat/x")
    assert not api.revision_exists("alice/refs", "feat/x")


def test_errors_surface_as_typed_client_errors(hub):
    alice, bob, anonymous = HfApi(token=ALICE), HfApi(token=BOB), HfApi(token=False)
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("alice/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        alice.model_info("alice/secret", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/secret", "missing.txt", token=ALICE)
    with pytest.raises(RepositoryNotFoundError):  # private: invisible without the owner's token
        anonymous.model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        bob.model_info("alice/secret")
    assert alice.model_info("alice/secret").private
    with pytest.raises(HfHubHTTPError, match="authenticated"):  # no token
        anonymous.create_repo("alice/anon")
    with pytest.raises(HfHubHTTPError, match="Invalid credentials"):  # wrong token
        HfApi(token="hf_wrong").create_repo("alice/wrong")
    with pytest.raises(HfHubHTTPError, match="rights"):  # someone else's namespace
        bob.create_repo("alice/not-bobs")
    alice.create_repo("alice/public")
    with pytest.raises(HfHubHTTPError, match="rights"):  # readable, but not writable by bob
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="y.txt", repo_id="alice/public")
    assert bob.create_repo("team/shared").repo_id == "team/shared"  # bob's org
    with pytest.raises(OSError, match="not a valid model identifier|does not appear|not found"):
        AutoModelForSequenceClassification.from_pretrained("alice/nothing-here")


def test_parallel_pushes_never_corrupt_a_repo(hub):
    api = HfApi(token=ALICE)
    api.create_repo("alice/busy")
    errors = []

    def push(i):
        try:
            HfApi(token=ALICE).upload_file(
                path_or_fileobj=f"content {i}".encode(), path_in_repo=f"f{i}.txt", repo_id="alice/busy"
            )
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = set(api.list_repo_files("alice/busy"))
    assert {f"f{i}.txt" for i in range(8)} <= files  # every push applied after the one before
    assert len(api.list_repo_commits("alice/busy")) == 9
    for i in range(8):
        assert open(hf_hub_download("alice/busy", f"f{i}.txt"), "rb").read() == f"content {i}".encode()
    # two clients that both start from the same parent: the second gets a clear conflict
    head = api.model_info("alice/busy").sha
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id="alice/busy", parent_commit=head)
    with pytest.raises(HfHubHTTPError, match="A commit has happened since"):
        api.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id="alice/busy", parent_commit=head)


def test_repositories_survive_a_restart(tmp_path):
    with LocalHub(tmp_path, tokens=HUB_TOKENS) as first, hub_endpoint(first.endpoint):
        api = HfApi(token=ALICE)
        api.create_repo("alice/durable")
        sha = api.upload_file(path_or_fileobj=b"kept", path_in_repo="k.txt", repo_id="alice/durable").oid
    with LocalHub(tmp_path, tokens=HUB_TOKENS) as second, hub_endpoint(second.endpoint):
        assert HfApi(token=ALICE).model_info("alice/durable").sha == sha
        path = hf_hub_download("alice/durable", "k.txt", revision=sha, cache_dir=tmp_path / "cache")
        assert open(path, "rb").read() == b"kept"


def test_trainer_push_to_hub_and_datasets_round_trip(hub, tmp_path):
    rows = Dataset.from_dict({"input_ids": [[1, 2, 3], [4, 5, 6]] * 8, "labels": [0, 1] * 8})
    rows.push_to_hub("alice/toy-data", token=ALICE)
    loaded = load_dataset("alice/toy-data", split="train", token=ALICE)
    assert loaded.to_dict() == rows.to_dict()
    streamed = list(load_dataset("alice/toy-data", split="train", streaming=True, token=ALICE))
    assert streamed == list(rows)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        push_to_hub=True,
        hub_model_id="alice/trainer-push",
        hub_token=ALICE,
        report_to="none",
        save_strategy="no",
        dataloader_pin_memory=False,
    )
    trainer = Trainer(model=small_classifier(), args=args, train_dataset=loaded.with_format("torch"))
    trainer.train()
    trainer.push_to_hub()
    files = set(HfApi().list_repo_files("alice/trainer-push"))
    assert {"model.safetensors", "config.json", "modeling_rnn.py", "configuration_rnn.py"} <= files


CHILD = WITHOUT_THE_PACKAGE + textwrap.dedent(
    """
    from transformers import AutoModelForSequenceClassification, pipeline

    repos = json.loads(sys.argv[1])
    out = {}
    model = AutoModelForSequenceClassification.from_pretrained(repos["text-classification"], trust_remote_code=True)
    out["module"] = type(model).__module__
    for task, repo in repos.items():
        run = pipeline(task, model=repo, trust_remote_code=True)
        result = run("a great kettle", max_new_tokens=3, do_sample=False) if task == "text-generation" else run(
            "a great kettle")
        out[task] = result
    print(json.dumps(out, default=str))
    """
)


def push_pipeline_models(tokenizer) -> dict:
    """A sequence classifier, a token classifier and a language model, each pushed with its tokenizer."""
    labels = {"text-classification": ["neg", "pos"], "token-classification": ["O", "B-ITEM", "I-ITEM"]}
    models = {
        "text-classification": RNNForSequenceClassification,
        "token-classification": RNNForTokenClassification,
        "text-generation": RNNForCausalLM,
    }
    repos = {}
    for task, model_class in models.items():
        names = labels.get(task, [])
        config = RNNConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            embedding_size=8,
            hidden_size=8,
            num_labels=max(len(names), 2),
            id2label=dict(enumerate(names)) or None,
            label2id={n: i for i, n in enumerate(names)} or None,
        )
        repo = f"alice/pipeline-{task}"
        model_class(config).push_to_hub(repo, token=ALICE)
        tokenizer.push_to_hub(repo, token=ALICE)
        repos[task] = repo
    return repos


@pytest.mark.slow
def test_pipelines_on_pushed_models_with_and_without_the_package(hub, tmp_path):
    tokenizer = train_tokenizer(TEXTS, min_frequency=1)
    repos = push_pipeline_models(tokenizer)
    # with the package installed: no remote code needed
    assert pipeline("text-classification", model=repos["text-classification"])("a great kettle")[0]["label"] in {
        "neg",
        "pos",
    }
    text = "a great kettle"
    entities = pipeline("token-classification", model=repos["token-classification"])(text)
    for entity in entities:  # each labelled word points at its own characters of the input
        assert text[entity["start"] : entity["end"]] == entity["word"] and entity["entity"] in {"B-ITEM", "I-ITEM"}
    generated = pipeline("text-generation", model=repos["text-generation"])(
        "a great", max_new_tokens=3, do_sample=False, return_tensors=True
    )
    assert len(generated[0]["generated_token_ids"]) == 5
    # without it: trust_remote_code, in a process where hf_rnn_transfer cannot be imported
    child = run_child(CHILD, json.dumps(repos), env_extra=client_environment(hub.endpoint), tmp_path=tmp_path)
    assert child["module"].startswith("transformers_modules")
    assert child["text-classification"][0]["label"] in {"neg", "pos"}
    assert isinstance(child["token-classification"], list)
    assert child["text-generation"][0]["generated_text"].startswith("a great kettle")


@pytest.mark.slow
def test_hub_serve_command_serves_another_process(tmp_path):
    """`hf-rnn-transfer hub serve` in one process, a push from this one, a pull in a third with transformers only."""
    port = free_port()
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({ALICE: "alice"}))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hf_rnn_transfer",
            "hub",
            "serve",
            "--root",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--tokens_file",
            str(tokens),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_hub(endpoint)
        with hub_endpoint(endpoint):
            tokenizer = train_tokenizer(TEXTS, min_frequency=1)
            small_classifier(len(tokenizer)).push_to_hub("alice/served", token=ALICE)
            tokenizer.push_to_hub("alice/served", token=ALICE)
        repos = json.dumps({"text-classification": "alice/served"})
        child = run_child(CHILD, repos, env_extra=client_environment(endpoint), tmp_path=tmp_path)
        assert child["module"].startswith("transformers_modules")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert ALICE not in output  # tokens are never printed


def test_push_while_the_server_is_down_keeps_the_model_and_a_retry_succeeds(tmp_path):
    from hf_rnn_transfer.hub import push_model

    port = free_port()
    root = tmp_path / "data"
    model_dir = tmp_path / "model"
    small_classifier().save_pretrained(model_dir)
    before = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    with LocalHub(root, tokens=HUB_TOKENS, port=port) as first:
        endpoint = first.endpoint
        with hub_endpoint(endpoint):
            HfApi(token=ALICE).create_repo("alice/flaky")
            head = HfApi().model_info("alice/flaky").sha
    with hub_endpoint(endpoint):  # the server went away
        with pytest.raises(ConnectionError, match="Could not reach the Hub .* push again"):
            push_model(model_dir, "alice/flaky", token=ALICE)
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == before  # the local model is untouched
    with LocalHub(root, tokens=HUB_TOKENS, port=port), hub_endpoint(endpoint):
        assert HfApi().model_info("alice/flaky").sha == head  # nothing half-committed
        info = push_model(model_dir, "alice/flaky", token=ALICE)
        files = set(HfApi().list_repo_files("alice/flaky", revision=info.oid))
    assert {"model.safetensors", "config.json", "modeling_rnn.py"} <= files


def http(method: str, url: str, headers: dict | None = None):
    """A raw HTTP request with the standard library: (status, headers (case-insensitive), body)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_list_models_by_tag_author_and_search_hides_private_repos(hub):
    api = HfApi(endpoint=hub.endpoint, token=ALICE)
    card = "---\ntags:\n- hf-rnn-transfer\n- lstm\nlibrary_name: transformers\n---\n# card\n"
    for repo_id, private, tags in (("alice/list-a", False, True), ("alice/list-secret", True, True),
                                   ("alice/list-plain", False, False)):  # fmt: skip
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_file(path_or_fileobj=(card if tags else "# no metadata\n").encode(), path_in_repo="README.md",
                        repo_id=repo_id)  # fmt: skip
    public = HfApi(endpoint=hub.endpoint, token=False)
    tagged = [m.id for m in public.list_models(filter="hf-rnn-transfer", search="list-")]
    assert tagged == ["alice/list-a"]  # the private one is invisible without its owner's token
    assert [m.id for m in api.list_models(filter=["hf-rnn-transfer", "lstm"], search="list-")] == [
        "alice/list-a",
        "alice/list-secret",
    ]
    assert [m.id for m in api.list_models(filter="transformers", author="alice", search="list-a")] == ["alice/list-a"]
    assert {m.id for m in public.list_models(author="alice", search="list-")} == {"alice/list-a", "alice/list-plain"}
    assert list(public.list_models(filter="no-such-tag")) == []
    assert len(list(public.list_models(search="list-", limit=1))) == 1
    info = next(iter(public.list_models(filter="lstm", search="list-a")))
    assert "lstm" in info.tags and info.library_name == "transformers"
