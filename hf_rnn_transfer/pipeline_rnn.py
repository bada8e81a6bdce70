"""`RNNText2TextPipeline`: text in, generated text out, for sequence-to-sequence checkpoints (translation, dialogue).

transformers 5 removed its `translation` and `text2text-generation` pipelines. Every saved `RNNForSeq2SeqLM` ships
this file and names it in `config.custom_pipelines` for both tasks, so `pipeline("translation", model=repo,
trust_remote_code=True)` works where only transformers is installed; with the package, pass
`pipeline_class=RNNText2TextPipeline` (or use `RNNText2TextPipeline(model=..., tokenizer=...)`). This file imports
only transformers: it runs as remote code.
"""

from transformers import Pipeline


class RNNText2TextPipeline(Pipeline):
    """
    Generate a text for each input text with a sequence-to-sequence model.

    Example:

    ```python
    >>> translate = pipeline("translation", model="alice/lstm-de-en", trust_remote_code=True)
    >>> translate("Ein Hund läuft im Park.", num_beams=4, max_new_tokens=40)
    [{'translation_text': 'a dog runs in the park .'}]
    ```
    """

    def _sanitize_parameters(self, max_length=None, truncation=None, **generate_kwargs):
        preprocess = {k: v for k, v in (("max_length", max_length), ("truncation", truncation)) if v is not None}
        return preprocess, generate_kwargs, {}

    def preprocess(self, text, max_length=None, truncation=False):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{type(self).__name__} takes non-empty texts, got {text!r}.")
        return self.tokenizer(
            text, add_special_tokens=False, truncation=truncation, max_length=max_length, return_tensors="pt"
        )

    def _forward(self, model_inputs, **generate_kwargs):
        settings = {"max_new_tokens": 64, **generate_kwargs}
        return {"output_ids": self.model.generate(**model_inputs, **settings)}

    def postprocess(self, model_outputs):
        key = "translation_text" if str(self.task).startswith("translation") else "generated_text"
        return [{key: self.tokenizer.decode(ids, skip_special_tokens=True)} for ids in model_outputs["output_ids"]]


__all__ = ["RNNText2TextPipeline"]
