"""Training samples: pairs dt apart, normalisation, gaps, sharding, and both framework adapters."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from earthport.backends.torch.loader import torch_loader
from earthport.data.fcn import FcnDirectory
from earthport.data.samples import Order, SamplePairs, epoch_order, valid_starts
from earthport.errors import DataError


def test_pairs_dt_apart_and_normalised(atmosphere_dir):
    data = FcnDirectory(atmosphere_dir)
    series, stats = data.series("train"), data.stats()
    pairs = SamplePairs(series, stats, dt=2, steps=3)
    assert len(pairs) == 40 - 6
    inputs, targets = pairs[5]
    raw = series.read(5, 12)
    # float32 z-scores round-trip to within a few float32 ulps of the physical magnitude
    np.testing.assert_allclose(pairs.denormalise(inputs), raw[0], rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(pairs.denormalise(targets), raw[[2, 4, 6]], rtol=1e-5, atol=2e-3)
    assert inputs.dtype == np.float32 and targets.shape == (3, 20, 16, 32)


def test_forcings_and_static_inputs(ocean_dir):
    data = FcnDirectory(ocean_dir)
    pairs = SamplePairs(data.series("train"), data.stats(), static={"orography": data.static("orography")})
    inputs, targets = pairs[0]
    assert pairs.in_channels == 25 + 1 and pairs.out_channels == 21
    assert inputs.shape[0] == 26 and targets.shape == (1, 25, 16, 32)  # 21 prognostic, then 4 forcings
    assert pairs.input_names[-5:] == ["u10", "v10", "t2m", "msl", "orography"]
    assert abs(inputs[-1].mean()) < 1e-5 and abs(inputs[-1].std() - 1) < 1e-4
    land = ~data.mask[0]
    assert (inputs[0][land] == 0).all() and (targets[0, 0][land] == 0).all()
    np.testing.assert_array_equal(pairs.forcings(0), targets[:, 21:])


def test_two_input_times_stack_oldest_first(ocean_dir):
    """history=2 (GraphCast's t - dt and t): two blocks of prognostic + forcing channels, then the static fields;
    the targets follow t, and sample i's time t is one step later than with one input time."""
    data = FcnDirectory(ocean_dir)
    series, static = data.series("train"), {"orography": data.static("orography")}
    one = SamplePairs(series, data.stats(), dt=2, steps=2, static=static)
    two = SamplePairs(series, data.stats(), dt=2, steps=2, static=static, history=2)
    assert two.in_channels == 2 * 25 + 1 and len(two) == len(one) - 2
    inputs, targets = two[0]
    earlier, now = one[0][0][:25], one[2][0]  # one's samples 0 and 2: two's input times t - dt and t
    np.testing.assert_array_equal(inputs[:25], earlier)
    np.testing.assert_array_equal(inputs[25:], now)
    np.testing.assert_array_equal(targets, one[2][1])
    np.testing.assert_array_equal(two.current(inputs[None])[0], now[:21])
    assert two.time_index(0) == one.time_index(2) == 2 and two.input_names == one.input_names


def test_forcing_day_pairs_each_state_with_the_predicted_days_forcings(ocean_dir):
    """forcing_day="target" (the default): a state at s comes with the forcings at s + dt, in the inputs and in the
    targets alike, so a rollout feeds the day it predicts; "input": the state's own day (the original's training)."""
    data = FcnDirectory(ocean_dir)
    series = data.series("train")
    target = SamplePairs(series, data.stats(), dt=2, steps=2, history=2)
    own = SamplePairs(series, data.stats(), dt=2, steps=2, history=2, forcing_day="input")
    assert len(target) == len(own) - 2 and target.lead == 2 and own.lead == 0
    fields = target.normalise(series.read(0, 11))  # times 0 .. 10
    inputs, targets = target[0]
    want = [np.concatenate([fields[s, :21], fields[s + 2, 21:]]) for s in (0, 2, 4, 6)]
    np.testing.assert_array_equal(inputs, np.concatenate(want[:2]))
    np.testing.assert_array_equal(targets, np.stack(want[2:]))
    np.testing.assert_array_equal(target.forcings(0), fields[[6, 8], 21:])
    inputs, targets = own[0]
    np.testing.assert_array_equal(inputs, fields[[0, 2]].reshape(-1, *fields.shape[2:]))
    np.testing.assert_array_equal(targets, fields[[4, 6]])
    with pytest.raises(DataError, match="forcing_day"):
        SamplePairs(series, data.stats(), forcing_day="tomorrow")


def test_change_std_is_the_spread_of_one_steps_change_over_valid_cells(ocean_dir):
    """Without diff statistics (a stats folder from before them) the change's std is measured on the samples."""
    data = FcnDirectory(ocean_dir)
    pairs = SamplePairs(data.series("train"), dataclasses.replace(data.stats(), diff_stds=None))
    assert pairs.change_source == "samples"
    changes = np.stack([pairs[i][1][0, :21] - pairs.current(pairs[i][0]) for i in range(len(pairs))])
    valid = data.mask[pairs.prognostic]
    want = [changes[:, c][:, valid[c]].std() for c in range(21)]
    np.testing.assert_allclose(pairs.change_std(limit=len(pairs)), want, rtol=1e-5)
    assert 0 < min(want) and max(want) < 0.5  # the generated ocean changes little in a day


def test_change_std_comes_from_the_diff_statistics_where_the_data_set_has_them(ocean_dir):
    """Generated data carries global_diff_stds.npy (physical units): the change's std in z-scores is diff_std / std,
    close to the estimate on the samples; with dt 2 the one-step file does not apply and the samples are used."""
    data = FcnDirectory(ocean_dir)
    stats = data.stats()
    assert (ocean_dir / "stats" / "global_diff_stds.npy").exists() and stats.diff_stds is not None
    pairs = SamplePairs(data.series("train"), stats)
    want = (stats.diff_stds / stats.stds).ravel()[pairs.prognostic]
    assert pairs.change_source == "stats"
    np.testing.assert_allclose(pairs.change_std(), want, rtol=1e-6)
    estimate = SamplePairs(data.series("train"), dataclasses.replace(stats, diff_stds=None)).change_std(limit=1000)
    np.testing.assert_allclose(pairs.change_std(), estimate, rtol=0.05)  # the last step of each year aside
    assert SamplePairs(data.series("train"), stats, dt=2).change_source == "samples"


def test_graphcast_change_scale_is_diff_std_over_std_and_falls_back_without_the_file(atmosphere_dir, tmp_path):
    """The GraphCast run's residual scale: diff_std / std from the stats folder, else (an older folder without
    global_diff_stds.npy) the estimate on the training samples, as before; the run's data info says which."""
    from earthport.config import TrainConfig
    from earthport.workflows.training_loop import prepare_data

    config = TrainConfig(model="graphcast", device="cpu")
    fitted = prepare_data(config, atmosphere_dir)
    stats, prognostic = FcnDirectory(atmosphere_dir).stats(), fitted.train_pairs.prognostic
    want = (stats.diff_stds.astype(np.float64) / stats.stds).ravel()[prognostic]
    np.testing.assert_allclose(fitted.model_config.change_scale, want, rtol=1e-12)
    assert fitted.info["change_scale_from"] == "stats"
    old = tmp_path / "old"
    shutil.copytree(atmosphere_dir, old)
    (old / "stats" / "global_diff_stds.npy").unlink()  # a data set whose stats predate the file
    before = prepare_data(config, old)
    probe = SamplePairs(FcnDirectory(old).series("train"), FcnDirectory(old).stats(), history=2)  # as today's
    assert probe.change_source == "samples" and before.info["change_scale_from"] == "samples"
    np.testing.assert_allclose(before.model_config.change_scale, probe.change_std(), rtol=1e-12)


def test_a_rollout_with_two_input_times_shifts_them():
    """The next inputs drop the oldest time and append the prediction with its forcing; static fields stay."""
    import torch

    from earthport.backends.torch.rollout import next_input, rollout

    prognostic, forcing, static = 2, 1, 1
    inputs = torch.arange(2 * (prognostic + forcing) + static, dtype=torch.float32).reshape(1, -1, 1, 1)
    prediction, true_forcing = torch.full((1, 2, 1, 1), -1.0), torch.full((1, 1, 1, 1), -2.0)
    shifted = next_input(prediction, inputs, true_forcing, history=2).flatten().tolist()
    assert shifted == [3.0, 4.0, 5.0, -1.0, -1.0, -2.0, 6.0]

    def newest(x):  # a "model" that persists the newest input time's prognostic channels, plus one
        return x[:, 3:5] + 1

    forcings = torch.zeros((1, 3, 1, 1, 1))
    steps = rollout(newest, inputs, 3, forcings, history=2).flatten().tolist()
    assert steps == [4.0, 5.0, 5.0, 6.0, 6.0, 7.0]


@pytest.mark.mindspore
def test_mindspore_shifts_input_times_as_torch():
    pytest.importorskip("mindspore")
    import mindspore as ms
    import torch

    from earthport.backends.mindspore import ops as mindspore_ops
    from earthport.backends.torch.rollout import next_input

    rng = np.random.default_rng(0)
    shapes = ((2, 7, 3, 4), (2, 2, 3, 4), (2, 1, 3, 4))
    inputs, prediction, forcing = (rng.standard_normal(s, np.float32) for s in shapes)
    want = next_input(*(torch.from_numpy(a) for a in (prediction, inputs, forcing)), history=2).numpy()
    got = mindspore_ops.next_input(*(ms.Tensor(a) for a in (prediction, inputs, forcing)), history=2).asnumpy()
    np.testing.assert_array_equal(got, want)


def test_pairs_never_bridge_a_gap():
    hours = np.array([0, 6, 12, 18, 24, 1000, 1006, 1012], dtype=np.int64) * 3600
    time = hours.astype("datetime64[s]")
    assert valid_starts(time, 6.0, 1).tolist() == [0, 1, 2, 3, 5, 6]
    assert valid_starts(time, 6.0, 2).tolist() == [0, 1, 2, 5]
    assert valid_starts(time[:2], 6.0, 2).tolist() == []


def test_epoch_order_shards_cover_everything_once():
    shards = [epoch_order(10, epoch=3, seed=1, rank=r, world_size=3) for r in range(3)]
    assert {len(s) for s in shards} == {4}  # padded to equal length, like DistributedSampler
    assert set(np.concatenate(shards)) == set(range(10))
    assert not np.array_equal(epoch_order(10, 0, 1), epoch_order(10, 1, 1))  # reshuffled each epoch
    np.testing.assert_array_equal(epoch_order(10, 2, 1), epoch_order(10, 2, 1))
    np.testing.assert_array_equal(epoch_order(5, 0, shuffle=False), np.arange(5))


def test_torch_loader_follows_epoch_order_and_resumes(atmosphere_dir):
    data = FcnDirectory(atmosphere_dir)
    pairs = SamplePairs(data.series("valid"), data.stats())
    order = epoch_order(len(pairs), epoch=1, seed=7)
    batches = list(torch_loader(pairs, 4, Order(epoch=1, seed=7)))
    x, y = batches[0]
    assert x.shape == (4, 20, 16, 32) and y.shape == (4, 1, 20, 16, 32)
    np.testing.assert_array_equal(x[1].numpy(), pairs[int(order[1])][0])
    resumed = list(torch_loader(pairs, 4, Order(epoch=1, seed=7, skip=8)))
    np.testing.assert_array_equal(resumed[0][0].numpy(), batches[2][0].numpy())


@pytest.mark.mindspore
def test_mindspore_dataset_gives_the_torch_batches(atmosphere_dir):
    from earthport.backends.mindspore.loader import mindspore_dataset

    data = FcnDirectory(atmosphere_dir)
    pairs = SamplePairs(data.series("valid"), data.stats())
    torch_batches = list(torch_loader(pairs, 5, Order(epoch=2, seed=1, rank=1, world_size=2)))
    ms_batches = list(
        mindspore_dataset(pairs, 5, Order(epoch=2, seed=1, rank=1, world_size=2)).create_tuple_iterator(
            output_numpy=True
        )
    )
    assert len(ms_batches) == len(torch_batches)
    for (tx, ty), (mx, my) in zip(torch_batches, ms_batches, strict=False):
        np.testing.assert_array_equal(tx.numpy(), mx)
        np.testing.assert_array_equal(ty.numpy(), my)


def test_rows_crop_keeps_the_north(atmosphere_dir):
    data = FcnDirectory(atmosphere_dir)
    pairs = SamplePairs(data.series("train"), data.stats(), rows=12)
    inputs, targets = pairs[0]
    assert inputs.shape == (20, 12, 32) and targets.shape == (1, 20, 12, 32)
    np.testing.assert_array_equal(pairs.lat, data.meta.lat[:12])
    full = SamplePairs(data.series("train"), data.stats())[0][0]
    np.testing.assert_array_equal(inputs, full[:, :12])
