"""``namespace``: two containers are (or are not) in one IPC namespace."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.scenario.builder import Builder, get
from labctl.scenario.shared_specs import Ref
from labctl.scenario.compound import F, ListOf, Obj
from labctl.scenario.kinds.base import CheckKind, Look, Observation, Verdict
from labctl.scenario.spec import INVALID, Bool, PDict, PList, join


@dataclass(frozen=True)
class NamespaceCheck:
    """Containers ``a`` and ``b`` are (``same``) or are not in one IPC namespace.
    ``b`` may be the pseudo-container ``host`` (labctl's own namespace)."""

    a: str
    b: str
    same: bool


SPEC = Obj({
    "containers": F(ListOf(Ref("a container, or host"), min_items=2, max_items=2), True),
    "same": F(Bool("true: same IPC namespace; false: different"), True),
}, "two containers are (or are not) in one IPC namespace")


def build(b: Builder, d: PDict, path: str) -> tuple[NamespaceCheck, str]:
    pair = get(d, "containers")
    if not isinstance(pair, PList) or len(pair) != 2:
        pair = ["", ""]  # absent or invalid: the error is already recorded
    else:
        for i, name in enumerate(pair):
            if name is not INVALID:
                b.ref(name, pair.node.value[i], f"{join(path, 'containers')}[{i}]", allow_host=True)
    a, c = (x if isinstance(x, str) else "" for x in pair)
    same = get(d, "same", True)
    return NamespaceCheck(a, c, same), f"namespace {a} {'same as' if same else 'differs from'} {c}"


def judge(body: NamespaceCheck, obs: Observation, look: Look) -> Verdict:
    a, b = obs.ipc_namespace(body.a), obs.ipc_namespace(body.b)
    expected = f"{body.a} and {body.b} in {'the same' if body.same else 'different'} IPC namespace(s)"
    if a is None or b is None:
        missing = body.a if a is None else body.b
        return Verdict(False, expected, f"the IPC namespace of {missing} could not be read", final=False)
    ok = (a == b) == body.same
    return Verdict(ok, expected, f"{body.a}: {a}, {body.b}: {b}", final=True)


KIND = CheckKind("namespace", NamespaceCheck, SPEC, build, judge)
