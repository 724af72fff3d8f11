"""A deterministic generator of realistic, mixed ML training logs that knows its own truth.

Real captured logs are mostly not metrics: a config dump and a ``pip freeze`` block at the
top, logging lines, library warnings, handled exceptions with their tracebacks, nvidia-smi
tables, tqdm bars redrawn with ``\\r`` hundreds of times on one physical line. Metric lines
come in many shapes, often several in one log (a pipeline that pre-trains with one library
and fine-tunes with another). The generator writes stretches of each shape the way the
libraries print them (compare tests/corpus/*/stdout.log) and records, for every metric value
it prints, the byte offset of its line, the key as printed and the value as printed. That
truth lets the benchmark measure recall, not just speed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TRUTH_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("offset", pa.int64()),
        ("key", pa.string()),
        ("value", pa.float64()),
        ("format", pa.string()),
    ]
)

_FLUSH_BYTES = 4 << 20
_TRUTH_ROWS = 250_000

_MODULES = (
    "data.loader",
    "trainer",
    "torch.distributed",
    "checkpoint",
    "model.builder",
    "accelerate.utils",
    "datasets.arrow_dataset",
    "urllib3.connectionpool",
)
_INFO = (
    "Loaded shard {i} ({n} samples) from /data/train/shard-{i:05d}.tar in {f:.2f}s",
    "Rank {r}: barrier reached after {f:.3f}s",
    "Prefetching {n} batches with {r} workers",
    "Saved checkpoint to /ckpt/run-17/step_{i}.pt ({n} bytes)",
    "Resetting dataloader iterator (epoch boundary)",
    "Starting new HTTPS connection ({r}): huggingface.co:443",
    'https://huggingface.co:443 "HEAD /gpt2/resolve/main/config.json HTTP/1.1" 200 0',
    "Gradient accumulation: {r} micro-batches per optimizer step",
    "Using {r} GPUs with NCCL backend, world size {n}",
    "Memory allocated: {n} MiB, reserved: {i} MiB",
    "Throughput: {n} tokens/s over the last {r} steps",
    "Skipping {r} corrupted samples in shard {i}",
)
_WARNINGS = (
    (
        (
            "/opt/venv/lib/python3.11/site-packages/torch/utils/data/dataloader.py:558: "
            "UserWarning: This DataLoader will create {n} worker processes in total. Our "
            "suggested max number of worker in current system is {r}, which is smaller than "
            "what this DataLoader is going to create."
        ),
        "  warnings.warn(_create_warning_msg(",
    ),
    (
        (
            "/opt/venv/lib/python3.11/site-packages/transformers/optimization.py:411: "
            "FutureWarning: This implementation of AdamW is deprecated and will be removed in a "
            "future version."
        ),
        "  warnings.warn(",
    ),
    (
        (
            "/opt/venv/lib/python3.11/site-packages/torch/optim/lr_scheduler.py:139: "
            "UserWarning: Detected call of `lr_scheduler.step()` before `optimizer.step()`."
        ),
        "  warnings.warn(",
    ),
)
_PACKAGES = [
    "absl-py==2.1.0",
    "accelerate==0.30.1",
    "aiohttp==3.9.5",
    "attrs==23.2.0",
    "certifi==2024.2.2",
    "charset-normalizer==3.3.2",
    "datasets==2.19.1",
    "filelock==3.14.0",
    "fsspec==2024.3.1",
    "huggingface-hub==0.23.0",
    "idna==3.7",
    "Jinja2==3.1.4",
    "joblib==1.4.2",
    "keras==3.3.3",
    "lightgbm==4.3.0",
    "MarkupSafe==2.1.5",
    "mpmath==1.3.0",
    "networkx==3.3",
    "numpy==1.26.4",
    "nvidia-cublas-cu12==12.1.3.1",
    "nvidia-cudnn-cu12==8.9.2.26",
    "nvidia-nccl-cu12==2.20.5",
    "packaging==24.0",
    "pandas==2.2.2",
    "pyarrow==16.0.0",
    "python-dateutil==2.9.0.post0",
    "pytz==2024.1",
    "PyYAML==6.0.1",
    "regex==2024.5.10",
    "requests==2.31.0",
    "safetensors==0.4.3",
    "scikit-learn==1.4.2",
    "scipy==1.13.0",
    "six==1.16.0",
    "sympy==1.12",
    "tokenizers==0.19.1",
    "torch==2.3.0",
    "tqdm==4.66.4",
    "transformers==4.41.0",
    "triton==2.3.0",
    "typing_extensions==4.11.0",
    "urllib3==2.2.1",
    "xgboost==2.0.3",
]
_CONFIG = {
    "model": {"name": "gpt2-small", "n_layer": 12, "n_head": 12, "d_model": 768, "dropout": 0.1},
    "optimizer": {"name": "adamw", "lr": 0.0003, "betas": [0.9, 0.95], "weight_decay": 0.1},
    "data": {"path": "/data/train", "seq_len": 1024, "batch_size": 32, "num_workers": 8},
    "trainer": {"max_steps": 100000, "log_every": 10, "eval_every": 500, "precision": "bf16"},
    "seed": 1234,
}
_KERAS_BAR = "━" * 20


@dataclass
class MixStats:
    """What was written: sizes, and the truth totals per metric format."""

    bytes: int = 0
    lines: int = 0
    metric_lines: int = 0
    metric_values: int = 0
    loss_lines: int = 0  # lines holding "loss" (what ``grep -c loss`` should count)
    by_format: dict[str, int] = field(default_factory=dict)

    def add(self, other: MixStats) -> None:
        self.bytes += other.bytes
        self.lines += other.lines
        self.metric_lines += other.metric_lines
        self.metric_values += other.metric_values
        self.loss_lines += other.loss_lines
        for k, v in other.by_format.items():
            self.by_format[k] = self.by_format.get(k, 0) + v


class _Log:
    """Buffered writer that tracks byte offsets and records every metric value printed."""

    def __init__(self, path: Path, truth: _Truth, rng: random.Random) -> None:
        self.fh = path.open("wb")
        self.name = path.name
        self.truth = truth
        self.rng = rng
        self.offset = 0
        self.buf: list[bytes] = []
        self.buffered = 0
        self.stats = MixStats()
        self.clock = 1_795_000_000.0 + rng.random() * 1e6
        self.step = 0
        self.epoch = 0

    def line(self, text: str) -> int:
        """Write one physical line (``text`` without its newline); return its offset."""
        data = (text + "\n").encode()
        off = self.offset
        self.buf.append(data)
        self.offset += len(data)
        self.buffered += len(data)
        self.stats.lines += 1
        if "loss" in text:
            self.stats.loss_lines += 1
        if self.buffered >= _FLUSH_BYTES:
            self.flush()
        return off

    def metric_line(self, text: str, fmt: str, values: list[tuple[str, float]]) -> None:
        off = self.line(text)
        self.stats.metric_lines += 1
        self.stats.metric_values += len(values)
        self.stats.by_format[fmt] = self.stats.by_format.get(fmt, 0) + len(values)
        self.truth.add(self.name, off, values, fmt)

    def stamp(self) -> str:
        self.clock += self.rng.random() * 0.5
        sec = int(self.clock)
        ms = int((self.clock - sec) * 1000)
        y, mo, d, h, mi, s = _civil(sec)
        return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{ms:03d}"

    def flush(self) -> None:
        self.fh.write(b"".join(self.buf))
        self.buf.clear()
        self.buffered = 0

    def close(self) -> MixStats:
        self.flush()
        self.fh.close()
        self.stats.bytes = self.offset
        return self.stats


class _Truth:
    """Columnar truth rows, streamed to a Parquet file so a 1 GB log needs little memory."""

    def __init__(self, path: Path | None) -> None:
        self.writer = pq.ParquetWriter(path, TRUTH_SCHEMA) if path else None
        self.cols: dict[str, list] = {f.name: [] for f in TRUTH_SCHEMA}

    def add(self, file: str, offset: int, values: list[tuple[str, float]], fmt: str) -> None:
        if self.writer is None:
            return
        c = self.cols
        for key, value in values:
            c["file"].append(file)
            c["offset"].append(offset)
            c["key"].append(key)
            c["value"].append(value)
            c["format"].append(fmt)
        if len(c["key"]) >= _TRUTH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.writer is None or not self.cols["key"]:
            return
        self.writer.write_table(pa.Table.from_pydict(self.cols, schema=TRUTH_SCHEMA))
        for v in self.cols.values():
            v.clear()

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def _civil(sec: int) -> tuple[int, int, int, int, int, int]:
    days, rem = divmod(sec, 86400)
    # Howard Hinnant's days-from-civil inverse; avoids a datetime object per line.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d, rem // 3600, rem % 3600 // 60, rem % 60


# -- noise ------------------------------------------------------------------------------------


def _header(log: _Log) -> None:
    rng = log.rng
    log.line(f"{log.stamp()} - INFO - launcher - Job 88{rng.randrange(10000):04d} on node-17")
    log.line("Config:")
    for section, items in _CONFIG.items():
        if isinstance(items, dict):
            log.line(f"  {section}:")
            for k, v in items.items():
                log.line(f"    {k}: {v}")
        else:
            log.line(f"  {section}: {items}")
    log.line("Installed packages:")
    for pkg in _PACKAGES:
        log.line(pkg)
    log.line(
        "Namespace(batch_size=32, data='/data/train', epochs=90, lr=0.0003, "
        "output_dir='/ckpt/run-17', seed=1234, warmup_steps=2000, weight_decay=0.1)"
    )


def _info(log: _Log) -> None:
    rng = log.rng
    for _ in range(rng.randint(3, 25)):
        msg = _INFO[rng.randrange(len(_INFO))].format(
            i=rng.randrange(100000),
            n=rng.randrange(1, 1 << 20),
            r=rng.randint(1, 64),
            f=rng.random() * 10,
        )
        mod = _MODULES[rng.randrange(len(_MODULES))]
        log.line(f"{log.stamp()} - INFO - {mod} - {msg}")


def _warning(log: _Log) -> None:
    rng = log.rng
    first, second = _WARNINGS[rng.randrange(len(_WARNINGS))]
    log.line(first.format(n=rng.randint(9, 64), r=rng.randint(2, 8)))
    log.line(second)


def _traceback(log: _Log) -> None:
    rng = log.rng
    log.line(f"{log.stamp()} - WARNING - data.loader - Failed to read a shard, retrying")
    log.line("Traceback (most recent call last):")
    for depth in range(rng.randint(3, 8)):
        log.line(
            f'  File "/opt/venv/lib/python3.11/site-packages/fsspec/implementations/'
            f'http.py", line {100 + depth * 37}, in _fetch_range'
        )
        log.line(f"    r = await self.session.get(self.url, headers=headers, **kw{depth})")
    log.line("ConnectionResetError: [Errno 104] Connection reset by peer")
    log.line(f"{log.stamp()} - INFO - data.loader - Retry {rng.randint(1, 5)}/5 succeeded")


def _tqdm(log: _Log) -> None:
    """A tqdm bar written to a file: every redraw on one physical line, ``\\r``-separated."""
    rng = log.rng
    total = rng.choice((50, 100, 250, 400, 1000))
    redraws = rng.randint(10, 120)
    desc = rng.choice(("Map", "Tokenizing", "Evaluating", "Downloading shards", "Filter"))
    parts = []
    rate = 5 + rng.random() * 500
    for k in range(redraws + 1):
        n = total * k // redraws
        pct = 100 * n // total
        fill = "█" * (pct // 10) + (" " * (10 - pct // 10))
        el = n / rate
        left = (total - n) / rate
        parts.append(
            f"{desc}: {pct:3d}%|{fill}| {n}/{total} [{int(el) // 60:02d}:{int(el) % 60:02d}"
            f"<{int(left) // 60:02d}:{int(left) % 60:02d}, {rate:.2f}it/s]"
        )
    log.line("\r" + "\r".join(parts))


def _nvidia_smi(log: _Log) -> None:
    rng = log.rng
    log.line("+-----------------------------------------------------------------------------+")
    log.line("| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |")
    log.line("|===============================+======================+======================|")
    for gpu in range(rng.choice((2, 4, 8))):
        log.line(
            f"|   {gpu}  NVIDIA A100-SXM...  On   | 00000000:{gpu + 7:02X}:00.0 Off |"
            "                    0 |"
        )
        log.line(
            f"| N/A   {rng.randint(30, 75)}C    P0   {rng.randint(60, 400)}W / 400W |"
            f"  {rng.randint(1000, 40000):5d}MiB / 40960MiB |     {rng.randint(0, 100):3d}%"
            "      Default |"
        )
    log.line("+-----------------------------------------------------------------------------+")


# -- metrics ----------------------------------------------------------------------------------


def _keras(log: _Log) -> None:
    """One Keras 3 epoch: the header, then one physical line of progress-bar redraws."""
    rng = log.rng
    log.epoch += 1
    log.line(f"Epoch {log.epoch}/{max(log.epoch, 100)}")
    steps = rng.choice((23, 100, 469, 1563))
    parts = []
    acc, loss = 0.5 + rng.random() * 0.4, 0.2 + rng.random() * 1.5
    for k in sorted(rng.sample(range(1, steps), min(steps - 1, rng.randint(3, 12)))):
        parts.append(
            f"\r\x1b[1m{k:>{len(str(steps))}}/{steps}\x1b[0m \x1b[37m{_KERAS_BAR}\x1b[0m "
            f"\x1b[1m{rng.randint(0, 59)}s\x1b[0m {rng.randint(2, 30)}ms/step - accuracy: "
            f"{acc:.4f} - loss: {loss:.4f}" + "\x08" * 73
        )
    vals = [
        ("accuracy", f"{acc:.4f}"),
        ("loss", f"{loss:.4f}"),
        ("val_accuracy", f"{acc - 0.05:.4f}"),
        ("val_loss", f"{loss * 1.1:.4f}"),
    ]
    tail = " - ".join(f"{k}: {v}" for k, v in vals)
    parts.append(
        f"\r\x1b[1m{steps}/{steps}\x1b[0m \x1b[32m{_KERAS_BAR}\x1b[0m\x1b[37m\x1b[0m "
        f"\x1b[1m{rng.randint(1, 59)}s\x1b[0m {rng.randint(2, 30)}ms/step - {tail}"
    )
    log.metric_line("".join(parts), "keras", [(k, float(v)) for k, v in vals])


def _hf(log: _Log) -> None:
    """Hugging Face Trainer's printed dicts: values as strings (4.4x+) or floats (older)."""
    rng = log.rng
    quoted = rng.random() < 0.5
    for _ in range(rng.randint(1, 6)):
        log.step += 10
        ep = f"{log.step / 1000:.2f}".rstrip("0").rstrip(".")
        vals = [
            ("loss", f"{rng.random() * 4:.4g}"),
            ("grad_norm", f"{rng.random() * 3:.4g}"),
            ("learning_rate", f"{rng.random() * 1e-3:.4g}"),
        ]
        if quoted:
            body = ", ".join(f"'{k}': '{v}'" for k, v in vals) + f", 'epoch': '{ep}'"
        else:
            body = ", ".join(f"'{k}': {v}" for k, v in vals) + f", 'epoch': {ep}"
        log.metric_line("{" + body + "}", "hf_dict", [(k, float(v)) for k, v in vals])
    if rng.random() < 0.3:
        vals = [("eval_loss", f"{rng.random() * 4:.4g}"), ("eval_runtime", f"{rng.random():.4f}")]
        body = ", ".join(f"'{k}': {v}" for k, v in vals)
        log.metric_line(
            "{" + body + f", 'epoch': {log.step / 1000:.2f}}}",
            "hf_dict",
            [(k, float(v)) for k, v in vals],
        )


