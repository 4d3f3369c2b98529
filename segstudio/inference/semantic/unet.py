"""UNet, as the lecture draws it: an encoder that halves the resolution at each level (strided
convolution or max-pooling), a decoder that doubles it again (bilinear interpolation or a
learned transposed convolution — a setting), and skip connections that hand each decoder level
the encoder features of the same resolution.

Any input size works: the input is padded up to a multiple of 2^depth (reflect) and the output
cropped back, so odd sizes come out exactly the size they went in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.errors import BadValue
from segstudio.inference.semantic.spec import ENCODERS


@dataclass
class UNetConfig:
    in_channels: int = 3
    num_classes: int = 2  # including background
    depth: int = 4  # number of downsamplings
    width: int = 32  # channels at the first level, doubled per level
    up_mode: str = "bilinear"  # "bilinear" | "transpose"
    down_mode: str = "pool"  # "pool" | "strided"
    dropout: float = 0.0
    # "plain": this module's UNet; a ResNet name, FCN or DeepLabV3: see semantic_spec / semantic_nets
    encoder: str = "plain"

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise BadValue(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if self.up_mode not in ("bilinear", "transpose"):
            raise BadValue(f"up_mode must be 'bilinear' or 'transpose', not {self.up_mode!r}")
        if self.down_mode not in ("pool", "strided"):
            raise BadValue(f"down_mode must be 'pool' or 'strided', not {self.down_mode!r}")
        if self.depth < 1 or self.width < 1 or self.num_classes < 2 or self.in_channels < 1:
            raise BadValue("depth, width >= 1, num_classes >= 2, in_channels >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        keys = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in keys})


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                  nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int, mode: str, dropout: float):
        super().__init__()
        self.down = nn.MaxPool2d(2) if mode == "pool" else nn.Conv2d(cin, cin, 3, stride=2, padding=1)
        self.conv = DoubleConv(cin, cout, dropout)

    def forward(self, x):
        return self.conv(self.down(x))


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, mode: str):
        super().__init__()
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            cup = cin // 2
        else:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            cup = cin
        self.conv = DoubleConv(cup + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        return self.conv(x if skip is None else torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        chans = [c.width * 2 ** i for i in range(c.depth + 1)]
        self.inc = DoubleConv(c.in_channels, chans[0])
        self.downs = nn.ModuleList(Down(chans[i], chans[i + 1], c.down_mode, c.dropout if i == c.depth - 1 else 0.0)
                                   for i in range(c.depth))
        self.ups = nn.ModuleList(Up(chans[i + 1], chans[i], chans[i], c.up_mode) for i in reversed(range(c.depth)))
        self.head = nn.Conv2d(chans[0], c.num_classes, 1)

    @property
    def multiple(self) -> int:
        return 2 ** self.config.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = [self.inc(x)]
        for d in self.downs:
            skips.append(d(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)[..., :h, :w]
