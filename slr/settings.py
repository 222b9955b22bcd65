"""Settings models, one per subcommand: the only place where defaults, types, ranges and help live.

The CLI flags are generated from these fields (``slr/cli_params.py``), config files are checked
against them, and the resolved values are stored with every run as a plain dict. Field groups
are mixins so that a subcommand takes exactly the groups it needs.

Keep this module free of torch: ``slr --help`` and ``slr validate`` import it.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from slr.errors import setting

ModelName = Literal["transformer", "iv3_gru"]

#: --max-frames when not given, for models reading keypoints: clips over it keep this many evenly
#: spread frames (docs/results.md, "slr's defaults against a plain GRU on people never seen").
KEYPOINT_MAX_FRAMES = 32

#: --conv-kernel when not given: convolution blocks of this kernel in transformers up to
#: CONV_AUTO_MAX_WIDTH wide, where they were measured (docs/results.md, same section); none in
#: wider ones, where their cost was measured (1.7x the guide's step) and their accuracy was not.
CONV_KERNEL = 7
CONV_AUTO_MAX_WIDTH = 128
#: The class-names file has one flag in every command; --classes-csv, the training and extraction
#: commands' spelling before, is still accepted everywhere.
CLASSES_FLAGS = ["--classes", "--classes-csv"]


def positional(default: Any = ..., **kwargs: Any) -> Any:
    """A field given on the command line as a positional argument rather than a --flag."""
    extra = kwargs.pop("json_schema_extra", {}) or {}
    return Field(default, json_schema_extra={**extra, "positional": True}, **kwargs)


class Settings(BaseModel):
    """Base: unknown keys are errors, values are checked again on assignment; inf and nan are not
    numbers any setting can use; a YAML `true` is not the number 1."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        if isinstance(value, bool) and field is not None and _number_field(field.annotation):
            raise ValueError("expected a number")
        if field is not None and _path_field(field.annotation) and _empty_path(value):
            # Path("") is "." : `--output-dir ""` (an unset shell variable) would write into the current folder
            raise ValueError("an empty path names no file or folder (write . for the current folder)")
        return value


def _path_field(annotation: Any) -> bool:
    return annotation is Path or any(_path_field(a) for a in typing.get_args(annotation))


def _empty_path(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and not v.strip() for v in values)


def _number_field(annotation: Any) -> bool:
    args = typing.get_args(annotation) or (annotation,)
    return bool(args) and all(a in (int, float, type(None)) for a in args) and any(a in (int, float) for a in args)


# ---------------------------------------------------------------------------------------------
# Groups of fields
# ---------------------------------------------------------------------------------------------


class ClassCountSettings(Settings):
    num_gloss: int = Field(105, ge=2, le=100_000, description="Number of gloss classes; must match your dataset.")
    num_cat: int = Field(10, ge=1, le=100_000, description="Number of category classes; must match your dataset.")


class InferredClassCountSettings(Settings):
    """`slr train`: the class counts default to what the data says (slr/data/class_counts.py)."""

    num_gloss: Optional[int] = Field(
        None, ge=2, le=100_000,
        description="Number of gloss classes; default: from the labels and --classes (largest id + 1).",
    )
    num_cat: Optional[int] = Field(
        None,
        ge=1,
        le=100_000,
        description="Number of category classes; default: from the labels' cat column and --classes (largest "
        "id + 1), or 1 (no category figures) when the labels have no cat column.",
    )


class ClipKeySettings(Settings):
    kp_key: str = Field("X", min_length=1, description="NPZ key holding keypoints [T, kp_dim].")
    feature_key: str = Field(
        "X2048",
        min_length=1,
        description="NPZ key holding CNN features [T, 2048]; clips without it fall back to X.",
    )
    kp_dim: Optional[int] = Field(
        None, ge=1, le=1_000_000, description="Keypoint width per frame; default: taken from the data (156 for FSL-105)."
    )
    feature_dim: Optional[int] = Field(
        None, ge=1, le=1_000_000, description="Feature width per frame; default: taken from the data (2048 for InceptionV3)."
    )


class ClipLimitSettings(Settings):
    """Bounds on one clip file, checked from its arrays' headers before any array is read, so that a
    damaged or hostile file is refused by name instead of exhausting memory. Real clips are far
    below them (FSL-105: a few hundred frames at 30 fps; 2048 features x 300 frames = 2.5 MB)."""

    max_clip_frames: int = Field(
        10_000,
        ge=1,
        description="Refuse a clip with more frames than this (5.5 minutes at 30 fps), before reading it. "
        "Not --max-frames, which shortens long clips for the model.",
    )
    max_clip_mb: int = Field(
        256, ge=1, description="Refuse a clip array that would take more memory than this many MB, before reading it."
    )


class DataSettings(ClipKeySettings, ClipLimitSettings):
    keypoints_train: Optional[Path] = Field(None, description="Training keypoints directory (transformer).")
    keypoints_val: Optional[Path] = Field(None, description="Validation keypoints directory (transformer).")
    features_train: Optional[Path] = Field(None, description="Training features directory (iv3_gru).")
    features_val: Optional[Path] = Field(None, description="Validation features directory (iv3_gru).")
    labels_train_csv: Optional[Path] = Field(
        None, description="Training labels CSV (file,gloss,cat); default: labels.csv in the training directory."
    )
    labels_val_csv: Optional[Path] = Field(
        None, description="Validation labels CSV; default: labels.csv in the validation directory."
    )
    labels_test_csv: Optional[Path] = Field(
        None,
        description="Test labels CSV (clips in the validation directory), scored once with the chosen checkpoint "
        "at the end of training; default: the labels_test.csv that `slr split --test` wrote beside "
        "--labels-val-csv, when that is its labels_val.csv.",
    )
    classes_csv: Optional[Path] = Field(
        None, description="Class names (gloss,name,cat,cat_name); default: names taken from the clip file names.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    max_frames: Optional[int] = Field(
        None,
        ge=0,
        description=f"Longest clip fed to the model; longer clips are shortened by --long-clips; 0 = no limit. "
        f"Default: {KEYPOINT_MAX_FRAMES} for keypoints (transformer: each phase of a sign at the same position "
        "whatever the signer's tempo: +2.9 points on an unseen Kinect signer and 3-4x cheaper, docs/results.md), no "
        "limit for features (iv3_gru).",
    )

    @field_validator("max_frames")
    @classmethod
    def _a_clip_needs_two_frames(cls, value: Optional[int]) -> Optional[int]:
        if value == 1:
            raise ValueError("--max-frames 1 keeps one frame of every clip; give 2 or more, or 0 for no limit")
        return value
    long_clips: Literal["sample", "crop"] = Field(
        "sample",
        description="How clips over --max-frames are shortened: 'sample' keeps frames evenly spread over the "
        "whole clip; 'crop' takes a window (random in training, centred in validation).",
    )
    cache: bool = Field(True, description="Keep clips in memory after their first read.")
    release_memory: bool = Field(
        True,
        description="Give freed memory back to the system after each epoch (glibc's malloc_trim; Linux): the "
        "C allocator otherwise keeps it, and the process grows over epochs.",
    )
    length_buckets: int = Field(
        8,
        ge=0,
        le=256,
        description="Pad each batch's frames up to one of about this many lengths taken from the data (fewer "
        "batch shapes keep the process's memory down; padding is masked); 0 = pad to the batch's longest clip.",
    )
    malloc_mmap_mib: int = Field(  # off by default: it costs speed (docs/results.md, "Memory")
        0,
        ge=0,
        le=32,  # glibc's own rule never goes above 32 MiB: a higher fixed value would map fewer blocks
        description="Give each freed block of this many MiB or more back to the system at once (glibc's mmap "
        "threshold, fixed; Linux): bounds the peak memory inside an epoch at some cost in speed; 0 = glibc's rule.",
    )