def _xgboost(log: _Log) -> None:
    rng = log.rng
    for _ in range(rng.randint(5, 30)):
        vals = [
            ("train-logloss", f"{rng.random():.5f}"),
            ("train-auc", f"{rng.random():.5f}"),
            ("valid-logloss", f"{rng.random():.5f}"),
            ("valid-auc", f"{rng.random():.5f}"),
        ]
        text = f"[{log.step}]\t" + "\t".join(f"{k}:{v}" for k, v in vals)
        log.step += 1
        log.metric_line(text, "xgboost", [(k, float(v)) for k, v in vals])


def _lightgbm(log: _Log) -> None:
    rng = log.rng
    log.line("[LightGBM] [Info] Number of positive: 3470, number of negative: 3530")
    for _ in range(rng.randint(5, 30)):
        log.step += 1
        auc, ll = f"{rng.random():.6g}", f"{rng.random():.6g}"
        text = f"[{log.step}]\tvalid_0's auc: {auc}\tvalid_0's binary_logloss: {ll}"
        log.metric_line(
            text, "lightgbm", [("valid_0-auc", float(auc)), ("valid_0-binary_logloss", float(ll))]
        )


def _step_kv(log: _Log) -> None:
    """``epoch 3 step 120 loss=0.31 lr=1e-4`` behind a logging prefix: a custom loop."""
    rng = log.rng
    for _ in range(rng.randint(2, 20)):
        log.step += 10
        loss, lr = f"{rng.random() * 3:.4f}", f"{rng.random() * 1e-3:.3e}"
        text = (
            f"{log.stamp()} - INFO - trainer - epoch {log.epoch} step {log.step} "
            f"loss={loss} lr={lr}"
        )
        log.metric_line(text, "step_kv", [("loss", float(loss)), ("lr", float(lr))])


