"""Small torch networks and their ONNX export wrappers (the public contracts live in edge.vision)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlateDetectorNet(nn.Module):
    """CenterNet-style single-class detector at stride 8: heatmap, log size, centre offset."""

    stride = 8

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 2), conv_bn(16, 32, 2), conv_bn(32, 32))
        self.down8 = nn.Sequential(conv_bn(32, 64, 2), conv_bn(64, 64))
        self.down16 = nn.Sequential(conv_bn(64, 96, 2), conv_bn(96, 96), conv_bn(96, 96))
        self.down32 = nn.Sequential(conv_bn(96, 128, 2), conv_bn(128, 128))
        self.lateral16 = conv_bn(96 + 128, 96, kernel=1)
        self.lateral8 = conv_bn(64 + 96, 64)
        self.heads = nn.Conv2d(64, 5, 1)
        nn.init.constant_(self.heads.bias, 0.0)
        with torch.no_grad():
            self.heads.bias[0] = -2.2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float N x 3 x S x S RGB [0, 1]; returns N x 5 x S/8 x S/8 (heat logit, log w, log h, dx, dy)."""
        f8 = self.down8(self.stem(x))
        f16 = self.down16(f8)
        f32 = self.down32(f16)
        up16 = self.lateral16(torch.cat([f16, F.interpolate(f32, scale_factor=2.0, mode="nearest")], 1))
        up8 = self.lateral8(torch.cat([f8, F.interpolate(up16, scale_factor=2.0, mode="nearest")], 1))
        return self.heads(up8)


class DetectorExport(nn.Module):
    """Decodes peaks in-graph: output rows [batch, x1, y1, x2, y2, class, score] (end-to-end contract)."""

    def __init__(self, net: PlateDetectorNet, top_k: int = 10) -> None:
        super().__init__()
        self.net, self.top_k = net, top_k

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.net(image)
        heat = torch.sigmoid(out[:, 0:1])
        peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).to(heat.dtype)
        width = out.shape[3]
        scores, index = torch.topk(peaks.flatten(1), self.top_k)
        ys = torch.div(index, width, rounding_mode="floor").to(torch.float32)
        xs = (index % width).to(torch.float32)
        rest = out[:, 1:].flatten(2)
        gather = lambda c: torch.gather(rest[:, c], 1, index)  # noqa: E731
        size_w, size_h = torch.exp(gather(0)) * 8.0, torch.exp(gather(1)) * 8.0
        cx, cy = (xs + 0.5 + gather(2)) * 8.0, (ys + 0.5 + gather(3)) * 8.0
        zeros = torch.zeros_like(scores)
        rows = torch.stack(
            [zeros, cx - size_w / 2, cy - size_h / 2, cx + size_w / 2, cy + size_h / 2, zeros, scores], -1
        )
        return rows.reshape(-1, 7)


class PlateCtcNet(nn.Module):
    """Column-sequence OCR trained with CTC: a conv backbone collapsed to one row of T = W/4 columns, a
    bidirectional LSTM for context along the plate, and a per-column classifier over the alphabet (the
    pad character doubles as the CTC blank)."""

    def __init__(self, alphabet: int, height: int = 64, context: int = 160) -> None:
        super().__init__()
        self.alphabet = alphabet
        self.features = nn.Sequential(
            conv_bn(1, 32, 2),
            conv_bn(32, 64),
            nn.MaxPool2d(2),
            conv_bn(64, 64),
            conv_bn(64, 128),
            nn.MaxPool2d((2, 1)),
            conv_bn(128, 128),
            conv_bn(128, 160),
            nn.MaxPool2d((2, 1)),
        )
        self.collapse = nn.Sequential(
            nn.Conv2d(160, context, (height // 16, 1), bias=False),
            nn.BatchNorm2d(context),
            nn.ReLU(inplace=True),
        )
        self.sequence = nn.LSTM(context, context // 2, bidirectional=True, batch_first=True)
        self.classify = nn.Sequential(nn.Dropout(0.15), nn.Linear(context, alphabet))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float N x 1 x H x W in [0, 1]; returns logits N x T x alphabet (T = W / 4)."""
        columns = self.collapse(self.features(x)).squeeze(2).permute(0, 2, 1)
        return self.classify(self.sequence(columns)[0])


class CtcSlotsExport(nn.Module):
    """uint8 NHWC in, fixed slots x alphabet probabilities out (the fast-plate-ocr contract).

    Greedy CTC decoding in the graph: a column is kept when its best class is not the blank and differs
    from the previous column's; the k-th kept column fills slot k with its probability row; slots left
    over are one-hot on the pad character.
    """

    def __init__(self, net: PlateCtcNet, slots: int, blank: int) -> None:
        super().__init__()
        self.net, self.slots, self.blank = net, slots, blank
        pad = torch.zeros(1, 1, net.alphabet)
        pad[0, 0, blank] = 1.0
        self.register_buffer("pad_row", pad)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.to(torch.float32).permute(0, 3, 1, 2) / 255.0
        probs = F.softmax(self.net(x), dim=-1)  # N x T x C
        best = probs.argmax(-1)  # N x T
        previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], 1)
        keep = ((best != self.blank) & (best != previous)).to(torch.float32)
        slot_of = torch.cumsum(keep, 1) - 1.0  # N x T
        slot_ids = torch.arange(self.slots, dtype=torch.float32).view(1, 1, -1)
        assign = (slot_of.unsqueeze(-1) == slot_ids).to(torch.float32) * keep.unsqueeze(-1)  # N x T x S
        filled = torch.bmm(assign.transpose(1, 2), probs)  # N x S x C
        empty = 1.0 - assign.sum(1)  # N x S
        return filled + empty.unsqueeze(-1) * self.pad_row
