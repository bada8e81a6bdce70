"""Selection inside the budget when the transfer re-initialised the head: lean to the start, or to the full recipe?

On UCR targets whose source (LogME's first among the other sets' sources of `source_ranking_ucr.py`'s pool) answers
other labels, the classifier head starts random. One 3-fold cross-validation per seed inside the target's train split
(the ranking benchmark's recipe: 5e-3, 20 epochs), then four choices from it, each trained on the whole split and
scored on the test split:

- before: every mix of the fine-tuned weights with the start (0, 0.25, ..., 1), the paired rule leaning to the start
  (the smallest mix, then the earliest epoch, within one error of the best): what `cross_validate` did for every head
  (the section's numbers; since 2026-12-06 the paired rule takes the latest epoch after the smallest mix, so a rerun
  scores that rule here, `selection_kept_head.py`);
- now: mix 1 only, the paired rule leaning to the full recipe (the latest epoch within one error of the best): what it
  does when the head is new;
- best: mix 1, the highest held-out score;
- the fixed recipe: all 20 epochs, mix 1, no selection.

    HF_RNN_TRANSFER_DATA=../shared/data python benchmarks/selection_new_head.py --pool_dir /tmp/ucrpool

`--pool_dir`: the folder of `source_ensembles.py --pool ucr` (its `sources/`; built there if missing).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import source_ranking_ucr as ucr
from _report import table, write_section
from _reviews import data_root
from source_ensembles import ucr_target
from transformers import set_seed

from hf_rnn_transfer import RNNForSequenceClassification, TransferConfig
from hf_rnn_transfer.budget_selection import _choose, cross_validate, fit_selected
from hf_rnn_transfer.data import DataCollatorForSeries
from hf_rnn_transfer.evaluation import accuracy_of, row_accuracy
from hf_rnn_transfer.selection import rank_sources

TARGETS = ("ECG200", "ECGFiveDays", "SonyAIBORobotSurface1", "SonyAIBORobotSurface2", "TwoLeadECG")
CHOICES = ("before: all mixes, towards the start", "now: mix 1, towards the full recipe", "best (mix 1)",
           "fixed recipe (20 epochs)")  # fmt: skip


def run_target(target: str, pool: dict[str, str], seeds) -> dict:
    train, test, config = ucr_target(target)
    collator = DataCollatorForSeries()
    candidates = [f for n, f in pool.items() if not n.startswith(f"{target}-")]
    first = rank_sources(candidates, train, label_column="labels", max_examples=None, progress=False).ranked()[0]
    out = {"source": Path(first).name, "choices": {c: [] for c in CHOICES}}
    for seed in seeds:

        def transferred(seed=seed):
            set_seed(seed)
            return RNNForSequenceClassification.from_pretrained(first, transfer=TransferConfig(), **config)

        def as_before():  # without its transfer report the head counts as the start: every mix, leaning to it
            model = transferred()
            del model.transfer_report
            return model

        args = ucr.recipe(seed)
        cv = cross_validate(as_before, train, args, collator, lambda m, rows: row_accuracy(m, rows, collator), 3)
        one = cv.mixes.index(1.0)
        means, rows = cv.means[:, one : one + 1], cv.row_scores[:, one : one + 1]
        picks = {
            CHOICES[0]: (cv.epochs, cv.mix),
            CHOICES[1]: (_choose(means, cv.rows, "paired_standard_error", rows, toward_start=False)[0] + 1, 1.0),
            CHOICES[2]: (_choose(means, cv.rows, "best", rows)[0] + 1, 1.0),
            CHOICES[3]: (int(args.num_train_epochs), 1.0),
        }
        scored = {}
        for choice, (epochs, mix) in picks.items():
            if (epochs, mix) not in scored:
                cv.epochs, cv.mix = epochs, mix
                model = fit_selected(transferred, train, args, collator, cv)
                scored[epochs, mix] = accuracy_of(model, test, collator)
            out["choices"][choice].append([epochs, mix, scored[epochs, mix]])
        print(target, seed, {c: v[-1] for c, v in out["choices"].items()}, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pool_dir", default=str(Path(tempfile.gettempdir()) / "hf-rnn-transfer-ucr-pool"))
    cli = parser.parse_args()
    pool = ucr.build_pool(data_root() / "ucr", Path(cli.pool_dir) / "sources", 60)
    rows, columns = [], {c: [] for c in CHOICES}
    for target in cli.targets:
        result = run_target(target, pool, cli.seeds)
        cells = []
        for choice in CHOICES:
            runs = result["choices"][choice]
            mean = float(np.mean([r[2] for r in runs]))
            columns[choice].append(mean)
            cells.append(f"{mean:.3f} ({', '.join(f'e{e} m{m:g}' for e, m, _ in runs)})")
        rows.append([target, result["source"], *cells])
    rows.append(["**mean**", "", *(f"**{np.mean(v):.3f}**" for v in columns.values())])
    body = table(["target", "source (LogME's first)", *CHOICES], rows) + (
        f"\n\nTest accuracy, mean over seeds {list(cli.seeds)}; in brackets each seed's stopping epoch (e) and mix "
        "(m). Every source here answers other labels than its target, so the classifier head starts random; one "
        "cross-validation per seed gives all four choices."
    )
    write_section("selection-new-head", "Selection inside the budget with a re-initialised head (UCR)", body)


if __name__ == "__main__":
    main()
