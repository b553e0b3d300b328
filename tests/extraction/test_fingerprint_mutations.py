"""Every fingerprint field tells two settings apart (mutation-checked: a key dropped from the
comparison, or from the fingerprint itself, lets another setting's slides be reused)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from plismbench.extraction.fingerprint import FINGERPRINT_KEYS, differences, fingerprint
from plismbench.extractors.registry import get_extractor

#: One change per preprocessing/pooling field of the spec, keyed by its meta.json key.
SPEC_CHANGES: dict[str, dict[str, Any]] = {
    "model": {"name": "another-model"},
    "pooling": {"pooling": "mean"},
    "num_prefix_tokens": {"num_prefix_tokens": 9},
    "embed_dim": {"embed_dim": 1024},
    "input_size": {"input_size": 448},
    "resize": {"resize": 256},
    "interpolation": {"interpolation": "bilinear"},
    "normalise": {"normalise": False},
    "mean": {"mean": (0.5, 0.5, 0.5)},
    "std": {"std": (0.25, 0.25, 0.25)},
}


def _fp(spec: Any, precision: str = "fp32", weights: str = "a" * 64) -> dict[str, Any]:
    return fingerprint(SimpleNamespace(spec=spec, precision=precision), weights)  # type: ignore[arg-type]


def test_every_documented_key_is_compared() -> None:
    expected = {*SPEC_CHANGES, "weights_sha256", "precision"}
    assert expected <= set(FINGERPRINT_KEYS)


@pytest.mark.parametrize("key", sorted(SPEC_CHANGES))
def test_a_spec_change_is_a_difference_named_by_its_key(key: str) -> None:
    spec = replace(get_extractor("h0-mini"), pooling="cls", resize=None, normalise=True)
    changed = replace(spec, **SPEC_CHANGES[key])
    assert differences(_fp(spec), _fp(spec)) == []
    diffs = differences(_fp(spec), _fp(changed))
    assert [d.split(" ", 1)[0] for d in diffs] == [key]


def test_precision_and_weights_are_differences() -> None:
    spec = get_extractor("h0-mini")
    base = _fp(spec)
    assert [d.split(" ")[0] for d in differences(base, _fp(spec, precision="bf16"))] == [
        "precision"
    ]
    assert [d.split(" ")[0] for d in differences(base, _fp(spec, weights="b" * 64))] == [
        "weights_sha256"
    ]


def test_a_key_missing_from_an_old_meta_is_a_difference() -> None:
    current = {**_fp(get_extractor("h0-mini")), "source_digest": "c" * 64}  # a slide's
    current["hub_revision"] = "e" * 40
    for key in FINGERPRINT_KEYS:
        stored = {k: v for k, v in current.items() if k != key}
        assert [d.split(" ")[0] for d in differences(stored, current)] == [key]


def test_the_source_digest_is_a_difference_per_slide_not_per_folder() -> None:
    base = _fp(get_extractor("h0-mini"))
    slide = {**base, "source_digest": "c" * 64}
    assert [d.split(" ")[0] for d in differences(slide, {**base, "source_digest": "d" * 64})] == [
        "source_digest"
    ]
    assert differences(slide, base) == []  # the folder's fingerprint carries no source


def test_a_meta_without_hub_revision_matches_a_model_not_from_the_hub() -> None:
    base = _fp(get_extractor("h0-mini"))  # hub_revision None: not resolved
    old = {k: v for k, v in base.items() if k != "hub_revision"}
    assert differences(old, base) == []
    assert [d.split(" ")[0] for d in differences(old, {**base, "hub_revision": "f" * 40})] == [
        "hub_revision"
    ]
