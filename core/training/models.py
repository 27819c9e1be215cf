"""timm models with a classification or ordinal head; weights only ever come from a local file.

Ordinal head ("binned labels", as in the PANDA winning solutions): a grade ``k`` of ``C`` classes
is the target vector of ``C - 1`` values whose first ``k`` are 1; the loss is BCE-with-logits and
the predicted grade is the number of outputs with ``sigmoid > 0.5``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gigapatch.errors import ConfigError

log = logging.getLogger(__name__)

Head = Literal["classification", "ordinal"]


def head_outputs(num_classes: int, head: Head) -> int:
    """Number of network outputs for ``num_classes`` classes."""
    if head == "ordinal":
        return num_classes - 1
    if head == "classification":
        return num_classes
    raise ValueError(f"head must be 'classification' or 'ordinal', got {head!r}")


def create_model(
    name: str,
    num_classes: int,
    head: Head = "classification",
    pretrained: str | Path | bool | None = None,
    **kwargs: Any,
) -> torch.nn.Module:
    """Build ``timm.create_model(name, pretrained=False)`` and load local weights.

    Parameters
    ----------
    name : timm model name (e.g. ``"resnext50_32x4d"``).
    num_classes : number of grades/classes C; the network has C (classification) or C - 1
        (ordinal) outputs.
    head : ``"classification"`` or ``"ordinal"``.
    pretrained : path to a local weights file (``.pth``/``.pt``/``.bin``/``.safetensors``, a raw
        state dict or a checkpoint with a ``state_dict``/``model`` key), or None. Tensors whose
        shape does not match (the classifier) are skipped. Weights are never downloaded:
        ``"imagenet"``/True without a file is a :class:`gigapatch.ConfigError`.
    **kwargs : passed to ``timm.create_model`` (e.g. ``drop_rate``).
    """
    import timm

    if name not in timm.list_models():
        raise ConfigError(f"unknown timm model {name!r} (see timm.list_models())")
    model = timm.create_model(
        name, pretrained=False, num_classes=head_outputs(num_classes, head), **kwargs
    )
    if pretrained is None or pretrained is False:
        return model
    path = None if pretrained is True else Path(str(pretrained)).expanduser()
    if path is None or not path.is_file():
        hint = (
            "gigapatch never downloads weights; pass a local file, e.g. "
            "`pretrained: /models/resnet18.a1_in1k.safetensors` (copy it from a machine with "
            "internet, e.g. ~/.cache/huggingface/hub)"
        )
        if path is None or str(pretrained).lower() in {"imagenet", "true", "default"}:
            raise ConfigError(f"pretrained={pretrained!r}: {hint}")
        raise ConfigError(f"{path}: pretrained weights file not found ({hint})")
    load_weights(model, path)
    return model


def load_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load matching tensors of a local weights file into ``model``; return the keys skipped."""
    from timm.models import load_state_dict

    try:
        state = load_state_dict(str(path), use_ema=False, weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(keep))
    if not keep:
        raise ConfigError(f"{path}: no tensor in this file matches the model")
    model.load_state_dict(keep, strict=False)
    if skipped:
        log.info("%s: %d tensors not loaded (e.g. %s)", path, len(skipped), skipped[:3])
    return skipped


# ---------------------------------------------------------------------- heads: targets and decoding
def ordinal_encode(labels: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    """Grades (B,) int in 0..C-1 -> (B, C-1) float targets: label k -> k leading ones."""
    labels = torch.as_tensor(labels).long().reshape(-1, 1)
    steps = torch.arange(num_classes - 1, device=labels.device).reshape(1, -1)
    return (steps < labels).float()


def ordinal_decode(logits: torch.Tensor) -> torch.Tensor:
    """(B, C-1) ordinal logits -> (B,) int64 grades: the count of ``sigmoid > 0.5``."""
    return (logits > 0).sum(dim=1)


def ordinal_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, C-1) ordinal logits -> (B, C) class probabilities.

    ``P(y >= k) = sigmoid(logit_{k-1})`` made monotone (cumulative minimum); ``P(y = k) =
    P(y >= k) - P(y >= k + 1)``.
    """
    ge = torch.sigmoid(logits.float())
    ge = torch.cummin(ge, dim=1).values
    ones = torch.ones_like(ge[:, :1])
    zeros = torch.zeros_like(ge[:, :1])
    ge = torch.cat([ones, ge, zeros], dim=1)
    return ge[:, :-1] - ge[:, 1:]


def loss_fn(head: Head, num_classes: int) -> Any:
    """The training loss for ``head``: cross-entropy, or BCE on ordinal targets."""
    if head == "ordinal":
        bce = torch.nn.BCEWithLogitsLoss()

        def ordinal_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return bce(logits.float(), ordinal_encode(labels, num_classes).to(logits.device))

        return ordinal_loss
    return torch.nn.CrossEntropyLoss()


def decode(head: Head, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network outputs (B, K) -> (grades (B,) int64, class probabilities (B, C))."""
    if head == "ordinal":
        return ordinal_decode(logits), ordinal_probs(logits)
    probs = torch.softmax(logits.float(), dim=1)
    return probs.argmax(dim=1), probs
