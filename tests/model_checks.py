"""Helpers shared by the model tests: padded batches and the tiny-batch overfit check."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_batch(lengths: list[int], dim: int, junk: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clips padded to the longest; padding holds ``junk`` (0 as collate_clips writes)."""
    steps = max(lengths)
    x = torch.full((len(lengths), steps, dim), junk)
    mask = torch.zeros(len(lengths), steps, dtype=torch.bool)
    for row, length in enumerate(lengths):
        x[row, :length] = torch.randn(length, dim)
        mask[row, :length] = True
    return x, mask


def overfit_tiny_batch(model: torch.nn.Module, dim: int, num_gloss: int, num_cat: int, lr: float,
                       steps: int = 60) -> tuple[float, float]:
    """Train on 8 clips of mixed lengths; the first and the last loss."""
    x, mask = padded_batch([5, 9, 12, 7, 3, 10, 8, 6], dim)
    gloss = torch.arange(8) % num_gloss
    cat = torch.arange(8) % num_cat
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        gloss_logits, cat_logits = model(x, mask)
        loss = F.cross_entropy(gloss_logits, gloss) + F.cross_entropy(cat_logits, cat)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]


def assert_padding_changes_nothing(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor,
                                   junks: tuple[float, ...]) -> None:
    """Any value in padded frames (huge, NaN, inf) gives the outputs of zero padding."""
    with torch.no_grad():
        clean = model(x, mask)
        for junk in junks:
            dirty = model(x.masked_fill(~mask.unsqueeze(-1), junk), mask)
            for a, b in zip(clean, dirty):
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def assert_mask_is_used(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> None:
    """The other side of padding invariance: hiding real frames must change the output."""
    short = mask.clone()
    short[:, 5:] = False
    with torch.no_grad():
        assert not torch.allclose(model(x, mask)[0], model(x, short)[0], atol=1e-4)


def assert_alone_equals_in_batch(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, grad: bool = False) -> None:
    """Each clip gives the same logits alone (unpadded, no mask) as inside the padded batch."""
    with torch.set_grad_enabled(grad):
        batch_gloss, batch_cat = model(x, mask)
        for row in range(len(x)):
            length = int(mask[row].sum())
            alone_gloss, alone_cat = model(x[row : row + 1, :length], None)
            torch.testing.assert_close(batch_gloss[row], alone_gloss[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(batch_cat[row], alone_cat[0], atol=1e-5, rtol=0)
