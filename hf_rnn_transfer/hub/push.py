"""Push a model (with its tokenizer and this project's model card) to a Hub in one commit."""

import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi

from .model_card import CardContent, build_model_card, check_card_is_shareable


def push_model(
    model_or_dir,
    repo_id: str,
    card: CardContent | None = None,
    tokenizer=None,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    extra_files: dict[str, str | os.PathLike] | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> CommitInfo:
    """
    Push weights (safetensors), config, modeling code, tokenizer and a model card to `repo_id` in one commit.

    Nothing of the caller's is modified: the files are staged in a temporary folder.

    Args:
        model_or_dir: an `RNNPreTrainedModel` or a directory written by `save_pretrained`.
        repo_id: `namespace/name`; created (public unless `private`) if missing.
        card: what the card says; the architecture is read from the model. `card.repo_id` defaults to `repo_id`.
        tokenizer: saved beside the model, so a pull has everything needed to predict on raw text.
        token: a write token for the namespace (or `HF_TOKEN`); never written to any file.
        extra_files: `{path_in_repo: local_file}`, e.g. a learning-curve PNG.
        revision, create_pr: push to a branch, or open a pull request.

    Returns:
        The `CommitInfo` of the commit (its `oid` is the revision to pin).
    """
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="hf-rnn-transfer-push-") as staging:
        staging = Path(staging)
        if isinstance(model_or_dir, (str, os.PathLike)):
            source = Path(model_or_dir)
            if not (source / "config.json").exists():
                raise FileNotFoundError(f"{source} has no config.json: pass a directory written by save_pretrained.")
            shutil.copytree(source, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint-*"))
            from transformers import AutoConfig

            config_or_model = AutoConfig.from_pretrained(source)
        else:
            model_or_dir.save_pretrained(staging)
            config_or_model = model_or_dir
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for path_in_repo, local in (extra_files or {}).items():
            target = staging / path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        if card is not None:
            if card.repo_id != repo_id:
                card = CardContent(**{**vars(card), "repo_id": repo_id})
            has_tokenizer = (staging / "tokenizer.json").exists() or (staging / "tokenizer_config.json").exists()
            text = str(build_model_card(config_or_model, card, has_tokenizer=has_tokenizer))
            forbidden = [token or os.environ.get("HF_TOKEN", ""), str(staging), str(Path.home()), os.getcwd()]
            if isinstance(model_or_dir, (str, os.PathLike)):
                forbidden.append(str(Path(model_or_dir).resolve()))
            check_card_is_shareable(text, [f for f in forbidden if f and f != "/"])
            (staging / "README.md").write_text(text)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                commit_message=commit_message or f"Upload {Path(repo_id).name} with hf-rnn-transfer",
                revision=revision,
                create_pr=create_pr,
            )
        except Exception as err:
            if not _is_connection_error(err):
                raise
            raise ConnectionError(
                f"Could not reach the Hub at {api.endpoint}, or it went away during the push ({err}). Nothing was "
                "committed (files are uploaded first, then one atomic commit; the server removes partial uploads) "
                "and the local model is untouched: push again once the Hub is reachable."
            ) from err


def _is_connection_error(err: BaseException) -> bool:
    """Transport failures (refused, reset, timed out) of the HTTP client, whatever library raised them, also when
    wrapped (huggingface_hub raises "Error while uploading ..." from the transport error)."""
    transport = {"ConnectError", "ConnectTimeout", "ReadError", "ReadTimeout", "RemoteProtocolError", "WriteError"}
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        names = {cls.__name__ for cls in type(err).__mro__}
        if isinstance(err, ConnectionError) or names & transport:
            return True
        err = err.__cause__
    return False
