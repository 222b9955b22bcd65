"""The InceptionV3 frame encoder of iv3_gru: torchvision's network cut at its 2048-d pooled output.

Weights come from one of three places, decided by the settings:

- ``pretrained=False``: random initialisation (torchvision's scheme);
- ``weights_path``: a local state dict (an ImageNet InceptionV3, or a backbone saved by slr);
- otherwise torchvision's ImageNet weights, downloaded into the torch hub cache.

Frames are expected as torchvision's ImageNet preprocessing leaves them (RGB, normalised with the
ImageNet mean and std); ``transform_input=True`` converts that to what the Google weights were
trained on. It is set for every source so one input convention holds whatever the weights.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor, nn

from slr.errors import ConfigError, setting
from slr.models.state_keys import unwrapped_keys

if TYPE_CHECKING:
    from torchvision.models.inception import Inception3

FEATURE_DIM = 2048

# The attribute name of the backbone inside InceptionV3GRU, as it appears in saved state dicts.
_BACKBONE_PREFIX = "backbone."
# Parts of torchvision's network that the feature extractor does not have.
_DROPPED_PREFIXES = ("AuxLogits.", "fc.")
_NESTED_STATE_KEYS = ("state_dict", "model_state", "model")

_DOWNLOAD_HINT = (
    f"pass a local copy with {setting('backbone_weights', 'PATH')}, or start from random weights with "
    f"{setting('pretrained_backbone', False)}"
)


def build_inception_backbone(*, pretrained: bool = True, weights_path: Optional[Path] = None) -> Inception3:
    """InceptionV3 that maps ``[N, 3, H, W]`` (H, W >= 75) to ``[N, 2048]`` pooled features."""
    if weights_path is not None and not pretrained:
        raise ConfigError(f"{setting('backbone_weights')} was given together with {setting('pretrained_backbone', False)}; choose one")
    # Imported here, not with the module: torchvision pulls in torch._dynamo (about 2 s of CPU), which
    # evaluation, prediction and export of a keypoints or features model would pay for nothing
    # (training imports torch._dynamo anyway, through torch.optim).
    from torchvision.models.inception import Inception3

    loading = pretrained or weights_path is not None
    # Random init is skipped when weights will replace it (it is slow); the aux classifier is not
    # built at all, so the ImageNet file's aux keys are dropped before loading.
    net = Inception3(aux_logits=False, transform_input=True, init_weights=not loading)
    net.fc = nn.Identity()
    # The 0.5 dropout before torchvision's classifier would drop features when fine-tuning;
    # regularisation belongs to the GRU head.
    net.dropout = nn.Identity()
    if weights_path is not None:
        load_backbone_state(net, read_state_dict(Path(weights_path)), source=Path(weights_path))
    elif pretrained:
        load_backbone_state(net, download_imagenet_state(), source="ImageNet InceptionV3 weights")
    return net


def download_imagenet_state() -> dict[str, Tensor]:
    """torchvision's ImageNet weights (cached in the torch hub directory after the first download)."""
    from torchvision.models import Inception_V3_Weights

    weights = Inception_V3_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, HTTP errors, a bad hash, a full disk: all mean "no weights"
        raise ConfigError(
            f"could not download the ImageNet InceptionV3 weights from {weights.url} "
            f"({type(exc).__name__}: {exc}); {_DOWNLOAD_HINT}"
        ) from exc


def _refused(exc: Exception) -> str:
    """What torch refused to unpickle, from its long message (whose first lines offer weights_only=False)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported (global: GLOBAL \S+|operand \d+|class \S+)", text)
    return found.group(0).replace("global: GLOBAL ", "global ") if found else "not plain tensors and containers"


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from a local file, read without unpickling code (``weights_only=True``)."""
    if not path.is_file():
        raise ConfigError("backbone weights file not found", path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore", UserWarning)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own message advises loading with weights_only=False: running the file's code, which
        # slr never does; say what was refused instead.
        raise ConfigError(f"cannot read backbone weights: the file holds pickled Python objects, not just "
                          f"tensors ({_refused(exc)}); slr reads weights with weights_only=True and never runs "
                          f"code from a file", path) from None
    except Exception:  # noqa: BLE001 - a malformed file can make torch's reader fail in any way
        raise ConfigError("cannot read backbone weights: not a PyTorch weights file (empty, text or truncated?)",
                          path) from None
    # Accept a whole checkpoint too: its weights sit under one of these keys.
    for key in _NESTED_STATE_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ConfigError("backbone weights file is not a state dict (name -> tensor)", path)
    return dict(loaded)


def clean_state_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys as the bare backbone names them: wrapper prefixes stripped, aux/fc entries dropped.

    When the keys belong to a whole InceptionV3GRU (``backbone.*`` beside ``gru.*``), only the
    backbone's entries are kept.
    """
    stripped = unwrapped_keys(state)
    if any(key.startswith(_BACKBONE_PREFIX) for key in stripped):
        stripped = {
            key[len(_BACKBONE_PREFIX) :]: value for key, value in stripped.items() if key.startswith(_BACKBONE_PREFIX)
        }
    return {key: value for key, value in stripped.items() if not key.startswith(_DROPPED_PREFIXES)}


def load_backbone_state(net: nn.Module, state: Mapping[str, Tensor], *, source: Path | str) -> None:
    """Load ``state`` strictly; any missing, extra or misshapen tensor is a ConfigError naming ``source``."""
    cleaned = clean_state_keys(state)
    expected = net.state_dict()
    problems = {
        "missing": sorted(set(expected) - set(cleaned)),
        "unexpected": sorted(set(cleaned) - set(expected)),
        "wrong shape": sorted(k for k in set(expected) & set(cleaned) if cleaned[k].shape != expected[k].shape),
    }
    if any(problems.values()):
        summary = "; ".join(f"{label}: {_few(keys)}" for label, keys in problems.items() if keys)
        message = f"these are not InceptionV3 weights ({summary})"
        if isinstance(source, Path):
            raise ConfigError(message, source)
        raise ConfigError(f"{source}: {message}")
    net.load_state_dict(cleaned, strict=True)


def _few(keys: list[str], shown: int = 3) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
