"""Configuration: pydantic models with ``extra="forbid"``, loaded from YAML, overridden by flags.

Precedence (lowest first): model defaults < the domain's YAML (``configs/<domain>.yaml``, shipped
inside the package) < ``--config FILE.yaml`` < CLI flags.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gigapatch.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    # inf / nan are never a size, a threshold or a pixel pitch: refused with the key's name
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ReadConfig(_Strict):
    """How image bytes are trusted."""

    on_bad_tile: Literal["fail", "skip"] = Field(
        "fail", description="a stored tile that does not decode cleanly (corrupt or cut JPEG "
        "data, a decoder warning, wrong markers): 'fail' = the image fails with one line naming "
        "the tile; 'skip' = the patches over it are dropped and reported",
    )


class MaskConfig(_Strict):
    """How the low-resolution foreground mask is computed."""

    method: str = Field("auto", description="'auto' = the domain plugin's mask; 'otsu' = built-in")
    downsample: float = Field(16.0, gt=0, description="target level-0 downsample of the mask")
    max_side: int = Field(4096, ge=64, description="cap on the mask's longer side (memory bound)")
    median_ksize: int = Field(7, ge=1, description="median blur kernel (mask px, odd)")
    threshold: float | None = Field(None, description="fixed saturation threshold (None = Otsu)")
    min_threshold: float = Field(15.0, ge=0, description="Otsu threshold never goes below this")
    max_brightness: int = Field(235, ge=0, le=255, description="brighter than this is never foreground")
    min_brightness: int = Field(0, ge=0, le=255, description="darker than this is never foreground")
    model_weights: Path | None = Field(None, description="local weights for a learned mask")


class RefineConfig(_Strict):
    """Mask clean-up. Areas are in units of one patch's level-0 area."""

    close: int = Field(2, ge=0, description="morphological closing radius (mask px)")
    open: int = Field(0, ge=0, description="morphological opening radius (mask px)")
    dilate: int = Field(0, ge=0, description="dilation radius (mask px)")
    fill_holes_below: float = Field(0.25, ge=0, description="fill holes smaller than this (patches)")
    drop_below: float = Field(0.25, ge=0, description="drop regions smaller than this (patches)")
    smooth: int = Field(0, ge=0, description="contour smoothing: Gaussian sigma (mask px)")
    pad: int = Field(0, ge=0, description="pixels of padding around the mask border")


#: the smallest patch side in output px
MIN_PATCH_SIZE = 16


class PatchConfig(_Strict):
    """Patch geometry and placement."""

    size: int = Field(256, ge=MIN_PATCH_SIZE, description="patch side in output pixels (at "
                      f"least {MIN_PATCH_SIZE}: smaller patches hold no texture to score)")
    stride: int | None = Field(None, ge=1, description="step between patches (None = size)")
    level: int | None = Field(0, ge=0, description="pyramid level (ignored when mpp/magnification set)")
    mpp: float | None = Field(None, gt=0, description="target microns per pixel")
    magnification: float | None = Field(None, gt=0, description="target objective power")
    slide_mpp: float | None = Field(None, gt=0, description="override the image's level-0 mpp")
    pixel_size: tuple[float, float] | None = Field(
        None, description="level-0 pixel pitch (x, y) in mm, overriding the file's (anisotropic "
        "allowed); needed by the *_mm keys when the file records none",
    )
    size_mm: float | None = Field(
        None, gt=0, description="patch side in mm (replaces size: the level-0 px that span it "
        "at the finer pitch, read at patch.level)",
    )
    stride_mm: float | None = Field(None, gt=0, description="step between patches in mm")
    max_object: int | None = Field(
        None, ge=1, description="objects up to this many level-0 px across lie wholly inside "
        "some patch: the stride is capped at the patch side minus this",
    )
    max_object_mm: float | None = Field(None, gt=0, description="max_object in mm")
    placement: Literal["grid", "optimal", "border"] = Field(
        "grid", description="grid: the aligned grid; optimal: the fewest patches covering as "
        "much; border: the grid plus patches shifted along the foreground's border",
    )
    min_foreground: float = Field(0.5, ge=0, le=1, description="keep patches with at least this")
    per_region: bool = Field(
        False, description="place each region on its own (a patch never holds two regions)"
    )
    max_candidates: int = Field(
        2_000_000, ge=1, description="an image whose patch grid (size and stride over the whole "
        "image) has more positions than this is refused before any work (a tiny patch or "
        "stride would take hours and gigabytes)",
    )
    edge: Literal["inside", "pad", "shift"] = Field(
        "inside",
        description="image edge policy: 'inside' (or 'skip'): whole patches only, the leftover "
        "strip is skipped; 'pad': the last row/column overhangs (padded, flagged 'partial'); "
        "'shift': the last row/column is shifted inward to end at the image edge",
    )

    @field_validator("edge", mode="before")
    @classmethod
    def _skip_is_inside(cls, v: object) -> object:
        """``skip`` is another name of ``inside`` (recorded as ``inside``)."""
        return "inside" if v == "skip" else v


