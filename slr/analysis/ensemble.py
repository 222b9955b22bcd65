"""Several checkpoints as one model: the average of their class probabilities.

`slr evaluate`, `slr predict` and `slr export` take more than one checkpoint (e.g. the fold models
of one recipe). The members must read the same clips in the same way and answer with the same
classes: one clip pipeline feeds them all, and one set of names reads their answer. What differs
is refused, naming the checkpoint and the difference, before any clip is read.

The ensemble is an ordinary module whose outputs are the logarithms of the members' mean
probabilities. A log-probability is a logit whose softmax is that probability, so evaluation,
prediction and an exported graph, which all apply softmax to a model's logits, get the average
without knowing they hold an ensemble.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from slr.analysis.classes import from_checkpoint
from slr.analysis.inference import LoadedModel, load_model
from slr.errors import CheckpointError, ConfigError


class AveragedProbabilities(torch.nn.Module):
    """forward(x, mask) -> (log mean gloss probabilities, log mean category probabilities)."""

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x, mask) for member in self.members]
        gloss = torch.stack([torch.softmax(o[0].float(), dim=-1) for o in outputs]).mean(dim=0)
        cat = torch.stack([torch.softmax(o[1].float(), dim=-1) for o in outputs]).mean(dim=0)
        return _log(gloss), _log(cat)


def _log(probs: torch.Tensor) -> torch.Tensor:
    # a probability that underflowed to 0 would give -inf, which the scoring refuses as a broken model
    return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))


@dataclass
class LoadedEnsemble(LoadedModel):
    """A LoadedModel whose model averages the members' probabilities; the rest is the first member's."""

    members: list[Path] = field(default_factory=list)


def load_models(checkpoint: Path, more: Sequence[Path], device: str | torch.device = "cpu") -> LoadedModel:
    """`checkpoint` alone, or with `more` an ensemble of them all (refused when they differ)."""
    first = load_model(checkpoint, device)
    if not more:
        return first
    paths = [Path(checkpoint), *map(Path, more)]
    seen: dict[str, Path] = {}
    for path in paths:  # the same file twice would weigh one model double without saying so
        key = os.path.realpath(path)
        if key in seen:
            raise ConfigError(f"{path} is given twice (also as {seen[key]}): each member of an ensemble counts once")
        seen[key] = path
    members = [first]
    for path in paths[1:]:
        member = load_model(path, device)
        check_member(first, member)
        members.append(member)
    model = AveragedProbabilities([m.model for m in members]).eval()
    values = {f.name: getattr(first, f.name) for f in dataclasses.fields(LoadedModel)}
    return LoadedEnsemble(**{**values, "model": model}, members=paths)


def check_member(first: LoadedModel, member: LoadedModel) -> None:
    """Refuse a member that reads other clips, reads them otherwise, or names other classes."""
    problem = member_difference(first, member)
    if problem:
        raise CheckpointError(f"cannot be averaged with {first.path}: {problem}", member.path)


def member_difference(first: LoadedModel, member: LoadedModel) -> Optional[str]:
    """Why `member` cannot join `first` in an ensemble, in words, or None."""
    if member.input_kind != first.input_kind:
        return f"it reads {member.input_kind}, the other {first.input_kind}"
    for what, mine, theirs in (
        ("values per frame", member.input_dim, first.input_dim),
        ("glosses", member.num_gloss, first.num_gloss),
        ("categories", member.num_cat, first.num_cat),
    ):
        if mine != theirs:
            return f"it has {mine} {what}, the other {theirs}"
    if (member.key, member.fallback_key) != (first.key, first.fallback_key):
        return f"it reads the clips' '{member.key}' array, the other '{first.key}'"
    mine, theirs = member.preprocessing, first.preprocessing
    for name in sorted(set(mine) | set(theirs)):
        if name != "steps" and mine.get(name) != theirs.get(name):
            return (f"it prepares clips with {name} = {_shown(mine.get(name))}, the other with "
                    f"{_shown(theirs.get(name))} (one clip pipeline feeds every member)")
    if mine != theirs:
        return "it prepares clips in other steps (one clip pipeline feeds every member)"
    clash = _name_clash(from_checkpoint(first.state), from_checkpoint(member.state))
    if clash:
        return clash
    return None


def _name_clash(a: Any, b: Any) -> Optional[str]:
    """Class ids both checkpoints name, but differently (a checkpoint may name only some classes)."""
    for task, word in (("gloss", "gloss"), ("cat", "category")):
        ours, theirs = getattr(a, task), getattr(b, task)
        for key in sorted(set(ours) & set(theirs)):
            if ours[key] != theirs[key]:
                return f"its {word} {key} is '{theirs[key]}', the other's is '{ours[key]}' (the classes must be the same)"
    return None


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def members_of(loaded: LoadedModel) -> list[Path]:
    """The checkpoints behind a loaded model: several for an ensemble, else its own."""
    return list(loaded.members) if isinstance(loaded, LoadedEnsemble) else [loaded.path]


def common_folder(paths: Sequence[Path]) -> Path:
    """The folder that holds every checkpoint (the fold runs' parent, for fold models)."""
    folders = [os.path.abspath(Path(p).parent) for p in paths]
    common = Path(os.path.commonpath(folders))
    # as the user gave them: relative paths stay relative
    relative = [Path(p).parent for p in paths]
    if all(not p.is_absolute() for p in relative):
        try:
            return Path(os.path.relpath(common))
        except ValueError:
            return common
    return common
