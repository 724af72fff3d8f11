"""Run status from real and realistic logs, resolved the way the indexer resolves it.

Each log is written to a real file, read back as bytes, cleaned like the tailer does
(``\\r`` redraws, backspaces, ANSI), fed in small batches with the parser state
round-tripped through JSON between batches (a checkpoint/restart at every batch), then
resolved with ``loglake.runs.summary``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loglake.parse.base import LineBatch
from loglake.parse.builtins.status import StatusParser
from loglake.parse.failures import exit_code_of
from loglake.parse.hints import HintFilter
from loglake.parse.records import Emitter
from loglake.runs.summary import absorb, resolve_status

from .conftest import CORPUS, file_lines

Resolved = tuple[str, str | None, str | None]


def resolve(path: Path, *, idle: bool = True, batch: int = 3) -> Resolved:
    texts, offsets = file_lines(path)
    parser = StatusParser()
    state = parser.new_state()
    summaries: dict = {}
    out = Emitter()
    for i in range(0, len(texts), batch):
        parser.parse(LineBatch(texts[i : i + batch], offsets[i : i + batch]), state, out)
        state = json.loads(json.dumps(state))  # a checkpoint and a restart
        absorb(summaries, out)
        out.clear()
    parser.finalize(state, out, idle=idle)
    absorb(summaries, out, final=True)
    return resolve_status(summaries.get("", {"decisive": None, "final": None}))


def write(tmp_path: Path, text: str, name: str = "job.log") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- the corpus --------------------------------------------------------------------------------


def test_corpus_crash_is_failed_with_the_exception_line() -> None:
    truth = json.loads((CORPUS / "crash_torch" / "truth.json").read_text())
    status, _, error = resolve(CORPUS / "crash_torch" / "stdout.log")
    assert status == "failed"
    assert error == truth["error"]
    assert error == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x19 and 20x64)"


@pytest.mark.parametrize(
    "case", ["hf_trainer_gpt2_notqdm", "keras_mlp", "optuna_study", "sklearn_mlp", "xgboost_native"]
)
def test_corpus_finished_runs_are_completed(case: str) -> None:
    truth = json.loads((CORPUS / case / "truth.json").read_text())
    status, _, error = resolve(CORPUS / case / "stdout.log")
    assert (status, error) == (truth["status"], None) == ("completed", None)


def test_corpus_whole_file_in_one_batch_gives_the_same_answers() -> None:
    for case in ("crash_torch", "keras_mlp", "sklearn_mlp"):
        path = CORPUS / case / "stdout.log"
        assert resolve(path, batch=10_000) == resolve(path, batch=1)


def test_a_growing_log_is_running(tmp_path: Path) -> None:
    p = write(tmp_path, "epoch 1 step 10 loss 0.9\nepoch 1 step 20 loss 0.8\n")
    assert resolve(p, idle=False)[0] == "running"


# -- failures ----------------------------------------------------------------------------------

CUDA_OOM = """\
2026-01-10 10:00:01,001 INFO Starting training on 1 GPU
epoch 1 step 100 loss 2.3012 lr 0.001
epoch 1 step 200 loss 2.1011 lr 0.001
Traceback (most recent call last):
  File "/app/train.py", line 120, in <module>
    main()
  File "/app/train.py", line 98, in main
    out = model(batch)
          ^^^^^^^^^^^^
  File "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1501, in _call_impl
    return forward_call(*args, **kwargs)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total \
