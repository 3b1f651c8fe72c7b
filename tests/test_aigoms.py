"""AI-GOMS: the original's module tree and sizes, a deterministic forward, masking, the original's checkpoints, and
the same outputs and gradients in MindSpore."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from earthport.errors import ConfigError
from earthport.models import registry
from earthport.models.aigoms.config import PRESETS, AIGOMSConfig
from earthport.models.aigoms.sincos import sincos_2d
from earthport.models.aigoms.torch import AIGOMS

TINY = PRESETS["tiny"]


def test_tiny_forward_is_deterministic_and_keeps_the_shapes():
    model = AIGOMS(TINY).eval()
    x = torch.randn(2, TINY.in_chans, *TINY.img_size)
    with torch.no_grad():
        first, second = model(x), model(x)
        masked = model(x, mask_ratio=0.75)
    assert first.shape == (2, TINY.out_chans, *TINY.img_size) and masked.shape == first.shape
    assert torch.equal(first, second)  # the original shuffled tokens on every call: forecasts were random


def test_masking_with_a_given_permutation_is_reproducible_and_the_identity_keeps_everything():
    model = AIGOMS(TINY).eval()
    x = torch.randn(1, TINY.in_chans, *TINY.img_size)
    ids = torch.argsort(torch.rand(1, TINY.tokens, generator=torch.Generator().manual_seed(3)), dim=1)
    with torch.no_grad():
        a, b = model(x, 0.5, ids), model(x, 0.5, ids)
        identity = model(x, 1e-9, torch.arange(TINY.tokens)[None])  # keeps all but rounds down one token
    assert torch.equal(a, b) and not torch.equal(a, model(x))
    assert identity.shape == a.shape


def test_the_paper_model_has_the_published_size_less_the_unused_fc_norm():
    """113,891,901 trainable parameters with the original's never-applied fc_norm (LayerNorm(512): 1,024)."""
    config = AIGOMSConfig()
    per_block = lambda d: 8 * d * d + 4 * d * (d // config.num_blocks) + 13 * d  # noqa: E731  (the original's formula)
    d, dd, p = config.embed_dim, config.decoder_embed_dim, config.patch_size
    expected = (67 * d * p * p + d + config.depth * per_block(d) + 2 * d + d * dd + dd + dd
                + config.decoder_depth * per_block(dd) + 2 * dd + dd * 61 * p * p + 61)  # fmt: skip
    assert expected == 113_891_901 - 1024 and config.tokens == 16_200


def test_sincos_position_embedding_encodes_columns_then_rows():
    embedding = sincos_2d(8, (2, 3))[0]  # tokens i * 3 + j
    assert embedding.shape == (6, 8)
    first = np.float32([np.sin(1.0), np.sin(1.0 / 10000**0.5)])  # position 1: sin(1 x omega), omega = 1, 1e-2
    np.testing.assert_array_equal(embedding[1, :2], first)  # token 1 is column 1, row 0
    np.testing.assert_array_equal(embedding[3, 4:6], first)  # token 3 is column 0, row 1
    np.testing.assert_array_equal(embedding[0], [0, 0, 1, 1, 0, 0, 1, 1])


def test_an_original_checkpoint_loads_with_its_unused_fc_norm_and_ddp_prefix(tmp_path, ocean_dir):
    from earthport.data.fcn import FcnDirectory
    from earthport.migrate.checkpoints import load

    data = FcnDirectory(ocean_dir)
    meta = data.meta
    inputs = len(meta.with_role("prognostic")) + len(meta.with_role("forcing"))
    config = AIGOMSConfig(img_size=(16, 32), patch_size=4, in_chans=inputs, out_chans=len(meta.with_role("prognostic")),
                          embed_dim=32, depth=1, decoder_embed_dim=64, decoder_depth=1, num_blocks=4)  # fmt: skip
    model = AIGOMS(config).eval()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.fc_norm.weight"], state["module.fc_norm.bias"] = torch.ones(32), torch.zeros(32)
    torch.save({"model_state": state, "epoch": 7}, tmp_path / "best_ckpt.tar")
    loaded = load(tmp_path / "best_ckpt.tar", "torch", data)
    assert loaded.model == "aigoms" and loaded.source == "ai-goms original" and loaded.config == config
    x = torch.randn(1, inputs, 16, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))


