"""Score tables: per-lead tidy scores, the headline table and its fallbacks, Markdown output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earthport.errors import DataError
from earthport.metrics import acc, headline_table, rmse, score_leads, to_markdown

INIT, LEADS, CHANNELS, H, W = 3, 4, 2, 6, 8
LAT = np.linspace(75, -75, H)


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    shape = (INIT, LEADS, CHANNELS, H, W)
    truth = rng.normal(size=shape)
    # errors grow with lead, so each lead scores differently
    forecast = truth + rng.normal(size=shape) * np.arange(1, LEADS + 1)[None, :, None, None, None]
    clim = rng.normal(size=shape)  # one climatology per valid time
    mask = rng.random((H, W)) < 0.75
    return forecast, truth, clim, mask


def test_score_leads_rows_columns_and_values(case):
    forecast, truth, clim, mask = case
    leads = [24, 48, 72, 96]
    df = score_leads(
        forecast,
        truth,
        clim,
        LAT,
        ["z500", "t850"],
        leads,
        mask=mask,
        convention="fcn",
        name="fcn-torch",
        units=["m2 s-2", "K"],
    )
    assert list(df.columns) == ["forecast", "channel", "units", "lead_hours", "rmse", "acc"]
    assert len(df) == CHANNELS * LEADS
    assert list(df["channel"]) == ["z500"] * 4 + ["t850"] * 4
    assert list(df["lead_hours"]) == leads * 2
    assert set(df["forecast"]) == {"fcn-torch"} and list(df["units"][:5]) == ["m2 s-2"] * 4 + ["K"]
    for lead in range(LEADS):
        f, t = forecast[:, lead], truth[:, lead]
        expected_rmse = rmse(f, t, LAT, mask=mask, convention="fcn")
        expected_acc = acc(f, t, clim[:, lead], LAT, mask=mask)
        for c, channel in enumerate(["z500", "t850"]):
            row = df[(df["channel"] == channel) & (df["lead_hours"] == leads[lead])].iloc[0]
            assert row["rmse"] == pytest.approx(expected_rmse[c], rel=1e-12)
            assert row["acc"] == pytest.approx(expected_acc[c], rel=1e-12)
    z500 = df[df["channel"] == "z500"]["rmse"].to_numpy()
    assert np.all(np.diff(z500) > 0)


def test_score_leads_defaults_and_time_mean_climatology(case):
    forecast, truth, clim, _ = case
    df = score_leads(forecast, truth, clim[0, 0], LAT, ["a", "b"], [6, 12, 18, 24])
    assert list(df.columns) == ["forecast", "channel", "lead_hours", "rmse", "acc"]
    assert set(df["forecast"]) == {"model"}
    wb2 = rmse(forecast[:, 2], truth[:, 2], LAT)
    assert df["rmse"].iloc[2] == pytest.approx(wb2[0], rel=1e-12)


def test_score_leads_errors_name_the_argument(case):
    forecast, truth, clim, mask = case
    with pytest.raises(DataError, match="expected 2, one per forecast channel") as info:
        score_leads(forecast, truth, clim, LAT, ["z500"], [6, 12, 18, 24])
    assert info.value.where == "channels"
    with pytest.raises(DataError) as info:
        score_leads(forecast, truth, clim, LAT, ["a", "b"], [6, 12])
    assert info.value.where == "lead_hours"
    with pytest.raises(DataError, match=r"\[init, lead, channel, lat, lon\]") as info:
        score_leads(forecast[0], truth[0], clim, LAT, ["a", "b"], [6, 12, 18, 24])
    assert info.value.where == "forecast"
    with pytest.raises(DataError) as info:
        score_leads(forecast, truth, clim[:, :2], LAT, ["a", "b"], [6, 12, 18, 24])
    assert info.value.where == "clim"
    with pytest.raises(DataError) as info:
        score_leads(forecast, truth[:2], clim, LAT, ["a", "b"], [6, 12, 18, 24])
    assert info.value.where == "truth"


def _scores(name, channels, leads, offset=0.0):
    rows = [
        {"forecast": name, "channel": c, "lead_hours": h, "rmse": offset + i + h / 1000, "acc": 1 - h / 1000}
        for i, c in enumerate(channels)
        for h in leads
    ]
    return pd.DataFrame(rows)


def test_headline_table_keeps_requested_channels_and_leads_present():
    scores = pd.concat(
        [_scores("a", ["t850", "z500", "q700"], [24, 72, 120, 240]), _scores("b", ["z500", "t850"], [72, 120])]
    )
    table = headline_table(scores)
    rmse_cols = [f"{c} rmse {h}h" for c in ("z500", "t850") for h in (72, 120, 240)]
    assert list(table.columns) == ["forecast"] + [
        f"{c} {m} {h}h" for c in ("z500", "t850") for m in ("rmse", "acc") for h in (72, 120, 240)
    ]
    assert list(table["forecast"]) == ["a", "b"]
    assert table.set_index("forecast").loc["a", "z500 rmse 72h"] == pytest.approx(1.072)
    assert table.set_index("forecast").loc["b", "t850 acc 120h"] == pytest.approx(0.88)
    assert np.isnan(table.set_index("forecast").loc["b", "z500 rmse 240h"])  # b stops at 120 h
    assert table[rmse_cols].notna().sum().sum() == 6 + 4


def test_headline_table_falls_back_to_present_leads_and_channels():
    short = _scores("tiny", ["u10", "v10"], [12, 6])
    table = headline_table(short, channels=("z500", "t2m"), lead_hours=(72, 120))
    assert list(table.columns) == ["forecast"] + [
        f"{c} {m} {h}h" for c in ("u10", "v10") for m in ("rmse", "acc") for h in (6, 12)
    ]
    # requested channel present, requested leads absent: the channel is kept, leads fall back
    table = headline_table(short, channels=("v10",), lead_hours=(72,))
    assert list(table.columns) == ["forecast", "v10 rmse 6h", "v10 rmse 12h", "v10 acc 6h", "v10 acc 12h"]
    assert table["v10 rmse 12h"].iloc[0] == pytest.approx(1.012)


def test_headline_table_rejects_bad_scores():
    with pytest.raises(DataError, match="missing columns") as info:
        headline_table(pd.DataFrame({"forecast": ["a"], "channel": ["z500"]}))
    assert info.value.where == "scores"
    twice = pd.concat([_scores("a", ["z500"], [72]), _scores("a", ["z500"], [72])])
    with pytest.raises(DataError, match="distinct names"):
        headline_table(twice)


def test_to_markdown_small_frame():
    df = pd.DataFrame({"forecast": ["fcn|torch", "graphcast"], "lead_hours": [72, 120], "rmse": [123.456789, np.nan]})
    expected = (
        "| forecast   | lead_hours |  rmse |\n"
        "| ---------- | ---------: | ----: |\n"
        "| fcn\\|torch |         72 | 123.5 |\n"
        "| graphcast  |        120 |   nan |\n"
    )
    assert to_markdown(df) == expected
    assert "123.46 |" in to_markdown(df, floatfmt=".2f")


def test_to_markdown_of_headline_table_has_one_line_per_forecast():
    text = to_markdown(headline_table(_scores("a", ["z500"], [72, 120])))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split("|")[1].strip() == "forecast" and "z500 acc 120h" in lines[0]
    assert lines[2].count("|") == lines[0].count("|") == 6
