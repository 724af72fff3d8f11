"""Code, data and environment facts: run facts, packages, datasets and artifacts.

Logs are real files, cleaned like the tailer does and fed in small batches with every
parser state round-tripped through JSON; one test indexes a log into a real lake and reads
the rows back with DuckDB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import loglake
from loglake.config import Config
from loglake.index.runner import run_index
from loglake.parse.base import LineBatch, Parser
from loglake.parse.builtins.artifacts import ArtifactsParser, artifact_kind
from loglake.parse.builtins.datasets import DatasetsParser, split_of
from loglake.parse.builtins.facts import FactsParser
from loglake.parse.builtins.packages import PackagesParser
from loglake.parse.records import Emitter

from .conftest import CORPUS, file_lines


def feed(
    path: Path, parser: Parser, *, batch: int = 3, envelope_ts: float | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every record ``parser`` gives for the file, as dicts per table."""
    texts, offsets = file_lines(path)
    state = parser.new_state()
    got: dict[str, list[dict[str, Any]]] = {}
    out = Emitter()
    out.claim_lines = parser.priority < 90

    def collect() -> None:
        for name, cols in out.tables().items():
            rows = [dict(zip(cols.names, r, strict=True)) for r in zip(*cols.data.values())]
            got.setdefault(name, []).extend(rows)
        out.clear()

    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        ts = None if envelope_ts is None else [envelope_ts + i + k for k in range(len(chunk))]
        parser.parse(LineBatch(chunk, offsets[i : i + batch], ts), state, out)
        state = json.loads(json.dumps(state))
        collect()
    parser.finalize(state, out, idle=True)
    collect()
    return got


def write(tmp_path: Path, text: str, name: str = "job.log") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- run facts ---------------------------------------------------------------------------------

SLURM_HEADER = """\
2026-03-01 08:00:00,100 INFO hostname: gpu-node-12
SLURM_JOB_ID=4151016
SLURM_JOB_NODELIST=gpu-node-12
user: alice
git commit: 3f2a1b9c0d4e
git branch: main
+ torchrun --nproc_per_node=8 train.py --lr 3e-4 --epochs 3
Python 3.11.7 (main, Dec  8 2023, 18:56:58) [GCC 11.4.0]
torch version: 2.1.0+cu121
| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |
|   0  NVIDIA A100-SXM4-80GB          On  | 00000000:07:00.0 Off |                    0 |
Process rank: 0, device: cuda:0, n_gpu: 1, distributed training: True, 16-bits training: False
world_size=8
2026-03-01 08:00:05,000 INFO epoch 1 step 100 loss 2.3 user_loss 0.4
2026-03-01 09:30:00,250 INFO epoch 3 step 900 loss 1.1
srun: error: gpu-node-12: task 0: Exited with exit code 1
"""


