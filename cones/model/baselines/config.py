"""Architectures of the baseline generators, as frozen JSON-able configs stored in model cards."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from cones.config import JsonConfig

__all__ = ["ASAPNetConfig", "PGANConfig", "Pix2PixConfig", "ResViTConfig"]


def _require_at_least(owner: object, minimum: int | float, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(owner, name)
        if not value >= minimum:
            raise ValueError(f"{type(owner).__name__}.{name} must be >= {minimum}, got {value!r}")


def _require_fraction(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(owner).__name__}.{name} must be in [0, 1), got {value!r}")


@dataclass(frozen=True)
class Pix2PixConfig(JsonConfig):
    """Architecture of a :class:`~cones.model.baselines.Pix2PixGenerator` (defaults: pix2pix ``unet_256``).

    Attributes:
        in_channels: source sequences N_s.
        out_channels: target sequences N_t.
        base_channels: filters of the first encoder convolution (pix2pix ``ngf``: 64).
        depth: stride-2 encoder steps (pix2pix: 8, a 1x1 bottleneck for 256x256 inputs); inputs
            are padded to a multiple of ``2 ** depth``.
        max_channels: cap on the doubling filters (pix2pix: 8 * ngf = 512).
        dropout: dropout of the three innermost decoder blocks while training (pix2pix: 0.5, its
            only source of noise).
        init_std: standard deviation of the normal weight initialisation (pix2pix: 0.02).
    """

    in_channels: int = 3
    out_channels: int = 1
    base_channels: int = 64
    depth: int = 8
    max_channels: int = 512
    dropout: float = 0.5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        _require_at_least(self, 1, ("in_channels", "out_channels", "base_channels", "max_channels"))
        _require_at_least(self, 2, ("depth",))
        _require_fraction(self, "dropout")
        if not self.init_std > 0:
            raise ValueError(f"Pix2PixConfig.init_std must be positive, got {self.init_std!r}")

    @property
    def encoder_channels(self) -> tuple[int, ...]:
        """Filters of each encoder level, doubling from ``base_channels`` up to ``max_channels``."""
        return tuple(min(self.base_channels * 2**level, self.max_channels) for level in range(self.depth))


@dataclass(frozen=True)
class ASAPNetConfig(JsonConfig):
    """Architecture of an :class:`~cones.model.baselines.ASAPNetGenerator`.

    Attributes:
        in_channels: source sequences N_s.
        out_channels: target sequences N_t.
        patch_size: the hypernetwork sees the sources downsampled by this factor and predicts one
            MLP per ``patch_size x patch_size`` patch of the full-resolution image.
        base_channels: channels of the hypernetwork's first (low-resolution) level.
        depth: stride-2 levels of the hypernetwork's encoder-decoder (U-Net shaped, as in ASAP-Net).
        max_channels: cap on the doubling channels of the hypernetwork.
        mlp_width: neurons of each hidden layer of the per-patch MLPs (ASAP-Net: 64).
        mlp_hidden_layers: hidden layers; ``mlp_hidden_layers + 1`` linear layers in all (ASAP-Net: 5).
        negative_slope: LeakyReLU slope of the MLPs' hidden layers.
        frequency_parameter: ``m`` of the positional encoding the MLPs read (as CoNeS: 6).
        coordinate_extent: (rows, columns) in pixels that span the coordinate range [-1, 1]; the
            same whole-slice frame as CoNeS, so crops and whole slices agree.
        init_gain: gain of the Xavier-normal initialisation of the head that predicts the MLP
            parameters; small, so every patch starts close to one shared, well-scaled MLP.
    """

    in_channels: int = 3
    out_channels: int = 1
    patch_size: int = 16
    base_channels: int = 64
    depth: int = 4
    max_channels: int = 512
    mlp_width: int = 64
    mlp_hidden_layers: int = 4
    negative_slope: float = 0.2
    frequency_parameter: int = 6
    coordinate_extent: tuple[int, int] = (256, 256)
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        _require_at_least(
            self,
            1,
            (
                "in_channels",
                "out_channels",
                "patch_size",
                "base_channels",
                "depth",
                "max_channels",
                "mlp_width",
                "mlp_hidden_layers",
            ),
        )
        _require_at_least(self, 0, ("frequency_parameter",))
        _require_fraction(self, "negative_slope")
        if len(self.coordinate_extent) != 2 or any(extent < 1 for extent in self.coordinate_extent):
            raise ValueError(
                f"ASAPNetConfig.coordinate_extent must be two positive sizes, got {self.coordinate_extent!r}"
            )
        if not self.init_gain > 0:
            raise ValueError(f"ASAPNetConfig.init_gain must be positive, got {self.init_gain!r}")

    @property
    def mlp_sizes(self) -> tuple[int, ...]:
        """Neurons of every MLP layer, inputs first: PE (4 (m + 1)) + sources, hidden layers, targets."""
        inputs = 4 * (self.frequency_parameter + 1) + self.in_channels
        return (inputs, *[self.mlp_width] * self.mlp_hidden_layers, self.out_channels)

    @property
    def parameters_per_patch(self) -> int:
        """Weights and biases of one patch's MLP: what the hypernetwork predicts per low-resolution pixel."""
        sizes = self.mlp_sizes
        return sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(sizes))