def _json(log: _Log) -> None:
    rng = log.rng
    for _ in range(rng.randint(2, 20)):
        log.step += 1
        loss, acc = f"{rng.random() * 3:.6f}", f"{rng.random():.6f}"
        text = (
            f'{{"step": {log.step}, "epoch": {log.epoch}, "loss": {loss}, '
            f'"accuracy": {acc}, "tokens_seen": {log.step * 4096}}}'
        )
        log.metric_line(text, "json", [("loss", float(loss)), ("accuracy", float(acc))])


def _sklearn(log: _Log) -> None:
    rng = log.rng
    for _ in range(rng.randint(3, 15)):
        log.step += 1
        loss, score = f"{rng.random() * 2:.8f}", f"{rng.random():.6f}"
        log.metric_line(f"Iteration {log.step}, loss = {loss}", "sklearn", [("loss", float(loss))])
        log.metric_line(
            f"Validation score: {score}", "sklearn", [("validation_score", float(score))]
        )


# Blocks and how often each starts. Noise outweighs metrics, as in real captured logs.
BLOCKS: tuple[tuple[str, Callable[[_Log], None], float], ...] = (
    ("info", _info, 30.0),
    ("warning", _warning, 4.0),
    ("traceback", _traceback, 1.5),
    ("tqdm", _tqdm, 3.0),
    ("nvidia_smi", _nvidia_smi, 1.0),
    ("keras", _keras, 2.0),
    ("hf_dict", _hf, 3.0),
    ("xgboost", _xgboost, 1.0),
    ("lightgbm", _lightgbm, 1.0),
    ("step_kv", _step_kv, 2.0),
    ("json", _json, 1.5),
    ("sklearn", _sklearn, 1.0),
)


