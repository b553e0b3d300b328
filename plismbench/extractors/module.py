"""The loaded extractor: uint8 tiles on the device in, float features out."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from plismbench.errors import InputError
from plismbench.extractors.spec import ExtractorSpec

_DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}


def torch_dtype(precision: str) -> torch.dtype:
    """``bf16`` / ``fp16`` / ``fp32`` as a torch dtype."""
    try:
        return _DTYPES[precision]
    except KeyError:
        raise InputError(f"precision {precision!r} is not one of {', '.join(_DTYPES)}") from None


def pool_tokens(tokens: torch.Tensor, pooling: str, num_prefix_tokens: int) -> torch.Tensor:
    """Pool ``(B, N, D)`` tokens; register tokens are never part of the patch mean."""
    if pooling == "cls":
        return tokens[:, 0]
    patches = tokens[:, num_prefix_tokens:]
    if pooling == "mean":
        return patches.mean(dim=1)
    if pooling == "cls+mean":
        return torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1)
    raise InputError(f"pooling {pooling!r} does not pool tokens")


class FeatureExtractor(torch.nn.Module):
    """Maps uint8 tiles ``(B, H, W, 3)`` or ``(B, 3, H, W)`` to ``(B, embed_dim)`` float32.

    Normalisation (and any resize / centre crop the spec declares) runs on the
    tiles' device; the backbone runs under autocast in `precision`.
    """

    def __init__(self, spec: ExtractorSpec, backbone: torch.nn.Module, precision: str = "fp32"):
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.precision = precision
        self.channels_last = True
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean255", mean, persistent=False)
        self.register_buffer("inv_std255", 1.0 / std, persistent=False)
        self.mean255: torch.Tensor
        self.inv_std255: torch.Tensor
        self._sha256: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def embed_dim(self) -> int:
        return self.spec.embed_dim

    @property
    def device(self) -> torch.device:
        return self.mean255.device

    def preprocess(self, tiles: torch.Tensor) -> torch.Tensor:
        """uint8 tiles to the normalised float ``(B, 3, S, S)`` batch the backbone sees."""
        if tiles.ndim != 4:
            raise InputError(
                f"{self.name}: expected a 4-d tile batch, got shape {tuple(tiles.shape)}"
            )
        if tiles.shape[-1] == 3 and tiles.shape[1] != 3:
            tiles = tiles.permute(0, 3, 1, 2)
        elif tiles.shape[1] != 3:
            raise InputError(
                f"{self.name}: tiles must have 3 colour channels, got {tuple(tiles.shape)}"
            )
        spec = self.spec
        if not spec.normalise:
            return tiles.contiguous()
        x = tiles.float()
        size = spec.input_size
        if spec.resize is not None and spec.resize != x.shape[-1]:
            x = F.interpolate(
                x, size=(spec.resize, spec.resize), mode=spec.interpolation, antialias=True
            )
        elif spec.resize is None and (x.shape[-2] != size or x.shape[-1] != size) and size > 0:
            x = F.interpolate(x, size=(size, size), mode=spec.interpolation, antialias=True)
        if size > 0 and (x.shape[-2] != size or x.shape[-1] != size):
            top = (x.shape[-2] - size) // 2
            left = (x.shape[-1] - size) // 2
            x = x[..., top : top + size, left : left + size]
        x = (x - self.mean255) * self.inv_std255
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch_dtype(self.precision))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(tiles)
        with self._autocast(x.device):
            out = self.backbone(x)
        if self.spec.pooling != "model":
            if out.ndim != 3:
                raise InputError(
                    f"{self.name}: pooling {self.spec.pooling!r} needs (B, N, D) tokens, "
                    f"the backbone gave {tuple(out.shape)}"
                )
            out = pool_tokens(out, self.spec.pooling, self.spec.num_prefix_tokens)
        return out.float()

    @torch.inference_mode()
    def self_check(self, batch: int = 2) -> None:
        """Run a dummy batch and compare the output dimension with the declared one."""
        size = self.spec.input_size if self.spec.input_size > 0 else 224
        tiles = torch.zeros(batch, size, size, 3, dtype=torch.uint8, device=self.device)
        tiles[:, ::2] = 200
        out = self(tiles)
        if tuple(out.shape) != (batch, self.spec.embed_dim):
            raise InputError(
                f"{self.name}: the model gives features of shape {tuple(out.shape[1:])}, "
                f"the registry declares ({self.spec.embed_dim},); check pooling and embed_dim"
            )
        if not torch.isfinite(out).all():
            raise InputError(f"{self.name}: the self-check batch gave non-finite features")

    def _named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        state = self.backbone.state_dict()
        for key in sorted(state):
            yield key, state[key]

    def weights_sha256(self) -> str:
        """sha256 over the backbone's state dict (names, dtypes, shapes, bytes); cached."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for key, tensor in self._named_tensors():
                t = tensor.detach().to("cpu").contiguous()
                digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
                if t.numel():
                    digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
            self._sha256 = digest.hexdigest()
        return self._sha256