class AugmentSettings(Settings):
    """Keypoint normalisation and training augmentations; defaults chosen by measurement (docs/results.md)."""

    normalize: bool = Field(
        True,
        description="Centre each keypoint clip on the signer's shoulders and scale it by their width "
        "(without shoulders: on the detected points); undetected points stay 0.",
    )
    normalize_weighting: Literal["equal", "motion"] = Field(
        "motion",
        description="Without shoulders to centre on (no body in the layout, or shoulders never detected): how each "
        "detected point counts in a clip's centre and scale: motion (by how much it moves over the clip, so still "
        "points such as a skeleton's legs shift and stretch nothing; +3 points on unseen Kinect signers, "
        "docs/results.md) or equal.",
    )
    augment: bool = Field(
        True,
        description="Apply the augmentations below while training; each is off at 0, the default (none "
        "helped on asl-words' session split or on signers never seen in training: docs/results.md).",
    )
    mirror_prob: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability of a left/right mirror that also swaps the hands (156, 84 and 126-wide keypoints, or the pairs of --keypoint-layout).",
    )
    rotate_deg: float = Field(
        0.0, ge=0, le=180, description="Largest random rotation of a clip in the image plane, in degrees."
    )
    scale_jitter: float = Field(0.0, ge=0, lt=1, description="Largest relative random scale change of a clip.")
    shift: float = Field(
        0.0, ge=0, le=1, description="Largest random shift of a clip, in shoulder widths (image units with --no-normalize)."
    )
    speed_jitter: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Largest relative speed change (0.2 plays clips at 0.8x to 1.2x); features too.",
    )
    frame_dropout: float = Field(
        0.0, ge=0, lt=1, description="Probability of dropping each frame (a clip keeps at least half); features too."
    )
    time_mask: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Largest share of a clip blanked to 0 (as if undetected) as one contiguous span; features too.",
    )
    # -- added for unseen signers (docs/results.md, "Signer shift") --
    shear: float = Field(
        0.0, ge=0, lt=1, description="Largest random shear of a clip (x leaning with y and y with x), as from a camera seen from the side."
    )
    noise_std: float = Field(
        0.0, ge=0, le=1, description="Gaussian noise added to every detected keypoint coordinate, in normalised units."
    )
    hand_drop_prob: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability of hiding one of two seen hands for the whole clip (layouts with hands: 156, 84, 126, or declared by --keypoint-layout).",
    )
    point_drop_prob: float = Field(
        0.0, ge=0, lt=1, description="Probability of hiding each keypoint in each frame, as a missed detection."
    )
    feature_dropout: float = Field(
        0.0, ge=0, lt=1, description="Features (iv3_gru): probability of zeroing each feature channel for a whole clip."
    )
    feature_mirror_prob: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Features (iv3_gru): probability of training on a clip's features of its frames mirrored left to "
        "right (X2048_mirror, which slr extract --features writes) in place of its own, as a left-handed signer would "
        "look; clips without them are used as they are. +4.6 points on synthetic signers never seen, a fifth of them "
        "left-handed; level on real signers who all sign right-handed (docs/results.md).",
    )
    mirror_left_handed: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Mirror every clip whose left hand moves more than its right, so that the signing hand is always "
        "the right one; in training and prediction alike. auto: for layouts of two hands and no body (84, 126, "
        "declared), where it gained 3-6 points on signers never seen; off where there is a body (156), whose "
        "two-handed signs change their busier hand from clip to clip (docs/results.md).",
    )
    hand_centred: bool = Field(
        False,
        description="Also normalise each hand on its own (centred on its wrist over the clip, scaled by its size); "
        "in training and prediction alike.",
    )


class KeypointLayoutSettings(Settings):
    """Layouts by declaration (slr/data/layout_file.py, docs/data-format.md)."""

    keypoint_layout: Optional[Path] = Field(
        None,
        description="JSON file declaring your keypoints' layout: coordinates per point, the left/right point pairs "
        "a mirror swaps, the hands, the shoulders. Default: known from the width (156, 84/126, 42/63); "
        "checkpoints keep the declaration.",
    )


