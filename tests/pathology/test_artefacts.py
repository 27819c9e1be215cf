"""The pathology plugin's tissue mask, pen ink, blur and learned mask, on real and synthetic slides."""

from __future__ import annotations

import cv2
import numpy as np
import pluggy
import pytest

from gigapatch import ArrayImage, ConfigError, load_config
from gigapatch_pathology import ink, learned, scores, tissue
from gigapatch_pathology.focus import block_focus, blur_fraction
from gigapatch_pathology.ink import pen_mask
from gigapatch_pathology.learned import learned_mask, pixel_features, save_pixel_classifier
from gigapatch_pathology.synth import synthetic_slide
from gigapatch_pathology.tissue import tissue_mask

DS = 16


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def synth(cmu_texture):
    """Two synthetic slides (real CMU texture, procedural texture) at ds 16 with truth."""
    out = []
    for seed, texture in ((1001, cmu_texture), (1002, None)):
        img, truth = synthetic_slide(seed, (6144, 4608), texture)
        rgb = img.read_level_downsampled(DS)
        size = (rgb.shape[1], rgb.shape[0])
        frac = {k: cv2.resize(truth[k].astype(np.float32), size, interpolation=cv2.INTER_AREA)
                for k in ("tissue", "pen", "blur")}
        out.append((rgb, frac))
    return out


