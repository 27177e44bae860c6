"""The baseline generators (pix2pix, ASAP-Net-style, pGAN, ResViT): contract, shapes, validation, training, files."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
from synthetic_cases import write_dataset
from torch import nn

from cones.checkpoint import ModelCard, describe_model, load_model, load_training_state, make_provenance, save_model
from cones.checkpoint.layout import TRAINING_STATE_KEY
from cones.config import DiscriminatorConfig, GeneratorConfig, LossWeights, NormalizationConfig
from cones.domain import TrainingDomain
from cones.model import (
    ASAPNetConfig,
    ASAPNetGenerator,
    CoNeSGenerator,
    PatchDiscriminator,
    PGANConfig,
    PGANGenerator,
    Pix2PixConfig,
    Pix2PixGenerator,
    ResViTConfig,
    ResViTGenerator,
    build_generator,
    generator_config,
)
from cones.model.baselines.resvit import TokenTransformer
from cones.training.config import TrainConfig, default_loss_weights
from cones.training.run import train
from cones.training.step import AdversarialStep

TINY_PIX2PIX = Pix2PixConfig(base_channels=4, depth=4, max_channels=16, dropout=0.5)
TINY_ASAPNET = ASAPNetConfig(
    patch_size=4, base_channels=4, depth=2, max_channels=8, mlp_width=8, mlp_hidden_layers=2, coordinate_extent=(64, 64)
)
TINY_PGAN = PGANConfig(base_channels=4, residual_blocks=2)
TINY_RESVIT = ResViTConfig(
    base_channels=4,
    art_blocks=3,
    transformer_blocks=(0, 2),
    transformer_width=8,
    transformer_layers=1,
    transformer_heads=2,
    transformer_mlp=16,
    token_stride=2,
    coordinate_extent=(64, 64),
)
TINY = {
    "pix2pix": (Pix2PixGenerator, TINY_PIX2PIX),
    "asapnet": (ASAPNetGenerator, TINY_ASAPNET),
    "pgan": (PGANGenerator, TINY_PGAN),
    "resvit": (ResViTGenerator, TINY_RESVIT),
}


def build(arch: str, seed: int = 0, **changes: object) -> nn.Module:
    generator_type, config = TINY[arch]
    torch.manual_seed(seed)
    return generator_type(dataclasses.replace(config, **changes)).eval()


@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize(
    ("in_channels", "out_channels", "size"), [(3, 1, (32, 32)), (2, 2, (40, 36)), (1, 1, (17, 23))]
)
def test_baseline_keeps_the_input_size_and_the_output_range(
    arch: str, in_channels: int, out_channels: int, size: tuple[int, int]
) -> None:
    generator = build(arch, in_channels=in_channels, out_channels=out_channels)
    with torch.no_grad():
        output = generator(torch.rand(2, in_channels, *size) * 2 - 1)
    assert output.image.shape == (2, out_channels, *size)
    assert output.image.abs().max() <= 1.0 and output.latent.ndim == 4


@pytest.mark.parametrize("arch", sorted(TINY))
def test_baseline_is_deterministic_for_a_seed_and_refuses_wrong_inputs(arch: str) -> None:
    sources = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        first, second = build(arch, seed=3)(sources).image, build(arch, seed=3)(sources).image
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"sources must have shape \(B, 3, H, W\)"):
        build(arch)(torch.rand(1, 2, 32, 32))
    with pytest.raises(ValueError, match=r"offsets must have shape \(1, 2\)"):
        build(arch)(sources, torch.zeros(2, 2, dtype=torch.long))


def test_asapnet_applies_each_patch_its_own_predicted_mlp() -> None:
    generator = build("asapnet")
    config = generator.config
    features = torch.randn(1, config.mlp_sizes[0], 8, 8)
    parameters = torch.randn(1, config.parameters_per_patch, 2, 2)
    with torch.no_grad():
        result = generator._pixelwise(features, parameters)
    row, col = 5, 2  # a pixel of patch (1, 0)
    hidden, start = features[0, :, row, col], 0
    for index, (fan_in, fan_out) in enumerate(zip(config.mlp_sizes[:-1], config.mlp_sizes[1:], strict=True)):
        weight = parameters[0, start : start + fan_in * fan_out, 1, 0].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        hidden = hidden @ weight + parameters[0, start : start + fan_out, 1, 0]
        start += fan_out
        last = index == len(config.mlp_sizes) - 2
        hidden = torch.tanh(hidden) if last else nn.functional.leaky_relu(hidden, config.negative_slope)
    torch.testing.assert_close(result[0, :, row, col], hidden)


def test_asapnet_and_resvit_encode_the_crop_position_and_the_cnns_ignore_it() -> None:
    sources = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for arch, differs in (("asapnet", True), ("resvit", True), ("pix2pix", False), ("pgan", False)):
            generator = build(arch)
            at_origin = generator(sources, torch.tensor([[0, 0]])).image
            shifted = generator(sources, torch.tensor([[8, 4]])).image
            assert (not torch.equal(at_origin, shifted)) is differs


def test_pix2pix_dropout_acts_in_training_only() -> None:
    generator = build("pix2pix")
    sources = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(generator(sources).image, generator(sources).image, rtol=0, atol=0)
        generator.train()
        assert not torch.equal(generator(sources).image, generator(sources).image)


@pytest.mark.parametrize(
    ("config_type", "changes", "match"),
    [
        (Pix2PixConfig, {"depth": 1}, "depth must be >= 2"),
        (Pix2PixConfig, {"base_channels": 0}, "base_channels must be >= 1"),
        (Pix2PixConfig, {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        (Pix2PixConfig, {"init_std": 0.0}, "init_std must be positive"),
        (ASAPNetConfig, {"patch_size": 0}, "patch_size must be >= 1"),
        (ASAPNetConfig, {"mlp_hidden_layers": 0}, "mlp_hidden_layers must be >= 1"),
        (ASAPNetConfig, {"frequency_parameter": -1}, "frequency_parameter must be >= 0"),
        (ASAPNetConfig, {"negative_slope": 1.0}, r"negative_slope must be in \[0, 1\)"),
        (ASAPNetConfig, {"coordinate_extent": (0, 8)}, "coordinate_extent must be two positive sizes"),
        (PGANConfig, {"residual_blocks": 0}, "residual_blocks must be >= 1"),
        (PGANConfig, {"init_std": 0.0}, "init_std must be positive"),
        (ResViTConfig, {"transformer_blocks": (9,)}, "must index the 9 ART blocks"),
        (ResViTConfig, {"transformer_blocks": (1, 1)}, "repeats a block"),
        (ResViTConfig, {"transformer_width": 100}, "must be a multiple of transformer_heads"),
        (ResViTConfig, {"token_stride": 3}, "token_stride must be 1, 2, 4 or 8"),
        (ResViTConfig, {"coordinate_extent": (0, 8)}, "coordinate_extent must be two positive sizes"),
    ],
)
def test_baseline_configs_refuse_bad_values(config_type: type, changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        config_type(**changes)


def test_lite_presets_are_comparable_in_size_and_paper_pix2pix_is_unet_256() -> None:
    counts = {
        arch: sum(p.numel() for p in build_generator("lite", 3, 1, arch).parameters())
        for arch in ("cones", "pix2pix", "asapnet", "pgan", "resvit")
    }
    assert all(0.6e6 < count < 1.2e6 for count in counts.values()), counts
    assert generator_config("paper", 3, 1, "pix2pix").encoder_channels == (64, 128, 256, 512, 512, 512, 512, 512)
    with pytest.raises(ValueError, match="unknown architecture 'unet'"):
        generator_config("lite", 3, 1, "unet")


def test_baseline_loss_weights_follow_their_papers() -> None:
    assert default_loss_weights("cones") == LossWeights()
    assert default_loss_weights("pix2pix") == LossWeights(100.0, 1.0, 0.0, 0.0)
    assert default_loss_weights("asapnet") == LossWeights(100.0, 1.0, 10.0, 0.0)
    assert default_loss_weights("pgan") == LossWeights(100.0, 1.0, 0.0, 0.0, perceptual=100.0)
    assert default_loss_weights("resvit") == LossWeights(100.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"TrainConfig\.arch must be one of"):
        TrainConfig(arch="unet")


def resnet_generator_parameters(in_channels: int, out_channels: int, base: int, blocks: int) -> int:
    """Weights of the ResNet generator counted by hand: convolutions with biases, affine instance norms."""

    def conv(fan_in: int, fan_out: int, kernel: int) -> int:
        return fan_in * fan_out * kernel * kernel + fan_out

    encoder = conv(in_channels, base, 7) + conv(base, 2 * base, 3) + conv(2 * base, 4 * base, 3)
    decoder = conv(4 * base, 2 * base, 3) + conv(2 * base, base, 3) + conv(base, out_channels, 7)
    norms = 2 * (base + 2 * base + 4 * base + 2 * base + base) + blocks * 2 * 2 * 4 * base
    return encoder + decoder + blocks * 2 * conv(4 * base, 4 * base, 3) + norms


def test_pgan_is_the_resnet_generator_with_nine_blocks() -> None:
    generator = build_generator("paper", 3, 1, "pgan")
    assert generator.config == PGANConfig(base_channels=64, residual_blocks=9)
    assert sum(p.numel() for p in generator.parameters()) == resnet_generator_parameters(3, 1, 64, 9)
    with torch.no_grad():
        output = build("pgan")(torch.rand(1, 3, 30, 26))
    assert output.latent.shape == (1, 16, 8, 7), "the residual blocks run at 1/4 of the padded size"


def test_resvit_shares_one_transformer_between_its_art_blocks() -> None:
    shared, separate = build("resvit"), build("resvit", shared_transformer=False)
    transformers = [block.transformer for block in shared.art]
    assert transformers[0] is transformers[2] and transformers[1] is None
    assert separate.art[0].transformer is not separate.art[2].transformer
    one_transformer = sum(p.numel() for p in transformers[0].parameters())
    count = lambda generator: sum(p.numel() for p in generator.parameters())  # noqa: E731
    assert count(separate) - count(shared) == one_transformer
    paper = generator_config("paper", 3, 1, "resvit")
    assert (paper.art_blocks, paper.transformer_blocks, paper.transformer_width, paper.transformer_layers) == (
        9,
        (0, 5),
        768,
        12,
    )


def test_resvit_crops_read_the_position_embedding_of_where_they_sit() -> None:
    transformer: TokenTransformer = build("resvit").art[0].transformer
    stride = TINY_RESVIT.image_multiple
    whole = transformer.position_embedding(8, 8, torch.zeros(1, 2, dtype=torch.long))
    crop = transformer.position_embedding(3, 2, torch.tensor([[2 * stride, 5 * stride]]))
    torch.testing.assert_close(crop, whole[..., 2:5, 5:7])
    between = transformer.position_embedding(1, 1, torch.tensor([[stride // 2, 0]]))
    torch.testing.assert_close(between[..., 0, 0], whole[..., :2, 0].mean(dim=-1))


@pytest.mark.parametrize("arch", sorted(TINY))
def test_one_training_step_updates_a_baseline(arch: str) -> None:
    generator = build(arch).train()
    discriminator = PatchDiscriminator(DiscriminatorConfig(in_channels=4, channels=(8, 8, 16, 16, 1)))
    config = TrainConfig(arch=arch, loss_weights=default_loss_weights(arch), iterations=2, crop_size=(32, 32))
    step = AdversarialStep(config, generator, discriminator, autocast=False)
    assert (step.perceptual is not None) is (arch == "pgan")
    before = [p.detach().clone() for p in generator.parameters()]
    sources = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = step(sources, sources[:, :1], torch.tensor([[0, 0], [4, 8]]), 0, torch.Generator().manual_seed(0))
    assert all(math.isfinite(value) for value in dataclasses.astuple(losses))
    assert (losses.perceptual > 0) is (arch == "pgan")
    assert sum(not torch.equal(a, b) for a, b in zip(before, generator.parameters(), strict=True)) > len(before) // 2


@pytest.mark.parametrize("arch", sorted(TINY))
def test_baseline_model_file_round_trips_and_describes_itself(tmp_path: Path, arch: str) -> None:
    generator = build(arch)
    card = ModelCard(
        architecture=arch,
        preset=None,
        generator=generator.config,
        sources=("t1", "t2", "flair"),
        targets=("t1ce",),
        normalization=NormalizationConfig(),
        provenance=make_provenance(7, "sha256:test"),
    )
    path = save_model(tmp_path / f"{arch}.pt", generator, card)
    loaded = load_model(path)
    assert loaded.card == card and type(loaded.generator) is type(generator)
    sources = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(sources).image, generator(sources).image, rtol=0, atol=0)
    description = describe_model(path)
    assert re.search(rf"architecture:\s+{arch} \(preset: custom\)", description)
    assert ("coordinate extent" in description) is (arch in ("asapnet", "resvit"))


def test_card_refuses_a_config_of_another_architecture() -> None:
    with pytest.raises(ValueError, match=r"ModelCard\.generator must be a Pix2PixConfig"):
        ModelCard(
            architecture="pix2pix",
            preset=None,
            generator=TINY_ASAPNET,
            sources=("t1", "t2", "flair"),
            targets=("t1ce",),
            normalization=NormalizationConfig(),
            provenance=make_provenance(0, "sha256:test"),
        )


def test_a_card_written_before_the_baselines_existed_still_loads(tmp_path: Path) -> None:
    # The literal card of a format-1 file written before the baselines: no field was added for them.
    generator_fields = dict(
        in_channels=3, out_channels=1, stem_channels=8, stem_stride=1, stage_blocks=[1, 1, 1, 1],
        stage_widths=[4, 4, 8, 8], expansion=4, fpn_channels=8, mlp_width=8, mlp_hidden_layers=4,
        negative_slope=0.2, frequency_parameter=6, coordinate_extent=[32, 32], init_gain=0.02,
    )  # fmt: skip
    provenance = dict(
        iterations=5, data_fingerprint="sha256:0", created="2026-01-01T00:00:00+00:00", cones_version="0.1.0",
        git_commit=None, command=None, data_description=None,
    )  # fmt: skip
    normalization = dict(lower_percentile=0.5, upper_percentile=99.5, foreground_threshold=0.0, output_scale=1000.0)
    old_card = dict(
        architecture="cones", preset="lite", generator=generator_fields, sources=["t1", "t2", "flair"],
        targets=["t1ce"], normalization=normalization, provenance=provenance, slice_axis=0,
    )  # fmt: skip
    torch.manual_seed(0)
    generator = CoNeSGenerator(GeneratorConfig.from_dict(generator_fields))
    state = {name: tensor.detach().clone() for name, tensor in generator.state_dict().items()}
    payload = {"format": "cones-model", "format_version": 1, "card": old_card, "generator_state": state}
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.card.architecture == "cones" and isinstance(loaded.generator, CoNeSGenerator)
    assert loaded.card.generator == generator.config
    written = loaded.card.to_dict()
    assert written.pop("training_domain") == TrainingDomain.assumed().to_dict(), "format 1 gained the assumed domain"
    assert written == old_card
    sources = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(sources).image, generator.eval()(sources).image, rtol=0, atol=0)


def test_a_run_saved_before_arch_existed_resumes_as_cones(tmp_path: Path) -> None:
    settings = {"batch_size": 2, "crop_size": (32, 32), "validation_interval": 100, "log_interval": 1}
    data = write_dataset(tmp_path / "data", cases=2)
    last = train(TrainConfig(iterations=1, **settings), data, tmp_path / "run", "cpu", show_progress=False)
    payload = torch.load(last, weights_only=True)
    old_config = {key: value for key, value in payload[TRAINING_STATE_KEY]["train_config"].items() if key != "arch"}
    assert TrainConfig.from_dict(old_config).arch == "cones"
    payload[TRAINING_STATE_KEY]["train_config"] = old_config
    torch.save(payload, last)
    train(TrainConfig(iterations=2, **settings), data, tmp_path / "run", "cpu", resume=True, show_progress=False)
    state = load_training_state(last)
    assert state["iteration"] == 2 and state["train_config"]["arch"] == "cones"
    assert load_model(last).card.architecture == "cones"