class TransformerSettings(Settings):
    d_model: int = Field(128, ge=8, le=16_384, description="Transformer embedding width (the guide's: 256).")
    num_heads: int = Field(4, ge=1, le=1024, description="Attention heads (must divide --d-model; the guide's: 8).")
    num_layers: int = Field(2, ge=1, le=1024, description="Transformer encoder layers (the guide's: 4).")
    ff_dim: int = Field(256, ge=8, le=262_144, description="Transformer feed-forward width (the guide's: 1024).")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="Dropout of both models: transformer encoder, between GRU layers, and the heads."
    )
    attention_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Transformer: dropout of the attention weights (the guide's model: its --dropout, 0.1). At 0 "
        "training runs PyTorch's fused attention, which keeps no frames x frames maps: on a CPU a quarter less "
        "time and about 250 MiB less memory per long batch, within a point on signers never seen (docs/results.md).",
    )
    pooling: Literal["mean", "max", "cls"] = Field(
        "mean",
        description="How frames are pooled into one clip vector, padding left out: mean, max, or a CLS token "
        "(mean and cls tie on accuracy; see docs/models.md).",
    )
    motion_features: bool = Field(
        False,
        description="Transformer: feed frame-to-frame differences beside the keypoints (the input layer doubles).",
    )
    # -- convolution + transformer (the 2023 Kaggle isolated-sign winner's stack; docs/models.md) --
    conv_kernel: Optional[int] = Field(
        None,
        ge=0,
        le=255,
        description="Transformer: put depthwise 1-D convolution blocks of this many frames (causal) before each "
        "encoder layer, as the 2023 Kaggle isolated-sign winner (17 there); 0 = off, the plain transformer. "
        f"Default: auto = {CONV_KERNEL} for transformers up to {CONV_AUTO_MAX_WIDTH} wide (slr's default size, "
        "where they gained on unseen Kinect signers), 0 for wider ones (not measured there, and at the guide's "
        "256 x 4 they make a step 1.7x as long: docs/results.md).",
    )
    conv_blocks: int = Field(
        1, ge=1, le=16, description="Transformer: convolution blocks before each encoder layer with --conv-kernel (3 in the winner's)."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "TransformerSettings":
        if self.d_model % self.num_heads:
            raise ValueError(f"--d-model {self.d_model} is not divisible by --num-heads {self.num_heads}")
        return self

    @model_validator(mode="after")
    def _conv_blocks_of_the_width(self) -> "TransformerSettings":
        # resolved here, so that settings.json and checkpoints store the kernel the model was built with
        if self.conv_kernel is None:
            self.conv_kernel = CONV_KERNEL if self.d_model <= CONV_AUTO_MAX_WIDTH else 0
        return self


class LateDropoutSettings(Settings):
    """A high dropout before the classifier heads from a chosen epoch on (slr/models/late_dropout.py)."""

    late_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout before the gloss and category heads from --late-dropout-epoch on, both models "
        "(the 2023 Kaggle isolated-sign winner's late dropout: 0.8); 0 = off.",
    )
    late_dropout_epoch: int = Field(
        5, ge=1, description="First epoch (counted from 1, as in the log) with --late-dropout on."
    )


class IV3GRUSettings(Settings):
    gru_hidden: int = Field(
        256, ge=1, le=16_384, description="GRU hidden size (the original's 16 is a bottleneck; see docs/models.md)."
    )
    gru_layers: int = Field(2, ge=1, le=1024, description="GRU layers.")
    gru_bidirectional: bool = Field(True, description="Run the GRU in both directions.")
    pretrained_backbone: bool = Field(
        True,
        description="Start InceptionV3 (frames input only) from ImageNet weights; --no-pretrained-backbone "
        "starts from random weights.",
    )
    backbone_weights: Optional[Path] = Field(
        None, description="Local InceptionV3 state dict to load instead of downloading ImageNet weights."
    )
    finetune_backbone: bool = Field(False, description="Train InceptionV3 too (frames input); frozen by default.")
    gru_pooling: Literal["mean", "last", "mean_last"] = Field(
        "mean_last",
        description="How the GRU's steps become one clip vector: mean (of its outputs over the real frames), last "
        "(the last layer's final states, each direction) or mean_last (both, side by side). mean was level on "
        "synthetic signers never seen and 4 points behind on real skeletons read as features (docs/results.md).",
    )
    feature_norm: Literal["clip", "none"] = Field(
        "clip",
        description="Standardise each clip's features (or its frames' InceptionV3 outputs) before the GRU by one mean "
        "and one standard deviation of all its real frames' values (clip), or feed them as they are (none): "
        "+1 point on synthetic signers never seen, more on real skeletons read as features (docs/results.md).",
    )


class ThreadSettings(Settings):
    """CPU threads torch computes with (slr/engine/threads.py); used by every command that runs a model."""

    threads: Optional[int] = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads for torch; default: auto = start with the cores other processes leave free, then "
        "time each count on the first training steps and keep the fastest (on a busy machine extra threads wait on "
        "each other: docs/results.md). OMP_NUM_THREADS, when a count from 1 to 1024, is kept.",
    )


DeviceName = Literal["auto", "cuda", "mps", "cpu"]


class DeviceSettings(Settings):
    """The device a command runs its model on: one field and one flag, --device, in every such command."""

    device: DeviceName = Field("auto", description="Where to run; auto picks CUDA, then MPS, then CPU.")


class JsonOutputSettings(Settings):
    """--json: the result as one JSON object, for programs, in every command that prints a result."""

    json_output: bool = Field(False, description="Print the result as JSON.", alias="json")

    model_config = ConfigDict(populate_by_name=True)


class HardwareSettings(DeviceSettings, ThreadSettings):
    amp: Optional[bool] = Field(
        None,
        description="Mixed precision: float16, or bfloat16 where supported, on CUDA GPUs; bfloat16 autocast on "
        "CPUs with native bfloat16 (AVX512-BF16, AMX). Default: auto = on for those CPUs (1.5x faster steps at "
        "the guide's sizes, accuracy level: docs/results.md), off on GPUs and on other CPUs.",
    )
    amp_dtype: Literal["auto", "float16", "bfloat16"] = Field(
        "auto", description="Mixed-precision type; auto = bfloat16 where the GPU supports it, else float16."
    )
    compile_model: bool = Field(False, description="torch.compile the model (not combined with DataParallel).")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Random seed for weights, shuffling and augmentation.")


class LoaderSettings(Settings):
    auto_workers: bool = Field(False, description="Pick the DataLoader worker count (up to 8) from the CPUs.")
    num_workers: int = Field(
        0, ge=0, le=64, description="DataLoader workers; 0 = auto-detect (the --auto-workers rule)."
    )
    pin_memory: bool = Field(False, description="Pin host memory for faster GPU transfers.")
    auto_batch_size: bool = Field(
        False, description="Pick the batch size (8-64) from free memory; measured on CUDA."
    )
    enable_parallel: bool = Field(False, description="DataParallel over all visible GPUs when there are several.")


