"""Data preparation: tokenizers, text and token labels, translation pairs and dialogues, language-model streams,
time series, audio, collators, and the datasets that ship with the package."""

from .audio import log_mel, prepare_audio, read_wav, resample
from .collators import DataCollatorForSeries
from .labels import LabelMap
from .language_modeling import LanguageModelStream
from .multitask import build_multitask_dataset
from .reviews import AMAZON_DOMAINS, amazon_reviews_path, load_amazon_reviews
from .seq2seq import dialogue_pairs, prepare_dialogue, prepare_translation
from .text import prepare_text_classification, prepare_token_classification
from .timeseries import forecasting_windows, load_ucr, prepare_series, series_statistics
from .tokenization import SPECIAL_TOKENS, TOKENIZER_KINDS, token_fields, train_tokenizer

__all__ = [
    "AMAZON_DOMAINS",
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "DataCollatorForSeries",
    "LabelMap",
    "LanguageModelStream",
    "amazon_reviews_path",
    "build_multitask_dataset",
    "dialogue_pairs",
    "forecasting_windows",
    "load_amazon_reviews",
    "load_ucr",
    "log_mel",
    "prepare_audio",
    "prepare_dialogue",
    "prepare_series",
    "prepare_text_classification",
    "prepare_token_classification",
    "prepare_translation",
    "read_wav",
    "resample",
    "series_statistics",
    "token_fields",
    "train_tokenizer",
]