def facts_of(got: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for row in got.get("facts", []):
        facts.setdefault(row["key"], row["value"])
        if row["key"] in ("end_time", "exit_code"):
            facts[row["key"]] = row["value"]
    return facts


def test_run_and_environment_facts(tmp_path: Path) -> None:
    facts = facts_of(feed(write(tmp_path, SLURM_HEADER), FactsParser()))
    assert facts == {
        "host": "gpu-node-12",
        "slurm_job_id": 4151016,
        "slurm_nodelist": "gpu-node-12",
        "user": "alice",
        "git_commit": "3f2a1b9c0d4e",
        "git_branch": "main",
        "command": "torchrun --nproc_per_node=8 train.py --lr 3e-4 --epochs 3",
        "python_version": "3.11.7",
        "torch_version": "2.1.0+cu121",
        "driver_version": "535.104.05",
        "cuda_version": "12.2",
        "gpu": "NVIDIA A100-SXM4-80GB",
        "device": "cuda:0",
        "gpu_count": 1,
        "world_size": 8,
        "exit_code": 1,
        "start_time": 1772352000.1,  # 2026-03-01 08:00:00.100 UTC
        "end_time": 1772357400.25,  # 2026-03-01 09:30:00.250 UTC
    }


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        (
            "commit 3f2a1b9c0d4e5f60718293a4b5c6d7e8f9012345",
            "git_commit",
            "3f2a1b9c0d4e5f60718293a4b5c6d7e8f9012345",
        ),
        ("git_sha=abcdef1", "git_commit", "abcdef1"),
        ("Git hash: 9D8C7B6", "git_commit", "9d8c7b6"),
        ("revision 0123abc", "git_commit", "0123abc"),
        ("Running on host worker-3.cluster", "host", "worker-3.cluster"),
        ("SLURMD_NODENAME=gpu-a-07", "host", "gpu-a-07"),
        ("Job 7 running on node n20.cluster", "host", "n20.cluster"),
        ("sys.argv: ['train.py', '--lr', '0.1']", "command", "train.py --lr 0.1"),
        ("Command: python train.py --epochs 3", "command", "python train.py --epochs 3"),
        ("- `transformers` version: 4.40.0", "transformers_version", "4.40.0"),
        ("Using backend: torch", "backend", "torch"),
        ("Using TensorFlow backend.", "framework", "keras"),
        ("Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/4", "world_size", 4),
        ("GPU available: True (cuda), used: True", "gpu_used", True),
        ("***** Running training *****", "framework", "transformers"),
        ("NCCL version 2.18.1+cuda12.1", "nccl_version", "2.18.1+cuda12.1"),
        ("Tesla V100-SXM2-32GB", "gpu", "Tesla V100-SXM2-32GB"),
        ("Process finished with exit code 0", "exit_code", 0),
    ],
)
def test_one_fact_per_line_form(tmp_path: Path, line: str, key: str, value: Any) -> None:
    facts = facts_of(feed(write(tmp_path, line + "\n"), FactsParser()))
    assert facts.get(key) == value, facts


def test_metric_lines_and_prose_give_no_facts(tmp_path: Path) -> None:
    log = (
        "epoch 3 step 100 loss 0.5 user_loss 0.3 host_time 0.1\n"
        "Committing 3 files to the cache\n"
        "Loading 8 processes on node 0\n"
        "user: The user's prompt was empty\n"
        "commit 1000000 rows\n"
    )
    assert facts_of(feed(write(tmp_path, log), FactsParser())) == {}


def test_envelope_timestamps_win_over_printed_ones(tmp_path: Path) -> None:
    log = "2026-03-01 08:00:00 hello\nepoch 1 loss 0.5\nbye\n"
    facts = facts_of(feed(write(tmp_path, log), FactsParser(), envelope_ts=1000.0))
    assert (facts["start_time"], facts["end_time"]) == (1000.0, 1002.0)


# -- packages ----------------------------------------------------------------------------------

PACKAGES = """\
pip freeze:
absl-py==2.1.0
aiohttp==3.9
numpy==1.26.4
torch @ file:///home/conda/feedstock_root/build_artifacts/torch-2.1.0-cp311-cp311-linux_x86_64.whl
epoch 1 loss 0.5
Package            Version
------------------ ---------
accelerate         0.29.3
tokenizers         0.15.2   /home/u/src/tok

# packages in environment at /opt/conda:
#
# Name                    Version                   Build  Channel
_libgcc_mutex             0.1                        main
scipy                     1.11.4          py311h64a7726_0    conda-forge
Versions of relevant libraries:
[pip3] triton==2.1.0
transformers version: 4.40.0
Using keras 3.15.1
Successfully installed einops-0.7.0 peft-0.10.0
Requirement already satisfied: six in /usr/lib/python3/dist-packages (1.16.0)
Traceback (most recent call last):
  File "train.py", line 3, in <module>
    assert step==1.5, step
AssertionError: 3
acc==0.9
lr==0.001
Python version: 3.11.7
CUDA Version: 12.2
"""


def test_packages_from_every_listing_form(tmp_path: Path) -> None:
    got = feed(write(tmp_path, PACKAGES), PackagesParser())
    pkgs = {(r["name"], r["version"]) for r in got["packages"]}
    assert pkgs == {
        ("absl-py", "2.1.0"),
        ("aiohttp", "3.9"),
        ("numpy", "1.26.4"),
        ("torch", "2.1.0"),
        ("accelerate", "0.29.3"),
        ("tokenizers", "0.15.2"),
        ("_libgcc_mutex", "0.1"),
        ("scipy", "1.11.4"),
        ("triton", "2.1.0"),
        ("transformers", "4.40.0"),
        ("keras", "3.15.1"),
        ("einops", "0.7.0"),
        ("peft", "0.10.0"),
        ("six", "1.16.0"),
    }