capacity of 79.15 GiB of which 1.06 GiB is free. Of the allocated memory 75.10 GiB is allocated \
by PyTorch. See documentation for Memory Management (https://pytorch.org/docs/stable/notes/cuda.html)
srun: error: gpu-node-12: task 0: Exited with exit code 1
"""


def test_cuda_oom_is_failed_out_of_memory_with_the_exception_line(tmp_path: Path) -> None:
    status, reason, error = resolve(write(tmp_path, CUDA_OOM))
    assert (status, reason) == ("failed", "out_of_memory")
    assert error.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00")


def test_slurm_time_limit(tmp_path: Path) -> None:
    log = (
        "Epoch 1:  12%|█▏        | 120/1000 [02:00<14:40,  1.00it/s, loss=0.512, v_num=3]\r"
        "Epoch 1:  13%|█▎        | 130/1000 [02:10<14:30,  1.00it/s, loss=0.498, v_num=3]"
        "slurmstepd: error: *** JOB 4151016 ON della-r3c2n9 CANCELLED AT 2026-01-25T14:35:32 "
        "DUE TO TIME LIMIT ***\n"
    )
    status, reason, error = resolve(write(tmp_path, log))
    assert (status, reason) == ("failed", "time_limit")
    assert "JOB 4151016" in error


def test_slurm_cancel_message_wrapped_over_two_lines(tmp_path: Path) -> None:
    log = (
        "step 10 loss 0.5\n"
        "slurmstepd: error: *** JOB 38193 ON gra533 CANCELLED AT 2017-07-02T16:35:48\n"
        "DUE TO TIME LIMIT ***\n"
    )
    assert resolve(write(tmp_path, log))[:2] == ("failed", "time_limit")


def test_a_wrapped_cancel_reason_is_one_failure(tmp_path: Path) -> None:
    """The "DUE TO ..." continuation is the cancel line's reason, not a second marker."""
    log = (
        "step 10 loss 0.5\n"
        "slurmstepd: error: *** JOB 123 ON n1 CANCELLED AT 2026-11-27T10:00:00\n"
        " DUE TO PREEMPTION ***\n"
    )
    texts, offsets = file_lines(write(tmp_path, log))
    out = Emitter()
    parser = StatusParser()
    parser.parse(LineBatch(texts, offsets), parser.new_state(), out)
    seen = list(zip(out.statuses.data["reason"], out.statuses.data["offset"], strict=True))
    assert seen == [("cancelled", offsets[1]), ("preempted", offsets[2])]
    assert resolve(write(tmp_path, log))[:2] == ("failed", "preempted")


@pytest.mark.parametrize(
    "line", ["Floating point exception", "Floating point exception (core dumped)"]
)
def test_a_process_killed_by_sigfpe_failed(tmp_path: Path, line: str) -> None:
    log = f"epoch 1 loss=0.5\nepoch 2 loss=0.4\n{line}\n"
    assert resolve(write(tmp_path, log)) == ("failed", None, line)


@pytest.mark.parametrize("script", ["run.sh", "./run.sh", "/home/u/job/run.sh"])
def test_bash_reports_a_killed_child_of_a_script_by_any_path(tmp_path: Path, script: str) -> None:
    line = f"{script}: line 12: 4567 Killed                  python train.py --lr 0.1"
    log = f"step 10 loss 0.5\n{line}\n"
    assert resolve(write(tmp_path, log))[:2] == ("failed", None)


def test_slurm_scancel_without_reason_is_cancelled(tmp_path: Path) -> None:
    log = (
        "step 10 loss 0.5\nslurmstepd: error: *** JOB 77 ON n1 CANCELLED AT 2026-01-01T00:00 ***\n"
    )
    assert resolve(write(tmp_path, log))[:2] == ("failed", "cancelled")


def test_preemption(tmp_path: Path) -> None:
    log = (
        "step 1000 | loss 1.234 | lr 3e-4\n"
        "step 1010 | loss 1.230 | lr 3e-4\n"
        "slurmstepd: error: *** STEP 8812.0 ON gpu-a-03 CANCELLED AT 2026-02-02T01:00:00 "
        "DUE TO PREEMPTION ***\n"
    )
    assert resolve(write(tmp_path, log))[:2] == ("failed", "preempted")


def test_spot_instance_sigterm_is_preempted(tmp_path: Path) -> None:
    log = (
        "step 1000 loss 1.23\n"
        "2026-02-02 01:00:00,000 WARNING Spot instance interruption notice received\n"
        "2026-02-02 01:00:05,000 INFO Received SIGTERM, saving checkpoint\n"
    )
    assert resolve(write(tmp_path, log))[:2] == ("failed", "preempted")


def test_node_failure_and_oom_kill(tmp_path: Path) -> None:
    node = "step 5 loss 1.0\n*** JOB 9 ON n7 CANCELLED AT 2026-03-01 DUE TO NODE FAILURE ***\n"
    assert resolve(write(tmp_path, node, "a.log"))[:2] == ("failed", "node_failure")
    oom = (
        "step 5 loss 1.0\n"
        "/var/spool/slurmd/job123/slurm_script: line 12: 4567 Killed        python train.py\n"
        "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=123.batch. Some of your "
        "processes may have been killed by the cgroup out-of-memory handler.\n"
    )
    assert resolve(write(tmp_path, oom, "b.log"))[:2] == ("failed", "out_of_memory")


def test_keyboard_interrupt_is_cancelled(tmp_path: Path) -> None:
    log = (
        "iter 10 loss 0.9\n"
        "iter 20 loss 0.8\n"
        "^CTraceback (most recent call last):\n"
        '  File "train.py", line 40, in <module>\n'
        "    time.sleep(1)\n"
        "KeyboardInterrupt\n"
    )
    assert resolve(write(tmp_path, log)) == ("failed", "cancelled", "KeyboardInterrupt")


NCCL_TIMEOUT = """\
[rank0]: step 120 loss 2.11
[rank1]: step 120 loss 2.12
[rank0]:[E1218 20:27:21.426415540 ProcessGroupNCCL.cpp:629] [Rank 0] Watchdog caught collective \
operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) \
ran for 600081 milliseconds before timing out.
[rank0]:[E1218 20:27:21.500000000 ProcessGroupNCCL.cpp:1595] [PG 0 Rank 0] Some NCCL operations \
have failed or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU \
operations might run on corrupted/incomplete data. To avoid this inconsistency, we are taking \
the entire process down.
terminate called after throwing an instance of 'c10::DistBackendError'
  what():  [PG 0 Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, \
OpType=ALLREDUCE) ran for 600081 milliseconds before timing out.
"""


def test_nccl_timeout(tmp_path: Path) -> None:
    status, reason, error = resolve(write(tmp_path, NCCL_TIMEOUT))
    assert (status, reason) == ("failed", "nccl_timeout")
    assert error.startswith("c10::DistBackendError: [PG 0 Rank 0] Watchdog caught")


TORCHRUN = """\
[rank0]: step 10 loss 1.02
[rank1]: Traceback (most recent call last):
[rank1]:   File "/app/train.py", line 50, in <module>
[rank1]:     loss.backward()
[rank0]: step 11 loss 1.01
[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB. GPU 1 has a total capacity of 79.15 GiB of which 512.00 MiB is free.
W0813 08:21:22.900000 1245483 torch/distributed/elastic/multiprocessing/api.py:897] Sending process 1246012 closing signal SIGTERM
E0813 08:21:22.980000 1245483 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1) local_rank: 1 (pid: 1246013) of binary: /usr/bin/python3
Traceback (most recent call last):
  File "/usr/local/bin/torchrun", line 8, in <module>
    sys.exit(main())
  File "/usr/local/lib/python3.10/dist-packages/torch/distributed/launcher/api.py", line 264, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
train.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-08-13_08:21:22
  host      : gpu-node-7
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 1246013)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_torchrun_child_failure_keeps_the_rank_exception(tmp_path: Path) -> None:
    status, reason, error = resolve(write(tmp_path, TORCHRUN))
    assert (status, reason) == ("failed", "out_of_memory")
    assert error.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00")


def test_torchrun_root_cause_block_alone(tmp_path: Path) -> None:
    log = "step 5 loss 1.0\n" + TORCHRUN[TORCHRUN.index("torch.distributed.elastic") :].replace(
        "exitcode  : 1 (pid: 1246013)", "exitcode  : -9 (pid: 1246013)"
    ).replace(
        "traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html",
        "traceback : Signal 9 (SIGKILL) received by PID 1246013",
    )
    status, _, error = resolve(write(tmp_path, log))
    assert status == "failed"
    assert error == (
        "ChildFailedError: train.py FAILED, rank 1, exitcode -9, "
        "Signal 9 (SIGKILL) received by PID 1246013"
    )


def test_chained_traceback_reports_the_last_exception(tmp_path: Path) -> None:
    log = (
        "Traceback (most recent call last):\n"
        '  File "a.py", line 2, in <module>\n'
        '    d["x"]\n'
        "KeyError: 'x'\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "a.py", line 4, in <module>\n'
        '    raise RuntimeError("config broken:\\n  key x missing")\n'
        "RuntimeError: config broken:\n"
        "  key x missing\n"
    )
    assert resolve(write(tmp_path, log)) == (
        "failed",
        None,
        "RuntimeError: config broken: key x missing",
    )


def test_cpp_abort_and_segfault(tmp_path: Path) -> None:
    seg = "step 3 loss 0.4\nSegmentation fault (core dumped)\n"
    assert resolve(write(tmp_path, seg, "a.log")) == (
        "failed",
        None,
        "Segmentation fault (core dumped)",
    )
    hydra = (
        "Error executing job with overrides: ['lr=0.1']\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 9, in main\n'
        "    raise ValueError('bad lr')\n"
        "ValueError: bad lr\n"
        "\n"
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
    )
    assert resolve(write(tmp_path, hydra, "b.log")) == ("failed", None, "ValueError: bad lr")


def test_completion_marker_then_crash_is_failed(tmp_path: Path) -> None:
    log = (
        "epoch 1 loss 0.5\n"
        "Training finished.\n"
        "Traceback (most recent call last):\n"
        '  File "a.py", line 9, in <module>\n'
        "    save()\n"
        "OSError: [Errno 28] No space left on device\n"
    )
    assert resolve(write(tmp_path, log)) == (
        "failed",
        None,
        "OSError: [Errno 28] No space left on device",
    )


# -- handled errors, clean ends, kills -------------------------------------------------------


def test_handled_exception_then_success_is_completed(tmp_path: Path) -> None:
    log = (
        "epoch 1 loss 0.9\n"
        "2026-01-10 10:00:01,001 ERROR could not reach wandb, will retry\n"
        "Traceback (most recent call last):\n"
        '  File "/app/log.py", line 12, in push\n'
        "    requests.post(url)\n"
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.wandb.ai', port=443)\n"
        "epoch 2 loss 0.7\n"
        "epoch 3 loss 0.5\n"
        "Training complete in 3m 12s\n"
    )
    assert resolve(write(tmp_path, log))[0] == "completed"


def test_handled_exception_then_clean_end_without_marker(tmp_path: Path) -> None:
    log = (
        "epoch 1 loss 0.9\n"
        "Traceback (most recent call last):\n"
        '  File "/app/log.py", line 12, in push\n'
        "ConnectionError: boom\n"
        "epoch 2 loss 0.7\n"
        "epoch 3 loss 0.5\n"
        "Saved model to out/model.pt\n"
    )
    assert resolve(write(tmp_path, log)) == ("completed", "clean end", None)


def keras_bar(done: int, values: str, *, first: bool = False) -> str:
    """One Keras 3 progress-bar redraw as written to a file: ``\\r``, ANSI bold, the bar."""
    bar = "━" * (20 * done // 23) + " " * (20 - 20 * done // 23)
    text = f"\r{done:2d}/23 \x1b[1m{bar}\x1b[0m 0s 2ms/step - {values}"
    return text + "\b" * 60 if first else text


def test_keras_killed_mid_epoch(tmp_path: Path) -> None:
    val = " - val_accuracy: 0.80 - val_loss: 0.6"
    log = (
        "Epoch 1/10\n"
        + keras_bar(1, "accuracy: 0.60 - loss: 1.1", first=True)
        + keras_bar(23, "accuracy: 0.71 - loss: 0.9" + val)
        + "\nEpoch 2/10\n"
        + keras_bar(23, "accuracy: 0.85 - loss: 0.5" + val)
        + "\nEpoch 3/10\n"
        + keras_bar(1, "accuracy: 0.90 - loss: 0.40", first=True)
        + keras_bar(12, "accuracy: 0.88 - loss: 0.41")
    )
    assert resolve(write(tmp_path, log)) == ("killed", "log stopped mid-stream", None)


def test_keras_killed_between_epochs(tmp_path: Path) -> None:
    val = " - val_accuracy: 0.80 - val_loss: 0.6"
    log = (
        "Epoch 1/10\n"
        + keras_bar(23, "accuracy: 0.71 - loss: 0.9" + val)
        + "\nEpoch 2/10\n"
        + keras_bar(23, "accuracy: 0.85 - loss: 0.5" + val)
        + "\n"
    )
    assert resolve(write(tmp_path, log))[0] == "killed"


def test_keras_final_epoch_completed(tmp_path: Path) -> None:
    log = "Epoch 1/2\n" + keras_bar(23, "loss: 0.9") + "\nEpoch 2/2\n" + keras_bar(23, "loss: 0.5")
    assert resolve(write(tmp_path, log)) == ("completed", "final epoch 2/2 done", None)


def test_tqdm_bar_stopped_at_45_percent(tmp_path: Path) -> None:
    log = (
        "Loading data...\n"
        "100%|██████████| 10/10 [00:01<00:00,  9.50it/s]\n"
        "Epoch 0:  12%|█▏        | 12/100 [00:02<00:17,  5.0it/s, loss=0.51]\r"
        "Epoch 0:  45%|████▌     | 45/100 [00:10<00:12,  4.50it/s, loss=0.312]"
    )
    assert resolve(write(tmp_path, log)) == ("killed", "log stopped mid-stream", None)


def test_loop_reaching_its_declared_total_is_a_clean_end(tmp_path: Path) -> None:
    log = "num_boost_round: 3\n" + "".join(
        f"[{i}]\ttrain-logloss:0.{60 - i}\tvalid-logloss:0.{61 - i}\n" for i in range(3)
    )
    assert resolve(write(tmp_path, log, "a.log"))[0] == "completed"
    cut = "num_boost_round: 30\n" + "".join(
        f"[{i}]\ttrain-logloss:0.{60 - i}\tvalid-logloss:0.{61 - i}\n" for i in range(3)
    )
    assert resolve(write(tmp_path, cut, "b.log"))[0] == "killed"


def test_mid_log_chatter_is_not_completion(tmp_path: Path) -> None:
    log = (
        "done loading data.\n"
        "Finished training tokenizer on 10,000 lines\n"
        "training finished for epoch 1\n"
        "epoch 1 step 10 loss 0.9\n"
        "epoch 1 step 20 loss 0.8\n"
    )
    assert resolve(write(tmp_path, log))[0] == "killed"


def test_exit_code_zero_and_metricless_logs(tmp_path: Path) -> None:
    ok = "epoch 1 loss 0.5\nepoch 2 loss 0.4\nProcess finished with exit code 0\n"
    assert resolve(write(tmp_path, ok, "a.log")) == ("completed", "exit code 0", None)
    assert resolve(write(tmp_path, "hello\nworld\n", "b.log"))[0] == "unknown"
    assert resolve(write(tmp_path, "", "c.log"))[0] == "unknown"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("Process finished with exit code 1", 1),
        ("srun: error: node7: task 0: Exited with exit code 2", 2),
        ("container exited with code 137", 137),
        ("Job finished with exit code 0", 0),
        ("exit_code=3", 3),
        ("subprocess.CalledProcessError: Command 'x' returned non-zero exit status 1.", None),
        ("epoch 3 loss 0.5", None),
    ],
)
def test_exit_code_of(line: str, code: int | None) -> None:
    assert exit_code_of(line) == code


def test_hint_filter_answers_by_line_shape() -> None:
    hints = HintFilter(("Killed", "exit code"))
    assert hints("step 10 Killed") and hints("step 99 Killed")  # same shape, same answer
    assert not hints("step 10 loss 0.5") and not hints("step 11 loss 0.7")
    assert hints("Process finished with exit code 1")
    with pytest.raises(ValueError):
        HintFilter(("md5",))


def test_nan_stop_and_launcher_return_codes(tmp_path: Path) -> None:
    nan = "Epoch: [3]  [ 100/1000]  loss: 2.1\nLoss is nan, stopping training\n"
    assert resolve(write(tmp_path, nan, "a.log"))[:2] == ("failed", "nan_loss")
    ds = (
        "step 10 loss 0.4\n"
        "[2026-01-01 10:00:00,000] [ERROR] [launch.py:321:sigkill_handler] ['python', 'train.py']"
        " exits with return code = -9\n"
    )
    assert resolve(write(tmp_path, ds, "b.log"))[0] == "failed"


def test_tracebacks_python_ignores_do_not_fail_the_run(tmp_path: Path) -> None:
    log = (
        "epoch 3 loss 0.2\n"
        "Training finished.\n"
        "Exception ignored in: <function _MultiProcessingDataLoaderIter.__del__ at 0x7f1c>\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/torch/utils/data/dataloader.py", line 1478, in __del__\n'
        "    self._shutdown_workers()\n"
        "AssertionError: can only test a child process\n"
    )
    assert resolve(write(tmp_path, log))[0] == "completed"
