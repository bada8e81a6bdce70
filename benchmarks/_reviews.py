"""The review data of the sentiment benchmarks: the Amazon multi-domain target protocol (the demo's fixed, balanced
1,000-review test set and 1,000-review pool) and every other review domain as source, deduplicated.

FDU-MTL (`$HF_RNN_TRANSFER_DATA/fdu_mtl`, research use only, never shipped) has exact duplicates inside domains and
between dvd and video, and its texts are tokenised (`do n't`) where the Amazon files are raw (`don't`): texts are
compared by a key that keeps only lower-case letters and digits, so both forms meet. A source keeps one copy of each
key, and loses every key of the target's test and pool reviews (no source may hold a target review); the target's
own FDU-MTL domain is never a source.
"""

import gzip
import json
import os
import re
from pathlib import Path

from datasets import ClassLabel, Dataset

from hf_rnn_transfer.data import AMAZON_DOMAINS, load_amazon_reviews

SENTIMENT = ClassLabel(names=["negative", "positive"])
# the FDU-MTL domain that holds each Amazon target's reviews
FDU_TWIN = {"books": "books", "dvd": "dvd", "electronics": "electronics", "kitchen": "kitchen_housewares"}
FDU_DOMAINS = (
    "apparel", "baby", "books", "camera_photo", "dvd", "electronics", "health_personal_care", "imdb",
    "kitchen_housewares", "magazines", "music", "software", "sports_outdoors", "toys_games", "video",
)  # fmt: skip


def data_root() -> Path:
    root = os.environ.get("HF_RNN_TRANSFER_DATA")
    if not root or not (Path(root) / "fdu_mtl").is_dir():
        raise SystemExit("This benchmark needs HF_RNN_TRANSFER_DATA pointing at the shared data (with fdu_mtl/).")
    return Path(root)


def text_key(text: str) -> str:
    """Lower-case letters and digits only: `Don't` (raw) and `do n't` (tokenised) share a key."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def read_fdu(domain: str, root: Path | None = None) -> list[dict]:
    """Every row of one FDU-MTL domain: text, label (0/1 or None) and split (train, test, unlabeled)."""
    if domain not in FDU_DOMAINS:
        raise ValueError(f"FDU-MTL domain must be one of {FDU_DOMAINS}, got {domain!r}.")
    with gzip.open((root or data_root()) / "fdu_mtl" / f"{domain}.jsonl.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


# FDU-MTL's reviews (most of the source labels, and the development set) are tokenized the Penn Treebank way ("does
# n't"), the Amazon reviews (the kitchen pool and test set) are raw ("doesn't"); the tokenizer reads the two as
# different words ("does n ' t" against "doesn ' t"), so a negation learnt on one style is missed on the other
NEGATION = re.compile(r"(\w)n't\b", re.IGNORECASE)


def split_negations(text: str) -> str:
    """Every "doesn't" written as FDU-MTL writes it, "does n't" (and "can't" as "ca n't")."""
    return NEGATION.sub(lambda m: m.group(1) + " " + m.group(0)[1:], text)


def target_splits(domain: str) -> dict[str, Dataset]:
    """The demo's protocol: a fixed, balanced 1,000-review test set and the other 1,000 reviews as the pool."""
    split = load_amazon_reviews(domain).train_test_split(test_size=1000, seed=0, stratify_by_column="label")
    return {"pool": split["train"], "test": split["test"]}


def deduplicated(rows: list[dict], banned: set[str] = frozenset()) -> list[dict]:
    """One row per text key, none whose key is `banned`."""
    kept, seen = [], set(banned)
    for row in rows:
        key = text_key(row["text"])
        if key and key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def source_reviews(target: str, fdu: bool = True, amazon: bool = True) -> Dataset:
    """
    Labelled source reviews for `target` (an Amazon domain): the other Amazon domains and every FDU-MTL domain but
    the target's twin (train and test splits; both are labelled and none is the target's), deduplicated, with no
    review of the target's test set or pool. Columns: text, label, domain.
    """
    if target not in AMAZON_DOMAINS:
        raise ValueError(f"target must be one of {AMAZON_DOMAINS}, got {target!r}.")
    splits = target_splits(target)
    banned = {text_key(t) for part in splits.values() for t in part["text"]}
    rows = []
    if amazon:
        for domain in AMAZON_DOMAINS:
            if domain != target:
                reviews = load_amazon_reviews(domain)
                pairs = zip(reviews["text"], reviews["label"])
                rows += [{"text": text, "label": label, "domain": domain} for text, label in pairs]
    if fdu:
        for domain in FDU_DOMAINS:
            if domain != FDU_TWIN[target]:
                rows += [
                    {"text": r["text"], "label": r["label"], "domain": "fdu_" + domain}
                    for r in read_fdu(domain)
                    if r["label"] is not None
                ]
    rows = deduplicated(rows, banned)
    data = Dataset.from_list(rows).cast_column("label", SENTIMENT)
    return data.shuffle(seed=0)


def unlabelled_reviews(target: str, include_target: bool = True) -> list[str]:
    """Unlabelled review text for language-model or domain-adversarial training: every FDU-MTL domain's unlabeled
    split but the target twin's, plus, with `include_target`, the target pool's texts (used without labels) and the
    twin's unlabeled split; never a text of the target's test set."""
    splits = target_splits(target)
    banned = {text_key(t) for t in splits["test"]["text"]}
    rows = []
    for domain in FDU_DOMAINS:
        if domain != FDU_TWIN[target] or include_target:
            rows += [r for r in read_fdu(domain) if r["split"] == "unlabeled"]
    if include_target:
        rows += [{"text": t} for t in splits["pool"]["text"]]
    return [r["text"] for r in deduplicated(rows, banned)]
