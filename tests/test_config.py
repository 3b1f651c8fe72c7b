"""Training configuration: YAML sections, --set overrides, precedence and clear errors."""

from __future__ import annotations

from dataclasses import fields

import pytest

from earthport.config import TrainConfig, load_train_config, write_config
from earthport.errors import ConfigError
from earthport.models.fourcastnet.config import FourCastNetConfig

MODEL_FIELDS = [f.name for f in fields(FourCastNetConfig)]


def test_yaml_sections_sets_and_flags_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: {name: fourcastnet, preset: small, embed_dim: 128}\n"
        "data: {channels: [z500, t850], static: [orography]}\n"
        "optimizer: {lr: 1.0e-3}\n"
        "train: {batch_size: 8, precision: bf16, max_epochs: 7}\n"
    )
    config = load_train_config(path, ["train.max_epochs=9", "depth=3", "lr=2e-3"], MODEL_FIELDS, batch_size=16)
    assert config.preset == "small" and config.channels == ("z500", "t850") and config.static == ("orography",)
    assert config.lr == 2e-3 and config.max_epochs == 9 and config.batch_size == 16 and config.precision == "bf16"
    assert config.model_overrides == {"embed_dim": 128, "depth": 3}


def test_written_config_reads_back(tmp_path):
    config = load_train_config(None, ["embed_dim=32", "grad_clip=null"], MODEL_FIELDS, max_epochs=3)
    write_config(tmp_path / "config.yaml", config)
    assert load_train_config(tmp_path / "config.yaml", (), MODEL_FIELDS) == config


@pytest.mark.parametrize(
    "sets,message",
    [
        (["nonsense=1"], "unknown key 'nonsense'"),
        (["model.bogus=1"], "unknown model key 'model.bogus'"),
        (["trian.lr=1"], "unknown section 'trian'"),
        (["lr"], "not key=value"),
        (["loss=huber"], "train.loss 'huber'"),
        (["batch_size=0"], "batch_size must be >= 1"),
    ],
)
def test_bad_keys_and_values_are_named(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, sets, MODEL_FIELDS)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(tmp_path / "bad.yaml")
    assert TrainConfig().loss == "mse"