@pytest.mark.mindspore
@pytest.mark.parametrize("residual", [False, True])
def test_mindspore_gives_the_same_outputs_and_gradients_masked_or_not(residual):
    pytest.importorskip("mindspore")
    from earthport.backends.mindspore.probe import MindSporeProbe
    from earthport.backends.torch.probe import TorchProbe
    from earthport.metrics import parity
    from earthport.migrate import bridge

    config = replace(TINY, residual=residual, change_scale=(0.5,) * TINY.out_chans if residual else ())
    pair = bridge.build_pair("aigoms", config, seed=0)
    assert pair.report.ok and {"norm.gamma", "decoder_norm.beta", "blocks.0.norm1.gamma"} <= set(pair.names.values())
    x = np.random.default_rng(0).standard_normal((2, TINY.in_chans, *TINY.img_size)).astype(np.float32)
    torch_probe, ms_probe = TorchProbe(pair.reference), MindSporeProbe(pair.candidate)
    for graph in (False, True):
        assert parity.compare(torch_probe.forward(x), ms_probe.forward(x, graph=graph))["max_rel_error"] < 1e-5
    target = np.random.default_rng(1).standard_normal((2, TINY.out_chans, *TINY.img_size)).astype(np.float32)
    _, torch_grads = torch_probe.gradients(x, target, None, "mse")
    _, ms_grads = ms_probe.gradients(x, target, None, "mse")
    for name, grad in torch_grads.items():
        got = ms_grads[pair.names[name]]
        if grad is None:  # the mask token at ratio 0: unused
            assert not np.abs(got).max(), name
        else:
            assert parity.compare(grad, got)["max_rel_error"] < 1e-4, name
    masking = (0.75, np.argsort(np.random.default_rng(2).random((2, TINY.tokens)), axis=1).astype(np.int32))
    want, got = torch_probe.forward(x, masking=masking), ms_probe.forward(x, True, masking)
    assert parity.compare(want, got)["max_rel_error"] < 1e-5


