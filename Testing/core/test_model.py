"""Tests of the CoNeS networks: encoding, hypernetwork, shift-modulated MLP, generator, discriminator."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from tiny_models import TINY_GENERATOR
from torch.nn.utils.parametrize import is_parametrized

from cones.config import DiscriminatorConfig, GeneratorConfig
from cones.model import (
    CoNeSGenerator,
    Hypernetwork,
    PatchDiscriminator,
    PositionalEncoding,
    ShiftModulatedMLP,
    build_discriminator,
    build_generator,
    generator_config,
)
from cones.model.pixels import foreground_pixels, sample_bilinear

TINY = TINY_GENERATOR


def test_positional_encoding_crop_equals_window_of_whole_slice() -> None:
    encoding = PositionalEncoding(6, (240, 240))
    whole = encoding(240, 200)
    offsets = torch.tensor([[17, 33], [0, 0], [200, 150]])
    crops = encoding(40, 50, offsets)
    for crop, (row, col) in zip(crops, offsets.tolist(), strict=True):
        assert torch.equal(crop, whole[0, :, row : row + 40, col : col + 50])


def test_positional_encoding_channels_and_values() -> None:
    encoding = PositionalEncoding(6, (4, 8))
    features = encoding(4, 8)
    assert encoding.out_channels == 28
    assert features.shape == (1, 28, 4, 8)
    # first frequency is pi/2; row 0 of an extent of 4 sits at coordinate -0.75
    assert features[0, 0, 0, 0].item() == pytest.approx(torch.sin(torch.tensor(-0.75 * torch.pi / 2)).item())
    assert features[0, 3, 0, 7].item() == pytest.approx(torch.cos(torch.tensor(0.875 * torch.pi / 2)).item())


def test_positional_encoding_is_unique_per_pixel() -> None:
    features = PositionalEncoding(6, (64, 64))(64, 64)[0].flatten(1).T
    assert torch.unique(features.round(decimals=5), dim=0).shape[0] == 64 * 64


@pytest.mark.parametrize(
    ("frequency_parameter", "extent", "match"),
    [(-1, (8, 8), "frequency_parameter"), (6, (0, 8), "extent"), (6, (8,), "extent")],
)
def test_positional_encoding_rejects_bad_arguments(frequency_parameter: int, extent: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PositionalEncoding(frequency_parameter, extent)


def test_positional_encoding_rejects_bad_offsets() -> None:
    with pytest.raises(ValueError, match="offsets"):
        PositionalEncoding(6, (8, 8))(8, 8, torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize(("height", "width"), [(237, 191), (32, 32), (45, 64)])
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_hypernetwork_keeps_any_input_size(height: int, width: int, stem_stride: int) -> None:
    network = Hypernetwork(
        2,
        latent_channels=11,
        stem_channels=8,
        stem_stride=stem_stride,
        stage_blocks=(1, 1, 1, 1),
        stage_widths=(4, 4, 4, 4),
        fpn_channels=8,
    )
    with torch.no_grad():
        latent = network(torch.randn(1, 2, height, width))
    assert latent.shape == (1, 11, height, width)


def test_hypernetwork_rejects_too_small_input() -> None:
    network = Hypernetwork(
        1, 5, stem_channels=8, stem_stride=2, stage_blocks=(1, 1, 1, 1), stage_widths=(4, 4, 4, 4), fpn_channels=8
    )
    with pytest.raises(ValueError, match="at least 32 pixels"):
        network(torch.randn(1, 1, 31, 64))


def test_hypernetwork_rejects_wrong_stage_count() -> None:
    with pytest.raises(ValueError, match="stage_blocks"):
        Hypernetwork(1, 5, stage_blocks=(1, 1, 1), stage_widths=(4, 4, 4))


def test_mlp_shift_changes_output() -> None:
    torch.manual_seed(0)
    mlp = ShiftModulatedMLP(in_features=5, width=8, hidden_layers=4, out_features=1)
    features = torch.randn(1, 5, 6, 7)
    shifts = torch.zeros(1, mlp.shift_channels, 6, 7)
    base = mlp(features, shifts)
    for layer_start in torch.cumsum(torch.tensor([0, *mlp.shift_sizes[:-1]]), 0).tolist():
        shifted = shifts.clone()
        shifted[:, layer_start, 2, 3] = 1.0
        out = mlp(features, shifted)
        changed = (out != base).squeeze()
        assert changed[2, 3], f"a shift of layer starting at channel {layer_start} had no effect"
        assert changed.sum() == 1, "a shift at one pixel must not change other pixels"


def test_mlp_weights_are_shared_by_all_pixels() -> None:
    torch.manual_seed(0)
    mlp = ShiftModulatedMLP(in_features=4, width=8, hidden_layers=4, out_features=2)
    features = torch.randn(1, 4, 5, 6)
    shifts = torch.randn(1, mlp.shift_channels, 5, 6)
    whole = mlp(features, shifts)
    for row, col in [(0, 0), (4, 5), (2, 3)]:
        single = mlp(features[:, :, row : row + 1, col : col + 1], shifts[:, :, row : row + 1, col : col + 1])
        torch.testing.assert_close(single[0, :, 0, 0], whole[0, :, row, col])
    assert len(mlp.layers) == 5 and mlp.shift_channels == 4 * 8 + 2
    assert all(layer.kernel_size == (1, 1) for layer in mlp.layers)


def test_mlp_output_is_bounded_by_tanh() -> None:
    mlp = ShiftModulatedMLP(3, 8, 4, 1)
    out = mlp(torch.randn(2, 3, 4, 4) * 100, torch.randn(2, mlp.shift_channels, 4, 4) * 100)
    assert out.abs().max() <= 1.0


def test_mlp_rejects_wrong_shift_channels() -> None:
    mlp = ShiftModulatedMLP(3, 8, 4, 1)
    with pytest.raises(ValueError, match="33 channels"):
        mlp(torch.randn(1, 3, 4, 4), torch.randn(1, 32, 4, 4))


def test_paper_preset_has_the_papers_parameter_count() -> None:
    generator = build_generator("paper", in_channels=3, out_channels=1)
    assert sum(p.numel() for p in generator.parameters()) == 45_264_706
    assert generator.config.latent_channels == 257
    assert generator.mlp.shift_sizes == [64, 64, 64, 64, 1]
    assert generator.config.stage_blocks == (2, 4, 23, 3)


def test_lite_preset_fits_a_small_checkpoint() -> None:
    generator = build_generator("lite", in_channels=3, out_channels=1)
    parameters = sum(p.numel() for p in generator.parameters())
    assert parameters * 4 < 20 * 1024**2, "a lite checkpoint must stay under 20 MB"
    assert generator.mlp.shift_channels == 257, "lite keeps the paper's neural field"


@pytest.mark.parametrize(("sources", "targets"), [(3, 1), (1, 1), (2, 2), (4, 3)])
def test_generator_maps_any_sources_to_any_targets(sources: int, targets: int) -> None:
    config = dataclasses.replace(TINY, in_channels=sources, out_channels=targets)
    generator = CoNeSGenerator(config)
    output = generator(torch.randn(2, sources, 37, 41), torch.tensor([[0, 0], [5, 9]]))
    assert output.image.shape == (2, targets, 37, 41)
    assert output.latent.shape == (2, 4 * 8 + targets, 37, 41)
    assert output.image.abs().max() <= 1.0


def test_generator_lite_preset_runs_on_whole_slices() -> None:
    generator = build_generator("lite", 3, 1).eval()
    with torch.no_grad():
        assert generator(torch.randn(1, 3, 240, 240)).image.shape == (1, 1, 240, 240)


def test_generator_depends_on_offset_and_sources() -> None:
    torch.manual_seed(0)
    generator = CoNeSGenerator(dataclasses.replace(TINY, init_gain=1.0)).eval()
    sources = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        base = generator(sources).image
        moved = generator(sources, torch.tensor([[8, 8]])).image
        other = generator(sources + 0.5).image
    assert not torch.equal(base, moved)
    assert not torch.equal(base, other)


@pytest.mark.parametrize("code_size, size", [((7, 9), (13, 20)), ((120, 120), (240, 240)), ((5, 5), (5, 5))])
def test_sample_bilinear_is_the_upsampled_code_at_those_pixels(code_size: tuple, size: tuple) -> None:
    code = torch.randn(2, 6, *code_size)
    upsampled = F.interpolate(code, size=size, mode="bilinear", align_corners=False).flatten(2)
    indices = torch.stack([torch.randperm(size[0] * size[1])[:50] for _ in range(2)])
    expected = upsampled.gather(2, indices[:, None, :].expand(2, 6, -1))
    torch.testing.assert_close(sample_bilinear(code, indices, size), expected.unsqueeze(2))


def test_foreground_pixels_lists_each_slice_then_pads_with_distinct_background() -> None:
    foreground = torch.zeros(2, 4, 5, dtype=torch.bool)
    foreground[0, 1, 1:4] = True
    foreground[1, 3, 0] = True
    indices, real = foreground_pixels(foreground, bucket=1)
    assert indices.tolist()[0] == [6, 7, 8] and real.tolist() == [[True] * 3, [True, False, False]]
    assert indices[1, 0] == 15 and len(set(indices[1].tolist())) == 3
    indices, real = foreground_pixels(foreground, bucket=8)
    assert indices.shape == (2, 8) and real.sum(1).tolist() == [3, 1] and len(set(indices[0].tolist())) == 8
    assert foreground_pixels(foreground, bucket=64)[0].shape == (2, 20), "never more than the slice's pixels"


def test_encoding_at_pixels_is_the_whole_slice_encoding_there() -> None:
    encoding = PositionalEncoding(6, (240, 240))
    rows, cols = torch.tensor([[0, 17, 239]]), torch.tensor([[5, 120, 199]])
    whole = encoding(240, 200)
    assert torch.equal(encoding.at_pixels(rows, cols)[0, :, 0], whole[0][:, rows[0], cols[0]])


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_foreground_synthesis_equals_the_whole_slice_at_the_foreground(stem_stride: int) -> None:
    torch.manual_seed(0)
    generator = CoNeSGenerator(dataclasses.replace(TINY, init_gain=1.0, stem_stride=stem_stride)).eval()
    sources = torch.randn(2, 3, 37, 45)
    foreground = torch.rand(2, 37, 45) < 0.5
    foreground[1] = False
    foreground[1, 5:9, 30:] = True
    with torch.no_grad():
        whole = generator(sources).image
        brain_only = generator.forward_foreground(sources, foreground)
    inside = foreground.unsqueeze(1)
    assert whole.std() > 0.05, "the field must vary, or the comparison shows nothing"
    assert (brain_only - whole).abs()[inside].max() < 1e-4
    assert torch.all(brain_only[~inside] == -1.0)


def test_foreground_synthesis_rejects_a_mask_of_another_shape() -> None:
    generator = CoNeSGenerator(TINY)
    with pytest.raises(ValueError, match="foreground"):
        generator.forward_foreground(torch.randn(2, 3, 32, 32), torch.ones(1, 32, 32, dtype=torch.bool))


def test_generator_initialisation_is_deterministic_for_a_seed() -> None:
    torch.manual_seed(123)
    first = CoNeSGenerator(TINY).state_dict()
    torch.manual_seed(123)
    second = CoNeSGenerator(TINY).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_generator_initialisation_zeroes_biases() -> None:
    generator = CoNeSGenerator(TINY)
    assert all(layer.bias.abs().sum() == 0 for layer in generator.mlp.layers)


def test_generator_rejects_wrong_inputs() -> None:
    generator = CoNeSGenerator(TINY)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        generator(torch.randn(1, 2, 32, 32))
    with pytest.raises(ValueError, match="offsets"):
        generator(torch.randn(2, 3, 32, 32), torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"stem_stride": 3}, "stem_stride"),
        ({"stage_blocks": (1, 1, 1)}, "stage_blocks"),
        ({"stage_widths": (4, 4, 0, 4)}, "stage_widths"),
        ({"frequency_parameter": -1}, "frequency_parameter"),
        ({"coordinate_extent": (0, 5)}, "coordinate_extent"),
        ({"negative_slope": 1.5}, "negative_slope"),
        ({"mlp_width": 0}, "mlp_width"),
    ],
)
def test_generator_config_validation(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **changes)


def test_generator_config_json_round_trip_and_unknown_keys() -> None:
    config = generator_config("lite", 2, 1)
    assert GeneratorConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="no field"):
        GeneratorConfig.from_dict({**config.to_dict(), "mystery": 1})


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_generator("huge", 3, 1)


def test_discriminator_scales_and_features() -> None:
    discriminator = PatchDiscriminator(DiscriminatorConfig(in_channels=4, channels=(8, 16, 32, 32, 1)))
    outputs = discriminator(torch.randn(2, 3, 64, 64), torch.randn(2, 1, 64, 64))
    assert len(outputs) == 2
    assert [f.shape[1] for f in outputs[0]] == [8, 16, 32, 32, 1]
    assert outputs[0][-1].shape[-1] == pytest.approx(64 / 8, abs=3)
    assert outputs[1][-1].shape[-1] < outputs[0][-1].shape[-1]
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(is_parametrized(conv, "weight") for conv in convs) == 2 * 4, "spectral norm on all but the last conv"


def test_discriminator_is_conditional_on_sources() -> None:
    torch.manual_seed(0)
    discriminator = build_discriminator("lite", 3, 1)
    target = torch.randn(1, 1, 48, 48)
    first = discriminator(torch.randn(1, 3, 48, 48), target)[0][-1]
    second = discriminator(torch.randn(1, 3, 48, 48), target)[0][-1]
    assert not torch.allclose(first, second)


def test_discriminator_rejects_channel_mismatch() -> None:
    discriminator = build_discriminator("lite", 3, 1)
    with pytest.raises(ValueError, match="4 channels"):
        discriminator(torch.randn(1, 2, 48, 48), torch.randn(1, 1, 48, 48))


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"channels": (8, 16, 2)}, "ending in 1"), ({"strides": (2, 2)}, "strides"), ({"num_scales": 0}, "num_scales")],
)
def test_discriminator_config_validation(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(DiscriminatorConfig(), **changes)
