"""The library runs from a copy of ``scenarios/`` alone: what a scenario reads (C headers and
their precomputed layouts) lives inside the folder, the headers stay byte-identical to the
workloads' own, and each precomputed layout is what the C preprocessor gives today. A
labctl without a preprocessor (the labctl image) reads the layouts from the sidecars."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from labctl import layout
from labctl.layout import cpre, precomputed
from labctl.scenario import load_all, load_file

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "scenarios"
# the copy in scenarios/include/ -> the source the program is built from
HEADERS = {"conn_stat.h": ROOT / "images/shmlab/conn_stat.h", "sensor.h": ROOT / "images/sensor/sensor.h"}


def test_no_scenario_reads_outside_the_library_folder() -> None:
    for f in sorted(LIBRARY.glob("*.yaml")):
        for m in re.finditer(r"header:\s*([^\s,}]+)", f.read_text()):
            target = (f.parent / m.group(1)).resolve()
            assert target.is_relative_to(LIBRARY.resolve()), f"{f.name}: {m.group(1)} is outside scenarios/"


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_the_shipped_headers_are_the_workloads_own(name: str) -> None:
    assert (LIBRARY / "include" / name).read_bytes() == HEADERS[name].read_bytes(), \
        f"scenarios/include/{name} differs from {HEADERS[name].relative_to(ROOT)}: copy it over, then " \
        f"python -m labctl.layout.precomputed scenarios/include/{name} STRUCT..."


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_the_precomputed_layouts_are_current(name: str) -> None:
    header = LIBRARY / "include" / name
    doc = json.loads(precomputed.sidecar(header).read_text())
    fresh = precomputed.compute(header, sorted(doc["structs"]))
    assert precomputed.render(fresh) == precomputed.sidecar(header).read_text(), \
        f"regenerate: python -m labctl.layout.precomputed scenarios/include/{name} {' '.join(sorted(doc['structs']))}"


def test_a_copy_of_the_folder_loads_without_a_preprocessor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = Path(shutil.copytree(LIBRARY, tmp_path / "scenarios"))
    with_zig = {s.name: s for s in load_all([str(LIBRARY)])}
    monkeypatch.setattr(cpre, "available", lambda: False)
    monkeypatch.setattr(cpre, "spawn_preprocess", lambda *a, **k: pytest.fail("the preprocessor ran"))
    layout._translation_units.cache_clear()
    without = {s.name: s for s in load_all([str(copy)])}
    assert set(without) == set(with_zig)
    for name in ("own-image-layout", "own-program-layout"):
        assert repr(without[name].checks).replace(str(copy), "") == repr(with_zig[name].checks).replace(str(LIBRARY), "")


def test_a_stale_sidecar_is_refused_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = Path(shutil.copytree(LIBRARY, tmp_path / "scenarios"))
    header = copy / "include" / "sensor.h"
    header.write_text(header.read_text().replace("uint32_t magic;", "uint64_t magic;"))
    monkeypatch.setattr(cpre, "available", lambda: False)
    with pytest.raises(Exception) as info:
        load_file(str(copy / "own-program-layout.yaml"))
    assert info.value.exit_code == 2 and "sensor.h.layout.json is missing, stale or lacks it" in str(info.value)
