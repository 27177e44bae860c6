"""Frozen, JSON-serialisable configurations.

Every configuration that shapes a model or its preprocessing is a frozen dataclass, because a
checkpoint must be able to rebuild exactly what was trained: the configs are written into the model
file as plain JSON-compatible dicts and read back with :meth:`JsonConfig.from_dict`, which refuses
unknown keys instead of silently dropping them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, Self

__all__ = ["DiscriminatorConfig", "GeneratorConfig", "JsonConfig", "LossWeights", "NormalizationConfig"]


class JsonConfig:
    """Mixin giving a frozen dataclass a lossless round trip through JSON-compatible dicts."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples become lists) that ``json.dumps`` and ``torch.load(weights_only=True)`` accept."""
        return {field.name: _to_plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild the config; unknown keys are an error because they mean a foreign or newer file.

        Raises:
            ValueError: ``data`` is not a dict, has unknown keys, or fails the config's validation.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} must be read from a dict, got {type(data).__name__}")
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
        hints = typing.get_type_hints(cls)
        values = {key: _from_plain(value, hints[key]) for key, value in data.items()}
        try:
            return cls(**values)
        except TypeError as error:
            raise ValueError(f"cannot build {cls.__name__}: {error}") from error


def _to_plain(value: Any) -> Any:
    if isinstance(value, JsonConfig):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value  # weights_only loading refuses enum objects
    if isinstance(value, tuple | list):
        return [_to_plain(item) for item in value]
    return value


def _from_plain(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and issubclass(hint, JsonConfig):
        return hint.from_dict(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _require_positive(owner: object, **values: int | float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{type(owner).__name__}.{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig(JsonConfig):
    """Architecture of a :class:`~cones.model.CoNeSGenerator`.

    Attributes:
        in_channels: number of source sequences N_s, concatenated as input channels.
        out_channels: number of target sequences N_t.
        stem_channels: channels of the 7x7 stem convolution.
        stem_stride: 1 keeps the stem at full resolution (paper); 2 halves the cost of everything
            after it and the latent code is upsampled back to full resolution (``lite``).
        stage_blocks: bottleneck blocks per FPN bottom-up stage (paper: ResNet-101-like [2, 4, 23, 3]).
        stage_widths: bottleneck inner widths per stage; a stage outputs ``width * expansion`` channels.
        expansion: bottleneck expansion factor (4 as in ResNet).
        fpn_channels: channels of the top-down pathway (laterals and smoothing convolutions).
        mlp_width: neurons of each hidden MLP layer.
        mlp_hidden_layers: hidden layers of the MLP; the MLP has ``mlp_hidden_layers + 1`` linear layers.
        negative_slope: LeakyReLU slope of the MLP's hidden layers (paper: 0.2).
        frequency_parameter: the positional encoding's ``m`` (paper: 6); see
            :class:`~cones.model.PositionalEncoding` for the frequencies it yields.
        coordinate_extent: (rows, columns) in pixels that map onto the coordinate range [-1, 1].
            It is fixed per model so that a pixel keeps its coordinate whether it is seen in a
            training crop or in a whole slice at inference.
        init_gain: gain of the Xavier-normal initialisation (0.02 as in the reference code).
    """

    in_channels: int = 3
    out_channels: int = 1
    stem_channels: int = 64
    stem_stride: int = 1
    stage_blocks: tuple[int, ...] = (2, 4, 23, 3)
    stage_widths: tuple[int, ...] = (64, 128, 256, 512)
    expansion: int = 4
    fpn_channels: int = 256
    mlp_width: int = 64
    mlp_hidden_layers: int = 4
    negative_slope: float = 0.2
    frequency_parameter: int = 6
    coordinate_extent: tuple[int, int] = (256, 256)
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        _require_positive(
            self,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            stem_channels=self.stem_channels,
            expansion=self.expansion,
            fpn_channels=self.fpn_channels,
            mlp_width=self.mlp_width,
            mlp_hidden_layers=self.mlp_hidden_layers,
            init_gain=self.init_gain,
        )
        if self.stem_stride not in (1, 2, 4):
            raise ValueError(f"GeneratorConfig.stem_stride must be 1, 2 or 4, got {self.stem_stride!r}")
        if len(self.stage_blocks) != 4 or any(n < 1 for n in self.stage_blocks):
            raise ValueError(f"GeneratorConfig.stage_blocks must have 4 entries >= 1, got {self.stage_blocks!r}")
        if len(self.stage_widths) != 4 or any(w < 1 for w in self.stage_widths):
            raise ValueError(f"GeneratorConfig.stage_widths must have 4 entries >= 1, got {self.stage_widths!r}")
        if self.frequency_parameter < 0:
            raise ValueError(f"GeneratorConfig.frequency_parameter must be >= 0, got {self.frequency_parameter!r}")
        if len(self.coordinate_extent) != 2 or any(e < 1 for e in self.coordinate_extent):
            raise ValueError(
                f"GeneratorConfig.coordinate_extent must be two positive sizes, got {self.coordinate_extent!r}"
            )
        if not 0.0 <= self.negative_slope < 1.0:
            raise ValueError(f"GeneratorConfig.negative_slope must be in [0, 1), got {self.negative_slope!r}")

    @property
    def latent_channels(self) -> int:
        """Size of the per-pixel latent code: one shift per MLP neuron (paper: 4 * 64 + 1 = 257)."""
        return self.mlp_hidden_layers * self.mlp_width + self.out_channels


@dataclass(frozen=True)
class DiscriminatorConfig(JsonConfig):
    """Architecture of the conditional multi-scale :class:`~cones.model.PatchDiscriminator`.

    Attributes:
        in_channels: sources + targets, since the discriminator judges the pair (conditional GAN).
        channels: filters of the five 4x4 convolutions (paper: [64, 128, 256, 512, 1]); the last is
            the patch score and must be 1.
        strides: strides of those convolutions (paper: [2, 2, 2, 1, 1]).
        num_scales: discriminators applied to the input downsampled by 1, 2, 4 ... (reference: 2).
        negative_slope: LeakyReLU slope (0.2).
    """

    in_channels: int = 4
    channels: tuple[int, ...] = (64, 128, 256, 512, 1)
    strides: tuple[int, ...] = (2, 2, 2, 1, 1)
    num_scales: int = 2
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        _require_positive(self, in_channels=self.in_channels, num_scales=self.num_scales)
        if len(self.channels) < 2 or self.channels[-1] != 1 or any(c < 1 for c in self.channels):
            raise ValueError(
                f"DiscriminatorConfig.channels must be >= 2 positive entries ending in 1, got {self.channels!r}"
            )
        if len(self.strides) != len(self.channels) or any(s not in (1, 2) for s in self.strides):
            raise ValueError(
                f"DiscriminatorConfig.strides must have one entry of 1 or 2 per layer "
                f"({len(self.channels)}), got {self.strides!r}"
            )


@dataclass(frozen=True)
class LossWeights(JsonConfig):
    """Weights of the generator objective (paper eq. 16: lambda_rec=100, lambda_adv=1, lambda_fm=10, lambda_reg=10).

    ``perceptual`` weighs pGAN's perceptual term (L1 between the features a fixed network sees in
    the synthesized and the real target, :mod:`cones.model.perceptual`); CoNeS has none, so it is 0
    unless an architecture's published objective asks for it, and files written before it existed
    read as 0.
    """

    reconstruction: float = 100.0
    adversarial: float = 1.0
    feature_matching: float = 10.0
    latent_regularization: float = 10.0
    perceptual: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value < 0:
                raise ValueError(f"LossWeights.{field.name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class NormalizationConfig(JsonConfig):
    """How a volume's scanner intensities become network inputs in [-1, 1].

    The same function serves training and inference (the reference code used different ones), and
    the config travels in every checkpoint so a model is always fed what it was trained on.

    Attributes:
        lower_percentile: intensity percentile inside the foreground mapped to -1.
        upper_percentile: intensity percentile inside the foreground mapped to +1; robust against
            the few very bright voxels (vessels, fat) that would squash a min-max scale.
        foreground_threshold: voxels above this raw value form the foreground mask (skull-stripped
            BraTS data has exactly 0 background).
        output_scale: synthesized volumes are written as ``(y + 1) / 2 * output_scale``, so the
            background is exactly 0 and the target's upper percentile lands at ``output_scale``.
    """

    lower_percentile: float = 0.5
    upper_percentile: float = 99.5
    foreground_threshold: float = 0.0
    output_scale: float = 1000.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lower_percentile < self.upper_percentile <= 100.0:
            raise ValueError(
                "NormalizationConfig percentiles must satisfy 0 <= lower < upper <= 100, "
                f"got lower={self.lower_percentile!r}, upper={self.upper_percentile!r}"
            )
        _require_positive(self, output_scale=self.output_scale)