def test_recomputing_the_blocks_in_the_backward_changes_no_gradient():
    """torch's activation checkpointing and MindSpore's recompute (what the paper preset's training step needs to
    fit in memory) give the gradients of the plain backward."""
    torch.manual_seed(0)
    model = AIGOMS(TINY).train()
    x = torch.randn(2, TINY.in_chans, *TINY.img_size)

    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.activation_checkpointing = checkpointing
        (model(x) ** 2).mean().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain, recomputed = gradients(False), gradients(True)
    assert plain.keys() == recomputed.keys() and len(plain) > 20
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.mindspore
def test_mindspore_recompute_changes_no_gradient():
    ms = pytest.importorskip("mindspore")
    from earthport.models.aigoms.mindspore import AIGOMS as MindSporeAIGOMS

    ms.set_seed(0)
    plain, recomputed = MindSporeAIGOMS(TINY), MindSporeAIGOMS(TINY, recompute=True)
    ms.load_param_into_net(recomputed, {p.name: ms.Parameter(p.data.copy(), p.name) for p in plain.get_parameters()})
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, TINY.in_chans, *TINY.img_size)).astype(np.float32))

    def gradients(net):
        weights = net.trainable_params()
        grads = ms.grad(lambda inputs: (net(inputs) ** 2).mean(), grad_position=None, weights=weights)(x)
        return {p.name: g.asnumpy() for p, g in zip(weights, grads, strict=True)}

    want, got = gradients(plain), gradients(recomputed)
    assert want.keys() == got.keys()
    for name, grad in want.items():
        np.testing.assert_allclose(got[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_residual_model_adds_the_state_it_was_shown():
    """residual: output = the input state (the first out_chans inputs) + change_scale x the network's output; with
    masking, the masked patches' state is hidden from the skip as from the encoder."""
    torch.manual_seed(0)
    plain = AIGOMS(TINY).eval()
    scale = np.linspace(0.1, 2.0, TINY.out_chans)
    residual = AIGOMS(replace(TINY, residual=True, change_scale=tuple(scale))).eval()
    residual.load_state_dict(plain.state_dict())  # no new weights: the scale is config, not state
    x = torch.randn(1, TINY.in_chans, *TINY.img_size)
    ids = torch.argsort(torch.rand(1, TINY.tokens, generator=torch.Generator().manual_seed(1)), dim=1)
    per_channel = torch.tensor(scale, dtype=torch.float32).reshape(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(residual(x) - per_channel * plain(x), x[:, : TINY.out_chans])
        skip = (residual(x, 0.75, ids) - per_channel * plain(x, 0.75, ids))[0]
    p, (h, w) = TINY.patch_size, TINY.grid
    seen = torch.zeros(TINY.tokens, dtype=torch.bool)
    seen[ids[0, : int(TINY.tokens * 0.25)]] = True
    seen = seen.reshape(h, w).repeat_interleave(p, 0).repeat_interleave(p, 1)
    torch.testing.assert_close(skip[:, seen], x[0, : TINY.out_chans][:, seen])
    assert skip[:, ~seen].abs().max() < 1e-5
    with pytest.raises(ConfigError, match="residual needs the 21 outputs among the 4 inputs"):
        replace(TINY, residual=True, in_chans=4)


def test_the_spec_is_registered_and_fits_a_data_set():
    spec = registry.spec("aigoms")
    fitted = spec.fit(spec.preset("tiny"), 721, 1440, 67, 61)
    assert spec.grid(fitted) == (720, 1440) and spec.channels(fitted) == (67, 61)


def test_channel_wise_relative_l2_leaves_land_out_of_both_norms():
    from earthport.backends.torch.losses import channel_relative_l2

    target = torch.ones(1, 2, 2, 2)
    pred = target.clone()
    pred[0, 0, 0, 0] = 3.0  # an error of 2 in one valid cell of channel 0
    pred[0, 1, 1, 1] = 100.0  # a huge error on land in channel 1
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1, 1, 1] = False
    # channel 0: ||(2, 0, 0, 0)|| / ||(1, 1, 1, 1)|| = 1; channel 1: 0 over its three valid cells; mean 0.5
    assert float(channel_relative_l2(pred, target, mask)) == pytest.approx(0.5)
    assert float(channel_relative_l2(pred, target, None)) > 10  # land counted, the loss would be dominated


@pytest.mark.parametrize("framework", ["torch", pytest.param("mindspore", marks=pytest.mark.mindspore)])
def test_masked_pretraining_then_fine_tuning(ocean_dir, tmp_path, framework):
    """--objective masked_pretrain hides the same tokens in both frameworks (seeded by step); --init-from then
    fine-tunes to forecast from its weights; FourCastNet, which cannot mask, refuses the objective."""
    if framework == "mindspore":
        pytest.importorskip("mindspore")
    from earthport.config import TrainConfig
    from earthport.errors import ConfigError
    from earthport.workflows.train import train

    quick = {"model": "aigoms", "device": "cpu", "batch_size": 4, "max_train_samples": 8, "max_valid_samples": 4,
             "framework": framework, "loss": "channel_relative_l2", "static": ("orography",)}  # fmt: skip
    schedule = {"mask_epochs": (1,), "mask_ratios": (0.0,), "mask_ratio": 0.5}  # unmasked, then half the tokens
    pre = train(TrainConfig(objective="masked_pretrain", max_epochs=2, **schedule, **quick), ocean_dir,
                tmp_path / "pre", progress=False)  # fmt: skip
    assert pre["train_config"]["objective"] == "masked_pretrain" and len(pre["step_losses"]) == 4
    suffix = "pt" if framework == "torch" else "ckpt"
    tuned = train(TrainConfig(max_epochs=1, **quick), ocean_dir, tmp_path / "tuned", progress=False,
                  init_from=tmp_path / "pre" / f"last.{suffix}")  # fmt: skip
    assert tuned["init_from"]["source"] == "earthport"
    with pytest.raises(ConfigError, match="objectives"):
        train(TrainConfig(objective="masked_pretrain", device="cpu"), ocean_dir, tmp_path / "fcn", progress=False)


def test_the_mask_ratio_follows_its_schedule_by_epoch():
    from earthport.backends.base import mask_ratio_at
    from earthport.config import TrainConfig
    from earthport.errors import ConfigError

    original = TrainConfig(objective="masked_pretrain", mask_epochs=(3, 20, 40), mask_ratios=(0, 0.75, 0.25),
                           mask_ratio=0.0)  # fmt: skip
    assert [mask_ratio_at(original, e) for e in (0, 2, 3, 19, 20, 39, 40, 100)] == [0, 0, 0.75, 0.75, 0.25, 0.25, 0, 0]
    assert mask_ratio_at(TrainConfig(), 5) == 0.0  # forecasting never masks
    with pytest.raises(ConfigError, match="must increase"):
        TrainConfig(mask_epochs=(5, 3), mask_ratios=(0.1, 0.2))
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        TrainConfig(mask_ratio=1.0)


def test_the_masks_are_seeded_by_step_and_keep_the_asked_share():
    from earthport.backends.base import token_permutations
    from earthport.config import TrainConfig

    config, model = TrainConfig(model="aigoms", objective="masked_pretrain", seed=3), TINY  # 128 tokens
    ids = token_permutations(config, model, 2, step=5)
    assert ids.shape == (2, 128) and all(sorted(row) == list(range(128)) for row in ids.tolist())
    assert np.array_equal(ids, token_permutations(config, model, 2, step=5))
    assert not np.array_equal(ids, token_permutations(config, model, 2, step=6))
    assert token_permutations(TrainConfig(), model, 2, step=5) is None


def test_region_weighting_weighs_the_box_and_counts_in_every_loss(ocean_dir, tmp_path):
    """The Kuroshio-style box: weight w inside, 1 - w outside, land 0; a run with it trains and records it."""
    from earthport.config import TrainConfig
    from earthport.errors import ConfigError
    from earthport.metrics.weights import region_weights
    from earthport.workflows.train import train

    lat, lon = np.array([45.0, 30.0, 15.0]), np.array([0.0, 120.0, 150.0, 240.0, 350.0])
    weights = region_weights(lat, lon, (20, 50, 122.5, 180), 0.9)
    np.testing.assert_allclose(weights, [[0.1, 0.1, 0.9, 0.1, 0.1]] * 2 + [[0.1] * 5], atol=1e-7)
    wrapped = region_weights(lat, lon - 180, (-90, 90, 340, 10), 0.5)  # lon -180..180, a box across 0 E
    assert wrapped[0].tolist() == [0.5, 0.5, 0.5, 0.5, 0.5]
    wrapped = region_weights(lat, lon, (-90, 90, 340, 10), 0.8)
    np.testing.assert_allclose(wrapped[0], [0.8, 0.2, 0.2, 0.2, 0.8], atol=1e-7)
    config = TrainConfig(model="aigoms", device="cpu", batch_size=4, max_train_samples=8, max_valid_samples=4,
                         max_epochs=1, loss="channel_relative_l2", region=(-10, 10, 0, 90))  # fmt: skip
    record = train(config, ocean_dir, tmp_path / "run", progress=False)
    assert list(record["train_config"]["region"]) == [-10, 10, 0, 90] and np.isfinite(record["best_valid_loss"])
    from earthport.backends.torch.losses import LOSSES

    map_ = torch.from_numpy(weights)[None]  # [1 channel, lat, lon]
    target = torch.ones(1, 1, 3, 5)
    inside, outside = target.clone(), target.clone()
    inside[0, 0, 0, 2], outside[0, 0, 0, 0] = 2.0, 2.0  # the same error, in the box or out of it
    for name, loss in LOSSES.items():  # every loss weighs the box 9 times the rest
        assert float(loss(inside, target, map_)) > float(loss(outside, target, map_)), name
    with pytest.raises(ConfigError, match="region"):
        TrainConfig(region=(1, 2, 3))


def test_a_30_day_rollout_scores_every_variable_depth_and_lead(tmp_path):
    """`earthport infer --steps 30` on AI-GOMS: masked RMSE/ACC per channel (variable at depth) and lead beside
    persistence and climatology; the forecast file has depth as a dimension."""
    import pandas as pd
    import xarray as xr

    from earthport.cli import main
    from earthport.config import TrainConfig
    from earthport.data.generate import generate
    from earthport.workflows.train import train

    data = tmp_path / "ocean"
    generate(data, "ocean", grid=(16, 32), years=3, steps_per_year=36, seed=2)
    quick = {"device": "cpu", "batch_size": 4, "max_train_samples": 4, "max_valid_samples": 2, "max_epochs": 1}
    train(TrainConfig(model="aigoms", **quick), data, tmp_path / "run", progress=False)
    out = tmp_path / "month.nc"
    args = ["infer", "-q", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(data), "--steps", "30",
            "--out", str(out), "--max-inits", "2", "--device", "cpu", "--latency-repeats", "0"]  # fmt: skip
    assert main(args) == 0
    scores = pd.read_csv(tmp_path / "month.scores.csv")
    assert sorted(set(scores["lead_hours"])) == [24 * day for day in range(1, 31)]
    assert set(scores["forecast"]) == {"aigoms", "persistence", "climatology"}
    assert {"thetao_0m", "so_100m", "uo_50m", "vo_10m", "zos"} <= set(scores["channel"])
    assert scores["rmse"].notna().all()
    with xr.open_dataset(out, decode_timedelta=False) as ds:
        assert ds["thetao"].dims == ("init_time", "lead_time", "depth", "lat", "lon")
        assert ds["thetao"].shape[1:3] == (30, 5)
