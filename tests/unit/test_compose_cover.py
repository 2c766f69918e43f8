"""The compose library test runs, under Compose v2, the part of the library that covers
every construct, workload and event-gated start and, under 1.29, the part whose renderings
use every construct the whole library's renderings use: the construct sets and the covers
are pinned here, so a construct the renderer starts emitting (or a new gated event) is
covered without anyone editing a list."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import compose_constructs, covering_subset, gated_starts, library_compose_constructs

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_the_subset_covers_every_construct_of_the_whole_library_and_is_small() -> None:
    constructs = library_compose_constructs(LIBRARY)
    subset = covering_subset(constructs)
    every = set().union(*constructs.values())
    assert set().union(*(constructs[p] for p in subset)) == every
    assert len(subset) <= len(LIBRARY) // 3, subset  # the point: 1.29 runs a fraction of the library
    # what the renderer emits today, as a floor: a construct function that stops seeing these
    # would make the cover shrink silently
    assert {"services.*.ipc=shareable", "services.*.ipc=service", "services.*.ipc=private", "services.*.ipc=none",
            "services.*.depends_on.*.condition=service_healthy",
            "services.*.depends_on.*.condition=service_completed_successfully",
            "services.*.healthcheck.test", "volumes.*.driver_opts.type=tmpfs", "services.*.volumes.[]=named:ro",
            "services.*.platform=linux/arm64", "services.*.runtime=runsc", "test:gated-event-start",
            "test:up-fails-refused", "test:up-fails-awaited-exit"} <= every, sorted(every)


def test_constructs_abstract_names_and_keep_kinds() -> None:
    a = {"services": {"w": {"ipc": "shareable", "volumes": ["data:/d"]},
                      "r": {"ipc": "service:w", "depends_on": {"w": {"condition": "service_healthy"}}}},
         "volumes": {"data": {"driver_opts": {"type": "tmpfs", "o": "size=1m,mode=1777"}}}}
    b = {"services": {"x": {"ipc": "shareable", "volumes": ["other:/e"]},
                      "y": {"ipc": "service:x", "depends_on": {"x": {"condition": "service_healthy"}}}},
         "volumes": {"other": {"driver_opts": {"type": "tmpfs", "o": "size=2m,mode=0700"}}}}
    assert compose_constructs(a) == compose_constructs(b)  # names and sizes are not constructs
    c = {**a, "services": {**a["services"], "r": {"ipc": "container:abc"}}}
    assert compose_constructs(c) - compose_constructs(a) == {"services.*.ipc=container"}
    d = {**a, "services": {**a["services"], "w": {"ipc": "shareable", "volumes": ["/host:/d:ro"]}}}
    assert "services.*.volumes.[]=bind:ro" in compose_constructs(d) - compose_constructs(a)


def test_a_file_with_a_new_construct_joins_the_subset() -> None:
    constructs = {"a": {"x", "y"}, "b": {"x"}, "c": {"y"}}
    assert covering_subset(constructs) == ["a"]
    constructs["c"] = {"y", "new"}
    assert covering_subset(constructs) == ["a", "c"]
    assert covering_subset({}) == []


def test_the_import_round_trip_subset_covers_every_plain_stack_and_is_small() -> None:
    """The integration import round trip runs a cover of the plain stacks: every construct,
    workload and awaited event of the plain stacks' renderings is in it."""
    from tests.helpers import import_round_trip_constructs
    from tests.integration.test_import import PLAIN, round_trip_subset

    constructs = import_round_trip_constructs(PLAIN)
    subset = [str(p) for p in round_trip_subset()]
    assert set(subset) <= set(constructs)
    assert set().union(*(constructs[p] for p in subset)) == set().union(*constructs.values())
    assert len(subset) <= len(PLAIN) // 3, subset
    every = set().union(*constructs.values())
    # a floor, as above: the workloads and events the plain stacks use today
    assert {"workload=sysv-writer", "workload=mmap-writer", "workload=posix-writer", "workload=hold",
            "event=attached", "event=mapped", "services.*.depends_on.*.condition=service_healthy",
            "services.*.shm_size"} <= every, sorted(every)


def test_the_v2_subset_covers_every_workload_and_every_gated_event_of_the_library() -> None:
    from labctl import scenario as scen

    runs = library_compose_constructs(LIBRARY, runs=True)
    subset = covering_subset(runs)
    covered = set().union(*(runs[p] for p in subset))
    assert covered == set().union(*runs.values())
    assert set().union(*library_compose_constructs(LIBRARY).values()) <= covered
    gates = {f"gate={w}:{e}" for p in runs for s in [scen.load_file(p)]
             for w, e in ((next(c.workload for c in s.containers if c.name == donor), event)
                          for _, donor, event in gated_starts(s))}
    assert gates and gates <= covered
    assert {"workload=sysv-writer", "workload=sysv-reader", "workload=mmap-writer"} <= covered
    assert len(subset) <= len(LIBRARY) // 2, subset  # the point: v2 brings up part of the library


def test_the_in_image_subset_covers_what_can_differ_inside_the_labctl_image() -> None:
    """The README's container example (tests/integration/test_first_contact.py) runs a cover
    of the library in the labctl image: every need, check kind, step action, storage kind and
    IPC mode of the whole library is in it, and the scenarios its assertions name."""
    from tests.helpers import library_in_image_constructs
    from tests.integration.test_first_contact import IMAGE_NAMED, image_cover

    constructs = library_in_image_constructs(LIBRARY)
    cover = image_cover()
    every = set().union(*constructs.values())
    assert set().union(*(constructs[str(p)] for p in cover)) == every
    assert {p.stem for p in cover} >= set(IMAGE_NAMED)
    assert len(cover) <= len(LIBRARY) // 2, cover
    from labctl.scenario.actions.action_registry import ACTIONS
    from labctl.scenario.kinds.registry import KINDS
    from labctl.scenario.requirements import REGISTRY

    # a floor, as above: what the library uses today
    assert {f"check={k}" for k in KINDS} <= every, sorted(every)
    assert {"need=compiler", "need=platform", "need=runtime", "need=opt-in", "ipc=host", "ipc=container",
            "volume=tempdir", "volume=volume", "volume=tmpfs-volume", "layout=named", "layout=header", "restart"} <= every, sorted(every)
    assert {f"step={a}" for a in ACTIONS} - {"step=start"} <= every  # start: no library scenario uses it, sorted(every)
    assert {k.split("=")[1] for k in every if k.startswith("need=")} <= set(REGISTRY)
