"""FourCastNet in PyTorch: shapes per preset, NVlabs parameter names and checkpoints, AFNO semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earthport.errors import ConfigError
from earthport.migrate.checkpoint_io import load_checkpoint
from earthport.models.fourcastnet.config import PRESETS, FourCastNetConfig
from earthport.models.fourcastnet.nvlabs import config_from_state, model_state
from earthport.models.fourcastnet.torch import AFNO2D, FourCastNet

TINY = PRESETS["tiny"]


def nvlabs_names(depth: int) -> set[str]:
    """The state-dict keys of NVlabs' AFNONet (networks/afnonet.py), written out by hand."""
    names = {"pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias", "head.weight"}
    parts = ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "filter.w1", "filter.b1", "filter.w2"]
    parts += ["filter.b2", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    for i in range(depth):
        for part in parts:
            names.add(f"blocks.{i}.{part}")
    return names


@pytest.mark.parametrize("name", ["tiny", "small", pytest.param("paper", marks=pytest.mark.slow)])
def test_output_shape_per_preset(name):
    config = PRESETS[name]
    model = FourCastNet(config).eval()
    with torch.no_grad():
        out = model(torch.randn(1, config.in_chans, *config.img_size))
    assert out.shape == (1, config.out_chans, *config.img_size) and torch.isfinite(out).all()


def test_paper_preset_is_the_published_model():
    config = PRESETS["paper"]
    assert (config.img_size, config.patch_size, config.embed_dim, config.depth, config.num_blocks) == (
        (720, 1440), 8, 768, 12, 8)  # fmt: skip
    state = FourCastNet(config).state_dict()
    assert set(state) == nvlabs_names(12)
    assert state["pos_embed"].shape == (1, 90 * 180, 768) and state["head.weight"].shape == (20 * 64, 768)


def afno_reference(x: np.ndarray, w1, b1, w2, b2, fraction: float, threshold: float) -> np.ndarray:
    """AFNO2D re-derived in numpy (float64) from NVlabs' description: zero outputs, the kept slice written."""
    batch, height, width, channels = x.shape
    nb, bs = w1.shape[1], w1.shape[2]
    spectrum = np.fft.rfft2(x, axes=(1, 2), norm="ortho").reshape(batch, height, width // 2 + 1, nb, bs)
    total = height // 2 + 1
    kept = int(total * fraction)
    sl = (slice(None), slice(total - kept, total + kept), slice(None, kept))
    z = spectrum[sl]

    def mix(a, w):
        return np.einsum("...bi,bio->...bo", a, w)

    o1 = np.zeros(spectrum.shape, complex)
    o1.real[sl] = np.maximum(mix(z.real, w1[0]) - mix(z.imag, w1[1]) + b1[0], 0)
    o1.imag[sl] = np.maximum(mix(z.imag, w1[0]) + mix(z.real, w1[1]) + b1[1], 0)
    o2 = np.zeros(spectrum.shape, complex)
    o2.real[sl] = mix(o1.real[sl], w2[0]) - mix(o1.imag[sl], w2[1]) + b2[0]
    o2.imag[sl] = mix(o1.imag[sl], w2[0]) + mix(o1.real[sl], w2[1]) + b2[1]

    def shrink(v):
        return np.sign(v) * np.maximum(np.abs(v) - threshold, 0)

    o2 = (shrink(o2.real) + 1j * shrink(o2.imag)).reshape(batch, height, width // 2 + 1, channels)
    return np.fft.irfft2(o2, s=(height, width), axes=(1, 2), norm="ortho") + x


@pytest.mark.parametrize(
    "height,width,fraction", [(8, 16, 1.0), (8, 16, 0.5), (9, 14, 1.0), (12, 12, 0.34), (6, 7, 0.7)]
)
def test_afno_filter_matches_the_published_semantics(height, width, fraction):
    torch.manual_seed(0)
    layer = AFNO2D(16, 4, sparsity_threshold=0.01, hard_thresholding_fraction=fraction).double()
    with torch.no_grad():  # weights large enough that softshrink and ReLU both bite
        for p in layer.parameters():
            p.mul_(25)
    x = torch.randn(2, height, width, 16, dtype=torch.float64)
    # the layer computes its spectrum in fp32, as NVlabs; the reference in float64
    got = layer(x.float().double()).detach().numpy()
    w = [p.detach().numpy() for p in (layer.w1, layer.b1, layer.w2, layer.b2)]
    expected = afno_reference(x.numpy(), *w, fraction, 0.01)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def test_nvlabs_checkpoint_loads_with_and_without_module_prefix(tmp_path):
    torch.manual_seed(1)
    source = FourCastNet(TINY).eval()
    x = torch.randn(2, 20, 32, 64)
    with torch.no_grad():
        expected = source(x)
    for prefix in ("", "module."):
        state = {prefix + k: v for k, v in source.state_dict().items()}
        torch.save({"model_state": state, "epoch": 3, "iters": 10}, tmp_path / "best_ckpt.tar")
        loaded = model_state(load_checkpoint(tmp_path / "best_ckpt.tar"))
        config = config_from_state(loaded, img_size=(32, 64))
        assert config == TINY
        target = FourCastNet(config).eval()
        target.load_state_dict(loaded, strict=True)
        with torch.no_grad():
            assert torch.equal(target(x), expected)


def test_config_from_state_needs_an_unambiguous_grid():
    state = FourCastNet(TINY).state_dict()
    with pytest.raises(ConfigError, match="ambiguous"):
        config_from_state(state)
    with pytest.raises(ConfigError, match="pos_embed holds 128"):
        config_from_state(state, img_size=(64, 64))
    assert config_from_state(state, img_size=(35, 64)).img_size == (32, 64)  # rows cropped from the south
    with pytest.raises(ConfigError, match="missing"):
        config_from_state({"pos_embed": state["pos_embed"]}, img_size=(32, 64))


def test_final_norm_is_never_applied():
    model = FourCastNet(TINY)
    model(torch.randn(1, 20, 32, 64)).square().mean().backward()
    assert model.norm.weight.grad is None and model.head.weight.grad is not None


def test_config_validation_and_data_fit():
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        FourCastNetConfig(img_size=(30, 64), patch_size=4)
    with pytest.raises(ConfigError, match="divisible by num_blocks"):
        FourCastNetConfig(embed_dim=30, num_blocks=4)
    fitted = PRESETS["paper"].for_data(721, 1440, 20, 20)
    assert fitted.img_size == (720, 1440)
    with pytest.raises(ConfigError, match="unknown FourCastNet config keys"):
        FourCastNetConfig.from_dict({"embed": 3})
    assert FourCastNetConfig.from_dict(TINY.to_dict()) == TINY


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(2)
    model = FourCastNet(TINY)
    x = torch.randn(2, 20, 32, 64)
    model(x).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    model.activation_checkpointing = True
    model(x).square().mean().backward()
    again = [p.grad for p in model.parameters() if p.grad is not None]
    for a, b in zip(plain, again, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
