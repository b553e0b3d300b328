"""Projection heads: an MLP to a normalised bottleneck, then weight-normed prototypes.

State-dict keys follow the DINOv2/DINOv3 teacher-checkpoint layout (``mlp.0``, ``mlp.2``,
``mlp.4``, ``last_layer.weight_g``, ``last_layer.weight_v``) so that released heads load.
"""

from __future__ import annotations

import math

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
]


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
    """The teacher's frozen DINO and iBOT heads."""

    def __init__(self, dino_head: ProjectionHead, ibot_head: ProjectionHead):
        super().__init__()
        self.dino_head = dino_head
        self.ibot_head = ibot_head
        self.eval().requires_grad_(False)


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


def heads_from_state(state: dict[str, torch.Tensor], in_dim: int) -> TeacherHeads:
    """Heads from a teacher checkpoint's ``dino_head.*`` and ``ibot_head.*`` tensors."""
    heads = []
    for prefix in ("dino_head.", "ibot_head."):
        sub = convert_head_state(state, prefix)
        if not sub:
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
