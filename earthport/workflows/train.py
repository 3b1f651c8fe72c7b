"""Train a model to convergence, resumably, in PyTorch or MindSpore (``TrainConfig.framework``).

``RUN/`` holds ``last.<ext>`` (everything to resume), ``best.<ext>`` (the best validation loss so far),
``config.yaml`` (the resolved configuration) and ``record.json`` (the run record, rewritten after every
epoch); ``<ext>`` is ``pt`` for PyTorch, ``ckpt`` or ``safetensors`` for MindSpore. The loop, its stop rules
and the record are framework-free (``training_loop``); the framework part is the backend's ``TRAINER``,
imported only when asked for, so a torch run never imports MindSpore and vice versa.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from earthport import files, ranks
from earthport.backends.base import Trainer, backend
from earthport.config import TrainConfig
from earthport.errors import ConfigError, DataError, EarthportError
from earthport.workflows.evaluate import open_fcn
from earthport.workflows.infer import load_checkpoint
from earthport.workflows.training_loop import TrainState, check_out, prepare_data, run_training

__all__ = ["TrainState", "train"]


def train(
    config: TrainConfig, data: str | Path, out: str | Path, resume: bool = False, max_steps: int | None = None,
    progress: bool = True, overwrite: bool = False, init_from: str | Path | None = None,
) -> dict:  # fmt: skip
    """Train ``config`` on ``data`` into ``out``; returns the run record. ``max_steps`` stops after that many
    optimizer steps in total (the run can be resumed), e.g. to split a run across jobs. With ``resume`` the run
    continues from the ``last.*`` in ``out`` with the most optimizer steps, whichever framework wrote it;
    ``overwrite`` replaces an earlier run of earthport's in ``out`` (never a folder earthport did not write).
    ``out`` is locked for the run: a second process training into it is refused. ``init_from``: a new run
    starting from another run's (or a converted or original) checkpoint's weights, e.g. fine-tuning a pre-trained
    model; the optimizer, schedule and epochs start afresh. Under a launcher (torchrun, msrun, srun;
    ``workflows.launch``) every rank runs this on its shard of the data, and rank 0 writes the run."""
    out = Path(out)
    world = ranks.current()
    if resume and init_from is not None:
        raise ConfigError("--init-from starts a new run from other weights, --resume continues this one: give one")
    if resume and not out.is_dir():
        raise DataError(out, "run folder not found (nothing to --resume)")
    if world.main:
        check_new_run(out, resume, overwrite)
    trainer_class = backend(config.framework).TRAINER  # one line saying how to install MindSpore, before any work
    data_ = prepare_data(config, data)
    with files.run_lock(out, "earthport train") if world.main else contextlib.nullcontext():
        if not resume and world.main:
            files.replace(out, overwrite, folder=True)
        resume_from = check_out(out, resume) if resume or world.main else None  # rank 0 writes the new run's files
        trainer = trainer_class(config, data_)
        if init_from is not None:
            data_.init_from = _initialise(trainer, config, data, data_.info, Path(init_from))
        return run_training(trainer, data_, out, resume_from, max_steps, progress)


def check_new_run(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, to start a new run over a run (say --resume) or over what earthport did not write."""
    if not resume and not overwrite:
        check_out(out, resume)
    if not resume:
        files.check_output(out, overwrite, folder=True)


def _initialise(trainer: Trainer, config: TrainConfig, data: str | Path, info: dict, checkpoint: Path) -> dict:
    """Load ``checkpoint``'s weights into the new run's model; refused when its model or channels differ."""
    loaded = load_checkpoint(checkpoint, trainer.framework, open_fcn(data))
    if loaded.model != config.model:
        raise ConfigError(f"{checkpoint}: --init-from holds a {loaded.model} model, this run trains {config.model}")
    if loaded.source == "earthport" and (loaded.input_channels[: len(info["input_channels"])] != info["input_channels"]
                                         or loaded.output_channels != info["output_channels"]):  # fmt: skip
        raise ConfigError(
            f"{checkpoint}: --init-from reads {loaded.input_channels} and writes {loaded.output_channels}; this run "
            f"reads {info['input_channels']} and writes {info['output_channels']}"
        )
    try:
        trainer.initialise(loaded)
    except (RuntimeError, ValueError, EarthportError) as err:
        detail = " ".join(str(err).split())[:400]
        raise ConfigError(f"{checkpoint}: --init-from weights do not fit this run's model ({detail})") from None
    return {"path": str(checkpoint), "source": loaded.source}
