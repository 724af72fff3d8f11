"""Which printed names are metrics, which are settings, and which count steps or epochs.

The generic parsers see names they have never seen (``val_dice``, ``loss_rpn_cls``,
``eval_steps``). A name is judged by its word parts, so ``train_loss`` and ``loss_cls`` are
metrics because of ``loss``, while ``eval_steps`` or ``test_size`` stay settings although
they start like metrics. Precision beats recall here: a setting misread as a metric
pollutes every comparison, a missed metric is only a gap.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from functools import lru_cache

# Word parts that make a name a metric wherever they appear (``loss_cls``, ``val_acc``).
# ``precision`` and ``fps`` are left out: ``precision: 16`` and ``fps: 30`` are settings;
# ``val_precision`` still counts through its split prefix.
METRIC_WORDS = frozenset(
    """
    loss losses nll logloss mlogloss acc acc1 acc5 accuracy accuracies auc roc auroc auprc
    f1 f1score fscore error errors err score scores mse rmse mae mape smape msle r2 ppl
    perplexity bleu sacrebleu rouge rouge1 rouge2 rougel rougelsum meteor cider chrf wer cer
    recall map map50 ap ap50 ap75 aps apm apl iou miou dice psnr ssim lpips fid top1 top5
    ndcg mrr hit hits em gnorm reward rewards kl entropy elbo likelihood logprob pearson
    spearman mcc matthews correct jaccard kappa brier ece wps ups tps throughput runtime
    latency mfu tflops
    """.split()  # noqa: SIM905 - a word list reads best as words
)

# Two-word metrics whose parts alone are not metrics (``grad`` alone is not, ``grad_norm`` is).
METRIC_BIGRAMS = frozenset(
    {
        ("grad", "norm"),
        ("exact", "match"),
        ("per", "second"),
        ("per", "sec"),
        ("per", "step"),
        ("mean", "reward"),
        ("episode", "return"),
    }
)

# Parts that make a name a setting even next to a metric word (``loss_weight``,
# ``max_grad_norm``, ``eval_accuracy_threshold``, ``target_kl``).
SETTING_WORDS = frozenset(
    """
    weight weights type fn func function name names mode threshold thresh target tol delta
    patience clip max min scale scaling coef coeff coefficient factor smoothing margin alpha
    beta gamma temperature interval every freq frequency fraction split strategy steps
    epochs batches size sizes path dir file files metric metrics monitor seed workers init
    config cfg warmup schedule scheduler dim dims layers heads hidden ratio window period
    rows cols samples examples len length limit budget rank device enable enabled iters
    iterations num n nb count tokens delay
    """.split()  # noqa: SIM905 - a word list reads best as words
)

# Split prefixes: with no setting word after them they mark a metric (``val_dice``).
SPLIT_PREFIXES = frozenset(
    {"val", "valid", "validation", "train", "training", "test", "eval", "dev"}
)

STEP_KEYS = frozenset(
    {
        "step",
        "global_step",
        "globalstep",
        "_step",
        "iteration",
        "iter",
        "it",
        "batch",
        "num_updates",
        "update",
        "round",
        "trainer/global_step",
    }
)
EPOCH_KEYS = frozenset({"epoch", "ep", "_epoch", "trainer/epoch", "train/epoch"})

# Numbers printed next to these names are never metrics (Lightning's ``v_num``, ETA...).
SKIP_KEYS = frozenset(
    {
        "v_num",
        "eta",
        "pid",
        "rank",
        "local_rank",
        "global_rank",
        "world_size",
        "gpu",
        "gpus",
        "device",
        "seed",
        "version",
        "port",
        "id",
        "trial",
        "dataloader_idx",
    }
)

# Words that make a label prose rather than a name (``Loaded 5 files``, ``took 3.2``).
STOPWORDS = frozenset(
    """
    a an the of in on at to for from by with into onto over under after before during is are
    was were be been being has have had do does did will would can could should and or not
    no yes if then than so as per via using use used uses took takes take found loading
    loaded load saving saved save writing wrote written reading read starting started start
    finished finish done running ran run creating created downloading downloaded missing
    skipping skipped setting set got get getting it this that these those there here which
    who what when where while
    """.split()  # noqa: SIM905 - a word list reads best as words
)

# Section titles that announce hyperparameters (``hyperparameters:``, ``--- arguments ---``).
CONFIG_LABELS = frozenset(
    """
    config configs configuration cfg conf params parameters param hparams hyperparameters
    hyperparams hyper_parameters hyper args arguments argv options opts settings flags
    training_config train_config training_args train_args training_arguments
    training_parameters training_hyperparameters model_config run_config experiment_config
    job_config
    """.split()  # noqa: SIM905 - a word list reads best as words
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PARTS = re.compile(r"[^a-z0-9@]+")


@lru_cache(maxsize=4096)
def key_parts(key: str) -> tuple[str, ...]:
    """Lower-case word parts of a printed name: ``valLoss`` → ``('val', 'loss')``."""
    spaced = _CAMEL.sub("_", key).lower()
    return tuple(p for p in _PARTS.split(spaced) if p)


@lru_cache(maxsize=4096)
def is_metric_name(key: str) -> bool:
    """Whether a printed name clearly names a measured value rather than a setting."""
    parts = key_parts(key)
    if not parts:
        return False
    if any(p in SETTING_WORDS for p in parts) and not _is_throughput(parts):
        return False
    if any(p in METRIC_WORDS or _metric_stem(p) for p in parts):
        return True
    if any(pair in METRIC_BIGRAMS for pair in itertools.pairwise(parts)):
        return True
    return parts[0] in SPLIT_PREFIXES and len(parts) > 1


def _is_throughput(parts: tuple[str, ...]) -> bool:
    # ``train_steps_per_second`` holds the setting word ``steps`` but is a rate.
    return any(a == "per" and b in ("second", "sec", "s") for a, b in itertools.pairwise(parts))


def _metric_stem(part: str) -> bool:
    # acc@1, top1acc, f1_macro spelled together, map50-95...
    return part.startswith(("acc@", "top1", "top5", "map5", "rouge", "bleu")) or (
        part.endswith("loss") and len(part) > 4
    )


@lru_cache(maxsize=4096)
def step_kind(key: str) -> str | None:
    """``'step'`` or ``'epoch'`` when a name counts training progress, else ``None``."""
    k = key.strip().strip("'\"").lower()
    if k in EPOCH_KEYS or k.endswith("/epoch"):
        return "epoch"
    if k in STEP_KEYS or k.endswith(("/global_step", "/step")):
        return "step"
    if k in ("global step", "iteration", "iterations"):
        return "step"
    return None


@lru_cache(maxsize=4096)
def is_skip_key(key: str) -> bool:
    """Names whose numbers are bookkeeping, never metrics (``v_num``, ``eta``, ``rank``), and
    bare phase words (timm's ``Train: 0`` is an epoch label)."""
    k = key.strip().lower()
    return k in SKIP_KEYS or k in SPLIT_PREFIXES


def is_config_label(label: str) -> bool:
    """Whether a section title or label announces hyperparameters."""
    words = [w for w in re.split(r"[^a-z0-9]+", label.lower()) if w]
    if not words or words[0] == "end" or has_stopword(words):
        return False  # "end of arguments", "Loading config"
    joined = "_".join(words)
    if joined in CONFIG_LABELS:
        return True
    # "Training configuration", "Model hyperparameters", "Parsed args"
    return len(words) <= 3 and words[-1] in CONFIG_LABELS


def has_stopword(words: list[str]) -> bool:
    return any(w.lower() in STOPWORDS for w in words)


# -- prefilter patterns (see loglake.parse.prefilter) ------------------------------------------


def _word_alternatives(words: Iterable[str]) -> str:
    return "|".join(sorted(words, key=lambda w: (-len(w), w)))


def _capitalized(words: Iterable[str]) -> str:
    """Each word with an upper-case first letter, the rest in any case: a camelCase part."""
    return "|".join(
        f"{w[0].upper()}(?i:{w[1:]})" if w[1:] else w[0].upper()
        for w in sorted(words, key=lambda w: (-len(w), w))
        if w[0].isalpha()
    )


def metric_name_pattern() -> str:
    """An RE2 pattern matching every text holding a name ``is_metric_name`` accepts (and more).

    ``is_metric_name`` judges a name by its word parts: lower-cased runs of ``[a-z0-9@]``,
    split at every other character and at camelCase boundaries. The pattern finds a metric
    word or stem standing as a part; a metric bigram's two words in a row; or a split prefix
    opening a name (after a character no name holds: ``train_x`` in ``/data/train/x`` is not
    a name's first part). A part may start after a digit, or after the ``Z`` or ``UTC`` of a
    timestamp the message is glued to.
    """
    stems = ("acc@", "top1", "top5", "map5", "rouge", "bleu")
    start = r"(?:^|[^A-Za-z@]|Z|C)"
    name_start = r"(?:^|[^A-Za-z_.\-/@]|Z|C)"
    end = r"(?:$|[^a-z0-9@])"
    bigrams = "|".join(rf"{a}[^a-z0-9@]*{b}" for a, b in sorted(METRIC_BIGRAMS))
    return (
        rf"(?:{start}(?i:{_word_alternatives(METRIC_WORDS)})|[a-z](?:{_capitalized(METRIC_WORDS)})){end}"
        rf"|{name_start}(?i:{_word_alternatives(SPLIT_PREFIXES)}){end}"
        rf"|{start}(?i:{_word_alternatives(stems)})|[a-z](?:{_capitalized(stems)})"
        rf"|(?i:loss){end}"
        rf"|(?i:{bigrams})"
    )


def metric_value_pattern() -> str:
    """``metric_name_pattern`` followed, anywhere later on the line, by the start of a number
    (a digit, or ``nan``/``inf``): a line where a metric-named key can have a value."""
    return rf"(?:{metric_name_pattern()}).*(?:\pN|nan|NaN|inf|Inf)"
