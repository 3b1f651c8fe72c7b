"""Train a model to convergence, resumably, in PyTorch or MindSpore (``TrainConfig.framework``).

``RUN/`` holds ``last.<ext>`` (everything to resume), ``best.<ext>`` (the best validation loss so far),
``config.yaml`` (the resolved configuration) and ``record.json`` (the run record, rewritten after every
epoch); ``<ext>`` is ``pt`` for PyTorch, ``ckpt`` or ``safetensors`` for MindSpore. The loop, its stop rules
and the record are framework-free (``training_loop``); the framework parts are ``train_torch`` and
``train_mindspore``, imported only when asked for, so a torch run never imports MindSpore and vice versa.
"""

from __future__ import annotations

from pathlib import Path

from earthport import files
from earthport.config import FRAMEWORKS, TrainConfig
from earthport.errors import DataError, EarthportError
from earthport.workflows.training_loop import TrainState, check_out, prepare_data, run_training

__all__ = ["TrainState", "train"]


def train(
    config: TrainConfig, data: str | Path, out: str | Path, resume: bool = False, max_steps: int | None = None,
    progress: bool = True, overwrite: bool = False,
) -> dict:  # fmt: skip
    """Train ``config`` on ``data`` into ``out``; returns the run record. ``max_steps`` stops after that many
    optimizer steps in total (the run can be resumed), e.g. to split a run across jobs. With ``resume`` the run
    continues from the ``last.*`` in ``out`` with the most optimizer steps, whichever framework wrote it;
    ``overwrite`` replaces an earlier run of earthport's in ``out`` (never a folder earthport did not write).
    ``out`` is locked for the run: a second process training into it is refused."""
    out = Path(out)
    if resume and not out.is_dir():
        raise DataError(out, "run folder not found (nothing to --resume)")
    if not resume and not overwrite:
        check_out(out, resume)  # a run there: say --resume
    if not resume:
        files.check_output(out, overwrite, folder=True)
    trainer_class = _trainer_class(config.framework)
    data_ = prepare_data(config, data)
    with files.run_lock(out, "earthport train"):
        if not resume:
            files.replace(out, overwrite, folder=True)
        resume_from = check_out(out, resume)
        trainer = trainer_class(config, data_)
        return run_training(trainer, data_, out, resume_from, max_steps, progress)


def _trainer_class(framework: str) -> type:
    if framework == "torch":
        from earthport.workflows.train_torch import TorchTrainer

        return TorchTrainer
    if framework == "mindspore":
        from earthport.runtime.imports import import_mindspore

        import_mindspore()  # one line saying how to install it, before any data is read
        from earthport.workflows.train_mindspore import MindSporeTrainer

        return MindSporeTrainer
    raise EarthportError(f"unknown framework {framework!r}; expected one of {list(FRAMEWORKS)}")
