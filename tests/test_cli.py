"""The command line: each command runs end to end on small data; bad input is one clear line, status 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from earthport.cli import main
from earthport.data.fcn import FcnDirectory


def test_generate_info_stats(tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["data", "generate", "-q", "--kind", "ocean", "--grid", "8x16", "--years", "2",
                 "--steps-per-year", "6", "--channels", "thetao_0m,so_10m,u10", "--out", str(out)]) == 0  # fmt: skip
    data = FcnDirectory(out)
    assert data.meta.names == ["thetao_0m", "so_10m", "u10"] and data.splits() == ["train", "test"]
    assert data.meta.time_step_hours == 24
    before = np.load(out / "stats" / "global_means.npy")
    diffs = np.load(out / "stats" / "global_diff_stds.npy")  # generate writes the one-step change's std too
    for name in ("global_means.npy", "global_diff_stds.npy"):
        (out / "stats" / name).unlink()
    assert main(["data", "stats", "-q", str(out), "--chunk", "4"]) == 0
    np.testing.assert_allclose(np.load(out / "stats" / "global_means.npy"), before, rtol=1e-6)
    np.testing.assert_allclose(np.load(out / "stats" / "global_diff_stds.npy"), diffs, rtol=1e-6)
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "so_10m" in text and "8 x 16" in text and "train 1 year file(s)" in text


def test_evaluate_writes_scores(atmosphere_dir, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = main(["evaluate", "-q", "--data", str(atmosphere_dir), "--leads", "3", "--baseline", "persistence",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "persistence rmse" in capsys.readouterr().out
    scores = pd.DataFrame(json.loads(out.read_text()))
    assert len(scores) == 20 * 3 and set(scores["forecast"]) == {"persistence"}
    assert scores["lead_hours"].tolist()[:3] == [6.0, 12.0, 18.0]


def test_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--leads", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("earthport: error:") and "missing" in err and err.count("\n") == 1
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.json").write_text("{}")
    assert main(["data", "info", str(tmp_path / "broken")]) == 2
    assert "missing key 'channels'" in capsys.readouterr().err


def test_bad_grid_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit):
        main(["data", "generate", "--grid", "big", "--out", "x"])
    assert "HxW" in capsys.readouterr().err
