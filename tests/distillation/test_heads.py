"""Heads against brute-force formulas, and loading of released head layouts."""

from __future__ import annotations

import math

import pytest
import torch

from plismbench.distillation.heads import (
    ProjectionHead,
    convert_head_state,
    heads_from_state,
    random_teacher_heads,
)


def _brute_head(head: ProjectionHead, x: torch.Tensor) -> torch.Tensor:
    sd = {k: v.double() for k, v in head.state_dict().items()}
    gelu = torch.nn.functional.gelu
    h = gelu(x.double() @ sd["mlp.0.weight"].T + sd["mlp.0.bias"])
    h = gelu(h @ sd["mlp.2.weight"].T + sd["mlp.2.bias"])
    z = h @ sd["mlp.4.weight"].T + sd["mlp.4.bias"]
    z = z / z.norm(dim=-1, keepdim=True)
    v, g = sd["last_layer.weight_v"], sd["last_layer.weight_g"]
    w = g * v / v.norm(dim=1, keepdim=True)
    return z @ w.T


def test_head_matches_brute_force() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(12, 50, hidden=32, bottleneck=8, gain=2.5)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()
    x = torch.randn(7, 12)
    out = head(x)
    assert out.shape == (7, 50)
    torch.testing.assert_close(out.double(), _brute_head(head, x), rtol=1e-5, atol=1e-5)
    # logits are the gain times cosines: bounded by the gain
    assert out.abs().max() <= 2.5 + 1e-5
    torch.testing.assert_close(head.embed(x).norm(dim=-1), torch.ones(7))


def test_gain_frozen_by_default() -> None:
    head = ProjectionHead(4, 6, hidden=8, bottleneck=4)
    assert not head.last_layer.weight_g.requires_grad
    assert torch.all(head.last_layer.weight_g == 1)


def test_released_layouts_load_to_same_logits() -> None:
    torch.manual_seed(1)
    ref = ProjectionHead(10, 20, hidden=16, bottleneck=6, gain=1.0)
    w = ref.prototypes().detach()
    base = {f"dino_head.{k}": v for k, v in ref.state_dict().items()}
    plain = {k: v for k, v in base.items() if "last_layer" not in k}
    variants = [
        base,
        {**plain, "dino_head.last_layer.weight": w},
        {
            **plain,
            "dino_head.last_layer.parametrizations.weight.original0": ref.last_layer.weight_g,
            "dino_head.last_layer.parametrizations.weight.original1": ref.last_layer.weight_v,
        },
    ]
    x = torch.randn(3, 10)
    for state in variants:
        full = {**state, **{k.replace("dino_head", "ibot_head"): v for k, v in state.items()}}
        heads = heads_from_state(full, in_dim=10)
        torch.testing.assert_close(heads.dino_head(x), ref(x))
        assert not any(p.requires_grad for p in heads.parameters())
    assert set(convert_head_state(base, "dino_head.")) == set(ref.state_dict())


