# Copyright (c) mmwsss contributors.
"""Helpers for the influence tests: a tiny float64 CAM CNN.

A module of its own (not ``conftest``) so that test files can import it
without depending on how pytest names conftest modules."""
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyCAMNet(nn.Module):
    """conv3x3 -> tanh -> conv3x3 -> tanh -> (F) -> 1x1 conv -> GAP.

    Smooth activations keep second derivatives and finite differences clean.
    The classifier is a 1x1 convolution as in ``CAMHead``.
    """

    def __init__(self,
                 in_ch: int = 2,
                 width: int = 4,
                 num_classes: int = 3,
                 bias: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Conv2d(width, num_classes, 1, bias=bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv2(torch.tanh(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)).mean(dim=(2, 3))


def per_image_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image multilabel soft-margin loss (torch's own function)."""
    return F.multilabel_soft_margin_loss(logits, labels, reduction='none')


def make_net(seed: int = 0,
             n: int = 48,
             bias: bool = True,
             train_steps: int = 30) -> SimpleNamespace:
    """A tiny float64 CAM net briefly trained on random data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, 6, generator=g, dtype=torch.float64)
    y = (torch.rand(n, 3, generator=g) < 0.4).to(torch.float64)
    torch.manual_seed(seed)
    net = TinyCAMNet(bias=bias).to(torch.float64)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(train_steps):
        opt.zero_grad()
        per_image_loss(net(x), y).mean().backward()
        opt.step()
    net.eval()
    return SimpleNamespace(net=net, x=x, y=y)
