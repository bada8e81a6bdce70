"""The Hub: an offline server that speaks the real protocol, client configuration, and model cards.

The server (`LocalHub`, `serve`, `HubLimits`) needs the `hub` extra and is imported only when first used, so the
rest of the package never loads a web framework.
"""

from .endpoint import client_environment, default_hub_root, hub_endpoint, resolve_hub
from .model_card import CardContent, Metric, build_model_card
from .push import push_model
from .repo_id import is_hub_id, is_local_path, shareable_name
from .storage import HubError, HubStorage

_SERVER_NAMES = ("HubLimits", "LocalHub", "serve")


def __getattr__(name):
    if name in _SERVER_NAMES:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CardContent",
    "HubError",
    "HubLimits",
    "HubStorage",
    "LocalHub",
    "Metric",
    "build_model_card",
    "client_environment",
    "default_hub_root",
    "hub_endpoint",
    "is_hub_id",
    "is_local_path",
    "push_model",
    "resolve_hub",
    "serve",
    "shareable_name",
]
