"""The suite's GeoJSON check (tests/conftest.py runs it over every file written in a session):
a module of its own, so tests import it by a name no other conftest.py shadows."""

from __future__ import annotations

from pathlib import Path

#: the foreign member the core's GeoJSON writers add (``"generator": "gigapatch <v>"``)
GEOJSON_GENERATOR = "gigapatch"


def invalid_geojson(paths: list[Path]) -> list[str]:
    """One line per geometry of the GeoJSON files ``paths`` that fails ``shapely.is_valid``.

    A geometry that cannot even be built counts too in a file that names gigapatch as its
    ``generator``; in other files (a test's deliberately broken input, e.g. bad coordinates) it
    is skipped. A test that writes an invalid but well-formed geometry on purpose names its file
    ``.json``, not ``.geojson``.
    """
    import json

    import shapely
    from shapely.geometry import shape

    bad: list[str] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            continue
        ours = str(data.get("generator", "")).startswith(GEOJSON_GENERATOR)
        for k, feature in enumerate(data["features"]):
            try:
                geom = shape(feature["geometry"])
            except Exception as e:  # a malformed geometry is no better than an invalid one
                if ours:
                    bad.append(f"{path}: feature {k}: {e}")
                continue
            if not geom.is_valid:
                bad.append(f"{path}: feature {k}: {shapely.is_valid_reason(geom)}")
    return bad
