"""Data preparation: tokenizers and the datasets that ship with the package."""

from .multitask import build_multitask_dataset
from .reviews import AMAZON_DOMAINS, amazon_reviews_path, load_amazon_reviews
from .tokenization import SPECIAL_TOKENS, TOKENIZER_KINDS, train_tokenizer

__all__ = [
    "AMAZON_DOMAINS",
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "amazon_reviews_path",
    "build_multitask_dataset",
    "load_amazon_reviews",
    "train_tokenizer",
]
