"""A small 3-D U-Net (PyTorch) for the thorax model: conv-norm-LeakyReLU blocks, strided-conv downsampling,
transposed-conv upsampling, skip connections by concatenation. Input [N, 1, Z, Y, X] (Z, Y, X multiples of
2 ** (levels - 1)), output logits [N, num_classes, Z, Y, X]."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet3D"]


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
        nn.InstanceNorm3d(c_out, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet3D(nn.Module):
    """``channels`` per level (the first is full resolution); ``len(channels) - 1`` downsamplings."""

    def __init__(self, in_channels: int = 1, num_classes: int = 8, channels: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        chans = tuple(int(c) for c in channels)
        self.encoders = nn.ModuleList(
            [_block(in_channels, chans[0])] + [_block(chans[i - 1], chans[i], stride=2) for i in range(1, len(chans))]
        )
        self.ups = nn.ModuleList(
            [nn.ConvTranspose3d(chans[i], chans[i - 1], 2, stride=2) for i in range(len(chans) - 1, 0, -1)]
        )
        self.decoders = nn.ModuleList([_block(2 * chans[i - 1], chans[i - 1]) for i in range(len(chans) - 1, 0, -1)])
        self.head = nn.Conv3d(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.ups, self.decoders, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