def test_package_lines_are_claimed_from_the_metric_parsers(tmp_path: Path) -> None:
    parser, out = PackagesParser(), Emitter()
    out.claim_lines = True
    state = parser.new_state()
    parser.parse(LineBatch(["numpy==1.26.4", "epoch 1 loss 0.5"], [0, 14]), state, out)
    assert out.is_claimed(0) and not out.is_claimed(14)


# -- datasets ----------------------------------------------------------------------------------


def rows(got: dict[str, list[dict[str, Any]]], *cols: str) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in cols) for r in got.get("datasets", [])]


def test_corpus_split_sizes() -> None:
    got = feed(CORPUS / "xgboost_native" / "stdout.log", DatasetsParser())
    assert rows(got, "name", "split", "rows", "cols") == [
        ("train", "train", 426, 30),
        ("valid", "valid", 143, 30),
    ]


DATASETS = """\
DatasetDict({
    train: Dataset({
        features: ['text', 'label'],
        num_rows: 25000
    })
    test: Dataset({
        features: ['text', 'label'],
        num_rows: 24000
    })
})
x_train shape: (60000, 28, 28)
X_val.shape = (426, 30)
***** Running training *****
  Num examples = 1,000
  Num Epochs = 3
***** Running Evaluation *****
  Num examples = 143
Loaded 12,345 rows from data/test.csv
Train: 3 [ 100/1251 (  8%)]  Loss: 6.91 (6.93)  Time: 0.5s
train: 0.5
"""


def test_dataset_descriptions(tmp_path: Path) -> None:
    got = feed(write(tmp_path, DATASETS), DatasetsParser())
    assert rows(got, "name", "split", "rows", "cols", "path") == [
        ("train", "train", 25000, 2, None),
        ("test", "test", 24000, 2, None),
        ("x_train", "train", 60000, None, None),
        ("X_val", "valid", 426, 30, None),
        ("train", "train", 1000, None, None),
        ("eval", "eval", 143, None, None),
        ("test", "test", 12345, None, "data/test.csv"),
    ]


