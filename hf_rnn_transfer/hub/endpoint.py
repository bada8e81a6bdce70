"""Point the real Hub clients (huggingface_hub, transformers, datasets) at an endpoint: the offline Hub or any other.

The clients read `HF_ENDPOINT` once, at import. A new process only needs the environment variables
(`client_environment`); this process, whose clients are already imported, also needs their settings updated in
place, which `hub_endpoint` does and undoes. Nothing here intercepts requests: every call goes over HTTP.
"""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import datasets.config
import huggingface_hub.constants as hub_constants
import huggingface_hub.hf_api as hub_api
import transformers.utils.hub as transformers_hub


def client_environment(endpoint: str) -> dict[str, str]:
    """Environment variables that make a fresh process's clients talk to `endpoint`."""
    return {
        "HF_ENDPOINT": endpoint.rstrip("/"),
        # The offline Hub speaks classic LFS, not Xet; datasets' download counter has no server here.
        "HF_HUB_DISABLE_XET": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


@contextmanager
def hub_endpoint(endpoint: str):
    """
    Make this process's Hub clients use `endpoint` inside the `with` block (and child processes started there).

    Example:

    ```python
    >>> with LocalHub("hub-data", tokens={"hf_alice": "alice"}) as hub, hub_endpoint(hub.endpoint):
    ...     AutoModel.from_pretrained("alice/my-lstm")
    ```
    """
    endpoint = endpoint.rstrip("/")
    settings = [
        (hub_constants, "ENDPOINT", endpoint),
        (hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
        (hub_constants, "HF_HUB_DISABLE_XET", True),
        (hub_constants, "HF_HUB_OFFLINE", False),
        (hub_api.api, "endpoint", endpoint),
        (datasets.config, "HF_ENDPOINT", endpoint),
        (datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"),
        (datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False),
        (datasets.config, "HF_HUB_OFFLINE", False),
        # transformers keeps one HfApi, built (with the endpoint of that moment) on first use: rebuild it
        (transformers_hub, "_hf_api", None),
    ]
    saved_attrs = [(obj, name, getattr(obj, name)) for obj, name, _ in settings]
    env = client_environment(endpoint)
    saved_env = {key: os.environ.get(key) for key in env}
    try:
        for obj, name, value in settings:
            setattr(obj, name, value)
        os.environ.update(env)
        yield endpoint
    finally:
        for obj, name, value in saved_attrs:
            setattr(obj, name, value)
        transformers_hub._hf_api = None
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def default_hub_root() -> Path:
    """Where the offline Hub keeps repositories when no root is given (`HF_RNN_TRANSFER_HUB_ROOT` overrides)."""
    return Path(os.environ.get("HF_RNN_TRANSFER_HUB_ROOT", Path.home() / ".cache" / "hf-rnn-transfer" / "hub"))


@contextmanager
def resolve_hub(endpoint: str | None = None, token: str | None = None, root=None, namespace: str = "local"):
    """
    Yield `(endpoint, token)` for a Hub-facing command: the Hub given by `endpoint` (or `HF_ENDPOINT`) with the
    user's token, or else an offline Hub started for the command on `root` with a one-off token that owns
    `namespace` (so the main job pushes and pulls without credentials).
    """
    endpoint = endpoint or os.environ.get("HF_ENDPOINT")
    if endpoint:
        with hub_endpoint(endpoint):
            yield endpoint, token or os.environ.get("HF_TOKEN")
        return
    from .server import LocalHub

    one_off = f"hf_local_{secrets.token_hex(16)}"
    with LocalHub(root or default_hub_root(), tokens={one_off: namespace}) as hub, hub_endpoint(hub.endpoint):
        yield hub.endpoint, one_off