def write_log(
    path: Path, size_bytes: int, *, seed: int = 0, truth: _Truth | None = None
) -> MixStats:
    """Write a mixed log of about ``size_bytes`` (whole blocks; it stops past the size)."""
    rng = random.Random(seed)
    own = truth is None
    truth = truth or _Truth(None)
    log = _Log(path, truth, rng)
    fns = [b[1] for b in BLOCKS]
    weights = [b[2] for b in BLOCKS]
    _header(log)
    while log.offset < size_bytes:
        for fn in rng.choices(fns, weights, k=16):
            fn(log)
    log.line(f"{log.stamp()} - INFO - trainer - Training finished")
    stats = log.close()
    if own:
        truth.close()
    return stats


def write_logs(
    folder: Path, total_bytes: int, files: int, *, seed: int = 0, truth_path: Path | None = None
) -> tuple[list[Path], MixStats]:
    """``files`` mixed logs sharing ``total_bytes``, and one truth file for all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = _Truth(truth_path)
    stats = MixStats()
    paths = []
    per_file = max(1, total_bytes // files)
    for i in range(files):
        p = folder / (f"run-{i:04d}.log" if files > 1 else "train.log")
        stats.add(write_log(p, per_file, seed=seed * 100_003 + i, truth=truth))
        paths.append(p)
    truth.close()
    return paths, stats
