"""The pathology plugin's side of training: Gleason scores to ISUP grades, the synthetic cohort
whose grade lives in the fine detail, and the training hook that puts the PANDA defaults beneath the
user's keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from gigapatch.training.config import validate_train_config
from gigapatch_pathology.cohort import CohortSpec, synthetic_slide
from gigapatch_pathology.panda import PANDA_DATA, isup_from_gleason, with_panda_defaults

SPEC = CohortSpec(size=512)


def test_gleason_to_isup() -> None:
    assert [isup_from_gleason(s) for s in ["negative", "0+0", "3+3", "3+4", "4+3", "4+4", "5+3", "4+5"]] == [
        0, 0, 1, 2, 3, 4, 4, 5,
    ]
    with pytest.raises(ValueError):
        isup_from_gleason("6+6")



def test_cohort_label_lives_in_the_fine_detail() -> None:
    import cv2

    a = synthetic_slide(0, np.random.default_rng(7), SPEC)
    b = synthetic_slide(5, np.random.default_rng(7), SPEC)
    # same tissue and colours; the bars differ (all horizontal vs all vertical)
    assert (a != b).mean() > 0.02
    small = [cv2.resize(v, (32, 32), interpolation=cv2.INTER_AREA).astype(float) for v in (a, b)]
    assert np.abs(small[0] - small[1]).mean() < 1.5  # at 1/16 the two grades look alike
    # orientation energy: horizontal bars -> strong vertical gradients and vice versa
    def anisotropy(v: np.ndarray) -> float:
        g = v.astype(float).mean(2)
        return float(np.abs(np.diff(g, axis=0)).sum() / np.abs(np.diff(g, axis=1)).sum())

    assert anisotropy(a) > 1.3 and anisotropy(b) < 1 / 1.3



def test_pathology_hook_applies_panda_defaults_beneath_the_user_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import gigapatch.training
    from gigapatch import get_plugin_manager

    seen: list[dict] = []

    def fake_train(config: dict, data: Path, out: Path) -> dict:
        seen.append(config)
        return {"out": str(out)}

    monkeypatch.setattr(gigapatch.training, "train", fake_train)
    hook = get_plugin_manager().hook.gigapatch_train
    user = {"epochs": 1, "data": {"images": "slides", "limit": 3, "suffix": None}}
    assert hook(config=user, data=tmp_path, out=tmp_path, domain="pathology") == {"out": str(tmp_path)}
    panda = seen[-1]
    assert panda["data"] == {**PANDA_DATA, "images": "slides", "limit": 3}  # the user's keys win
    assert panda["num_classes"] == 6 and panda["epochs"] == 1
    assert user == {"epochs": 1, "data": {"images": "slides", "limit": 3, "suffix": None}}  # untouched
    assert validate_train_config(panda).data.label_column == "isup_grade"
    # the user's class count (or names) wins over the 6 ISUP grades
    assert with_panda_defaults({"num_classes": 3})["num_classes"] == 3
    named = with_panda_defaults({"data": {"label_names": ["low", "high"]}})
    assert "num_classes" not in named and validate_train_config(named).num_classes == 2
    # other domains: the pathology hook declines and the generic trainer gets the config as given
    from gigapatch_pathology.training import gigapatch_train

    for domain in (None, "generic", "metal_surface"):
        assert gigapatch_train(config=user, data=tmp_path, out=tmp_path, domain=domain) is None
        hook(config=user, data=tmp_path, out=tmp_path, domain=domain)
        assert seen[-1] is user
