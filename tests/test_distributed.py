"""Data-parallel training: N processes with per-rank batch b (torch's elastic launcher, MindSpore's msrun) train the
weights one process trains with batch N b, as gradient accumulation does; a failed rank is named and the run
resumes with another number of processes.

Tolerances: the runs differ only in the order float32 sums are taken (a mean over ranks or micro-batches
instead of over one batch), about 1e-7 relative per step; AdamW's normalised updates of lr 2e-3 carry that into
the weights as < 1e-5 after four steps (measured: 5e-7).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from earthport.backends.base import micro_token_permutations, token_permutations
from earthport.cli import main
from earthport.cli.models import without_option
from earthport.config import TrainConfig
from earthport.data.samples import epoch_order
from earthport.errors import ConfigError
from earthport.migrate.checkpoint_io import load_checkpoint, read_weights
from earthport.models.aigoms.config import PRESETS as AIGOMS_PRESETS
from earthport.ranks import World, current
from earthport.workflows.train import train

SHARED = {"device": "cpu", "max_train_samples": 8, "max_valid_samples": 4, "lr": 2e-3, "max_epochs": 2,
          "patience": 10}  # fmt: skip
MODELS = {  # model: (data fixture, its settings): AI-GOMS's epoch 1 leaves the mask token unused (ratio 0)
    "fourcastnet": ("atmosphere_dir", {}),
    "graphcast": ("atmosphere_dir", {"model": "graphcast"}),
    "aigoms": ("ocean_dir", {"model": "aigoms", "objective": "masked_pretrain", "mask_epochs": (1,),
                             "mask_ratios": (0.0,), "mask_ratio": 0.5, "loss": "channel_relative_l2"}),
}  # fmt: skip
CASES = [
    pytest.param("torch", model, id=f"torch-{model}") for model in MODELS
] + [  # MindSpore's GraphCast and AI-GOMS take 40 s each in PyNative (CI runs them)
    pytest.param("mindspore", model, id=f"mindspore-{model}",
                 marks=[pytest.mark.mindspore] + ([pytest.mark.slow] if model != "fourcastnet" else []))
    for model in MODELS
]  # fmt: skip


@pytest.fixture(autouse=True)
def _graph_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHPORT_DATA", str(tmp_path / "cache"))  # GraphCast's graphs, not in ~


def _cli_arguments(data, out, framework: str, settings: dict, batch: int) -> list[str]:
    """``earthport train`` arguments for SHARED and ``settings`` at per-rank ``batch``."""
    arguments = ["train", "--data", str(data), "--out", str(out), "--framework", framework, "--batch-size",
                 str(batch), "--device", "cpu", "--lr", str(SHARED["lr"]), "--epochs", str(SHARED["max_epochs"]),
                 "--quiet"]  # fmt: skip
    for key, value in {**settings, "max_train_samples": 8, "max_valid_samples": 4}.items():
        if key == "model":
            arguments += ["--model", value]
        else:
            text = f"[{','.join(map(str, value))}]" if isinstance(value, tuple) else str(value)
            arguments += ["--set", f"train.{key}={text}"]
    return arguments


def _weights(run, framework: str) -> dict[str, np.ndarray]:
    return read_weights(run / f"last.{'pt' if framework == 'torch' else 'ckpt'}").state


def _assert_same_run(record: dict, reference: dict, run, reference_run, framework: str) -> None:
    np.testing.assert_allclose(record["step_losses"], reference["step_losses"], rtol=1e-5)
    np.testing.assert_allclose([h["valid_loss"] for h in record["history"]],
                               [h["valid_loss"] for h in reference["history"]], rtol=1e-5)  # fmt: skip
    ours, theirs = _weights(run, framework), _weights(reference_run, framework)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(("framework", "model"), CASES)
def test_two_processes_and_accumulation_train_the_weights_of_the_global_batch(framework, model, request, tmp_path,
                                                                              capsys):  # fmt: skip
    """1 process batch 4 = 2 processes batch 2 = 1 process batch 2 x accumulate 2 (two epochs, two steps each)."""
    if framework == "mindspore":
        pytest.importorskip("mindspore")
    fixture, settings = MODELS[model]
    data = request.getfixturevalue(fixture)
    if framework == "mindspore" and model != "fourcastnet":  # FourCastNet's case proves the compiled step
        settings = {**settings, "ms_mode": "pynative"}  # compiling GraphCast's and AI-GOMS's per process is slow
    config = {**SHARED, **settings, "framework": framework}
    reference = train(TrainConfig(batch_size=4, **config), data, tmp_path / "one", progress=False)
    accumulated = train(TrainConfig(batch_size=2, accumulate=2, **config), data, tmp_path / "acc", progress=False)
    _assert_same_run(accumulated, reference, tmp_path / "acc", tmp_path / "one", framework)
    assert accumulated["global_batch_size"] == 4 and accumulated["processes"] == 1

    assert main([*_cli_arguments(data, tmp_path / "two", framework, settings, 2), "--nproc", "2"]) == 0
    record = json.loads((tmp_path / "two" / "record.json").read_text())
    _assert_same_run(record, reference, tmp_path / "two", tmp_path / "one", framework)
    assert record["processes"] == 2 and record["global_batch_size"] == 4
    assert record["launcher"] == ("torchrun" if framework == "torch" else "msrun")
    assert "in 2 processes" in capsys.readouterr().out  # the summary, once


@pytest.mark.parametrize("model", list(MODELS))
def test_fsdp_trains_the_weights_of_the_global_batch_and_resumes_from_its_gathered_checkpoint(model, request,
                                                                                             tmp_path):  # fmt: skip
    """parallel=fsdp (FSDP2 on gloo): 2 sharded processes with batch 2, stopped after 3 of 4 steps and resumed,
    train the weights of 1 process with batch 4; its checkpoints hold the whole model in an unsharded run's layout
    (the reference's names and shapes)."""
    fixture, settings = MODELS[model]
    data = request.getfixturevalue(fixture)
    reference = train(TrainConfig(batch_size=4, **SHARED, **settings), data, tmp_path / "one", progress=False)
    arguments = [*_cli_arguments(data, tmp_path / "two", "torch", {**settings, "parallel": "fsdp"}, 2), "--nproc", "2"]
    assert main([*arguments, "--max-steps", "3"]) == 0
    assert load_checkpoint(tmp_path / "two" / "last.pt")["state"]["step"] == 3
    assert main([*arguments, "--resume"]) == 0
    record = json.loads((tmp_path / "two" / "record.json").read_text())
    _assert_same_run(record, reference, tmp_path / "two", tmp_path / "one", "torch")


def test_two_processes_with_accumulation_and_a_short_last_step(atmosphere_dir, tmp_path):
    """2 processes x batch 1 x accumulate 2 on 6 samples: steps of 4 and 2 samples, as 1 process with batch 4 (the
    short step's micro-batches weigh by their samples; DDP syncs once per step)."""
    config = {**SHARED, "max_train_samples": 6, "max_epochs": 1}
    reference = train(TrainConfig(batch_size=4, **config), atmosphere_dir, tmp_path / "one", progress=False)
    arguments = _cli_arguments(atmosphere_dir, tmp_path / "two", "torch", {"accumulate": 2, "max_epochs": 1}, 1)
    arguments = [a.replace("max_train_samples=8", "max_train_samples=6") for a in arguments]
    assert main([*arguments, "--epochs", "1", "--nproc", "2"]) == 0
    record = json.loads((tmp_path / "two" / "record.json").read_text())
    assert len(record["step_losses"]) == 2
    _assert_same_run(record, reference, tmp_path / "two", tmp_path / "one", "torch")


def test_a_failed_rank_is_named_and_the_run_resumes_in_one_process(atmosphere_dir, tmp_path, monkeypatch, capsys):
    """Rank 1 fails at the third step of four; the run ends naming it, rank 0 having saved step 2; --resume in one
    process with the global batch ends with the weights of an uninterrupted run."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    from earthport.backends.torch.trainer import TorchTrainer\n"
        "    step = TorchTrainer.train_step\n"
        "    def failing(self, micro_batches):\n"
        "        if self.scheduler.last_epoch == 2:\n"
        "            raise RuntimeError('injected failure')\n"
        "        return step(self, micro_batches)\n"
        "    TorchTrainer.train_step = failing\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    config = {**SHARED, "max_train_samples": 16, "max_epochs": 1, "checkpoint_every": 1}
    arguments = _cli_arguments(atmosphere_dir, tmp_path / "run", "torch", {"checkpoint_every": 1}, 2)
    arguments = [a.replace("max_train_samples=8", "max_train_samples=16") for a in arguments]
    assert main([*arguments, "--epochs", "1", "--nproc", "2"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "rank 1 of 2 failed" in error and "injected failure" in error and "--resume" in error
    assert load_checkpoint(tmp_path / "run" / "last.pt")["state"]["step"] == 2
    monkeypatch.delenv("PYTHONPATH")
    resumed = train(TrainConfig(batch_size=4, **config), atmosphere_dir, tmp_path / "run", resume=True,
                    progress=False)  # fmt: skip
    whole = train(TrainConfig(batch_size=4, **config), atmosphere_dir, tmp_path / "whole", progress=False)
    _assert_same_run(resumed, whole, tmp_path / "run", tmp_path / "whole", "torch")


def test_nproc_under_a_launcher_is_refused(atmosphere_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    arguments = _cli_arguments(atmosphere_dir, tmp_path / "run", "torch", {}, 2)
    assert main([*arguments, "--nproc", "2"]) == 2
    assert "drop --nproc" in capsys.readouterr().err


def test_the_launchers_environments_name_the_rank():
    assert current({}) == World()
    assert current({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(1, 4, 1, "torchrun")
    assert current({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}) == World(5, 8, 1, "slurm")
    worker = current({"RANK_ID": "1", "RANK_SIZE": "2", "DEVICE_ID": "1", "MS_ROLE": "MS_WORKER"})
    assert worker == World(1, 2, 1, "msrun") and not worker.main
    assert current({"RANK_ID": "0", "RANK_SIZE": "2", "MS_ROLE": "MS_SCHED"}).scheduler
    with pytest.raises(ConfigError, match="RANK=4 is not in 0..3"):
        current({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        current({"RANK": "0", "WORLD_SIZE": "two"})


def test_ranks_take_the_single_process_global_batch_in_turn_and_resume_at_any_count():
    """Global batch g of N ranks with batch b is the single process's batch g with batch N b, split in turn; a
    skip (samples already trained on) continues the same permutation with any N."""
    whole = epoch_order(20, epoch=1, seed=4)
    shards = [epoch_order(20, epoch=1, seed=4, rank=r, world_size=2) for r in range(2)]
    for g in range(5):
        together = np.sort(np.concatenate([shard[2 * g : 2 * g + 2] for shard in shards]))
        np.testing.assert_array_equal(together, np.sort(whole[4 * g : 4 * g + 4]))
    resumed = [epoch_order(20, epoch=1, seed=4, rank=r, world_size=3, skip=8) for r in range(3)]
    assert {len(shard) for shard in resumed} == {4}  # 12 left, 4 each
    np.testing.assert_array_equal(np.sort(np.concatenate(resumed)), np.sort(whole[8:]))
    uneven = [epoch_order(7, 0, shuffle=False, rank=r, world_size=2, pad=False) for r in range(2)]
    assert [len(shard) for shard in uneven] == [4, 3]  # validation: disjoint, nothing repeated


def test_masks_follow_the_sample_whatever_the_split():
    """A masked_pretrain sample hides the same tokens whether one process or rank r's micro-batch holds it."""
    config = TrainConfig(model="aigoms", objective="masked_pretrain", seed=3)
    full = token_permutations(config, AIGOMS_PRESETS["tiny"], 8, step=5)
    for rank in range(2):
        micro = micro_token_permutations(config, AIGOMS_PRESETS["tiny"], [2, 2], 5, World(rank, 2))
        rows = np.concatenate(micro)
        np.testing.assert_array_equal(rows, full[[rank, 2 + rank, 4 + rank, 6 + rank]])


def test_the_workers_command_line_leaves_out_nproc():
    argv = ["train", "--data", "d", "--nproc", "2", "--out", "o"]
    assert without_option(argv, "--nproc") == ["train", "--data", "d", "--out", "o"]
    assert without_option(["train", "--nproc=2", "--npr", "3", "--quiet"], "--nproc") == ["train", "--quiet"]
