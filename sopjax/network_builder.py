"""Build a :class:`~sopjax.network.Network` from a parsed ``[network]`` spec.

It lives here, in the inputs layer next to :mod:`sopjax.cases` and
:mod:`sopjax.devices`, because it loads a case and adds devices: the spec
itself (:mod:`sopjax.config.network`) is base layer and may not import either.
Neither ``cases`` (case files) nor ``devices`` (device tables on a network) is
the home of a function composing both, hence this small module.
"""

from __future__ import annotations

import numpy as np

from sopjax.cases import load_case
from sopjax.config.network import NetworkSpec
from sopjax.devices import add_capacitors, add_pv, add_sops
from sopjax.network import Network

__all__ = ["build_network"]


def build_network(spec: NetworkSpec) -> Network:
    """The case of ``spec`` with its substation voltage, PV units, SOPs and capacitor banks.

    ``spec.v_min_pu`` / ``v_max_pu`` (planning limits) are not applied here; the
    planning problem takes them.

    Raises:
        CaseFormatError: an unreadable case. NetworkError: an unknown bus, a bad rating (named).
    """
    net = load_case(spec.case)
    if spec.v_slack_pu is not None:
        # widen the slack bus's own limits so that the set-point is feasible there
        vs = spec.v_slack_pu
        vmin = np.asarray(net.v_min_pu, float).copy()
        vmax = np.asarray(net.v_max_pu, float).copy()
        vmin[net.slack_bus] = min(vmin[net.slack_bus], vs)
        vmax[net.slack_bus] = max(vmax[net.slack_bus], vs)
        net = net.replace(v_slack_pu=vs, v_min_pu=vmin, v_max_pu=vmax)
    if spec.pv:
        net = add_pv(net, buses=[u.bus for u in spec.pv], s_rated_kva=[u.s_rated_kva for u in spec.pv],
                     pf=[u.pf for u in spec.pv])
    if spec.sop:
        net = add_sops(net, pairs=[s.pair for s in spec.sop], s_rated_kva=[s.s_rated_kva for s in spec.sop],
                       loss=[s.loss for s in spec.sop], q_max_kvar=[s.q_limit_kvar for s in spec.sop])
    if spec.capacitor:
        c = spec.capacitor
        net = add_capacitors(net, buses=[u.bus for u in c], q_unit_kvar=[u.q_unit_kvar for u in c],
                             units=[u.units for u in c], step=[u.units if u.step is None else u.step for u in c])
    return net