class OptimSettings(Settings):
    epochs: int = Field(40, ge=1, description="Total training epochs (also after a resume; the guide's: 20).")
    batch_size: int = Field(32, ge=1, description="Batch size per optimizer micro-step.")
    lr: float = Field(1e-3, gt=0, le=10, description="AdamW learning rate (the guide's: 1e-4).")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay (the guide's: 0).")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step (effective batch = batch size x this)."
    )
    grad_clip: Optional[float] = Field(None, gt=0, description="Clip the gradient norm to this value.")
    scheduler: Optional[Literal["plateau", "cosine", "warmup_cosine"]] = Field(
        "warmup_cosine",
        description="Learning-rate schedule: plateau (on validation gloss accuracy), cosine, or warmup_cosine "
        "(a linear warm-up over --warmup-epochs, then cosine to 0, stepped every optimizer step); "
        "none for a constant rate (the guide's).",
    )
    warmup_epochs: float = Field(
        1.0, ge=0, description="Warm-up length of the warmup_cosine schedule, in epochs (fractions allowed)."
    )
    label_smoothing: float = Field(
        0.1, ge=0, lt=1, description="Label smoothing of both training cross-entropy losses (0 = off, the guide's)."
    )
    ema_decay: Optional[float] = Field(
        None,
        gt=0,
        lt=1,
        description="Keep an exponential moving average of the weights with this decay per optimizer step "
        "(e.g. 0.99); validation and checkpoints use the average. Default: off.",
    )
    scheduler_patience: int = Field(5, ge=0, description="Plateau epochs before the learning rate is cut.")
    early_stop: Optional[int] = Field(
        None, ge=1, description="Stop after this many epochs without a better validation gloss accuracy."
    )
    alpha: float = Field(0.5, ge=0, description="Gloss loss weight.")
    beta: float = Field(0.5, ge=0, description="Category loss weight.")

    @model_validator(mode="after")
    def _some_loss(self) -> "OptimSettings":
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("--alpha and --beta are both 0: there is nothing to learn")
        return self


class FineTuneSettings(Settings):
    init_from: Optional[Path] = Field(
        None,
        description="Start from this checkpoint's weights only (not its optimizer, schedule, epoch or random "
        "state): the model and clip layout must match; a head with another class count starts afresh.",
    )
    freeze_encoder_epochs: int = Field(
        0, ge=0, description="Train only the gloss and category heads for this many first epochs (0 = off)."
    )


class OutputSettings(Settings):
    output_dir: Path = Field(
        Path("runs"), description="Where checkpoints, settings.json and the training curves go."
    )
    log_csv: Optional[Path] = Field(None, description="Per-epoch metrics CSV (default: <output-dir>/log.csv).")
    plots: bool = Field(True, description="Draw training curves (PNG) beside the log after the run.")
    log_every_s: float = Field(
        30.0,
        ge=0,
        description="When output is not a terminal (a log file, CI): a progress line (step, samples/s, loss) this "
        "often inside an epoch, in seconds; 0 = only one line per epoch.",
    )
    tensorboard: bool = Field(
        True,
        description="Also write the logged scalars as TensorBoard event files, when the tensorboard package "
        "is installed (slr's 'tensorboard' extra).",
    )
    tensorboard_dir: Optional[Path] = Field(
        None, description="Folder of the TensorBoard event files (default: <output-dir>/tensorboard)."
    )


# ---------------------------------------------------------------------------------------------
# One model per subcommand
# ---------------------------------------------------------------------------------------------


class ValidateSettings(ClipKeySettings, ClipLimitSettings, KeypointLayoutSettings, JsonOutputSettings):
    """`slr validate DIR`: check clip files and labels before training."""

    directory: Path = positional(description="Directory of .npz clips to check.")
    labels_csv: Optional[Path] = Field(None, description="Labels CSV; default: labels.csv in DIR.")
    require_x2048: bool = Field(False, description="Every clip must also carry features (--feature-key).")
    num_gloss: Optional[int] = Field(None, ge=1, description="Gloss ids must be below this (default: not checked).")
    num_cat: Optional[int] = Field(None, ge=1, description="Category ids must be below this (default: not checked).")
    max_zero_frames: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Flag clips whose share of all-zero frames (nothing detected) is above this.",
    )
    group_by: Optional[str] = Field(
        None,
        description="Also warn when a train split shares groups of this column (or regular expression on clip "
        "names, as in `slr split`) with another split; signer, session, subject, participant and speaker "
        "columns are always checked.",
    )


class DistributedSettings(Settings):
    """Runs launched by torchrun (several processes, possibly on several machines)."""

    dist_timeout_s: float = Field(
        600,
        gt=0,
        description="Seconds a process waits for the others at each exchange before it stops with an error "
        "(torchrun runs): bounds how long a run stalls after a machine is lost.",
    )


class TrainSettings(
    InferredClassCountSettings,
    DataSettings,
    AugmentSettings,
    KeypointLayoutSettings,
    TransformerSettings,
    IV3GRUSettings,
    HardwareSettings,
    LoaderSettings,
    OptimSettings,
    LateDropoutSettings,
    FineTuneSettings,
    OutputSettings,
    DistributedSettings,
):
    """`slr train MODEL`: every flag of the training guide, plus the model sizes."""

    model: ModelName = positional(
        "transformer",
        description="Model architecture: transformer or iv3_gru (default: transformer; with --resume: the "
        "checkpoint's).",
    )
    resume: Optional[Literal["auto"] | Path] = Field(
        None,
        description="Continue from this checkpoint (as `slr resume`; outputs go beside it unless --output-dir); "
        "auto: from --output-dir's _last.pt of this model when there is one, else a new run (for job scripts "
        "that a scheduler requeues).",
    )
    smoke_test: bool = Field(
        False,
        description="Only run the smoke test (as `slr smoke MODEL`): a few steps on synthetic clips, no data needed.",
    )

    @model_validator(mode="after")
    def _clip_length_of_the_model(self) -> "TrainSettings":
        # resolved here, so that settings.json and checkpoints store the number the run used (0: no limit)
        if self.max_frames is None:
            self.max_frames = KEYPOINT_MAX_FRAMES if self.model == "transformer" else 0
        return self


class ResumeSettings(Settings):
    """`slr resume CKPT`: the settings stored in the checkpoint, with any train flag overriding them."""

    checkpoint: Path = positional(description="Checkpoint to continue from (a *_last.pt).")
    config: Optional[Path] = Field(None, description="Settings file whose values replace the stored ones.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Train settings given as flags: they replace the stored ones and the config file's."
    )


#: Train settings that `slr cv` sets itself for every fold's run (data, labels, outputs): not flags of
#: `slr cv`, and refused in a recipe file.
CV_SETS_PER_FOLD = (
    "keypoints_train", "keypoints_val", "features_train", "features_val", "labels_train_csv", "labels_val_csv",
    "output_dir", "log_csv", "tensorboard_dir", "resume", "smoke_test",
)


