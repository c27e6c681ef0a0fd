"""PyTorch reference for bench/step_vs_torch.ts: the default tiny ATSS network, one SGD step.

The network matches configs/atss_tiny_shapes.ts layer for layer (ResNet [1, 1, 1, 1] of basic
blocks, width 16, GN(8), 3x3 stride-2 stem + 3x3 stride-2 max pool; FPN on C3-C5 at 32 channels,
no extra levels; ATSS head with two 3x3 conv + GN(8) + ReLU towers of 32 channels, cls 3 x 5,
reg 3 x 4 with a learnable scale per level, no centerness branch).

The loss is a STAND-IN, not ATSS's: a sigmoid focal loss over every anchor's class logits against
fixed random labels (about 2% positives) plus an L1 loss on the deltas of those positives against
fixed random targets. There is no assigner and no ranking loss: this times the network step only
(forward, backward, gradient clipping at norm 10, SGD with momentum 0.9 and weight decay 1e-4).

Run: /usr/bin/python3 bench/torch_step.py [--threads 2] [--steps 10] [--warmup 2] [--batch 4]
[--size 128]; prints one JSON object on stdout.
"""

import argparse
import json
import math
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F

NUM_CLASSES = 5
ANCHORS_PER_LOCATION = 3  # scalesPerOctave 3 x ratios [1]
BASE_WIDTH = 16
NORM_GROUPS = 8
NECK_CHANNELS = 32
FEAT_CHANNELS = 32
STACKED_CONVS = 2
PRIOR_PROBABILITY = 0.01


def groups_for(channels, wanted):
    """detectors/norm_layer.ts groupsFor: the largest count <= wanted dividing channels."""
    for g in range(min(wanted, channels), 1, -1):
        if channels % g == 0:
            return g
    return 1


def backbone_conv(cin, cout, k, stride):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def gn(channels):
    return nn.GroupNorm(groups_for(channels, NORM_GROUPS), channels)


class BasicBlock(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = backbone_conv(cin, width, 3, stride)
        self.bn1 = gn(width)
        self.conv2 = backbone_conv(width, width, 3, 1)
        self.bn2 = gn(width)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(backbone_conv(cin, width, 1, stride), gn(width))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + identity)


class ResNet(nn.Module):
    """ResNet [1, 1, 1, 1] basic, returns the outputs of stages 2-4 (strides 8, 16, 32)."""

    def __init__(self, layers=(1, 1, 1, 1)):
        super().__init__()
        self.conv1 = backbone_conv(3, BASE_WIDTH, 3, 2)
        self.bn1 = gn(BASE_WIDTH)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, channels = [], BASE_WIDTH
        for s, blocks in enumerate(layers):
            width = BASE_WIDTH * 2**s
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(channels, width, 2 if b == 0 and s > 0 else 1))
                channels = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(stages)
        self.out_channels = [BASE_WIDTH * 2**s for s in (1, 2, 3)]

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        outs = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if s >= 1:
                outs.append(x)
        return outs


class Fpn(nn.Module):
    """Lateral 1x1 (with bias), nearest 2x top-down, 3x3 output convs (with bias); P3-P5."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )

    def forward(self, features):
        laterals = [conv(f) for conv, f in zip(self.lateral, features)]
        for k in range(len(laterals) - 1, 0, -1):
            laterals[k - 1] = laterals[k - 1] + F.interpolate(
                laterals[k], scale_factor=2, mode="nearest"
            )
        return [conv(l) for conv, l in zip(self.output, laterals)]


def tower():
    layers = []
    for k in range(STACKED_CONVS):
        conv = nn.Conv2d(NECK_CHANNELS if k == 0 else FEAT_CHANNELS, FEAT_CHANNELS, 3, padding=1,
                         bias=False)
        nn.init.normal_(conv.weight, 0, 0.01)
        layers += [conv, gn(FEAT_CHANNELS), nn.ReLU()]
    return nn.Sequential(*layers)


def output_conv(cout, bias):
    conv = nn.Conv2d(FEAT_CHANNELS, cout, 3, padding=1)
    nn.init.normal_(conv.weight, 0, 0.01)
    nn.init.constant_(conv.bias, bias)
    return conv


def flatten_level(x, k):
    """[N, A*K, H, W] -> [N, H*W*A, K] in the anchor generator's order (atss_head.ts)."""
    n, ak, h, w = x.shape
    a = ak // k
    return x.reshape(n, a, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, h * w * a, k)


class AtssHead(nn.Module):
    def __init__(self, num_levels):
        super().__init__()
        a = ANCHORS_PER_LOCATION
        self.cls_convs = tower()
        self.reg_convs = tower()
        prior = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        self.atss_cls = output_conv(a * NUM_CLASSES, prior)
        self.atss_reg = output_conv(a * 4, 0.0)
        self.scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in range(num_levels))

    def forward(self, features):
        cls, reg = [], []
        for f, scale in zip(features, self.scales):
            cls.append(flatten_level(self.atss_cls(self.cls_convs(f)), NUM_CLASSES))
            reg.append(flatten_level(self.atss_reg(self.reg_convs(f)) * scale, 4))
        return torch.cat(cls, 1), torch.cat(reg, 1)


class Atss(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ResNet()
        self.neck = Fpn(self.backbone.out_channels, NECK_CHANNELS)
        self.bbox_head = AtssHead(num_levels=3)

    def forward(self, images):
        return self.bbox_head(self.neck(self.backbone(images)))


def stand_in_loss(cls, reg, labels, pos_index, reg_targets):
    """Sigmoid focal loss (alpha 0.25, gamma 2) on every logit + L1 on the positives' deltas."""
    num_classes = cls.shape[-1]
    logits = cls.reshape(-1, num_classes)
    onehot = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    alpha_t = 0.25 * onehot + 0.75 * (1 - onehot)
    avg = max(pos_index.numel(), 1)
    focal = (alpha_t * ce * (1 - p_t) ** 2).sum() / avg
    deltas = reg.reshape(-1, 4).index_select(0, pos_index)
    return focal + F.l1_loss(deltas, reg_targets, reduction="sum") / avg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Atss()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)

    images = torch.randn(args.batch, 3, args.size, args.size)
    with torch.no_grad():
        num_anchors = model(images[:1])[0].shape[1]
    total = args.batch * num_anchors
    num_pos = max(1, total // 50)
    pos_index = torch.randperm(total)[:num_pos]
    labels = torch.full((total,), NUM_CLASSES, dtype=torch.long)
    labels[pos_index] = torch.randint(0, NUM_CLASSES, (num_pos,))
    reg_targets = torch.randn(num_pos, 4) * 0.5

    def step():
        cls, reg = model(images)
        loss = stand_in_loss(cls, reg, labels, pos_index, reg_targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)

    print(json.dumps({
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch,
        "size": args.size,
        "anchors_per_image": num_anchors,
        "params": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "loss": "stand-in: sigmoid focal (all anchors) + L1 (random positives), no assigner",
    }))


if __name__ == "__main__":
    main()
