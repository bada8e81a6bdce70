import json
from pathlib import Path

import pytest

from hf_rnn_transfer.data import AMAZON_DOMAINS, load_amazon_reviews

from .conftest import SHARED_DATA


@pytest.mark.parametrize("domain", AMAZON_DOMAINS)
def test_shipped_reviews_are_the_real_balanced_data(domain):
    reviews = load_amazon_reviews(domain)
    assert len(reviews) == 2000
    assert reviews.features["label"].names == ["negative", "positive"]
    assert sum(reviews["label"]) == 1000
    shared = Path(SHARED_DATA) / "amazon_multidomain" / f"{domain}.jsonl"
    if shared.exists():  # the shipped copy holds exactly the texts of the original release
        original = [json.loads(line) for line in shared.open()]
        assert reviews["text"] == [row["text"] for row in original]


def test_unknown_domain_is_named():
    with pytest.raises(ValueError, match=r"domain must be one of \('books', 'dvd', 'electronics', 'kitchen'\)"):
        load_amazon_reviews("garden")