class ScoreConfig(_Strict):
    """Per-patch scoring and selection."""

    keep: str | None = Field(
        None, description="expression over score columns, e.g. 'foreground > 0.5 and sharpness > 40'"
    )
    top_n: int | None = Field(None, ge=1, description="keep only the N best by rank_by")
    top_percent: float | None = Field(
        None, gt=0, le=100, description="keep only the best P % (rounded up) by rank_by of the "
        "patches that pass the other rules (a review budget)",
    )
    rank_by: str = "foreground"
    sharpness: bool = Field(
        True, description="score the sharpness of every candidate on its full-resolution pixels"
    )
    min_sharpness: float | None = Field(None, description="drop patches below this sharpness")
    candidate_margin: float = Field(
        0.0, ge=0, le=1,
        description="also score patches this far below patch.min_foreground (a plugin may "
        "measure their foreground on their pixels)",
    )
    foreground_tolerance: float = Field(
        0.0, ge=0, le=1,
        description="keep a patch whose foreground a plugin measured on its pixels down to "
        "patch.min_foreground minus this (the measure's uncertainty)",
    )
    workers: int = Field(4, ge=1)


class OutputConfig(_Strict):
    """What is written."""

    extract: bool = Field(False, description="write the kept patches into <out>/<id>/")
    format: Literal["jpeg", "png", "tar"] = Field(
        "jpeg", description="extracted patches: jpeg or png files <x>_<y>.<ext>, or tar: "
        "WebDataset shards of <id>/<x>_<y>.jpg + .json (scores, labels)",
    )
    quality: int = Field(90, ge=1, le=100, description="JPEG quality of extracted patches")
    shard_size: int = Field(10_000, ge=1, description="samples per tar shard (format tar)")
    overlay: bool = True
    table: Literal["csv", "parquet", "none"] = "csv"
    geojson: bool = Field(False, description="write <id>.geojson: regions and patches for QuPath")
    contact_sheet: bool = Field(
        False, description="write <id>_contact.png: the 16 best and 16 worst kept patches by "
        "score.rank_by",
    )
    workers: int = Field(4, ge=1)


class AnnotationConfig(_Strict):
    """Hand-edited regions (GeoJSON, e.g. exported from QuPath) that replace or trim the mask."""

    path: Path | None = Field(None, description="GeoJSON file in level-0 pixel coordinates")
    include: list[str] | None = Field(
        None, description="classification names whose polygons define the foreground (None = any not excluded)"
    )
    exclude: list[str] = Field(
        default_factory=lambda: ["Exclude", "Ignore*", "Other"],
        description="classification names whose polygons are removed from the foreground",
    )


class Config(_Strict):
    """The whole resolved configuration of one run."""

    domain: str = "generic"
    mask: MaskConfig = MaskConfig()
    refine: RefineConfig = RefineConfig()
    patch: PatchConfig = PatchConfig()
    score: ScoreConfig = ScoreConfig()
    output: OutputConfig = OutputConfig()
    annotations: AnnotationConfig = AnnotationConfig()
    read: ReadConfig = ReadConfig()
    plugin: dict[str, Any] = Field(default_factory=dict, description="free settings for plugins")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.patch.mpp is not None and self.patch.magnification is not None:
            raise ValueError("give patch.mpp or patch.magnification, not both")
        return self

    def hash(self) -> str:
        """A short stable hash of the resolved config (recorded in every output)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_yaml(self) -> str:
        import yaml

        # libyaml's emitter when PyYAML has it: the same text as safe_dump, several times faster
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(self.model_dump(mode="json"), Dumper=dumper, sort_keys=False)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base`` (``over`` wins)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def validate(model: type[M], data: Any, *, source: object = None, prefix: str = "") -> M:
    """``model.model_validate(data)``, with a failure turned into one :class:`ConfigError` line:
    ``"<source>: config key '<prefix><where>': <problem>"`` (the first problem pydantic found).

    ``prefix`` names where ``data`` sits in the whole config (e.g. ``"plugin.satellite."``), so a
    plugin validating its own settings reports the key the user wrote.
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = (prefix + ".".join(str(p) for p in first["loc"])).rstrip(".")
        src = f"{source}: " if source else ""
        key = f"config key {where!r}: " if where else ""
        raise ConfigError(f"{src}{key}{first['msg']}") from None


