"""Projection heads: an MLP to a normalised bottleneck, then weight-normed prototypes.

State-dict keys follow the DINOv2/DINOv3 teacher-checkpoint layout (``mlp.0``, ``mlp.2``,
``mlp.4``, ``last_layer.weight_g``, ``last_layer.weight_v``) so that released heads load.
``teacher_state`` picks the teacher's tensors out of a teacher checkpoint or a full
training checkpoint (``teacher.*`` next to ``student.*``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ProjectionHead",
    "TeacherHeads",
    "WeightNormLinear",
    "convert_head_state",
    "head_shapes",
    "heads_from_state",
    "random_gain",
    "random_teacher_heads",
    "summarise_keys",
    "teacher_state",
]

_log = logging.getLogger(__name__)


class WeightNormLinear(nn.Module):
    """A bias-free linear layer whose rows are ``g * v / ||v||`` (one gain per row)."""

    def __init__(self, in_dim: int, out_dim: int, gain: float = 1.0, train_gain: bool = False):
        super().__init__()
        self.weight_v = nn.Parameter(torch.empty(out_dim, in_dim))
        self.weight_g = nn.Parameter(torch.full((out_dim, 1), float(gain)))
        self.weight_g.requires_grad_(train_gain)
        nn.init.trunc_normal_(self.weight_v, std=0.02)

    def weight(self) -> torch.Tensor:
        """The effective (out_dim, in_dim) weight."""
        v = self.weight_v
        return self.weight_g * v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight())


class ProjectionHead(nn.Module):
    """``Linear-GELU-Linear-GELU-Linear`` to ``bottleneck``, L2 norm, prototypes.

    ``embed`` gives the normalised bottleneck, ``prototypes()`` the (K, bottleneck)
    weight and ``forward`` the logits; the split lets losses stream over prototypes.
    """

    def __init__(
        self,
        in_dim: int,
        prototypes: int,
        *,
        hidden: int = 2048,
        bottleneck: int = 256,
        gain: float = 1.0,
    ):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.last_layer = WeightNormLinear(bottleneck, prototypes, gain=gain)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @property
    def num_prototypes(self) -> int:
        return int(self.last_layer.weight_v.shape[0])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck of ``x`` (..., in_dim) -> (..., bottleneck)."""
        return F.normalize(self.mlp(x), dim=-1, eps=1e-6)

    def prototypes(self) -> torch.Tensor:
        """The (K, bottleneck) weight of the last layer."""
        return self.last_layer.weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.embed(x))


def random_gain(bottleneck: int, scale: float = 0.1) -> float:
    """Gain that gives random frozen prototypes logits of std ``scale`` (not near-uniform).

    A unit bottleneck against ``K`` random unit prototypes gives cosines of std
    ``1/sqrt(d)``; the gain rescales them so ``softmax(logits / 0.04)`` is peaked.
    """
    return scale * math.sqrt(bottleneck)


def convert_head_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Pick ``prefix`` (``dino_head.``) keys of a teacher checkpoint, in this module's layout.

    Accepts the old ``weight_g``/``weight_v`` weight norm, the ``parametrizations``
    one and a plain ``last_layer.weight`` (gain = its row norms).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        name = name.replace("last_layer.parametrizations.weight.original0", "last_layer.weight_g")
        name = name.replace("last_layer.parametrizations.weight.original1", "last_layer.weight_v")
        if name == "last_layer.weight":
            out["last_layer.weight_v"] = value
            out["last_layer.weight_g"] = value.norm(dim=1, keepdim=True)
            continue
        out[name] = value
    if "last_layer.weight_g" in out and out["last_layer.weight_g"].ndim == 1:
        out["last_layer.weight_g"] = out["last_layer.weight_g"][:, None]
    return out


