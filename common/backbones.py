"""The networks an image model is built on: the project's small from-scratch CNN, or any
architecture of timm (the field's model zoo), with pretrained weights from a local file
or from the user's Hugging Face cache. Nothing is ever downloaded: the cache is read with
HF_HUB_OFFLINE set, and a name that is not there trains from scratch (an architecture
name) or is one line saying so (a hub repository name).

    make_backbone(name, outputs, weights=None, width=32, image_size=64, channels=3, dropout=None, cached=True) -> Backbone
        `name` "small" (the default without weights) or a timm architecture
        ("resnet18", "efficientnet_b0", ...) or a hub name of one ("timm/resnet18.a1_in1k",
        "hf-hub:timm/..."); `weights` a state dict saved by torch.save or a .safetensors
        file. Backbone.net is the module (logits out), .pretrained says whether weights
        were loaded, .head the parameter-name prefixes of its classifier (trained anew),
        and .groups(net) the body's and the head's parameters, for a lower rate on a
        pretrained body (fastai's splitter). `channels`: the input's (3 for images, 1 for
        common/sound.py's log-mels: a first convolution saved for another count is
        adapted as timm adapts it); `cached` False builds without looking in the Hugging
        Face cache (a network about to receive a trained state dict).
    check(name)                     one line when `name` is neither "small" nor timm's
    load_weights(net, path, head)   a local file into `net`, its first convolution adapted
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import io

log = logging.getLogger("compete")

SMALL = "small"
BODY_RATE = 0.1     # a pretrained body learns at a tenth of the head's rate (fastai's fine_tune uses lr/100..lr/10 slices)
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


class SmallNet(nn.Module):
    """conv/batch-norm/relu blocks, a max-pool after each pair, and a head on mean- and
    max-pooled features (one strong local cue anywhere can decide, as for the far animals
    of serengeti's frames). Blocks are added while the map is at least 8 pixels across, so
    a 32-pixel image gets two stages and a 128-pixel one four; exported at any ONNX opset."""

    def __init__(self, outputs: int, width: int = 32, image_size: int = 64, dropout: float = 0.2, channels: int = 3):
        super().__init__()

        def block(a, b):
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

        layers, size, stage = [], int(image_size), 0
        while stage == 0 or (size >= 16 and stage < 4):
            out = width * 2 ** stage
            layers += block(channels, out) + block(out, out) + [nn.MaxPool2d(2)]
            channels, size, stage = out, size // 2, stage + 1
        self.features = nn.Sequential(*layers)
        self.mean, self.max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * channels, outputs))

    def forward(self, x):
        features = self.features(x)
        return self.head(torch.cat([self.mean(features), self.max(features)], dim=1))


@dataclass
class Backbone:
    net: nn.Module
    name: str              # the architecture: "small" or timm's name
    pretrained: bool
    head: tuple[str, ...]  # parameter-name prefixes of the classifier
    source: str = ""       # where the weights came from

    def groups(self, net: nn.Module) -> list[list[nn.Parameter]]:
        """[body parameters, head parameters] (a fastai splitter): one learning rate each."""
        body, head = [], []
        for name, parameter in net.named_parameters():
            (head if any(name.startswith(prefix) for prefix in self.head) else body).append(parameter)
        return [body, head] if body else [head]

    def final_layer(self) -> nn.Linear | None:
        """The classifier's last linear layer (its bias starts at the class prior)."""
        linear = [module for name, module in self.net.named_modules()
                  if isinstance(module, nn.Linear) and any(name.startswith(p.rstrip(".")) for p in self.head)]
        return linear[-1] if linear else None


def architecture(name: str) -> tuple[str, str | None]:
    """(timm architecture, hub repository or None) of a backbone name."""
    name = name.removeprefix("hf-hub:").removeprefix("hf_hub:")
    if "/" in name:
        repository = name
        base = name.split("/", 1)[1]
        return base.split(".")[0], repository
    return name, None


def check(name: str) -> str:
    """The timm architecture `name` builds, "small" for the project's CNN, or one line
    naming similar architectures when it is neither."""
    name = (name or SMALL).strip()
    if name == SMALL:
        return SMALL
    import timm

    arch, _ = architecture(name)
    if not timm.is_model(arch):
        similar = timm.list_models(f"*{arch.split('_')[0][:6]}*")[:6]
        raise io.InputError(f"backbone={name!r}: not a timm architecture{'; e.g. ' + ', '.join(similar) if similar else ''} "
                            f"(or {SMALL!r}, the project's small CNN)")
    return arch


def make_backbone(name: str, outputs: int, weights: Path | str | None = None, width: int = 32, image_size: int = 64,
                  channels: int = 3, dropout: float | None = None, cached: bool = True) -> Backbone:
    """The network `name` with `outputs` logits; see the module docstring."""
    name = (name or SMALL).strip()
    if check(name) == SMALL:
        net = SmallNet(outputs, width=width, image_size=image_size, channels=channels)
        backbone = Backbone(net, SMALL, False, ("head.",))
        if weights:
            load_weights(net, weights, backbone.head)
            backbone.pretrained, backbone.source = True, str(weights)
        return backbone
    import timm

    arch, repository = architecture(name)
    net = timm.create_model(arch, pretrained=False, num_classes=outputs, in_chans=channels,
                            **({"drop_rate": dropout} if dropout is not None else {}))
    classifier = net.pretrained_cfg.get("classifier", "fc") if hasattr(net, "pretrained_cfg") else "fc"
    prefixes = tuple(f"{c}." for c in (classifier if isinstance(classifier, (list, tuple)) else [classifier]))
    backbone = Backbone(net, arch, False, prefixes)
    source = Path(weights) if weights else cached_weights(arch, repository) if cached else None
    if source is None:
        if repository and cached:
            raise io.InputError(f"backbone={name!r}: not in the Hugging Face cache ({hub_cache()}); nothing is downloaded "
                                f"at run time: fetch it once with `huggingface-cli download {repository}` or pass "
                                f"--set weights=PATH")
        log.info("backbone %s: no weights given and none in the Hugging Face cache: trained from scratch", arch)
        return backbone
    load_weights(net, source, prefixes)
    backbone.pretrained, backbone.source = True, str(source)
    return backbone


def hub_cache() -> str:
    from huggingface_hub import constants
    return str(constants.HF_HUB_CACHE)


def cached_weights(arch: str, repository: str | None) -> Path | None:
    """The weights file of `repository` (or of timm's default pretrained tag of `arch`)
    in the Hugging Face cache, read offline; None when it is not there."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # whatever happens next, never the network
    from huggingface_hub import try_to_load_from_cache

    candidates = [repository] if repository else []
    if not repository:
        try:
            import timm
            config = timm.models.get_pretrained_cfg(arch)
            if config is not None and getattr(config, "hf_hub_id", None):
                candidates.append(config.hf_hub_id)
        except Exception:  # an architecture timm knows no pretrained tag of
            pass
    for candidate in candidates:
        for file in HUB_FILES:
            found = try_to_load_from_cache(candidate, file, cache_dir=hub_cache())
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    return None


def read_state(path: Path | str) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors (by its header) or torch.save's."""
    path = Path(path)
    if not path.is_file():
        raise io.InputError(f"{path}: pretrained weights not found (a local state dict or .safetensors file; "
                            f"nothing is downloaded)")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        try:
            from safetensors.torch import load_file
            return load_file(str(path))
        except Exception as error:
            raise io.InputError(f"{path}: cannot read safetensors weights: {' '.join(str(error).split())[:160]}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle that is not a state dict, a truncated file
        raise io.InputError(f"{path}: cannot read weights: {' '.join(str(error).split())[:160]}") from None
    state = state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise io.InputError(f"{path}: not a state dict of tensors (save one with torch.save(model.state_dict(), path))")
    return state


def load_weights(net: nn.Module, path: Path | str, head: tuple[str, ...]) -> nn.Module:
    """Every tensor of `net` outside the `head` prefixes from the file (their shapes
    must match: another architecture's file is one line); the head's too where they fit.
    A first convolution saved for another number of input channels (an ImageNet
    model's three colours into a log-mel's one) is adapted first, as timm does: summed
    to one channel, repeated to more."""
    from common.trainers import load_state
    return load_state(net, adapt_channels(net, read_state(path)), Path(path), head)


def adapt_channels(net: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the first convolution timm names for `net` (pretrained_cfg's
    first_conv) fitted to the net's input channels, when the file's differ."""
    config = getattr(net, "pretrained_cfg", None) or {}
    first = config.get("first_conv") or ()
    own = net.state_dict()
    for layer in ([first] if isinstance(first, str) else first):
        key = f"{layer}.weight"
        if key in state and key in own and state[key].ndim == 4 and state[key].shape[1] != own[key].shape[1]:
            from timm.models import adapt_input_conv
            state = {**state, key: adapt_input_conv(own[key].shape[1], state[key], base_chans=state[key].shape[1])}
    return state


def start_at(backbone: Backbone, task: str, prior: np.ndarray) -> None:
    """The last layer's bias at the logit (or log) of the class prior: training starts at
    the prior's loss instead of far above it, which log loss punishes hard."""
    layer = backbone.final_layer()
    if layer is None or layer.bias is None:
        return
    prior = np.clip(np.atleast_1d(np.asarray(prior, dtype=np.float64)), 1e-4, 1 - 1e-4)
    values = np.log(prior) if task == "multiclass" else np.log(prior / (1 - prior))
    if values.shape[0] != layer.bias.shape[0]:
        return
    with torch.no_grad():
        layer.bias.copy_(torch.from_numpy(values).float())


def describe(backbone: Backbone) -> str:
    parameters = sum(p.numel() for p in backbone.net.parameters())
    where = f", weights from {backbone.source}" if backbone.pretrained else ", from scratch"
    return f"{backbone.name} ({parameters / 1e6:.2f} M parameters{where})"