def _level(path, ds):
    tifffile = pytest.importorskip("tifffile")
    a = tifffile.imread(path, key=0)
    return cv2.resize(a, (a.shape[1] // ds, a.shape[0] // ds), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------ tissue
@pytest.mark.parametrize(
    "name, ref, ds, min_iou",
    [
        ("CMU-1-Small-Region.svs", "cmu-1-small-region", 16, 0.75),
        ("tcga-cr-7395-01a-01-ts1.svs", "tcga-cr-7395", 16, 0.88),
    ],
)
def test_tissue_mask_real_slides_vs_reference(pathology_dir, name, ref, ds, min_iou):
    rgb = _level(pathology_dir / name, ds)
    refm = np.load(pathology_dir / "reference_masks" / f"histolab-tissue-mask-{ref}.npy")
    refm = cv2.resize(refm.astype(np.uint8), (rgb.shape[1], rgb.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    m = tissue_mask(rgb)
    assert _iou(m, refm) >= min_iou
    from gigapatch import otsu_saturation_mask

    assert _iou(m, refm) > _iou(otsu_saturation_mask(rgb), refm)  # better than the core default


def test_tissue_mask_finds_small_pale_ihc_fragment(pathology_dir):
    rgb = _level(pathology_dir / "kidney-48-5.tif", 2)  # bluish IHC, ~0.3 % tissue
    m = tissue_mask(rgb)
    refm = np.load(pathology_dir / "reference_masks" / "histolab-tissue-mask-kidney-48-5.npy")
    refm = cv2.resize(refm.astype(np.uint8), (rgb.shape[1], rgb.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    assert 0.001 < m.mean() < 0.01
    assert (m & refm).sum() / m.sum() > 0.95  # inside histolab's (generous) mask
    assert not pen_mask(rgb).any()  # bluish haematoxylin is not blue ink


def test_tissue_mask_synthetic_truth(synth):
    for rgb, frac in synth:
        clean = (frac["tissue"] >= 0.5) & (frac["pen"] == 0)
        m = tissue_mask(rgb)
        assert _iou(m, clean) > 0.88
        assert (frac["tissue"][m] >= 0.5).mean() > 0.97  # what it calls tissue is tissue


def test_tissue_mask_ignores_dust_debris_and_tinted_glass():
    rng = np.random.default_rng(3)
    rgb = np.full((200, 300, 3), 252, np.uint8)
    truth = np.zeros((200, 300), bool)
    truth[40:160, 40:140] = True
    rgb[truth] = (215, 150, 195)  # pink tissue
    pale = np.zeros_like(truth)
    pale[60:140, 190:260] = True
    rgb[pale] = (240, 222, 234)  # a pale, weakly stained piece
    cv2.circle(rgb, (170, 30), 6, (120, 120, 118), -1)  # grey dust
    cv2.circle(rgb, (270, 170), 8, (25, 22, 24), -1)  # black debris
    tint = np.array([246, 240, 214]) / 255  # yellowish light/glass: glass saturation ~33
    rgb = np.clip(rgb * tint + rng.normal(0, 2, rgb.shape), 0, 255).astype(np.uint8)
    m = tissue_mask(rgb)
    want = truth | pale
    assert _iou(m, want) > 0.95
    assert not m[30, 170] and not m[170, 270]


def test_tissue_mask_edge_cases():
    assert not tissue_mask(np.full((50, 50, 3), 242, np.uint8)).any()  # empty glass
    assert tissue_mask(np.zeros((0, 5, 3), np.uint8)).shape == (0, 5)
    with pytest.raises(ValueError):
        tissue_mask(np.zeros((5, 5), np.uint8))


def _context(domain: str, rgb: np.ndarray, **cfg_overrides):
    from gigapatch import ImageContext

    cfg = load_config(domain, overrides=cfg_overrides)
    return ImageContext(image=ArrayImage(rgb), config=cfg, rgb=rgb)


def test_hooks_decline_other_domains():
    rgb = np.full((20, 20, 3), 240, np.uint8)
    assert tissue.gigapatch_foreground_mask(rgb=rgb, context=_context("satellite", rgb)) is None
    assert ink.gigapatch_exclusion_masks(rgb=rgb, context=_context("generic", rgb)) is None
    out = ink.gigapatch_exclusion_masks(rgb=rgb, context=_context("pathology", rgb))
    assert set(out) == {"pen"} and out["pen"].shape == (20, 20)


# ------------------------------------------------------------------------------ pen
def test_pen_mask_synthetic(synth):
    for rgb, frac in synth:
        truth = frac["pen"] >= 0.5
        p = pen_mask(rgb)
        assert truth.sum() > 200
        assert (p & truth).sum() / truth.sum() > 0.95  # recall
        assert (frac["pen"][p] > 0).mean() > 0.9  # precision (soft stroke edges count)
        assert (p & (frac["tissue"] >= 0.5) & (frac["pen"] == 0)).sum() < 0.005 * p.size


def test_pen_mask_real_slides(pathology_dir):
    tcga = _level(pathology_dir / "tcga-cr-7395-01a-01-ts1.svs", 16)
    assert pen_mask(tcga).mean() < 0.001  # no ink on this slide
    cmu = _level(pathology_dir / "CMU-1-Small-Region.svs", 16)
    p = pen_mask(cmu)
    # CMU-1 has a few blue-green tissue-marking dye specks at the right tissue edge, nothing else
    assert 0 < p.mean() < 0.01
    ys, xs = np.nonzero(p)
    assert xs.min() > cmu.shape[1] // 2


def test_near_opaque_ink_is_pen_whatever_its_residual_hue():
    # a dense felt-tip stroke (or layered strokes) over tissue: all channels below ~20 % of the
    # glass, with a bluish residue from noise and the stain under it, breaks the neutral-ratio
    # rules; the darkest H&E (nuclei clusters, a fold) keeps one channel above ~35 %
    rng = np.random.default_rng(0)
    rgb = np.full((120, 160, 3), 242, np.uint8)
    rgb[10:110, 10:150] = (200, 120, 170)  # tissue
    rgb[20:50, 20:140] = (11, 12, 30)  # opaque ink over tissue
    rgb[60:80, 20:60] = (70, 35, 120)  # dense nuclei
    rgb[60:80, 80:120] = (125, 45, 95)  # a thick fold
    rgb = np.clip(rgb + rng.normal(0, 2, rgb.shape), 0, 255).astype(np.uint8)
    p = pen_mask(rgb)
    assert p[22:48, 22:138].mean() > 0.98
    assert not p[58:82].any()


def test_black_ink_over_strongly_stained_tissue_is_followed_from_the_glass(monkeypatch):
    # moderate black ink over eosin-rich tissue keeps the stain's colour (no neutral rule holds);
    # its density above the slide's tissue is grey, where a fold (the stain doubled) is not
    rng = np.random.default_rng(1)
    glass = np.array([242.0, 240.0, 244.0])
    t = np.array([190.0, 75.0, 129.0]) / 242  # frozen-section eosin: green absorbed most
    rgb = np.tile(glass, (160, 240, 1))
    rgb[20:140, 60:230] = glass * t
    rgb[100:130, 150:220] = glass * t**2  # a fold: twice the stain
    rgb[40:70, 0:200] *= np.array([0.16, 0.16, 0.19]) ** 0.5  # a stroke from the glass onto tissue
    rgb = np.clip(rgb + rng.normal(0, 2, rgb.shape), 0, 255).astype(np.uint8)
    p = pen_mask(rgb)
    assert p[42:68, 62:198].mean() > 0.95  # over tissue
    assert not p[95:135, 145:225].any()  # the fold
    monkeypatch.setattr(ink, "EXCESS_OD", 99.0)  # without the rule, only the stroke on the glass
    assert pen_mask(rgb)[42:68, 62:198].mean() < 0.2


def test_pen_colours_are_configurable():
    rgb = np.full((40, 40, 3), 240, np.uint8)
    rgb[10:30, 10:30] = (210, 50, 62)  # red marker
    assert not pen_mask(rgb).any()
    assert pen_mask(rgb, ("red",))[20, 20]


# ------------------------------------------------------------------------------ blur
def test_block_focus_separates_blur_from_faint_tissue():
    from gigapatch_pathology.synth import texture_tiles

    tiles = texture_tiles(None, np.random.default_rng(0))  # procedural, (K, 256, 256, 3)
    sharp = np.clip(240 * tiles[:4], 0, 255).astype(np.uint8)
    faint = np.clip(240 * tiles[:4] ** 0.35, 0, 255).astype(np.uint8)  # pale, same focus
    blurred = np.stack([cv2.GaussianBlur(p, (0, 0), 3.0) for p in sharp])
    rng = np.random.default_rng(1)
    noisy = lambda a: np.clip(a + rng.normal(0, 1.5, a.shape), 0, 255).astype(np.uint8)  # noqa: E731
    f_sharp, f_faint, f_blur = (block_focus(noisy(a)) for a in (sharp, faint, blurred))
    assert f_sharp.shape == (4, 4, 4)
    assert np.median(f_faint) > 0.4 * np.median(f_sharp)
    assert np.percentile(f_blur, 95) < 0.2 * np.median(f_sharp)
    tis = np.ones_like(f_sharp)
    frac = blur_fraction(np.concatenate([f_sharp, f_faint, f_blur]), np.concatenate([tis] * 3), 0.2)
    assert (frac[:8] < 0.5).all() and (frac[8:] >= 0.5).all()


def test_blur_fraction_counts_tissue_blocks_only():
    focus = np.ones((3, 2, 2))
    focus[1] = 0.01
    focus[2, 0] = 0.01  # top half blurred
    tissue = np.ones((3, 2, 2))
    tissue[2, 0, 0] = 0.0  # one of the blurred blocks is glass
    out = blur_fraction(focus, tissue, 0.2)
    assert out.tolist() == pytest.approx([0.0, 1.0, 1 / 3])
    assert blur_fraction(focus, tissue, 0.0).tolist() == [0, 0, 0]
    assert blur_fraction(focus, np.zeros_like(tissue), 0.2).tolist() == [0, 0, 0]


# ------------------------------------------------------------------------------ learned mask
def test_learned_mask_trained_here(synth, tmp_path):
    from sklearn.linear_model import LogisticRegression

    (rgb_a, frac_a), (rgb_b, frac_b) = synth
    x = pixel_features(rgb_a)
    y = (frac_a["tissue"] >= 0.5).ravel()
    keep = (frac_a["tissue"].ravel() >= 0.9) | (frac_a["tissue"].ravel() == 0)  # clear labels
    clf = LogisticRegression(max_iter=500).fit(x[keep], y[keep])
    w = save_pixel_classifier(tmp_path / "tissue.npz", clf.coef_[0], clf.intercept_[0])
    m = learned.gigapatch_learned_mask(rgb=rgb_b, weights=w)
    assert m.shape == rgb_b.shape[:2] and m.dtype == bool
    assert _iou(m, frac_b["tissue"] >= 0.5) > 0.8  # generalises to another slide
    # through pluggy, as the pipeline calls it
    pm = pluggy.PluginManager("gigapatch")
    from gigapatch.plugin import hookspecs

    pm.add_hookspecs(hookspecs)
    pm.register(learned)
    ctx = _context("pathology", rgb_b, **{"mask.model_weights": str(w)})
    m2 = pm.hook.gigapatch_learned_mask(rgb=rgb_b, weights=w, context=ctx)
    assert np.array_equal(m, m2)


def test_learned_mask_rejects_foreign_and_broken_files(tmp_path):
    rgb = np.full((8, 8, 3), 200, np.uint8)
    assert learned_mask(rgb, tmp_path / "model.pt") is None  # not our kind
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    assert learned_mask(rgb, other) is None
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="bad.npz"):
        learned_mask(rgb, bad)
    with pytest.raises(ConfigError, match="not found"):
        learned_mask(rgb, tmp_path / "missing.npz")
    short = save_pixel_classifier(tmp_path / "short.npz", np.ones(4), 0.0)
    with pytest.raises(ConfigError, match="9 coefficients"):
        learned_mask(rgb, short)


def test_score_hook_adds_blur_and_fractions():
    """On a slide whose right half is out of focus the hook flags the right-half patches."""
    from gigapatch import ImageContext, resolve_geometry
    from gigapatch_pathology.synth import texture_tiles

    tiles = texture_tiles(None, np.random.default_rng(2))
    row = np.concatenate(list(tiles[:8]), axis=1)  # 256 x 2048
    arr = np.clip(240 * np.concatenate([row, row[:, ::-1]], axis=0), 0, 255).astype(np.uint8)
    arr[:, 1024:] = cv2.GaussianBlur(arr[:, 1024:], (0, 0), 3.5)
    rng = np.random.default_rng(0)
    arr = np.clip(arr + rng.normal(0, 1.5, arr.shape), 0, 255).astype(np.uint8)
    img = ArrayImage(arr, mpp=0.5)
    cfg = load_config("pathology")
    geom = resolve_geometry(img, cfg.patch)
    rgb = img.read_level_downsampled(8)
    ctx = ImageContext(image=img, config=cfg, geometry=geom, rgb=rgb,
                       mask=np.ones(rgb.shape[:2], bool), mask_downsample=8.0)
    coords = np.array([[x, y] for y in (0, 256) for x in range(0, 2048, 256)])
    # the pipeline's single full-resolution pass feeds the per-block focus to the score hook
    from gigapatch.tiling.score import batched_pixel_scores

    ctx.pixels = batched_pixel_scores(
        img, coords, geom,
        lambda b, c: scores.gigapatch_score_pixels(patches=b, coords=c, context=ctx),
        with_coords=True,
    )
    assert ctx.pixels["block_focus"].shape == (len(coords), 4, 4)
    out = scores.gigapatch_score_patches(coords=coords, context=ctx)
    assert {"blur", "white", "dark", "grey"} <= set(out)
    blurred = coords[:, 0] >= 1024
    assert (out["blur"][blurred] >= 0.5).all() and (out["blur"][~blurred] < 0.5).all()
    assert np.allclose(out["white"], 0)
    ctx.config = load_config("satellite")
    assert scores.gigapatch_score_patches(coords=coords, context=ctx) is None
    assert scores.gigapatch_score_pixels(patches=np.zeros((1, 256, 256, 3), np.uint8),
                                         coords=coords[:1], context=ctx) is None