def test_dataset_paths_and_fingerprints(tmp_path: Path) -> None:
    log = (
        "Loading dataset from /data/x.parquet\n"
        "data_path: s3://bucket/x\n"
        "train_file = data/train.jsonl\n"
        "dataset sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    )
    got = feed(write(tmp_path, log), DatasetsParser())
    assert rows(got, "name", "split", "path", "fingerprint") == [
        (None, None, "/data/x.parquet", None),
        ("data_path", None, "s3://bucket/x", None),
        ("train_file", "train", "data/train.jsonl", None),
        (None, None, None, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ]


@pytest.mark.parametrize(
    ("label", "split"),
    [
        ("x_train", "train"),
        ("val", "valid"),
        ("validation", "valid"),
        ("Test", "test"),
        ("eps", None),
    ],
)
def test_split_of(label: str, split: str | None) -> None:
    assert split_of(label) == split


# -- artifacts ---------------------------------------------------------------------------------

ARTIFACTS = """\
[INFO|trainer.py:3000] 2026-01-01 10:00:00,000 >> Saving model checkpoint to out/checkpoint-500
Model weights saved in out/final/model.safetensors
Checkpoint saved: ckpt.pt
Epoch 4, global step 500: 'val_loss' reached 0.12345 (best 0.12345), saving model to '/ckpt/epoch=4-step=500.ckpt' as top 1
Epoch 1: val_loss improved from inf to 0.30000, saving model to model.keras
wrote predictions to out/preds.csv.
Saved 3 images
Saving to cache
  File "/app/train.py", line 9, in save
"""


def test_artifacts_and_their_kinds(tmp_path: Path) -> None:
    got = feed(write(tmp_path, ARTIFACTS), ArtifactsParser())
    assert [(r["path"], r["kind"]) for r in got["artifacts"]] == [
        ("out/checkpoint-500", "checkpoint"),
        ("out/final/model.safetensors", "model"),
        ("ckpt.pt", "checkpoint"),
        ("/ckpt/epoch=4-step=500.ckpt", "checkpoint"),
        ("model.keras", "model"),
        ("out/preds.csv", "file"),
    ]
    corpus = feed(CORPUS / "xgboost_native" / "stdout.log", ArtifactsParser())
    assert [(r["path"], r["kind"]) for r in corpus["artifacts"]] == [
        ("/scratch/xgb_model.json", "model")
    ]


def test_artifact_memory_stays_bounded_on_a_long_log() -> None:
    """A checkpoint path per save must not grow the checkpointed state with the log: past
    SEEN_CAP paths the oldest half is forgotten, and every new path is still reported."""
    from loglake.parse.bounded import SEEN_CAP

    parser = ArtifactsParser()
    state = parser.new_state()
    out = Emitter()
    n = SEEN_CAP + SEEN_CAP // 2 + 10
    texts = [f"Saved checkpoint to /ckpt/step-{i}.pt" for i in range(n)]
    for start in range(0, n, 5000):
        part = texts[start : start + 5000]
        parser.parse(LineBatch(part, list(range(start, start + len(part)))), state, out)
        assert len(state["seen"]) <= SEEN_CAP
    assert len(out.tables()["artifacts"].data["path"]) == n
    assert f"/ckpt/step-{n - 1}.pt" in state["seen"] and "/ckpt/step-0.pt" not in state["seen"]


def test_artifact_kind() -> None:
    assert artifact_kind("Saved ", "runs/exp/weights/best.pt") == "model"
    assert artifact_kind("Saving ", "out/step-100/") == "checkpoint"
    assert artifact_kind("wrote ", "out/report.html") == "file"


# -- into the lake -----------------------------------------------------------------------------


def test_facts_packages_datasets_artifacts_reach_the_lake(tmp_path: Path) -> None:
    run_dir = tmp_path / "logs" / "bert-sweep"
    run_dir.mkdir(parents=True)
    body = (
        SLURM_HEADER.replace("srun: error: gpu-node-12: task 0: Exited with exit code 1\n", "")
        + "numpy==1.26.4\ntorch==2.1.0\n"
        + "train rows=426 valid rows=143 features=30\n"
        + "Saved model to /scratch/model.pt\n"
        + "Training complete\n"
    )
    (run_dir / "stdout.log").write_text(body)
    report = run_index(
        Config(lake=str(tmp_path / "lake")), [str(tmp_path / "logs")], jobs=1, finished=True
    )
    assert not report.failures
    con = loglake.connect(str(tmp_path / "lake"))
    run = con.sql(
        "SELECT status, host, user, git_commit, command, exit_code, env, epoch(start_time), "
        "epoch(end_time) FROM runs WHERE experiment = 'bert-sweep'"
    ).fetchall()
    assert len(run) == 1
    status, host, user, commit, command, exit_code, env, start, end = run[0]
    assert (status, host, user, commit) == ("completed", "gpu-node-12", "alice", "3f2a1b9c0d4e")
    assert command.startswith("torchrun --nproc_per_node=8 train.py")
    assert exit_code is None
    assert json.loads(env)["gpu"] == "NVIDIA A100-SXM4-80GB"
    assert (start, end) == pytest.approx((1772352000.1, 1772357400.25))
    assert sorted(con.sql("SELECT name, version FROM packages").fetchall()) == [
        ("numpy", "1.26.4"),
        ("torch", "2.1.0"),
        ("torch", "2.1.0+cu121"),  # "torch version: 2.1.0+cu121" in the header
    ]
    assert sorted(con.sql("SELECT split, rows, cols FROM datasets").fetchall()) == [
        ("train", 426, 30),
        ("valid", 143, 30),
    ]
    assert con.sql("SELECT path, kind FROM artifacts").fetchall() == [
        ("/scratch/model.pt", "model")
    ]
