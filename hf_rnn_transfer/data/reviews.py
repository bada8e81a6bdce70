"""The Amazon multi-domain reviews (Blitzer et al. 2007) that ship with the package, as `datasets` datasets."""

from importlib import resources
from pathlib import Path

from datasets import ClassLabel, Dataset, load_dataset

AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")
SENTIMENT = ClassLabel(names=["negative", "positive"])


def amazon_reviews_path(domain: str) -> Path:
    """Path of the shipped, gzip-compressed JSON Lines file of one domain."""
    if domain not in AMAZON_DOMAINS:
        raise ValueError(f"Amazon review domain must be one of {AMAZON_DOMAINS}, got {domain!r}.")
    return Path(str(resources.files("hf_rnn_transfer") / "resources" / "amazon_reviews" / f"{domain}.jsonl.gz"))


def load_amazon_reviews(domain: str) -> Dataset:
    """
    Load one domain (2,000 reviews: `text`, `label` (negative/positive), `title`, `rating`).

    Rows come negatives first, as distributed: shuffle with a fixed seed before splitting.
    """
    ds = load_dataset("json", data_files=str(amazon_reviews_path(domain)), split="train")
    return ds.cast_column("label", SENTIMENT)
