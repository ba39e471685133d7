"""ResNet pieces of the fusion necks of MambaAD (``MFF_OCE``) and RD4AD (``OCBE``).

Both necks downsample the finer encoder maps with 3×3 stride-2 convolutions, fuse them with the stride-16 map and
end in a *one-class embedding*: ResNet blocks whose first block halves the resolution (stride 2) through a 1×1
projection shortcut. Both initialise as the original ResNet code: ``nn.Conv2d`` Kaiming-normal (fan_out, ReLU),
BatchNorm weight 1 and bias 0.
"""

from __future__ import annotations

from torch import nn

__all__ = ["conv3x3", "init_resnet_", "one_class_embedding"]


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias: ``(B, cin, h, w)`` → ``(B, cout, h / stride, w / stride)``."""
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def init_resnet_(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) ``nn.Conv2d`` weights, BatchNorm weight 1 / bias 0, over all submodules.

    Transposed convolutions and linear layers keep PyTorch's default initialisation.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def one_class_embedding(
    block_cls: type[nn.Module], in_dim: int, out_dim: int, planes: int, num_blocks: int, base_width: int = 64
) -> nn.Sequential:
    """The one-class embedding: ``num_blocks`` ResNet blocks, the first of stride 2 with a 1×1 projection shortcut.

    ::

        (B, in_dim, h, w) → block(stride 2, shortcut BN(conv1×1/2)) → block × (num_blocks − 1) → (B, out_dim, h/2, w/2)

    Args:
        block_cls: A timm ResNet block (:class:`~timm.models.resnet.BasicBlock` or
            :class:`~timm.models.resnet.Bottleneck`), built as ``block_cls(inplanes, planes, stride=…,
            downsample=…, base_width=…)``.
        in_dim: Input channels.
        out_dim: Output channels (``planes · block_cls.expansion``).
        planes: Planes of each block.
        num_blocks: Number of blocks (at least 1).
        base_width: Bottleneck width per 64 planes (64: ResNet, 128: wide ResNet; basic blocks accept only 64).
    """
    downsample = nn.Sequential(nn.Conv2d(in_dim, out_dim, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(out_dim))
    blocks = [block_cls(in_dim, planes, stride=2, downsample=downsample, base_width=base_width)]
    blocks += [block_cls(out_dim, planes, base_width=base_width) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)
