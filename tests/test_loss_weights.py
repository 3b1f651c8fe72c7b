"""GraphCast's loss weights (DeepMind ``weighted_mse_per_level``) folded into earthport's per-cell loss weights: the
masked MSE with them is DeepMind's loss over a constant; runs accept and record the option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earthport.backends.torch.losses import masked_mse
from earthport.config import TrainConfig, load_train_config
from earthport.data.channels import variable_and_level
from earthport.errors import ConfigError
from earthport.metrics.loss_weights import graphcast_channel_weights, graphcast_lat_weights, loss_weights
from earthport.metrics.weights import lat_weights
from earthport.models import registry
from earthport.workflows.train import train
from earthport.workflows.training_loop import prepare_data

QUICK = {"device": "cpu", "batch_size": 4, "max_train_samples": 8, "max_valid_samples": 4, "max_epochs": 1}


def _deepmind_lat_weights(lat: np.ndarray) -> np.ndarray:
    """DeepMind's weights of a grid with poles: cos(lat) sin(d/2), sin^2(d/4) on the pole rows, mean 1."""
    delta = np.deg2rad(abs(lat[1] - lat[0]))
    weights = np.cos(np.deg2rad(lat)) * np.sin(delta / 2)
    weights[[0, -1]] = np.sin(delta / 4) ** 2
    return weights / weights.mean()


def _deepmind_loss(pred: dict, target: dict, levels: dict, lat: np.ndarray, w_var: dict) -> float:
    """weighted_mse_per_level written out: fields [batch, lat, lon] or [batch, lat, lon, level]; per variable the
    mean over lat, lon (and level) of err^2 w_lat w_level, weighted and summed over variables, mean over batch."""
    w_lat = _deepmind_lat_weights(lat)
    total = np.zeros(next(iter(pred.values())).shape[0])
    for name, p in pred.items():
        err = (p - target[name]) ** 2
        if name in levels:
            err = err * w_lat[None, :, None, None] * (levels[name] / levels[name].mean())[None, None, None, :]
        else:
            err = err * w_lat[None, :, None]
        total += w_var.get(name, 1.0) * err.reshape(len(err), -1).mean(axis=1)
    return float(total.mean())


@pytest.mark.parametrize("height", [721, 121, 16, 5])
def test_area_weights_are_deepminds_on_grids_with_poles(height):
    lat = np.linspace(90, -90, height)
    np.testing.assert_allclose(lat_weights(lat, "area"), _deepmind_lat_weights(lat), rtol=1e-10)  # sin differences
    np.testing.assert_allclose(graphcast_lat_weights(lat[::-1]), _deepmind_lat_weights(lat)[::-1], rtol=1e-10)
    offset = 90 - (np.arange(height - 1) + 0.5) * 180 / (height - 1)  # no pole row: DeepMind's cos(lat)
    cos = np.cos(np.deg2rad(offset))
    np.testing.assert_allclose(graphcast_lat_weights(offset), cos / cos.mean(), rtol=1e-12)


def test_channel_weights_are_variable_times_level_over_the_levels():
    names = ["z500", "t2m", "z850", "u10", "msl", "tp6", "sst", "so_10m"]
    weights = graphcast_channel_weights([variable_and_level(n) for n in names])
    np.testing.assert_allclose(weights, [500 / 675 / 2, 1.0, 850 / 675 / 2, 0.1, 0.1, 0.1, 1.0, 1.0], rtol=1e-12)
    assert variable_and_level("z500") == ("z", 500) and variable_and_level("so_10m") == ("so_10m", None)


def test_masked_mse_with_the_weights_is_deepminds_loss_over_the_sum_of_variable_weights():
    """On random fields of several variables (three with levels, listed out of order): masked_mse(W) = L / 4.3."""
    rng = np.random.default_rng(0)
    levels = {"z": np.array([500.0, 850.0]), "t": np.array([850.0]), "u": np.array([250.0, 500.0, 1000.0])}
    surface = ["t2m", "u10", "v10", "msl", "tp6", "sp"]
    batch, lat, lon = 3, np.linspace(90, -90, 9), 12
    pred = {v: rng.normal(size=(batch, lat.size, lon, len(levels[v]))) for v in levels}
    pred |= {v: rng.normal(size=(batch, lat.size, lon)) for v in surface}
    target = {v: rng.normal(size=p.shape) for v, p in pred.items()}
    w_var = {"t2m": 1.0, "u10": 0.1, "v10": 0.1, "msl": 0.1, "tp6": 0.1}
    want = _deepmind_loss(pred, target, levels, lat, w_var)
    channels = [(v, int(level)) for v in levels for level in levels[v]] + [(v, None) for v in surface]
    order = rng.permutation(len(channels))
    channels = [channels[i] for i in order]

    def stack(fields: dict) -> torch.Tensor:  # earthport's [batch, channel, lat, lon]
        planes = [fields[v][..., list(levels[v]).index(level)] if level else fields[v] for v, level in channels]
        return torch.from_numpy(np.stack(planes, axis=1))

    names = [f"{v}{level}" if level else v for v, level in channels]
    assert [variable_and_level(n) for n in names] == channels  # earthport's names parse back to them
    weights = np.broadcast_to(loss_weights("graphcast", channels, lat)[:, :, None], (len(channels), lat.size, lon))
    constant = 3 * 1.0 + 1.0 + 0.1 * 4 + 1.0  # z, t, u, t2m; u10, v10, msl, tp6; sp
    assert np.isclose(weights.sum(), lat.size * lon * constant)
    err = (stack(pred) - stack(target)).numpy() ** 2
    np.testing.assert_allclose((weights * err).sum() / (batch * weights.sum()), want / constant, rtol=1e-12)
    got = float(masked_mse(stack(pred), stack(target), torch.from_numpy(weights.copy())))  # float32 inside
    np.testing.assert_allclose(got, want / constant, rtol=1e-6)


def test_a_bad_kind_is_a_config_error_and_the_option_reaches_the_config():
    with pytest.raises(ConfigError, match=r"loss_weights 'deepmind' is not one of \('graphcast',\)"):
        TrainConfig(loss_weights="deepmind")
    with pytest.raises(ConfigError, match="loss_weights"):
        loss_weights("deepmind", [("z", 500)], np.array([0.0]))
    assert load_train_config(sets=["loss_weights=graphcast"]).loss_weights == "graphcast"
    assert "loss_weights=graphcast" in registry.spec("graphcast").study_sets


def test_a_torch_run_folds_the_weights_into_the_loss_and_records_them(atmosphere_dir, tmp_path):
    config = TrainConfig(loss_weights="graphcast", **QUICK)
    data = prepare_data(config, atmosphere_dir)
    names = data.info["output_channels"]
    want = loss_weights("graphcast", [variable_and_level(n) for n in names], data.train_pairs.lat)
    assert data.mask is not None and data.mask.dtype == np.float32 and data.mask.shape == (len(names), 16, 32)
    np.testing.assert_allclose(data.mask, np.broadcast_to(want[:, :, None], data.mask.shape), rtol=1e-6)
    weighted = train(config, atmosphere_dir, tmp_path / "weighted", max_steps=2, progress=False)
    plain = train(TrainConfig(**QUICK), atmosphere_dir, tmp_path / "plain", max_steps=2, progress=False)
    assert weighted["train_config"]["loss_weights"] == "graphcast" and plain["train_config"]["loss_weights"] == ""
    assert np.isfinite(weighted["step_losses"]).all() and weighted["step_losses"][0] != plain["step_losses"][0]
