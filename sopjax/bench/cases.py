"""Networks for the benchmark: built-in cases, MATPOWER files and pandapower builders.

``bench_case("ieee33")``, ``bench_case("path/to/case.m")`` or
``bench_case("pp:lv_schutterwald")`` return the network and a *radial* branch
status. A case whose closed branches form loops (real LV grids often have a few)
is made radial by opening, for each loop, one closing branch: branches are
scanned non-switchable first, then in case order, and a branch that would close
a loop is opened. The opened branches are reported.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax import graph
from sopjax.errors import CaseFormatError
from sopjax.network import Network

__all__ = ["BenchCase", "bench_case", "radial_status"]


@dataclasses.dataclass(frozen=True)
class BenchCase:
    """A benchmark network.

    Attributes:
        net: the network.
        status: radial closed flag per branch, (branch,).
        opened: 1-based branch numbers opened to remove loops.
        spec: the case specification it was built from.
    """

    net: Network
    status: np.ndarray
    opened: tuple[int, ...]
    spec: str


def radial_status(net: Network, status: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Open the fewest closed branches so that no closed loop remains.

    Args:
        net: the network.
        status: closed flag per branch (default the case statuses).

    Returns:
        (new status, 1-based numbers of the branches opened).
    """
    closed = np.asarray(net.in_service if status is None else status, dtype=bool).copy()
    links = graph.DisjointSet(range(net.n_bus))
    sw = np.asarray(net.switchable, dtype=bool)
    order = sorted(np.flatnonzero(closed), key=lambda k: (bool(sw[k]), int(k)))
    opened = []
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    for k in order:
        if not links.union(int(f[k]), int(t[k])):  # k closes a loop
            closed[k] = False
            opened.append(net.branch_numbers[k])
    return closed, sorted(opened)


def bench_case(spec: str) -> BenchCase:
    """A built-in name, a MATPOWER ``.m`` path, or ``pp:<builder>`` from ``pandapower.networks``.

    ``pp:`` networks with transformers are loaded below the substation
    transformers (:func:`sopjax.io.pandapower.load_pandapower_network`), without line
    charging (``line_charging=False``): the baselines solve series-impedance networks.

    Raises:
        CaseFormatError: for an empty or unknown specification.
    """
    spec = str(spec).strip()
    if not spec:
        raise CaseFormatError("empty case name")
    if spec.startswith("pp:"):
        from sopjax.io.pandapower import load_pandapower_network

        name = spec[3:]
        if not name:
            raise CaseFormatError("give a pandapower network builder after 'pp:', e.g. pp:lv_schutterwald")
        net = load_pandapower_network(name, line_charging=False)  # the baselines have no shunts
    else:
        from sopjax.cases import load_case

        net = load_case(spec)
    status, opened = radial_status(net)
    return BenchCase(net=net, status=status, opened=tuple(opened), spec=spec)