def test_random_teacher_heads_are_reproducible_and_peaked() -> None:
    a = random_teacher_heads(16, 512, seed=3, hidden=32, scale=0.1)
    b = random_teacher_heads(16, 512, seed=3, hidden=32, scale=0.1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    # gain 0.1*sqrt(384): logits have std ~0.1, so softmax(logits / 0.04) is far from uniform
    x = torch.randn(64, 16)
    logits = a.dino_head(x)
    assert 0.05 < float(logits.std()) < 0.2
    p = torch.softmax(logits / 0.04, dim=-1)
    ent = float(-(p * p.log()).sum(-1).mean())
    assert ent < math.log(512) - 1.0


def test_teacher_checkpoint_native_dinov2_layout_at_another_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A DINOv2 teacher checkpoint (native keys, FSDP-chunked blocks, class position in
    ``pos_embed``, saved at its training size) loads into a timm teacher built for a
    smaller ``--image-size``: same tokens as the source model resized by timm."""
    import re

    from plismbench.distillation.models import build_teacher
    from plismbench.distillation.teacher_ckpt import (
        load_teacher_checkpoint as _load_teacher_checkpoint,
    )
    from plismbench.errors import InputError

    arch = "timm:vit_small_patch14_reg4_dinov2"
    torch.manual_seed(0)
    source = build_teacher(arch, 56, {"depth": 2})
    inner = source.backbone.model  # type: ignore[union-attr]
    native: dict[str, torch.Tensor] = {}
    for key, value in inner.state_dict().items():
        key = re.sub(r"^blocks\.(\d+)\.", r"blocks.0.\1.", key)  # one FSDP chunk
        key = key.replace("reg_token", "register_tokens")
        native[f"backbone.{key}"] = value.clone()
    cls_pos = torch.randn(1, 1, inner.embed_dim)
    native["backbone.pos_embed"] = torch.cat([cls_pos, inner.pos_embed.detach()], 1)
    native["backbone.cls_token"] = inner.cls_token.detach() - cls_pos
    native["backbone.mask_token"] = torch.zeros(1, inner.embed_dim)
    heads = random_teacher_heads(source.dim, 32, seed=1, hidden=16)
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save({"teacher": {**native, **heads.state_dict()}}, path)

    torch.manual_seed(1)
    teacher = build_teacher(arch, 28, {"depth": 2})
    loaded = _load_teacher_checkpoint(path, teacher)
    assert loaded.dino_head.num_prototypes == 32
    inner.set_input_size(img_size=28)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(teacher.backbone(x), source.backbone(x), atol=1e-3, rtol=1e-3)
    assert not any(p.requires_grad for p in teacher.backbone.parameters())

    wrong = build_teacher("timm:vit_small_patch14_dinov2", 28, {"depth": 2, "embed_dim": 192})
    with pytest.raises(InputError, match="does not fit teacher"):
        _load_teacher_checkpoint(path, wrong)


# --- checkpoint layouts: teacher checkpoint, full training checkpoint, shared head ---

_ARCH = "timm:vit_small_patch14_reg4_dinov2"


def _tiny_teacher_state(seed: int, *, shared: bool = False) -> dict[str, torch.Tensor]:
    """A depth-2 teacher's ``backbone.*``, ``dino_head.*`` (and ``ibot_head.*``) tensors."""
    from plismbench.distillation.models import build_teacher

    torch.manual_seed(seed)
    teacher = build_teacher(_ARCH, 28, {"depth": 2})
    inner = teacher.backbone.model  # type: ignore[union-attr]
    state = {f"backbone.{k}": v.clone() for k, v in inner.state_dict().items()}
    heads = random_teacher_heads(teacher.dim, 24, seed=seed, hidden=16)
    for key, value in heads.state_dict().items():
        if not (shared and key.startswith("ibot_head.")):
            state[key] = value.clone()
    return state


def _load(path):  # type: ignore[no-untyped-def]
    """(heads, teacher) after loading ``path`` into a fresh tiny teacher (other seed)."""
    from plismbench.distillation.models import build_teacher
    from plismbench.distillation.teacher_ckpt import (
        load_teacher_checkpoint as _load_teacher_checkpoint,
    )

    torch.manual_seed(123)
    teacher = build_teacher(_ARCH, 28, {"depth": 2})
    return _load_teacher_checkpoint(path, teacher), teacher


def _assert_is_teacher(heads, teacher, saved: dict[str, torch.Tensor]) -> None:  # type: ignore[no-untyped-def]
    inner = teacher.backbone.model
    for key, value in inner.state_dict().items():
        assert torch.equal(value, saved[f"backbone.{key}"]), key
    for key, value in heads.state_dict().items():
        if key.startswith("ibot_head.") and "ibot_head.mlp.0.weight" not in saved:
            key = key.replace("ibot_head.", "dino_head.")  # shared head
        assert torch.equal(value, saved[key]), key


_WRAPS = {
    "training checkpoint {'model': {teacher.*, student.*}}": lambda t, s: {
        "model": {**t, **s}, "iteration": 99, "optimizer": {"state": {}}},
    "top-level {teacher.*, student.*}": lambda t, s: {**t, **s},
    "{'teacher': {teacher.*}}": lambda t, s: {"teacher": {**t}},
    "{'model': {'teacher': {...}, 'student': {...}}}": lambda t, s: {
        "model": {"teacher": {k.removeprefix("teacher."): v for k, v in t.items()},
                  "student": {k.removeprefix("student."): v for k, v in s.items()}}},
    "DDP module. prefix": lambda t, s: {"model": {f"module.{k}": v for k, v in {**t, **s}.items()}},
}  # fmt: skip


@pytest.mark.parametrize("wrap", list(_WRAPS), ids=list(_WRAPS))
def test_full_training_checkpoint_uses_the_teacher_not_the_student(tmp_path, wrap) -> None:  # type: ignore[no-untyped-def]
    teacher_sd = _tiny_teacher_state(1)
    student_sd = _tiny_teacher_state(2)  # same shapes, other values
    t = {f"teacher.{k}": v for k, v in teacher_sd.items()}
    s = {f"student.{k}": v for k, v in student_sd.items()}
    path = tmp_path / "model_0009999.rank_0.pth"
    torch.save(_WRAPS[wrap](t, s), path)
    heads, teacher = _load(path)
    assert not heads.shared and heads.ibot_head.num_prototypes == 24
    _assert_is_teacher(heads, teacher, teacher_sd)
    # and not the student's (they differ everywhere)
    w = heads.dino_head.last_layer.weight_v
    assert not torch.equal(w, student_sd["dino_head.last_layer.weight_v"])


@pytest.mark.parametrize("training", [False, True], ids=["teacher-checkpoint", "training"])
def test_shared_dino_ibot_head(tmp_path, caplog, training: bool) -> None:  # type: ignore[no-untyped-def]
    """``ibot_separate_head: false``: no ``ibot_head.*``; iBOT is the DINO head."""
    import logging

    saved = _tiny_teacher_state(3, shared=True)
    assert not any(k.startswith("ibot_head.") for k in saved)
    payload: dict = {"teacher": saved}
    if training:
        student = _tiny_teacher_state(4, shared=True)
        payload = {"model": {**{f"teacher.{k}": v for k, v in saved.items()},
                             **{f"student.{k}": v for k, v in student.items()}}}  # fmt: skip
    path = tmp_path / "teacher_checkpoint.pth"
    torch.save(payload, path)
    with caplog.at_level(logging.INFO, logger="plismbench.distillation.heads"):
        heads, teacher = _load(path)
    assert heads.shared and heads.ibot_head is heads.dino_head
    assert heads.ibot_head.num_prototypes == heads.dino_head.num_prototypes == 24
    _assert_is_teacher(heads, teacher, saved)
    x = torch.randn(5, teacher.dim)
    torch.testing.assert_close(heads.ibot_head(x), heads.dino_head(x))
    assert "shares the DINO head" in caplog.text


def test_other_files_give_one_line_input_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from plismbench.distillation.models import build_teacher
    from plismbench.errors import InputError

    torch.manual_seed(0)
    vit = build_teacher(_ARCH, 28, {"depth": 2}).backbone.model.state_dict()  # type: ignore[union-attr]
    student_only = {f"student.{k}": v for k, v in _tiny_teacher_state(5).items()}
    cases = {
        "vit.pth": (vit, r"no dino_head\.\* tensors \(found cls_token, .*blocks\.\* \(\d+ keys\)"),
        "optim.pth": ({"optimizer": {"state": {}}, "iteration": 3},
                      r"found optimizer, iteration\)"),
        "student.pth": ({"model": student_only},
                        r"found student\.\* \(\d+ keys\)\); the student's tensors are never used"),
        "ibot_only.pth": ({k.replace("dino_head", "ibot_head"): v
                           for k, v in _tiny_teacher_state(6, shared=True).items()},
                          r"found backbone\.\* .*ibot_head\.\*"),
        "empty.pth": ({}, r"found nothing"),
    }  # fmt: skip
    for name, (obj, pattern) in cases.items():
        path = tmp_path / name
        torch.save(obj, path)
        with pytest.raises(InputError, match=pattern) as info:
            _load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_gated_teacher_without_token_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub refusal (HTTP 401) while loading a teacher names the model page and HF_TOKEN,
    as extract does (the endpoint itself is reachable: the probe is answered)."""
    from types import SimpleNamespace

    from plismbench.distillation.models import build_teacher
    from plismbench.errors import InputError
    from plismbench.extractors import access
    from plismbench.extractors.registry import register_extractor, unregister_extractor

    monkeypatch.setattr(access, "unreachable", lambda *a, **k: None)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)

    class Refused(OSError):
        response = SimpleNamespace(status_code=401)

    def refused(spec, *, pretrained, **overrides):  # what huggingface_hub raises, in short
        raise Refused("huggingface.co: 401 Client Error: access to model org/gated is restricted")

    register_extractor(name="gated-teacher-test", loader=refused, embed_dim=384,
                       pooling="cls", hub_id="org/gated", gated=True)  # fmt: skip
    try:
        with pytest.raises(InputError) as info:
            build_teacher("gated-teacher-test", 56)
    finally:
        unregister_extractor("gated-teacher-test")
    assert "https://huggingface.co/org/gated" in info.value.message
    assert "HF_TOKEN" in info.value.message and "\n" not in info.value.message
