"""The plugin contract: every hook documented in the README, bad plugins refused in one line at
start-up, the documented domain rule, ``score.sharpness`` as a switch for sharpness only, and a
third-party plugin written from the README alone, installed into a fresh environment and run."""

from __future__ import annotations

import csv
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_paths import REPO

from gigapatch import ConfigError, ConfigRecipe, open_image, write_pyramidal_tiff
from gigapatch.plugin import hookspecs
from gigapatch.plugin.manager import HOOK_NAMES, check_plugins, new_plugin_manager


def plugin_section() -> str:
    """The README's "## Writing a plugin" section (up to the next level-2 heading)."""
    text = (REPO / "README.md").read_text()
    start = text.index("## Writing a plugin\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def hookspecs_by_name() -> dict[str, inspect.Signature]:
    """Every function of the hookspecs module marked ``@hookspec``, with its signature."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if callable(fn) and hasattr(fn, marker)
    }


def run_gigapatch(python: str, *args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run([python, "-m", "gigapatch", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# ------------------------------------------------------------------ every hook documented
def test_every_hook_is_documented_with_its_arguments() -> None:
    specs = hookspecs_by_name()
    assert set(specs) == set(HOOK_NAMES) and len(specs) >= 14
    section = plugin_section()
    missing = []
    for name, sig in specs.items():
        call = f"{name}({', '.join(sig.parameters)})"
        if f"`{call}`" not in section:
            missing.append(call)
    assert not missing, f"README 'Writing a plugin' does not document: {missing}"
    # and it documents no hook that does not exist (a renamed or misspelt one)
    named = set(re.findall(r"\b(gigapatch_[a-z_]+)\(", section))
    example_functions = {"gigapatch_leaf"}  # the example's module, never called like a hook
    assert named - set(specs) - example_functions == set()


# ------------------------------------------------------------------ bad plugins refused
PLUGIN_SOURCES = {
    "misspelt": (
        "from gigapatch import hookimpl\n\n@hookimpl\n"
        "def gigapatch_foregroud_mask(rgb, context):\n    return None\n",
        ["unknown hook 'gigapatch_foregroud_mask'", "did you mean 'gigapatch_foreground_mask'"],
    ),
    "wrong_argument": (
        "from gigapatch import hookimpl\n\n@hookimpl\n"
        "def gigapatch_foreground_mask(rgb, ctx):\n    return None\n",
        ["gigapatch_foreground_mask(rgb, ctx)", "(it takes rgb, context)"],
    ),
    "broken_import": ("import gigapatch_no_such_module\n", ["gigapatch_no_such_module"]),
}


def fake_distribution(root: Path, kind: str) -> str:
    """A module and a ``.dist-info`` declaring it under the entry-point group ``gigapatch``, as
    pip would install them, in ``root`` (put on sys.path): the real entry-point path, no pip."""
    module = f"contract_{kind}_plugin"
    (root / f"{module}.py").write_text(PLUGIN_SOURCES[kind][0])
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gigapatch]\n{kind} = {module}\n")
    return module


@pytest.mark.parametrize("kind", sorted(PLUGIN_SOURCES))
def test_a_bad_entry_point_plugin_is_one_config_error_line(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = fake_distribution(tmp_path, kind)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError) as err:
            new_plugin_manager()
    finally:
        sys.modules.pop(module, None)
    message = str(err.value)
    assert "\n" not in message
    for part in PLUGIN_SOURCES[kind][1]:
        assert part in message, message
    if kind != "broken_import":
        assert message.startswith(f"plugin '{kind}': ")


def test_check_plugins_refuses_a_misspelt_hook_registered_directly() -> None:
    import types

    from gigapatch import hookimpl

    pm = new_plugin_manager(load_entrypoints=False)
    plugin = types.ModuleType("my_plugin")

    @hookimpl
    def gigapatch_score_patch(coords, context):  # 'patches' misspelt
        return None

    plugin.gigapatch_score_patch = gigapatch_score_patch
    pm.register(plugin, name="my_plugin")
    with pytest.raises(ConfigError, match=r"^plugin 'my_plugin': unknown hook 'gigapatch_score_patch' "
                                          r"\(did you mean 'gigapatch_score_patches'\?\)$"):
        check_plugins(pm)


def test_the_cli_refuses_a_misspelt_plugin_at_start_up(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "misspelt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    res = run_gigapatch(sys.executable, "plugins", cwd=tmp_path, env=env)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: plugin 'misspelt': unknown hook 'gigapatch_foregroud_mask' "
        "(did you mean 'gigapatch_foreground_mask'?)"
    ]


# ------------------------------------------------------------------ the domain rule
def plain_png(path: Path) -> Path:
    from PIL import Image as PILImage

    rgb = np.full((600, 800, 3), 240, np.uint8)
    rgb[100:500, 100:700] = (180, 80, 160)
    PILImage.fromarray(rgb).save(path)
    return path


def test_the_domain_rule_without_domain(tmp_path: Path) -> None:
    """No --domain: a pyramidal TIFF with a microscope's mpp is claimed by pathology; a plain PNG
    that no plugin claims is generic; --domain and the file's ``domain:`` come first."""
    png = plain_png(tmp_path / "plain.png")
    rgb = np.full((1024, 1024, 3), 235, np.uint8)
    rgb[200:800, 200:800] = (190, 90, 170)
    tiff = write_pyramidal_tiff(tmp_path / "slide.tiff", rgb, downsamples=(4,), mpp=0.5)
    no_mpp = write_pyramidal_tiff(tmp_path / "no_mpp.tiff", rgb, downsamples=(4,))
    generic_file = tmp_path / "generic.yaml"
    generic_file.write_text("domain: generic\n")
    with open_image(tiff) as img:
        assert img.mpp == pytest.approx(0.5)
        assert ConfigRecipe().for_image(img).domain == "pathology"
        assert ConfigRecipe(domain="generic").for_image(img).domain == "generic"
        assert ConfigRecipe(file=generic_file).for_image(img).domain == "generic"
    with open_image(no_mpp) as img:  # a generic TIFF without a resolution: nobody's
        assert img.mpp is None
        assert ConfigRecipe().for_image(img).domain == "generic"
    with open_image(png) as img:
        assert ConfigRecipe().for_image(img).domain == "generic"
        assert ConfigRecipe(domain="pathology").for_image(img).domain == "pathology"


def test_a_real_svs_goes_to_pathology(pathology_dir: Path) -> None:
    with open_image(pathology_dir / "CMU-1-Small-Region.svs") as img:
        assert ConfigRecipe().for_image(img).domain == "pathology"


# ------------------------------------------------------------------ score.sharpness
def test_no_sharpness_switches_off_only_the_sharpness_columns(tmp_path: Path) -> None:
    from gigapatch_pathology.synth import synthetic_slide

    slide, _truth = synthetic_slide(7, (3072, 2048), path=tmp_path / "slide.tiff")
    tables = {}
    for flag in ("--sharpness", "--no-sharpness"):
        out = tmp_path / flag.strip("-")
        res = run_gigapatch(sys.executable, "tile", str(slide), "--domain", "pathology",
                            flag, "--out", str(out), "--quiet", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        tables[flag] = read_table(out / "slide.csv")
    (cols_on, rows_on), (cols_off, rows_off) = tables["--sharpness"], tables["--no-sharpness"]
    assert set(cols_on) - set(cols_off) == {"sharpness", "tenengrad"}
    assert set(cols_off) <= set(cols_on)
    # pathology's own pixel scores are still computed: foreground measured on the pixels (the
    # mask's estimate kept beside it), marker ink and blur
    assert {"foreground", "mask_foreground", "pen", "blur"} <= set(cols_off)
    assert len(rows_on) == len(rows_off) > 0
    for a, b in zip(rows_on, rows_off):
        assert {k: a[k] for k in cols_off} == b  # same candidates, scores and reasons
    measured = [r for r in rows_off if r["blur"] not in ("", "nan")]
    assert measured and any(r["foreground"] != r["mask_foreground"] for r in measured)
    reasons = {r["reason"] for r in rows_off}
    assert {"pen", "blur"} & reasons and "" in reasons


# ------------------------------------------------------------------ a third-party plugin
def readme_files() -> dict[str, str]:
    """The README's example plugin: every code block whose first line is ``# <file name>``."""
    files = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", plugin_section(), flags=re.S):
        first, _, rest = block.partition("\n")
        m = re.fullmatch(r"# ([\w.-]+\.(?:py|toml))", first.strip())
        if m:
            files[m.group(1)] = block
    return files


#: the leaf image: a green leaf (ellipse) on white with one brown square spot of 2 x 2 patches
LEAF_SIZE = (1024, 768)
SPOT = (256, 256, 512, 512)  # x0, y0, x1, y1, on the 128 px grid of the leaf domain's default


def leaf_image(path: Path) -> Path:
    from PIL import Image as PILImage

    w, h = LEAF_SIZE
    yy, xx = np.mgrid[:h, :w]
    rgb = np.full((h, w, 3), 245, np.int16)
    rgb[((xx - 512) / 440.0) ** 2 + ((yy - 384) / 320.0) ** 2 <= 1] = (60, 150, 50)
    x0, y0, x1, y1 = SPOT
    rgb[y0:y1, x0:x1] = (140, 90, 40)
    rgb += np.random.default_rng(0).integers(-6, 7, rgb.shape, dtype=np.int16)
    PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def test_a_third_party_plugin_from_the_readme_installs_and_tiles(tmp_path: Path) -> None:
    files = readme_files()
    assert set(files) == {"gigapatch_leaf.py", "pyproject.toml"}, set(files)
    src = tmp_path / "gigapatch-leaf"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    venv = tmp_path / "venv"
    # the venv sees the installed gigapatch (and pip, setuptools) through the system site
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    res = subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "-q", str(src)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr

    listed = run_gigapatch(python, "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "gigapatch_leaf" in listed.stdout and "reject_patches" in listed.stdout

    image = leaf_image(tmp_path / "leaf.png")
    out = tmp_path / "out"
    res = run_gigapatch(python, "tile", str(image), "--domain", "leaf", "--out", str(out),
                        "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "domain: leaf" in (out / "leaf.yaml").read_text()
    cols, rows = read_table(out / "leaf.csv")
    assert "brown" in cols
    assert {int(r["size_level0"]) for r in rows} == {128}  # the domain's default config
    spotted = {(int(r["x"]), int(r["y"])) for r in rows if r["reason"] == "spotted"}
    x0, y0, x1, y1 = SPOT
    assert spotted == {(x, y) for x in range(x0, x1, 128) for y in range(y0, y1, 128)}
    kept = [r for r in rows if r["kept"] in ("True", "1", "true")]
    assert len(kept) >= 10
    assert all(float(r["brown"]) <= 0.25 for r in kept)

    # the settings model is the plugin's: read from plugin.leaf, a misspelt key refused in a line
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("plugin:\n  leaf:\n    max_brown: 1.0\n")
    res = run_gigapatch(python, "tile", str(image), "--domain", "leaf", "--config", str(lenient),
                        "--out", str(tmp_path / "lenient"), "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    _, rows = read_table(tmp_path / "lenient" / "leaf.csv")
    assert not any(r["reason"] == "spotted" for r in rows)
    typo = tmp_path / "typo.yaml"
    typo.write_text("plugin:\n  leaf:\n    max_brwon: 0.1\n")
    res = run_gigapatch(python, "tile", str(image), "--domain", "leaf", "--config", str(typo),
                        "--out", str(tmp_path / "typo"), "--quiet", cwd=tmp_path)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugin.leaf.max_brwon" in lines[0], res.stderr
