"""Network validation names the offending element; device builders."""

import jax
import numpy as np
import pytest

import sopjax
from sopjax.errors import NetworkError

BASE = dict(
    bus_ids=[1, 2, 3],
    p_load_mw=[0, 0.1, 0.1],
    q_load_mvar=[0, 0.05, 0.05],
    branch_from=[1, 2],
    branch_to=[2, 3],
    r_ohm=[0.1, 0.2],
    x_ohm=[0.1, 0.1],
    slack_bus=1,
    base_kv=12.66,
)


def build(**changes):
    return sopjax.make_network(**{**BASE, **changes})


def test_valid_network_is_a_pytree():
    net = build()
    leaves = jax.tree_util.tree_leaves(net)
    assert any(np.shape(x) == (3,) for x in leaves)
    assert net.n_bus == 3 and net.n_branch == 2 and net.slack_bus == 0
    twice = jax.tree_util.tree_map(lambda x: x, net)
    assert twice.bus_ids == net.bus_ids


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(branch_to=[2, 9]), "branch 2 refers to unknown bus 9"),
        (dict(branch_from=[1, 2, 2], branch_to=[2, 3, 3], r_ohm=[0.1, 0.2, 0.3], x_ohm=[0.1, 0.1, 0.1]),
         "branch 3 duplicates branch 2"),
        (dict(branch_from=[1, 2, 3], branch_to=[2, 3, 2], r_ohm=[0.1, 0.2, 0.3], x_ohm=[0.1, 0.1, 0.1]),
         "branch 3 duplicates branch 2"),
        (dict(r_ohm=[0.1, -0.2]), "branch 2 has a non-positive impedance"),
        (dict(r_ohm=[0.0, 0.2], x_ohm=[0.0, 0.1]), "branch 1 has a non-positive impedance"),
        (dict(r_ohm=[0.1, np.nan]), "branch resistance is not a finite number at branch 2"),
        (dict(p_load_mw=[0, np.nan, 0.1]), "p_load_mw is not a finite number at bus 2"),
        (dict(q_load_mvar=[0, 0.1, np.inf]), "q_load_mvar is not a finite number at bus 3"),
        (dict(slack_bus=7), "slack bus 7 is not a bus"),
        (dict(bus_ids=[1, 2, 2]), "duplicate bus id 2"),
        (dict(branch_to=[2, 2]), "branch 2 connects bus 2 to itself"),
        (dict(base_kv=[12.66, 12.66, 0.4]), "different base voltage"),
    ],
)
def test_invalid_input_names_the_element(changes, message):
    with pytest.raises(NetworkError, match=message):
        build(**changes)


def test_unknown_branch_number_and_bus():
    net = sopjax.ieee33()
    with pytest.raises(NetworkError, match="unknown branch number 38"):
        net.branch_status(open=[38])
    with pytest.raises(NetworkError, match="unknown bus 34"):
        net.bus_index(34)
    with pytest.raises(NetworkError, match="both to open and to close"):
        net.branch_status(open=[7], close=[7])


def test_branch_status_opens_and_closes():
    net = sopjax.ieee33()
    st = net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    assert st.sum() == 32
    assert not st[net.branch_index(7)] and st[net.branch_index(33)]
    assert net.branch_label(net.branch_index(33)) == "33 (21-8)"


def test_devices_in_user_units():
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    assert net.pv.bus.tolist() == [29]
    assert net.pv.s_rated_pu[0] * net.base_mva == pytest.approx(1.0)
    net = sopjax.add_sops(net, pairs=[(8, 21), (18, 33)], s_rated_kva=[2000, 1000], loss=0.02)
    assert net.sop.bus_i.tolist() == [7, 17] and net.sop.bus_j.tolist() == [20, 32]
    assert net.sop.s_rated_j_pu[1] * net.base_mva == pytest.approx(1.0)
    assert net.pv.count == 1 and net.sop.count == 2  # earlier tables are kept


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda n: sopjax.add_pv(n, buses=[40], s_rated_kva=100), "PV unit 0: unknown bus 40"),
        (lambda n: sopjax.add_pv(n, buses=[3], s_rated_kva=-1), "PV rating must be >= 0"),
        (lambda n: sopjax.add_pv(n, buses=[3], s_rated_kva=100, pf=1.2), "power factor must be in"),
        (lambda n: sopjax.add_sops(n, pairs=[(8, 99)], s_rated_kva=100), r"SOP \(terminal j\) 0: unknown bus 99"),
        (lambda n: sopjax.add_sops(n, pairs=[(8, 8)], s_rated_kva=100), "same bus"),
        (lambda n: sopjax.add_sops(n, pairs=[(8, 21)], s_rated_kva=-5), "SOP capacity must be >= 0"),
        (lambda n: sopjax.add_sops(n, pairs=[(8, 21)], s_rated_kva=5, loss=1.5), "loss coefficient"),
        (lambda n: sopjax.add_demand_response(n, buses=[5], max_reduction=2), "max_reduction"),
    ],
)
def test_invalid_devices(call, message):
    with pytest.raises(NetworkError, match=message):
        call(sopjax.ieee33())
