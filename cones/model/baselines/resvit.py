"""The ResViT generator (Dalmaz et al., IEEE TMI 2022): a residual CNN with transformer modules in its bottleneck.

ResViT is the paper's transformer baseline. It keeps pGAN's CNN encoder and decoder and replaces
the residual bottleneck by aggregated residual transformer (ART) blocks: in some of them a vision
transformer reads the whole feature map as tokens, so every position can draw on context from
anywhere in the slice, which the convolutions' local receptive fields cannot. Each ART block
concatenates the transformer's output with its input, compresses the channels back and ends with
a residual CNN block, so local detail and global context are fused at every depth.

Written from the paper; where it leaves a choice open, this module says what it chose. ResViT
starts its transformers from ImageNet-pretrained ViT-B/16 weights; those cannot be had offline, so
here they are trained from scratch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cones.model.baselines.config import ResViTConfig
from cones.model.baselines.padding import checked_offsets, crop_to, pad_to_multiple
from cones.model.baselines.resnet import (
    DOWNSAMPLING,
    ResidualBlock,
    resnet_decoder,
    resnet_encoder,
)
from cones.model.generator import GeneratorOutput, initialize_normal
from cones.model.hypernetwork import NormLayer, instance_norm

__all__ = ["ARTBlock", "ResViTGenerator", "TokenTransformer", "TransformerLayer"]


class TransformerLayer(nn.Module):
    """Pre-norm ViT encoder layer: multi-head self-attention and a GELU MLP, each added to its input.

    Attention is written out as matrix products rather than through ``scaled_dot_product_attention``:
    torch's FLOP counter does not count the CPU kernel of the latter, and ``cones bench`` reports
    GFLOP per slice. The token grids are small (at most a few hundred tokens), so nothing is lost.
    """

    def __init__(self, width: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.projection = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp), nn.GELU(), nn.Linear(mlp, width))

    def forward(self, tokens: Tensor) -> Tensor:
        batch, count, width = tokens.shape
        qkv = self.qkv(self.attention_norm(tokens)).reshape(batch, count, 3, self.heads, width // self.heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        weights = torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(width // self.heads), dim=-1)
        attended = (weights @ value).transpose(1, 2).reshape(batch, count, width)
        tokens = tokens + self.projection(attended)
        return tokens + self.mlp(self.mlp_norm(tokens))


class TokenTransformer(nn.Module):
    """ResViT's transformer module: feature map -> tokens -> ViT encoder -> feature map of the same size.

    Two stride-2 convolutions (``token_stride`` 4) shrink the bottleneck to the token grid, a 1x1
    convolution embeds each position as one token (ViT patch size 1 on that grid), a learned
    position embedding is added, the encoder layers mix all tokens, and transposed convolutions
    bring the result back to the bottleneck's size. The position embedding is one map over the
    whole-slice frame (``coordinate_extent``), read at each token's centre, so a training crop's
    tokens get the embedding of where the crop sits and a whole slice's tokens the same values.

    Shapes:
        ``(B, C, h, w)`` with ``h, w`` multiples of ``token_stride`` -> ``(B, C, h, w)``.
    """

    def __init__(self, config: ResViTConfig, channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.config = config
        steps = int(math.log2(config.token_stride))
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for _ in range(steps):
            down += [nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1), norm_layer(channels), nn.ReLU()]
            up += [
                nn.ConvTranspose2d(channels, channels, kernel_size=3, stride=2, padding=1, output_padding=1),
                norm_layer(channels),
                nn.ReLU(),
            ]
        self.down = nn.Sequential(*down)
        self.embed = nn.Conv2d(channels, config.transformer_width, kernel_size=1)
        grid = [extent // config.image_multiple for extent in config.coordinate_extent]
        self.position = nn.Parameter(torch.randn(1, config.transformer_width, *grid) * 0.02)
        self.layers = nn.Sequential(
            *(
                TransformerLayer(config.transformer_width, config.transformer_heads, config.transformer_mlp)
                for _ in range(config.transformer_layers)
            )
        )
        self.norm = nn.LayerNorm(config.transformer_width)
        self.unembed = nn.Conv2d(config.transformer_width, channels, kernel_size=1)
        self.up = nn.Sequential(*up)

    def position_embedding(self, rows: int, cols: int, offsets: Tensor) -> Tensor:
        """``(B, width, rows, cols)``: the embedding at the centres of each crop's token grid.

        Args:
            rows, cols: the token grid of the crops.
            offsets: ``(B, 2)`` (row, column) of each crop's top-left pixel in its whole slice.
        """
        stride = self.config.image_multiple
        extent = torch.tensor(self.config.coordinate_extent, dtype=torch.float32, device=offsets.device)
        row_centres = (torch.arange(rows, device=offsets.device) + 0.5) * stride
        col_centres = (torch.arange(cols, device=offsets.device) + 0.5) * stride
        centre_rows = (offsets[:, :1].float() + row_centres) / extent[0] * 2 - 1  # (B, rows)
        centre_cols = (offsets[:, 1:].float() + col_centres) / extent[1] * 2 - 1  # (B, cols)
        grid = torch.stack(
            torch.broadcast_tensors(centre_cols[:, None, :], centre_rows[:, :, None]), dim=-1
        )  # (B, rows, cols, 2) as (x, y)
        position = self.position.expand(offsets.shape[0], -1, -1, -1)
        return F.grid_sample(position, grid.to(position.dtype), align_corners=False, padding_mode="border")

    def forward(self, features: Tensor, offsets: Tensor) -> Tensor:
        embedded = self.embed(self.down(features))
        embedded = embedded + self.position_embedding(*embedded.shape[-2:], offsets).to(embedded.dtype)
        batch, width, rows, cols = embedded.shape
        tokens = self.norm(self.layers(embedded.flatten(2).transpose(1, 2)))
        return self.up(self.unembed(tokens.transpose(1, 2).reshape(batch, width, rows, cols)))


class ARTBlock(nn.Module):
    """Aggregated residual transformer block: [transformer ->] channel compression -> residual CNN block.

    With a transformer, its output is concatenated with the block's input and a 3x3 convolution
    compresses the ``2 C`` channels back to ``C`` (ResViT's channel compression; one convolution
    here); without one, the block is a residual CNN block alone, as in the paper's ART blocks that
    hold no transformer.
    """

    def __init__(self, channels: int, transformer: TokenTransformer | None, norm_layer: NormLayer) -> None:
        super().__init__()
        self.transformer = transformer
        self.compression = (
            None
            if transformer is None
            else nn.Sequential(
                nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1), norm_layer(channels), nn.ReLU()
            )
        )
        self.residual = ResidualBlock(channels, norm_layer)

    def forward(self, features: Tensor, offsets: Tensor) -> Tensor:
        if self.transformer is not None and self.compression is not None:
            features = self.compression(torch.cat([features, self.transformer(features, offsets)], dim=1))
        return self.residual(features)


class ResViTGenerator(nn.Module):
    """ResViT: pGAN's encoder and decoder around ``art_blocks`` ART blocks at 1/4 resolution.

    The ART blocks listed in ``transformer_blocks`` hold a transformer; with ``shared_transformer``
    (ResViT's choice, which keeps its parameter count down) they hold the same one. Inputs of any
    size are padded with background to a multiple of ``4 * token_stride``.

    Args:
        config: see :class:`~cones.model.baselines.ResViTConfig`.
        norm_layer: normalisation factory of the convolutional parts.

    Example:
        >>> config = ResViTConfig(base_channels=4, art_blocks=2, transformer_blocks=(0,), transformer_width=8,
        ...                       transformer_layers=1, transformer_heads=2, transformer_mlp=16)
        >>> ResViTGenerator(config)(torch.zeros(2, 3, 40, 36)).image.shape
        torch.Size([2, 1, 40, 36])
    """

    def __init__(self, config: ResViTConfig, norm_layer: NormLayer = instance_norm) -> None:
        super().__init__()
        self.config = config
        bottleneck = DOWNSAMPLING * config.base_channels
        self.encoder = resnet_encoder(config.in_channels, config.base_channels, norm_layer)
        shared = TokenTransformer(config, bottleneck, norm_layer) if config.shared_transformer else None

        def transformer_of(index: int) -> TokenTransformer | None:
            if index not in config.transformer_blocks:
                return None
            return shared if shared is not None else TokenTransformer(config, bottleneck, norm_layer)

        self.art = nn.ModuleList(
            ARTBlock(bottleneck, transformer_of(index), norm_layer) for index in range(config.art_blocks)
        )
        self.decoder = resnet_decoder(config.base_channels, config.out_channels, norm_layer)
        initialize_normal(self.encoder, config.init_std)
        initialize_normal(self.decoder, config.init_std)
        for block in self.art:
            initialize_normal(block.residual, config.init_std)

    def forward(self, sources: Tensor, offsets: Tensor | None = None) -> GeneratorOutput:
        """Synthesize the targets of a batch of source slices or crops.

        Args:
            sources: ``(B, N_s, H, W)`` normalized source intensities.
            offsets: ``(B, 2)`` (row, column) of each crop's top-left pixel in its whole slice
                (where the position embedding is read); ``None`` for whole slices.

        Returns:
            The ``(B, N_t, H, W)`` image in [-1, 1], and the last ART block's output as the latent code.
        """
        config = self.config
        offsets = checked_offsets(sources, offsets, config.in_channels)
        height, width = sources.shape[-2:]
        latent = self.encoder(pad_to_multiple(sources, config.image_multiple))
        for block in self.art:
            latent = block(latent, offsets)
        return GeneratorOutput(image=crop_to(self.decoder(latent), height, width), latent=latent)