class CvSettings(TrainSettings):
    """`slr cv MODEL DATA --group-by COLUMN|REGEX --folds K|loo`: one run per fold, scored on groups never seen.

    Every train flag given here applies to every recipe: defaults < a recipe file < `--config` and flags."""

    model: ModelName = positional("transformer", description="Model architecture: transformer or iv3_gru.")
    data: Path = positional(description="Directory of clips whose labels.csv is split into folds.")
    labels_csv: Optional[Path] = Field(None, description="Labels CSV to split into folds; default: labels.csv in DATA.")
    group_by: str = Field(
        min_length=1,
        description="What a group is (a signer, a session): a column of the labels CSV, or else a regular "
        "expression searched in each clip name, whose first capture group (or whole match) is the group, e.g. "
        "'signer(\\d+)'. A column of that name wins.",
    )
    folds: int | Literal["loo"] = Field(
        5,
        description="Outer folds: K (group k-fold, stratified by gloss where the groups allow), or loo (leave one "
        "group out: one fold per group).",
    )
    fold_seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the fold and inner-validation split.")
    inner_val: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of each fold's training clips (whole groups) held out as its inner validation split, "
        "which chooses the checkpoint and drives early stopping and plateau schedules.",
    )
    recipes: list[Path] = Field(
        default_factory=list,
        description="A recipe: a train config file (YAML or TOML) over slr's defaults; repeat to run several on "
        "the same folds. Default: slr's defaults alone.",
    )
    jobs: int = Field(
        1, ge=1, le=256, description="Folds trained at once, each in its own process with the CPU threads divided "
        "between them (at most the usable CPUs).",
    )
    num_gloss: Optional[int] = Field(  # type: ignore[assignment]
        None, ge=2, description="Number of gloss classes; default: the largest gloss id in the labels + 1."
    )
    num_cat: Optional[int] = Field(  # type: ignore[assignment]
        None, ge=1, description="Number of category classes; default: the largest category id in the labels + 1."
    )
    output_dir: Path = Field(  # type: ignore[assignment]
        Path("cv"), description="Where the folds, one run folder per recipe and fold, and the report go."
    )
    json_output: bool = Field(False, description="Print the report as JSON.", alias="json")

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("folds", mode="before")
    @classmethod
    def _folds_word_or_count(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "loo":
            return "loo"
        if isinstance(value, bool):
            raise ValueError("expected a number of folds or loo")
        try:
            count = int(str(value).strip())
        except ValueError:
            raise ValueError("expected a number of folds (2 or more) or loo") from None
        if count < 2:
            raise ValueError("at least 2 folds")
        return count

    def train_values(self) -> dict[str, Any]:
        """The train settings given to `slr cv` (config file or flags): they apply to every recipe."""
        values = {}
        for name in self.model_fields_set:
            if name not in TrainSettings.model_fields or name in CV_SETS_PER_FOLD or name == "model":
                continue  # slr cv's own settings, and those it sets per fold
            if name in ("num_gloss", "num_cat") and getattr(self, name) is None:
                continue  # "none": from the labels
            values[name] = getattr(self, name)
        return values


class SmokeSettings(ClassCountSettings, TransformerSettings, IV3GRUSettings, HardwareSettings):
    """`slr smoke MODEL`: a few steps on synthetic clips, no data on disk needed."""

    model: ModelName = positional(description="Model architecture: transformer or iv3_gru.")
    steps: int = Field(20, ge=2, le=10_000, description="Optimizer steps on the synthetic batch.")
    batch_size: int = Field(8, ge=2, description="Synthetic clips per step.")
    lr: float = Field(1e-3, gt=0, description="Learning rate for the smoke run.")
    frames: bool = Field(
        False, description="iv3_gru: feed small RGB frames through InceptionV3 instead of features."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed.")


class HwinfoSettings(DeviceSettings, JsonOutputSettings):
    """`slr hwinfo`: the hardware training would use and what the auto options would pick."""

    probe: Optional[ModelName] = Field(
        None, description="Measure --auto-batch-size's batch for this model with real training steps on the device "
        "(CUDA: allocator peak; CPU, MPS: resident memory), beside the memory rule's guess, and time a step.")
    keypoints: Optional[Path] = Field(None, description="--probe: clips whose longest length and width to probe with.")
    features: Optional[Path] = Field(None, description="--probe: feature clips whose longest length and width to use.")
    frames: Optional[int] = Field(None, ge=1, le=100_000, description="--probe: frames per clip (default 64).")
    width: Optional[int] = Field(None, ge=1, le=100_000,
                                 description="--probe: values per frame (default: the model's usual input).")


def model_settings(settings: BaseModel, group: type[Settings]) -> Settings:
    """The fields of one group (e.g. TransformerSettings) taken out of a larger settings model."""
    names = set(group.model_fields)
    return group.model_validate({k: v for k, v in settings.model_dump().items() if k in names})


# ---------------------------------------------------------------------------------------------
# Evaluation, prediction, export, plots (slr/analysis)
# ---------------------------------------------------------------------------------------------


class SanitySettings(Settings):
    """When an answer should not be trusted (slr/analysis/sanity.py); predict, evaluate and live."""

    uncertain_below: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Call an answer uncertain when its top gloss probability is below this (chosen on "
        "validation clips and signs outside the vocabulary: docs/predicting.md).",
    )


class EvaluateSettings(SanitySettings, ClipLimitSettings, ThreadSettings, DeviceSettings, JsonOutputSettings):
    """`slr evaluate CKPT`: accuracy, F1, per-class results and confusion matrices on a labelled directory."""

    checkpoint: Path = positional(description="Checkpoint to evaluate (a *_best.pt or *_last.pt).")
    ensemble: list[Path] = Field(
        default_factory=list,
        description="More checkpoints (same classes and clip layout) whose probabilities are averaged with CKPT's.",
    )
    keypoints: Optional[Path] = Field(None, description="Directory of keypoint clips (transformer checkpoints).")
    features: Optional[Path] = Field(None, description="Directory of feature clips (iv3_gru checkpoints).")
    labels_csv: Optional[Path] = Field(None, description="Labels CSV (file,gloss,cat); default: labels.csv in the directory.")
    classes: Optional[Path] = Field(
        None,
        description="Class names (gloss,name,cat,cat_name); default: the checkpoint's names, else the clip file names.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    output_dir: Optional[Path] = Field(
        None,
        description="Where metrics.json, predictions.csv and the confusion matrices go; "
        "default: evaluation/ beside the checkpoint (several: ensemble_evaluation/ in the folder holding them).",
    )
    batch_size: int = Field(64, ge=1, description="Clips per forward pass.")
    top_confusions: int = Field(10, ge=0, description="How many of the most confused class pairs to list.")
    confusion_top: Optional[int] = Field(
        None,
        ge=2,
        alias="top",
        description="Draw only this many classes in the confusion PNGs: those with the most errors, most first, "
        "with counts (the CSVs stay complete); default: every class.",
    )
    group_by: Optional[str] = Field(
        None,
        min_length=1,
        description="A labels CSV column (e.g. signer): accuracy per value of it, also in per_group.csv.",
    )

    @model_validator(mode="after")
    def _one_directory(self) -> "EvaluateSettings":
        if (self.keypoints is None) == (self.features is None):
            raise ValueError("give exactly one of --keypoints DIR or --features DIR")
        return self

    @property
    def directory(self) -> Path:
        return self.keypoints if self.keypoints is not None else self.features  # type: ignore[return-value]

    @property
    def input_kind(self) -> str:
        return "keypoints" if self.keypoints is not None else "features"


class VideoPredictSettings(Settings):
    """`slr predict` on videos: extracted as the training clips were (their settings are stored in the
    checkpoint); each of these replaces the stored value."""

    fps: Optional[float] = Field(
        None, gt=0, le=1000, description="Videos: frames kept per second (default: the training clips')."
    )
    min_detection_confidence: Optional[float] = Field(
        None, ge=0, le=1, description="Videos: Holistic's minimum detection confidence (default: the training clips')."
    )
    min_tracking_confidence: Optional[float] = Field(
        None, ge=0, le=1, description="Videos: Holistic's minimum tracking confidence (default: the training clips')."
    )
    visibility_threshold: Optional[float] = Field(
        None, ge=0, le=1, description="Videos: pose point visibility threshold (default: the training clips')."
    )
    refine_face_landmarks: Optional[bool] = Field(
        None, description="Videos: Holistic's refined face mesh (default: the training clips')."
    )
    smooth_landmarks: Optional[bool] = Field(
        None, description="Videos: Holistic's landmark smoothing (default: the training clips')."
    )
    backbone_weights: Optional[Path] = Field(
        None,
        description="Videos with an iv3_gru checkpoint: ImageNet InceptionV3 weights for the features "
        "(default: torchvision's cache).",
    )

    def extraction_overrides(self) -> dict[str, Any]:
        """The extraction settings given here (None: not given)."""
        names = [n for n in VideoPredictSettings.model_fields if n != "backbone_weights"]
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


#: `slr live`'s window when neither --window nor the checkpoint says how long the training clips were.
LIVE_WINDOW_S = 2.0
#: The frame rate `slr predict --window` takes for .npz clips that record no frame times, when
#: neither --clip-fps nor the checkpoint's extraction record gives one (cameras' common rate).
ASSUMED_CLIP_FPS = 30.0


class WindowSettings(Settings):
    """Sliding windows over a long clip or video (slr/analysis/windows.py)."""

    window: Optional[float] = Field(
        None,
        gt=0,
        le=3600,
        description="Predict over sliding windows of this many seconds (a sentence, a long recording), with the "
        "answers merged into segments; default: one answer for the whole clip.",
    )
    stride: Optional[float] = Field(
        None, gt=0, le=3600, description="Seconds from one window's start to the next (default: a quarter of --window)."
    )


class PredictSettings(VideoPredictSettings, WindowSettings, SanitySettings, ClipLimitSettings, ThreadSettings,
                      DeviceSettings, JsonOutputSettings):
    """`slr predict CKPT CLIP.npz|VIDEO...`: the most likely glosses and the category of each clip or video."""

    checkpoint: Path = positional(description="Checkpoint to predict with.")
    ensemble: list[Path] = Field(
        default_factory=list,
        description="More checkpoints (same classes and clip layout) whose probabilities are averaged with CKPT's.",
    )
    clips: list[Path] = Field(
        default_factory=list, description="Clip files (.npz) or videos (extracted as the training clips were)."
    )
    top_k: int = Field(5, ge=1, description="How many glosses to list per clip.")
    classes: Optional[Path] = Field(
        None, description="Class names (gloss,name,cat,cat_name); default: the names stored in the checkpoint.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    batch_size: int = Field(64, ge=1, description="Clips per forward pass.")
    clip_fps: Optional[float] = Field(
        None,
        gt=0,
        le=1000,
        description="Frame rate of .npz clips that record no timestamps, to turn --window into frames (default: the "
        "checkpoint's extraction fps, else 30).",
    )

    @model_validator(mode="after")
    def _stride_needs_window(self) -> "PredictSettings":
        if self.stride is not None and self.window is None:  # live has a window of its own by default
            raise ValueError("--stride needs --window SECONDS")
        return self


class LiveSettings(VideoPredictSettings, WindowSettings, SanitySettings, ThreadSettings):
    """`slr live CKPT --source 0|FILE|URL`: the sign being made now, from a camera, a video file or a stream."""

    checkpoint: Path = positional(description="Checkpoint to predict with (a keypoint model).")
    source: str = Field(
        "0",
        min_length=1,
        description="A camera (OpenCV device index: 0, 1, ...), a video file (played at its own speed) or a "
        "stream URL (rtsp://, http://).",
    )
    realtime: bool = Field(
        True,
        description="Play a video file at its own speed, dropping frames the extraction cannot keep up with, as a "
        "camera would; --no-realtime reads every frame as fast as it can (same answers as slr predict --window).",
    )
    window: Optional[float] = Field(
        None,
        gt=0,
        le=3600,
        description="Seconds of video each answer is about; default: the training clips' median length (the "
        "checkpoint records it) at the extraction's frame rate, else 2.",
    )
    top_k: int = Field(3, ge=1, description="How many glosses to show per window.")
    classes: Optional[Path] = Field(
        None, description="Class names (gloss,name,cat,cat_name); default: the names stored in the checkpoint.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    show: bool = Field(False, description="Also show the video in an OpenCV window with the skeleton drawn.")
    json_lines: bool = Field(False, description="Write one JSON record per window to standard output.")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("cpu", description="Where to run the model.")

    @property
    def camera(self) -> Optional[int]:
        """The OpenCV device index when the source is a camera ("0", "1", ...)."""
        return int(self.source) if self.source.strip().isdigit() else None


class ExportSettings(Settings):
    """`slr export CKPT --format torchscript|onnx`: a model file that runs without slr, checked against PyTorch."""

    checkpoint: Path = positional(description="Checkpoint to export.")
    ensemble: list[Path] = Field(
        default_factory=list,
        description="More checkpoints (same classes and clip layout): one graph that averages their probabilities.",
    )
    format: Literal["torchscript", "onnx"] = Field(
        description="torchscript (load with torch.jit.load) or onnx (run with onnxruntime)."
    )
    output: Optional[Path] = Field(
        None, description="Where the model file goes; default: beside the checkpoint, <stem>.ts.pt or <stem>.onnx "
        "(several: <stem>_ensembleN.ts.pt / .onnx in the folder holding them)."
    )
    tolerance: float = Field(
        1e-4, gt=0, description="Largest allowed difference between the exported and the PyTorch model's logits."
    )


class PlotSettings(Settings):
    """`slr plot LOG_CSV`: training curves (loss and accuracies per epoch) as a PNG."""

    log_csv: Path = positional(description="A training log (log.csv from `slr train`).")
    output: Optional[Path] = Field(None, description="The PNG to write; default: the log's name with .png.")


class CompareSettings(DeviceSettings, JsonOutputSettings):
    """`slr compare CKPT_A CKPT_B...`: checkpoints side by side on the same labelled recordings."""

    checkpoints: list[Path] = Field(default_factory=list, description="Checkpoints to compare (two or more).")
    keypoints: Optional[Path] = Field(None, description="Directory of keypoint clips (for transformer checkpoints).")
    features: Optional[Path] = Field(None, description="Directory of feature clips (for iv3_gru checkpoints).")
    labels_csv: Optional[Path] = Field(
        None,
        description="Labels CSV (file,gloss,cat) naming the recordings; clips are matched by its file names; "
        "default: labels.csv in the --keypoints directory, else in the --features one.",
    )
    classes: Optional[Path] = Field(
        None,
        description="Class names (gloss,name,cat,cat_name); default: the checkpoints' names, else the clip file names.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    output_dir: Optional[Path] = Field(
        None,
        description="Where comparison.json, per_class.csv and curves.png go; default: comparison/ beside the "
        "first checkpoint.",
    )
    differing_classes: int = Field(10, ge=0, description="How many of the classes whose accuracy differs most to list.")
    batch_size: int = Field(64, ge=1, description="Clips per forward pass.")

    @model_validator(mode="after")
    def _enough_to_compare(self) -> "CompareSettings":
        if len(self.checkpoints) < 2:
            raise ValueError(f"give two or more checkpoints to compare (got {len(self.checkpoints)})")
        if self.keypoints is None and self.features is None:
            raise ValueError(f"give the clips: {setting('keypoints')} DIR, {setting('features')} DIR, or both")
        return self


# ---------------------------------------------------------------------------------------------
# Splitting labels by group (slr/data/split.py)
# ---------------------------------------------------------------------------------------------


class SplitSettings(JsonOutputSettings):
    """`slr split DIR --group-by COLUMN|REGEX --val F`: train and val (and test) label files beside labels.csv,
    with no group (signer, session) in two splits, stratified by gloss as far as the groups allow."""

    directory: Path = positional(description="Directory of .npz clips whose labels.csv is split.")
    labels_csv: Optional[Path] = Field(
        None, description="Labels CSV to split; default: labels.csv in DIR. The split files are written beside it."
    )
    group_by: str = Field(
        min_length=1,
        description="What a group is: a column of the labels CSV (e.g. signer), or else a regular expression "
        "searched in each clip name, whose first capture group (or whole match) is the group, e.g. "
        "'signer(\\d+)'. A column of that name wins over the regular expression.",
    )
    val: float = Field(gt=0, lt=1, description="Share of the clips for validation, e.g. 0.2.")
    test: Optional[float] = Field(
        None, gt=0, lt=1, description="Share of the clips for a test split; default: no test split."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed: the same seed gives the same split.")
    overwrite: bool = Field(
        False, description="Replace the split files of an earlier split (refused by default); never labels.csv."
    )

    @model_validator(mode="after")
    def _train_keeps_some(self) -> "SplitSettings":
        if self.val + (self.test or 0) >= 1:
            raise ValueError(f"{setting('val')} {self.val} and {setting('test')} {self.test} leave nothing for training")
        return self


# ---------------------------------------------------------------------------------------------
# Videos -> clips (slr/extract)
# ---------------------------------------------------------------------------------------------

#: The sign's name in a file name: `clip_0089_how are you` -> "how are you" (the clip naming of
#: the training guide, as slr.data.labels reads it).
DEFAULT_NAME_PATTERN = r"clip_\d+_(?P<name>.+)"


class KeypointExtractionSettings(Settings):
    """What decides a clip's keypoints; stored in each clip's meta and in checkpoints trained on them."""

    fps: Optional[float] = Field(
        None, gt=0, le=1000, description="Frames kept per second, chosen by timestamp; default: every frame."
    )
    model_complexity: int = Field(
        1,
        ge=0,
        le=2,
        description="MediaPipe Holistic model complexity; only 1 (the model inside the mediapipe wheel) is available.",
    )
    min_detection_confidence: float = Field(0.5, ge=0, le=1, description="Holistic's minimum detection confidence.")
    min_tracking_confidence: float = Field(0.5, ge=0, le=1, description="Holistic's minimum tracking confidence.")
    visibility_threshold: float = Field(
        0.5, ge=0, le=1, description="A pose point counts as detected at this visibility or above."
    )
    refine_face_landmarks: bool = Field(True, description="Holistic's refined face mesh (as the original FSL-105 clips).")
    smooth_landmarks: bool = Field(True, description="Holistic's smoothing of landmarks across frames.")


class ExtractSettings(KeypointExtractionSettings):
    """`slr extract VIDEO... --output-dir DIR`: one clip per video, in the layout `slr train` reads."""

    videos: list[Path] = Field(default_factory=list, description="Video files, or folders of videos.")
    output_dir: Path = Field(description="Folder the clips (and labels.csv) are written to.")
    features: bool = Field(False, description="Also store InceptionV3 features of the same frames (X2048).")
    mirror_features: bool = Field(
        True,
        description="With --features: also store the features of every frame mirrored left to right (X2048_mirror), "
        "what iv3_gru trains on as a left-handed signer's (--feature-mirror-prob); InceptionV3 runs twice per frame.",
    )
    backbone_weights: Optional[Path] = Field(
        None,
        description="ImageNet InceptionV3 weights for --features; default: torchvision's cache "
        "(inception_v3_google-0cc3c7bd.pth).",
    )
    feature_batch_size: int = Field(16, ge=1, le=1024, description="Frames per InceptionV3 forward pass.")
    device: DeviceName = Field("cpu", description="Where InceptionV3 runs (--features).")
    classes_csv: Optional[Path] = Field(
        None, description="Class names (gloss,name,cat,cat_name): write labels.csv from the names in the file names.",
        json_schema_extra={"flags": CLASSES_FLAGS},
    )
    name_pattern: str = Field(
        DEFAULT_NAME_PATTERN,
        min_length=1,
        description="Regular expression for the sign's name in a file name (without suffix), in its first "
        "group or (?P<name>...).",
    )
    workers: Optional[int] = Field(None, ge=1, le=256, description="Processes; default: one per usable CPU.")
    overwrite: bool = Field(False, description="Redo clips that are already complete.")
    flag_below: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Flag videos whose pose, or both hands, are found in less than this share of frames.",
    )

    @model_validator(mode="after")
    def _complexity_shipped(self) -> "ExtractSettings":
        if self.model_complexity != 1:
            raise ValueError(
                f"model complexity {self.model_complexity} is not available: mediapipe downloads the models of "
                "complexity 0 and 2 at run time, and slr extracts without a network; use 1"
            )
        return self


# ---------------------------------------------------------------------------------------------
# Other people's landmark files -> clips (slr/importers, docs/own-landmarks.md)
# ---------------------------------------------------------------------------------------------

ImportFormat = Literal["auto", "gislr", "pose", "openpose", "mediapipe-npy"]


class ImportSettings(Settings):
    """`slr import FORMAT SRC... --output-dir DIR`: landmark files of other tools as clips `slr train` reads."""

    format: ImportFormat = positional(
        description="gislr (Kaggle parquet + train.csv), pose (pose-format .pose), openpose (per-frame JSON "
        "folders), mediapipe-npy (SIGN/SEQUENCE/FRAME.npy), or auto (found from the files in SRC)."
    )
    sources: list[Path] = Field(default_factory=list, description="Files or folders to import.")
    output_dir: Path = Field(description="Folder the clips, labels.csv, classes.csv and layout.json are written to.")
    parts: str = Field(
        "auto",
        min_length=1,
        description="Parts kept, in this order: some of pose, left_hand, right_hand (hands = both), face. auto: "
        "pose,hands,face for MediaPipe sources (the FSL-105 layout: 156 values with --dims 2), pose,hands for OpenPose.",
    )
    dims: int = Field(2, ge=2, le=3, description="Coordinates kept per point: 2 (x, y) or 3 (x, y, z; MediaPipe sources).")
    gislr_csv: Optional[Path] = Field(
        None, description="GISLR: the train.csv naming each file's sign and signer; default: found beside or above SRC."
    )
    name_pattern: Optional[str] = Field(
        None,
        min_length=1,
        description="pose / openpose: regular expression for the sign in each sequence's name (its first group or "
        "(?P<name>...)); default: the sequence's folder, or its own name when it lies directly in SRC.",
    )
    frame_size: Optional[str] = Field(
        None,
        pattern=r"^\d+x\d+$",
        description="openpose: the videos' WIDTHxHEIGHT in pixels, to divide x and y by; default: kept in pixels.",
    )
    workers: Optional[int] = Field(None, ge=1, le=256, description="Processes; default: one per usable CPU.")
    overwrite: bool = Field(False, description="Redo clips that are already complete.")
    json_output: bool = Field(False, description="Print the result as JSON.", alias="json")

    model_config = ConfigDict(populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# Settings stored by an older slr (checkpoints, settings.json)
# ---------------------------------------------------------------------------------------------

#: For each setting added after checkpoints were first written: the value that reproduces what slr
#: did before the setting existed. A checkpoint whose stored settings lack one is read with this
#: value, not today's default, so an old model is rebuilt, fed and resumed as it was trained.
VALUE_BEFORE_SETTING_EXISTED: dict[str, Any] = {
    "motion_features": False,  # the input layer read the keypoints only
    "hand_centred": False,  # hands were normalised with the rest of the clip
    "mirror_left_handed": "off",  # clips were fed as recorded, whichever hand signed
    "shear": 0.0,
    "noise_std": 0.0,
    "hand_drop_prob": 0.0,
    "point_drop_prob": 0.0,
    "feature_dropout": 0.0,
    "label_smoothing": 0.0,
    "ema_decay": None,
    "warmup_epochs": 1.0,
    "length_buckets": 0,  # batches were padded to their longest clip (same outputs, other float sums)
    "conv_kernel": 0,  # the plain transformer: no convolution blocks
    "conv_blocks": 1,
    "late_dropout": 0.0,
    "late_dropout_epoch": 5,
    "keypoint_layout": None,  # layouts were known from the clips' width only
    "normalize_weighting": "equal",  # every detected point counted alike in a clip's centre and scale
    "feature_norm": "none",  # iv3_gru fed its features as they were
    "gru_pooling": "mean_last",  # iv3_gru pooled the mean and the final states side by side
    "feature_mirror_prob": 0.0,  # iv3_gru trained on the features as extracted (a resumed run goes on so)
}

#: Settings added later whose earlier value was another setting's: attention weights were dropped
#: at the model's one --dropout.
TOOK_THE_VALUE_OF: dict[str, str] = {"attention_dropout": "dropout"}


def stored_train_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """Settings stored with a run, completed for this slr: missing fields take their old value."""
    missing = {k: v for k, v in VALUE_BEFORE_SETTING_EXISTED.items() if k not in stored}
    if "max_frames" in stored and stored["max_frames"] is None:
        stored = {**stored, "max_frames": 0}  # stored by an slr whose default was no limit, spelt None
    for name, source in TOOK_THE_VALUE_OF.items():
        if name not in stored and source in stored:
            missing[name] = stored[source]
    return {**missing, **stored}


#: The old training guide's value of every default slr has changed, for the signers a model has
#: never seen (docs/results.md, "Signer shift"); docs/user-guide.md shows them as one table with
#: the flag that restores each.
GUIDE_VALUES: dict[str, Any] = {
    "epochs": 20,
    "lr": 1e-4,
    "weight_decay": 0.0,
    "scheduler": None,
    "label_smoothing": 0.0,
    "d_model": 256,
    "num_heads": 8,
    "num_layers": 4,
    "ff_dim": 1024,
    "mirror_left_handed": "off",  # the guide fed every clip as recorded
    "feature_mirror_prob": 0.0,  # the guide's iv3_gru trained on the features as extracted
    "attention_dropout": 0.1,  # the guide's transformer dropped attention weights at its --dropout
    "num_gloss": 105,  # the guide's FSL-105 counts; slr takes the data's (slr/data/class_counts.py)
    "num_cat": 10,
    "normalize_weighting": "equal",  # the guide had no normalisation; slr's first counted every point alike
    "max_frames": 0,  # the guide fed every frame of every clip
    "conv_kernel": 0,  # the guide's transformer had no convolution blocks (auto gives it none at its width)
    "feature_norm": "none",  # the guide's GRU read the features as stored
    "amp": False,  # the guide trained in float32 unless given --amp (its GPU command gives it)
}
