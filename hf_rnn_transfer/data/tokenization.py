"""Train a tokenizer on a dataset column with the `tokenizers` library, as a `PreTrainedTokenizerFast`."""

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]
TOKENIZER_KINDS = ("word", "bpe")


def train_tokenizer(
    texts: Iterable[str],
    kind: str = "word",
    vocab_size: int = 20_000,
    min_frequency: int = 2,
    lowercase: bool = True,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """
    Train a word-level (ULMFiT-style: NFKC, lower case, punctuation split off) or byte-level BPE tokenizer.

    Args:
        texts: the training texts (a list, a generator, or a `datasets` column).
        kind: `"word"` or `"bpe"`.
        vocab_size: the largest vocabulary, special tokens included.
        min_frequency: a token seen fewer times than this becomes `<unk>` (word) or is not merged (bpe).
        lowercase: lower-case the text before splitting.
        model_max_length: the length `truncation=True` cuts to.

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>` (id 0), `<unk>`, `<bos>` and `<eos>`; `save_pretrained` writes
        `tokenizer.json`, which `AutoTokenizer` loads without this package.

    Example:

    ```python
    >>> tok = train_tokenizer(["A good kettle.", "A bad kettle!"], min_frequency=1)
    >>> tok.decode(tok("A good kettle.")["input_ids"])
    'a good kettle.'
    ```
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {kind!r}.")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
        )
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    tokenizer.normalizer = normalizers.Sequence(norm)
    tokenizer.train_from_iterator(_non_empty(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def token_fields(tokenizer) -> dict:
    """The `RNNConfig` fields a tokenizer fixes: `vocab_size` and the pad, bos and eos token ids.

    Example:

    ```python
    >>> config = RNNConfig(**token_fields(tokenizer), hidden_size=256, num_labels=2)
    ```
    """
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    seen = False
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"tokenizer training texts must be strings, got {type(text).__name__}: {text!r:.80}")
        if text.strip():
            seen = True
            yield text
    if not seen:
        raise ValueError("tokenizer training got no non-empty text.")
