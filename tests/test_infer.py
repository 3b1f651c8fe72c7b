"""Inference: forecast files (dims, coordinates, units, values against a hand-made rollout), scores,
records, NVlabs checkpoints and grid errors, ocean forcings and masks, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from earthport.cli import main
from earthport.data.fcn import FcnDirectory
from earthport.data.generate import generate
from earthport.errors import ConfigError
from earthport.metrics import rmse
from earthport.migrate.checkpoint_io import save_checkpoint
from earthport.models.fourcastnet.config import PRESETS
from earthport.models.fourcastnet.torch import FourCastNet
from earthport.workflows.infer import infer, initial_conditions


def earthport_checkpoint(path, data_dir, static=(), dt=1, seed=0, forcing_day=None):
    """An untrained tiny FourCastNet for ``data_dir`` saved as an earthport checkpoint; returns the model. Without
    ``forcing_day`` the file is one written before that key existed."""
    meta = FcnDirectory(data_dir).meta
    prognostic, forcing = meta.with_role("prognostic"), meta.with_role("forcing")
    inputs = prognostic + forcing + list(static)
    config = PRESETS["tiny"].for_data(meta.lat.size, meta.lon.size, len(inputs), len(prognostic))
    torch.manual_seed(seed)
    model = FourCastNet(config).eval()
    data = {"input_channels": inputs, "output_channels": prognostic, "static": list(static), "dt": dt}
    data.update({"forcing_day": forcing_day} if forcing_day else {})
    save_checkpoint(path, {"model": "fourcastnet", "config": config.to_dict(), "model_state": model.state_dict(),
                           "data": {**data, "rows": config.img_size[0]}})  # fmt: skip
    return model


def nvlabs_checkpoint(path, grid, channels=20, seed=1):
    """An NVlabs-style file: ``{"model_state": {"module." + name: tensor}}`` of a tiny model on ``grid``."""
    config = PRESETS["tiny"].for_data(*grid, channels, channels)
    torch.manual_seed(seed)
    model = FourCastNet(config).eval()
    torch.save({"model_state": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    return model


def manual_rollout(model, data_dir, start, steps, dt=1, static=(), lead=0):
    """Physical forecasts [steps, prognostic, lat, lon] from test-split index ``start``, built from the raw
    files: z-scores (0 on land), static fields z-scored over the grid, true forcings fed at each step (those
    ``lead`` data steps after the state they go with)."""
    data = FcnDirectory(data_dir)
    meta, stats = data.meta, data.stats()
    prognostic = [meta.names.index(n) for n in meta.with_role("prognostic")]
    forcing = [meta.names.index(n) for n in meta.with_role("forcing")]
    fields = data.series("test").read(start, start + dt * steps + lead + 1)
    z = (fields - stats.means[0]) / stats.stds[0]
    if data.mask is not None:
        z = np.where(data.mask, z, 0)
    fixed = [(f - f.mean()) / f.std() for f in (data.static(name) for name in static)]
    x = np.concatenate([z[0, prognostic], z[lead, forcing], *[f[None] for f in fixed]])
    out = []
    with torch.no_grad():
        for k in range(1, steps + 1):
            y = model(torch.from_numpy(np.ascontiguousarray(x[None], np.float32)))[0].numpy()
            out.append(y * stats.stds[0, prognostic] + stats.means[0, prognostic])
            x = np.concatenate([y, z[k * dt + lead, forcing], *[f[None] for f in fixed]])
    return np.stack(out)


@pytest.fixture(scope="module")
def atmosphere_run(atmosphere_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("infer")
    model = earthport_checkpoint(out / "model.pt", atmosphere_dir, static=("orography",), dt=2)
    record = infer(out / "model.pt", atmosphere_dir, steps=3, out=out / "fc.nc", device="cpu", init_stride=10,
                   max_inits=3, batch_size=2, latency_repeats=4)  # fmt: skip
    return model, record, out


def test_forecast_file_dims_coordinates_units(atmosphere_run, atmosphere_dir):
    _, _, out = atmosphere_run
    data = FcnDirectory(atmosphere_dir)
    with xr.open_dataset(out / "fc.nc", decode_timedelta=False) as ds:
        assert list(ds.data_vars) == data.meta.with_role("prognostic")
        assert ds["z500"].dims == ("init_time", "lead_time", "lat", "lon") and ds["z500"].shape == (3, 3, 16, 32)
        assert ds["lead_time"].values.tolist() == [12, 24, 36] and ds["lead_time"].attrs["units"] == "hours"
        np.testing.assert_array_equal(ds["lat"].values, data.meta.lat)
        assert ds["lat"].values[0] > ds["lat"].values[-1] and ds["lat"].attrs["units"] == "degrees_north"
        assert ds["lon"].attrs["units"] == "degrees_east"
        expected = data.series("test").time[[0, 10, 20]]
        np.testing.assert_array_equal(ds["init_time"].values.astype("datetime64[s]"), expected)
        assert ds["z500"].attrs == {"units": "m2 s-2", "long_name": "geopotential at 500 hPa"}
        assert ds["t2m"].attrs["units"] == "K" and json.loads(ds.attrs["config"])["patch_size"] == 4
        assert ds.attrs["model"] == "fourcastnet" and ds.attrs["checkpoint"].endswith("model.pt")


def test_values_equal_a_manual_rollout(atmosphere_run, atmosphere_dir):
    model, _, out = atmosphere_run
    with xr.open_dataset(out / "fc.nc") as ds:
        written = np.stack([ds[name].values for name in ds.data_vars], axis=2)  # [init, lead, channel, H, W]
    for i, start in enumerate([0, 10, 20]):
        expected = manual_rollout(model, atmosphere_dir, start, steps=3, dt=2, static=("orography",))
        np.testing.assert_allclose(written[i], expected, rtol=1e-5, atol=1e-3)


def test_scores_and_record(atmosphere_run, atmosphere_dir):
    _, record, out = atmosphere_run
    scores = pd.read_csv(out / "fc.scores.csv")
    assert set(scores["forecast"]) == {"fourcastnet", "persistence", "climatology"} and len(scores) == 3 * 20 * 3
    assert scores[scores["forecast"] == "climatology"]["acc"].isna().all()  # its anomaly is zero: undefined
    # model z500 at the first lead, recomputed from the written file and the truth (wb2 convention)
    data = FcnDirectory(atmosphere_dir)
    z500 = data.meta.names.index("z500")
    truth = np.stack([data.series("test").read(s + 2, s + 3)[:, z500] for s in (0, 10, 20)])  # first lead: 2 steps
    with xr.open_dataset(out / "fc.nc") as ds:
        forecast = ds["z500"].values[:, 0, None]
    row = scores[(scores["forecast"] == "fourcastnet") & (scores["channel"] == "z500") & (scores["lead_hours"] == 12)]
    np.testing.assert_allclose(row["rmse"].item(), rmse(forecast, truth, data.meta.lat)[0], rtol=1e-4)
    saved = json.loads((out / "fc.record.json").read_text())
    assert saved == record and record["kind"] == "infer" and record["environment"]["torch"] == torch.__version__
    assert record["device"]["name"] == "cpu" and record["device"]["description"].startswith("CPU:")
    assert record["steps"] == 3 and record["dt"] == 2 and record["lead_hours"] == [12, 24, 36]
    assert record["channels"]["static"] == ["orography"] and len(record["inits"]) == 3
    assert 1 <= record["latency_s"]["count"] <= 4 and record["latency_s"]["median"] > 0
    assert record["memory"]["device_peak_mb"].startswith("unavailable:") and record["memory"]["host_peak_rss_mb"] > 0
    assert len(record["scores"]) == len(scores) and record["output"]["format"] == "netcdf"


def test_nvlabs_checkpoint_to_zarr(atmosphere_dir, tmp_path):
    model = nvlabs_checkpoint(tmp_path / "nv.tar", grid=(16, 32))
    record = infer(tmp_path / "nv.tar", atmosphere_dir, steps=2, out=tmp_path / "fc.zarr", device="cpu",
                   init_stride=5, max_inits=2, latency_repeats=0)  # fmt: skip
    assert record["checkpoint"]["source"] == "nvlabs" and record["output"]["format"] == "zarr"
    assert record["latency_s"].startswith("unavailable:")
    with xr.open_zarr(tmp_path / "fc.zarr", decode_timedelta=False) as ds:
        assert ds["u10"].dims == ("init_time", "lead_time", "lat", "lon") and ds["lead_time"].values.tolist() == [6, 12]
        written = np.stack([ds[name].values for name in record["channels"]["output"]], axis=2)  # zarr sorts names
    assert record["channels"]["output"] == FcnDirectory(atmosphere_dir).meta.names
    np.testing.assert_allclose(written[1], manual_rollout(model, atmosphere_dir, 5, steps=2), rtol=1e-5, atol=1e-3)


def test_rows_the_patch_cannot_tile_are_cropped_from_the_south(tmp_path):
    generate(tmp_path / "data", "atmosphere", grid=(18, 32), years=2, steps_per_year=6, seed=5)  # as 721 -> 720
    nvlabs_checkpoint(tmp_path / "nv.tar", grid=(16, 32))
    record = infer(tmp_path / "nv.tar", tmp_path / "data", 1, tmp_path / "fc.nc", device="cpu", latency_repeats=0)
    assert record["config"]["img_size"] == [16, 32] and record["data"]["grid"] == [16, 32]
    with xr.open_dataset(tmp_path / "fc.nc") as ds:
        np.testing.assert_array_equal(ds["lat"].values, FcnDirectory(tmp_path / "data").meta.lat[:16])
        assert ds["z500"].shape == (5, 1, 16, 32)  # every valid start of the 6-step test year


def test_nvlabs_grid_errors(atmosphere_dir, tmp_path):
    nvlabs_checkpoint(tmp_path / "big.tar", grid=(32, 64))
    with pytest.raises(ConfigError, match=r"big.tar: grid 16 x 32 gives 32 patches of 4 x 4, .* pos_embed holds 128"):
        infer(tmp_path / "big.tar", atmosphere_dir, steps=1, out=tmp_path / "a.nc", device="cpu")
    with pytest.raises(ConfigError, match=r"model grid \(32, 64\) does not fit the data grid 16 x 32"):
        infer(tmp_path / "big.tar", atmosphere_dir, 1, tmp_path / "a.nc", overrides={"img_size": [32, 64]})
    with pytest.raises(ConfigError, match="the grid is ambiguous"):
        infer(tmp_path / "big.tar", atmosphere_dir, 1, tmp_path / "a.nc", overrides={"img_size": None})
    assert not (tmp_path / "a.nc").exists()


@pytest.mark.parametrize("forcing_day", [None, "target"])
def test_ocean_forcings_and_mask(ocean_dir, tmp_path, forcing_day):
    """The true forcings are fed with each state: the state's own day for a file written before ``forcing_day``
    existed (how it was trained), the predicted day's for a "target" file."""
    model = earthport_checkpoint(tmp_path / "ocean.pt", ocean_dir, forcing_day=forcing_day)
    record = infer(tmp_path / "ocean.pt", ocean_dir, steps=2, out=tmp_path / "fc.nc", device="cpu", max_inits=2,
                   latency_repeats=1)  # fmt: skip
    data = FcnDirectory(ocean_dir)
    assert record["channels"]["input"][-4:] == data.meta.with_role("forcing") and record["lead_hours"] == [24, 48]
    with xr.open_dataset(tmp_path / "fc.nc", decode_timedelta=False) as ds:  # depth is a dimension
        assert "u10" not in ds and ds["so"].attrs["units"] == "1e-3" and ds["so"].dims[2] == "depth"
        assert ds["depth"].values.tolist() == [0, 10, 30, 50, 100] and ds["depth"].attrs["positive"] == "down"
        assert set(ds.data_vars) == {"thetao", "so", "uo", "vo", "zos"}
        assert ds["zos"].dims == ("init_time", "lead_time", "lat", "lon")
        fields = [ds[v].values.transpose(2, 0, 1, 3, 4) for v in ("thetao", "so", "uo", "vo")]  # depth first
        written = np.stack([*np.concatenate(fields), ds["zos"].values], axis=2)  # the data's channel order
        starts = ((ds["init_time"].values - data.series("test").time[0]) // np.timedelta64(1, "D")).astype(int)
    mask = data.mask[: written.shape[2]]
    assert np.isnan(written[:, :, ~mask]).all() and np.isfinite(written[:, :, mask]).all()
    expected = manual_rollout(model, ocean_dir, int(starts[-1]), steps=2, lead=1 if forcing_day else 0)
    np.testing.assert_allclose(written[-1][:, mask], expected[:, mask], rtol=1e-5, atol=1e-4)
    assert record["forcing_day"] == (forcing_day or "input")
    scores = pd.DataFrame(record["scores"])
    assert scores["rmse"].notna().all() and scores["channel"].nunique() == 21


def test_bf16_and_refused_fp16_on_cpu(atmosphere_dir, tmp_path):
    earthport_checkpoint(tmp_path / "m.pt", atmosphere_dir)
    record = infer(tmp_path / "m.pt", atmosphere_dir, 1, tmp_path / "b.nc", device="cpu", precision="bf16", max_inits=1,
                   latency_repeats=0)  # fmt: skip
    assert record["precision"] == "bf16" and np.isfinite(pd.DataFrame(record["scores"])["rmse"]).all()
    with pytest.raises(Exception, match="fp16 mixed precision needs a GPU or NPU"):
        infer(tmp_path / "m.pt", atmosphere_dir, 1, tmp_path / "c.nc", device="cpu", precision="fp16")


def test_initial_conditions():
    assert initial_conditions(10, None, 3).tolist() == [0, 3, 6, 9]
    assert initial_conditions(10, 2, 3).tolist() == [0, 3]
    assert initial_conditions(10, 3, None).tolist() == [0, 4, 9]
    assert initial_conditions(4, 8, None).tolist() == [0, 1, 2, 3]
    with pytest.raises(Exception, match="no initial time has enough following steps"):
        initial_conditions(0, 8, None)


def test_cli(atmosphere_dir, tmp_path, capsys):
    earthport_checkpoint(tmp_path / "m.pt", atmosphere_dir)
    args = ["infer", "-q", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(atmosphere_dir), "--steps", "2",
            "--out", str(tmp_path / "f.nc"), "--device", "cpu", "--max-inits", "2",
            "--latency-repeats", "2"]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "fourcastnet rmse" in text and "persistence acc" in text and "z500" in text and "one step: median" in text
    assert (tmp_path / "f.record.json").exists() and (tmp_path / "f.scores.csv").exists()
    assert main(["infer", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(atmosphere_dir), "--steps",
                 "1", "--out", str(tmp_path / "g.nc")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("earthport: error:") and "missing.pt: checkpoint not found" in err and err.count("\n") == 1