def plugin_settings(config: Config, name: str, model: type[M]) -> M:
    """A plugin's validated settings from ``config.plugin[name]`` (``{}`` when absent)."""
    return validate(model, (config.plugin or {}).get(name) or {}, prefix=f"plugin.{name}.")


def nest_dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"patch.size": 512}`` -> ``{"patch": {"size": 512}}``; None values (unset flags) dropped."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        cur = nested
        parts = key.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return nested


#: a config file larger than this is refused before it is parsed
MAX_YAML_BYTES = 1 << 20
#: values (mappings, lists, scalars) a YAML document may expand to, its aliases followed
MAX_YAML_NODES = 100_000
#: collections a YAML document may nest (a config needs 4)
MAX_YAML_DEPTH = 100


def _expanded_nodes(data: Any, budget: int) -> int:
    """How many values ``data`` holds, counting a value reached through several aliases each
    time (stops counting past ``budget``)."""
    n, stack = 0, [data]
    while stack and n <= budget:
        item = stack.pop()
        n += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return n


def _nesting(text: str, loader: Any) -> int:
    """How deep ``text``'s collections nest, read from the parser's events (an iterative
    parser: a deep document is measured without the recursion that builds it, which crashes
    libyaml's composer past ~10^4 levels); stops counting past :data:`MAX_YAML_DEPTH`."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return depth
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return 0


def safe_yaml(text: str, source: object) -> Any:
    """YAML ``text`` as plain data (no tags that build objects), bounded: a document that
    expands to more than :data:`MAX_YAML_NODES` values through its aliases (a "billion laughs")
    or nests more than :data:`MAX_YAML_DEPTH` levels is refused. One-line :class:`ConfigError` naming ``source`` on any problem."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:  # libyaml's parser when PyYAML has it (safe, like safe_load; several times faster)
        if len(text) > 2 * MAX_YAML_DEPTH and _nesting(text, loader) > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: YAML nested more than {MAX_YAML_DEPTH} levels deep; "
                              "refused")
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    if "*" in text and _expanded_nodes(data, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise ConfigError(f"{source}: its aliases expand to more than {MAX_YAML_NODES:,} values "
                          "(nested YAML anchors, a 'billion laughs' document?); refused")
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (UTF-8, at most :data:`MAX_YAML_BYTES`, aliases bounded: see
    :func:`safe_yaml`); one-line :class:`ConfigError` naming the file on any problem."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{p}: {p.stat().st_size:,} bytes is too large for a config file "
                              f"(limit {MAX_YAML_BYTES:,})")
        if not p.is_file():
            raise ConfigError(f"{p}: not a regular file")
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text (UTF-8) file: byte {e.start} is {e.object[e.start]:#04x}"
                          "; a config is YAML text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or e})") from None
    data = safe_yaml(text, p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file must hold a mapping")
    return data


def domain_defaults(domain: str | None) -> dict[str, Any]:
    """The defaults a domain declares (its YAML or dict), or {} when it declares none."""
    if not domain:
        return {}
    from gigapatch.plugin.manager import list_domains

    info = list_domains().get(domain)
    if info is None:
        known = ", ".join(sorted(list_domains())) or "none"
        raise ConfigError(f"unknown domain {domain!r} (installed: {known})")
    cfg = info.get("config")
    if cfg is None:
        return {}
    if isinstance(cfg, dict):
        return cfg
    return read_yaml(cfg)


def load_config(
    domain: str | None = None,
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Resolve a :class:`Config` from domain defaults, a YAML file and flag overrides.

    ``overrides`` may use nested dicts or dotted keys (``{"patch.size": 512}``); None values are
    ignored so that unset CLI flags never override the file.
    """
    data: dict[str, Any] = {}
    file_data = read_yaml(file) if file is not None else {}
    domain = domain or file_data.get("domain") or "generic"
    data = deep_merge(data, domain_defaults(domain))
    data = deep_merge(data, file_data)
    data["domain"] = domain
    data = deep_merge(data, nest_dotted(overrides or {}))
    return validate(Config, data, source=file)