@dataclass(frozen=True)
class PGANConfig(JsonConfig):
    """Architecture of a :class:`~cones.model.baselines.PGANGenerator` (defaults: pGAN's ResNet generator).

    Attributes:
        in_channels: source sequences N_s.
        out_channels: target sequences N_t.
        base_channels: filters of the 7x7 input convolution (pGAN: 64); each of the two stride-2
            downsamplings doubles them, so the residual blocks run at ``4 * base_channels``.
        residual_blocks: residual blocks at 1/4 resolution (pGAN: 9).
        init_std: standard deviation of the normal weight initialisation (pGAN, as pix2pix: 0.02).
    """

    in_channels: int = 3
    out_channels: int = 1
    base_channels: int = 64
    residual_blocks: int = 9
    init_std: float = 0.02

    def __post_init__(self) -> None:
        _require_at_least(self, 1, ("in_channels", "out_channels", "base_channels", "residual_blocks"))
        if not self.init_std > 0:
            raise ValueError(f"PGANConfig.init_std must be positive, got {self.init_std!r}")


@dataclass(frozen=True)
class ResViTConfig(JsonConfig):
    """Architecture of a :class:`~cones.model.baselines.ResViTGenerator` (defaults: ResViT's proportions).

    Attributes:
        in_channels: source sequences N_s.
        out_channels: target sequences N_t.
        base_channels: filters of the 7x7 input convolution (ResViT: 64); the bottleneck of
            aggregated residual transformer (ART) blocks runs at ``4 * base_channels``, 1/4 resolution.
        art_blocks: ART blocks in the bottleneck (ResViT: 9).
        transformer_blocks: indices of the ART blocks that hold a transformer (ResViT: the first
            and the sixth); the others are residual CNN blocks only.
        shared_transformer: whether those blocks share one transformer's weights (ResViT does).
        transformer_width: token dimension (ResViT, from ViT-B/16: 768).
        transformer_layers: encoder layers of the transformer (ViT-B: 12).
        transformer_heads: attention heads (ViT-B: 12).
        transformer_mlp: hidden neurons of each layer's MLP (ViT-B: 3072).
        token_stride: pixels of the bottleneck per token side; two stride-2 convolutions lead there
            (ResViT: 4, so a 256 x 256 image has 16 x 16 tokens).
        coordinate_extent: (rows, columns) in pixels of the whole-slice frame over which the learned
            position embedding is laid, so a crop's tokens read the embedding of where they sit.
        init_std: standard deviation of the normal initialisation of the encoder's, the decoder's
            and the residual blocks' convolutions (0.02, as pGAN); the transformer modules and the
            channel compressions keep PyTorch's default initialisation.
    """

    in_channels: int = 3
    out_channels: int = 1
    base_channels: int = 64
    art_blocks: int = 9
    transformer_blocks: tuple[int, ...] = (0, 5)
    shared_transformer: bool = True
    transformer_width: int = 768
    transformer_layers: int = 12
    transformer_heads: int = 12
    transformer_mlp: int = 3072
    token_stride: int = 4
    coordinate_extent: tuple[int, int] = (256, 256)
    init_std: float = 0.02

    def __post_init__(self) -> None:
        _require_at_least(
            self,
            1,
            (
                "in_channels",
                "out_channels",
                "base_channels",
                "art_blocks",
                "transformer_width",
                "transformer_layers",
                "transformer_heads",
                "transformer_mlp",
            ),
        )
        if not all(0 <= index < self.art_blocks for index in self.transformer_blocks):
            raise ValueError(
                f"ResViTConfig.transformer_blocks must index the {self.art_blocks} ART blocks, "
                f"got {self.transformer_blocks!r}"
            )
        if len(set(self.transformer_blocks)) != len(self.transformer_blocks):
            raise ValueError(f"ResViTConfig.transformer_blocks repeats a block: {self.transformer_blocks!r}")
        if self.transformer_width % self.transformer_heads:
            raise ValueError(
                f"ResViTConfig.transformer_width ({self.transformer_width}) must be a multiple of "
                f"transformer_heads ({self.transformer_heads})"
            )
        if self.token_stride not in (1, 2, 4, 8):
            raise ValueError(f"ResViTConfig.token_stride must be 1, 2, 4 or 8, got {self.token_stride!r}")
        if len(self.coordinate_extent) != 2 or any(extent < 1 for extent in self.coordinate_extent):
            raise ValueError(
                f"ResViTConfig.coordinate_extent must be two positive sizes, got {self.coordinate_extent!r}"
            )
        if not self.init_std > 0:
            raise ValueError(f"ResViTConfig.init_std must be positive, got {self.init_std!r}")

    @property
    def image_multiple(self) -> int:
        """What slice sizes must divide by: the encoder's 4 times the tokens' stride."""
        return 4 * self.token_stride