def head_shapes(state: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """(in_dim, hidden, bottleneck, prototypes) of a converted head state dict."""
    try:
        in_dim = int(state["mlp.0.weight"].shape[1])
        hidden = int(state["mlp.0.weight"].shape[0])
        bottleneck = int(state["mlp.4.weight"].shape[0])
        prototypes = int(state["last_layer.weight_v"].shape[0])
    except KeyError as exc:
        raise KeyError(
            f"head checkpoint lacks {exc.args[0]!r} (3-layer DINO head expected)"
        ) from None
    return in_dim, hidden, bottleneck, prototypes


class TeacherHeads(nn.Module):
    """The teacher's frozen DINO and iBOT heads (the same module when ``shared``)."""

    def __init__(self, dino_head: ProjectionHead, ibot_head: ProjectionHead):
        super().__init__()
        self.dino_head = dino_head
        self.ibot_head = ibot_head
        self.eval().requires_grad_(False)

    @property
    def shared(self) -> bool:
        """True when iBOT uses the DINO head (DINOv2's ``ibot_separate_head: false``)."""
        return self.ibot_head is self.dino_head


def random_teacher_heads(
    in_dim: int,
    prototypes: int,
    *,
    seed: int,
    hidden: int = 2048,
    dino_bottleneck: int = 384,
    ibot_bottleneck: int = 256,
    scale: float = 0.1,
) -> TeacherHeads:
    """Frozen random heads, reproducible from ``seed``, with a gain that sharpens targets."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dino = ProjectionHead(in_dim, prototypes, hidden=hidden, bottleneck=dino_bottleneck,
                              gain=random_gain(dino_bottleneck, scale))  # fmt: skip
        ibot = ProjectionHead(in_dim, prototypes, hidden=hidden, bottleneck=ibot_bottleneck,
                              gain=random_gain(ibot_bottleneck, scale))  # fmt: skip
    return TeacherHeads(dino, ibot)


def summarise_keys(state: Mapping[str, Any], limit: int = 8) -> str:
    """``blocks.* (24 keys), cls_token, ...``: the first dotted parts of ``state``'s keys."""
    groups: dict[str, int] = {}
    for key in state:
        head = str(key).split(".", 1)[0]
        groups[head] = groups.get(head, 0) + 1
    if not groups:
        return "nothing (an empty dict)"
    parts = [
        name if n == 1 and name in state else f"{name}.* ({n} key{'s' * (n > 1)})"
        for name, n in list(groups.items())[:limit]
    ]
    if len(groups) > limit:
        parts.append(f"... {len(groups) - limit} more")
    return ", ".join(parts)


def _strip_module(state: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def teacher_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The teacher's tensors of a DINOv2/DINOv3 checkpoint, as ``backbone.*``, ``dino_head.*``...

    Accepts a teacher checkpoint (``backbone.*``, ``dino_head.*``, ``ibot_head.*``) and a
    full training checkpoint's model state (``teacher.*`` and ``student.*``; also with the
    teacher as a nested ``teacher`` dict). Only the teacher's tensors are kept: the
    student's are never used. Raises ``KeyError`` (with what was found) when there is no
    ``dino_head.*``.
    """
    found = summarise_keys(state)
    state = _strip_module(state)
    while isinstance(state.get("teacher"), Mapping):  # {"teacher": {...}} nested once more
        state = _strip_module(state["teacher"])
    if any(k.startswith("teacher.") for k in state):
        state = _strip_module(
            {k.removeprefix("teacher."): v for k, v in state.items() if k.startswith("teacher.")}
        )
    if not any(k.startswith("dino_head.") for k in state):
        student = any(k.startswith("student.") for k in state)
        raise KeyError(
            f"not a DINOv2/DINOv3 teacher checkpoint: no dino_head.* tensors (found {found})"
            + ("; the student's tensors are never used as the teacher" if student else "")
        )
    return state


def heads_from_state(state: Mapping[str, Any], in_dim: int) -> TeacherHeads:
    """Heads from a teacher checkpoint's ``dino_head.*`` and ``ibot_head.*`` tensors.

    With no ``ibot_head.*`` (a head shared by DINO and iBOT, DINOv2's
    ``ibot_separate_head: false``) the iBOT head is the DINO head: same module, same K.
    """
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    heads: list[ProjectionHead] = []
    for prefix in ("dino_head.", "ibot_head."):
        sub = convert_head_state(tensors, prefix)
        if not sub:
            if prefix == "ibot_head." and heads:
                _log.info("teacher checkpoint has no ibot_head.*: iBOT shares the DINO head")
                return TeacherHeads(heads[0], heads[0])
            raise KeyError(f"no {prefix}* tensors")
        d_in, hidden, bottleneck, k = head_shapes(sub)
        if d_in != in_dim:
            raise ValueError(f"{prefix[:-1]} takes {d_in}-d tokens, the teacher gives {in_dim}")
        head = ProjectionHead(d_in, k, hidden=hidden, bottleneck=bottleneck)
        missing, unexpected = head.load_state_dict(sub, strict=False)
        if missing or unexpected:
            raise KeyError(f"{prefix[:-1]}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        heads.append(head)
    return TeacherHeads(heads[0], heads[1])
