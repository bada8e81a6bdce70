"""The Hub: an offline server that speaks the real protocol, client configuration, and model cards."""

from .endpoint import client_environment, default_hub_root, hub_endpoint, resolve_hub
from .model_card import CardContent, Metric, build_model_card, is_hub_id
from .push import push_model
from .server import LocalHub, serve
from .storage import HubError, HubStorage

__all__ = [
    "CardContent",
    "HubError",
    "HubStorage",
    "LocalHub",
    "Metric",
    "build_model_card",
    "client_environment",
    "default_hub_root",
    "hub_endpoint",
    "is_hub_id",
    "push_model",
    "resolve_hub",
    "serve",
]
