"""Whether a model of the asked sizes can fit in this machine's memory, known before it is built.

Building a model allocates all its weights at once: `--num-layers 100000` grew to 10 GB before the
kernel killed the process, `--num-gloss 1e9` ended in torch's "cannot allocate 62400000000 bytes".
The parameter count of each model is a closed formula of its settings (tests/test_memory_estimate.py
checks it against the built models), so the memory a model needs at the least is known from the
settings alone: 4 bytes a parameter to run it; to train it also its gradients and AdamW's two
moments (16 bytes a parameter), and one clip's activations. What is over the machine's memory (or
the container's limit) is refused with one message naming the sizes; what is under it may still be
too much with a large batch, which `--auto-batch-size` and the memory panel deal with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from slr.errors import ConfigError, setting

#: InceptionV3 without its auxiliary classifier and its last layer, as models/backbone.py builds it.
INCEPTION_V3_PARAMETERS = 21_785_568
#: Frames of the clip whose activations are counted when the settings set no --max-frames.
NOMINAL_FRAMES = 64
BYTES_TO_RUN, BYTES_TO_TRAIN = 4, 16  # float32 weights; + gradients and AdamW's exp_avg, exp_avg_sq


def transformer_parameters(s: Any, input_dim: int, num_gloss: int, num_cat: int, frames: bool = False) -> int:
    """SignTransformer's parameter count (slr/models/transformer.py, conv_block.py)."""
    from slr.models.conv_block import ECA_KERNEL, EXPAND

    d, ff = s.d_model, s.ff_dim
    width_in = input_dim * (2 if s.motion_features else 1)
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 4 * d  # attention, MLP, 2 norms
    if s.conv_kernel:
        inner = d * EXPAND
        block = (d * inner + inner) + inner * s.conv_kernel + 2 * inner + ECA_KERNEL + (inner * d + d)
        per_layer += s.conv_blocks * block
    cls = d if s.pooling == "cls" else 0
    return (width_in * d + d) + cls + s.num_layers * per_layer + 2 * d + (d + 1) * (num_gloss + num_cat)


def gru_parameters(s: Any, input_dim: int, num_gloss: int, num_cat: int, frames: bool) -> int:
    """InceptionV3GRU's parameter count (slr/models/iv3_gru.py; mean_last pooling feeds the heads twice
    the width of mean or last)."""
    from slr.models.iv3_gru import FEATURE_DIM

    h, directions = s.gru_hidden, 2 if s.gru_bidirectional else 1
    width = FEATURE_DIM if frames else input_dim
    gru = 0
    for layer in range(s.gru_layers):
        width_in = width if layer == 0 else h * directions
        gru += directions * (3 * h * width_in + 3 * h * h + 6 * h)
    pooled = h * directions * (2 if getattr(s, "gru_pooling", "mean_last") == "mean_last" else 1)
    return (INCEPTION_V3_PARAMETERS if frames else 0) + gru + (pooled + 1) * (num_gloss + num_cat)


def machine_memory() -> Optional[int]:
    """Bytes of memory this process may use: the machine's, or its container's limit when lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB"


def check_fits_memory(spec: Any, settings: Any, input_dim: int, num_gloss: int, num_cat: int, frames: bool,
                      training: bool, available: Optional[int] = None) -> int:
    """The bytes the model of `spec` (a registry ModelSpec) needs at the least; `ConfigError` naming its
    sizes when that is more than the machine's memory (`available`, default: `machine_memory()`)."""
    parameters = spec.parameter_count(settings, input_dim, num_gloss, num_cat, frames)
    needed = parameters * (BYTES_TO_TRAIN if training else BYTES_TO_RUN)
    if training:
        clip_frames = getattr(settings, "max_frames", None) or NOMINAL_FRAMES
        needed += spec.bytes_per_sample(settings, input_dim, clip_frames)
    available = machine_memory() if available is None else available
    if available is None or needed <= available:
        return needed
    group = spec.settings_group.model_fields
    changed = [n for n in group if _is_size(settings, n) and getattr(settings, n) != group[n].default]
    sizes = [setting(n, getattr(settings, n)) for n in (changed or [n for n in group if _is_size(settings, n)])]
    what = "weights, gradients, AdamW's two moments and one clip's activations" if training else "weights"
    raise ConfigError(
        f"a {spec.name} model of these sizes has {parameters:,} parameters and needs at least {_gb(needed)} "
        f"({what}), more than this machine's {_gb(available)} of memory; lower its sizes "
        f"({', '.join(sizes)}; {input_dim} values per frame, {setting('num_gloss', num_gloss)}, "
        f"{setting('num_cat', num_cat)})"
    )


def _is_size(settings: Any, name: str) -> bool:
    value = getattr(settings, name, None)
    return isinstance(value, int) and not isinstance(value, bool)
