"""Literature reference values of the built-in feeders (DESIGN.md, issue 2)."""

import numpy as np
import pytest

import sopjax
from sopjax.errors import CaseFormatError


def _vmin(net, res, topo):
    vm = np.where(topo.energized, res.vm_pu, np.inf)
    k = int(np.argmin(vm))
    return vm[k], net.bus_ids[k]


def test_ieee33_base_case():
    net = sopjax.ieee33()
    res, topo = sopjax.solve(net)
    assert res.converged
    assert res.losses_pu * net.base_mva * 1e3 == pytest.approx(202.68, abs=0.005)
    vmin, bus = _vmin(net, res, topo)
    assert vmin == pytest.approx(0.9131, abs=5e-5)
    assert bus == 18


def test_ieee33_optimal_reconfiguration_losses():
    net = sopjax.ieee33()
    res, _ = sopjax.solve(net, open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    assert res.converged
    assert res.losses_pu * net.base_mva * 1e3 == pytest.approx(139.55, abs=0.005)


def test_ieee69_base_case():
    net = sopjax.ieee69()
    assert net.n_bus == 69 and net.n_branch == 73
    assert not np.any(net.in_service[68:]) and np.all(net.in_service[:68])
    res, topo = sopjax.solve(net)
    assert res.losses_pu * net.base_mva * 1e3 == pytest.approx(224.99, abs=0.005)
    vmin, bus = _vmin(net, res, topo)
    assert vmin == pytest.approx(0.9092, abs=5e-5)
    assert bus == 65


def test_ieee69_tie_lines_in_ohms():
    net = sopjax.ieee69()
    zbase = 12.66**2 / net.base_mva
    k = net.branch_index(72)  # 50-59, 2.0 + j1.0 ohm
    assert (net.bus_ids[net.f_bus[k]], net.bus_ids[net.t_bus[k]]) == (50, 59)
    assert net.r_pu[k] * zbase == pytest.approx(2.0)
    assert net.x_pu[k] * zbase == pytest.approx(1.0)


def test_ieee33_tie_lines_and_loads():
    net = sopjax.ieee33()
    assert [net.branch_numbers[k] for k in np.flatnonzero(~net.in_service)] == [33, 34, 35, 36, 37]
    assert np.all(net.switchable[32:]) and not np.any(net.switchable[:32])
    assert net.total_load_mw == pytest.approx(3.715)
    assert float(np.sum(net.q_load_pu)) * net.base_mva == pytest.approx(2.300)


def test_load_case_by_path_matches_builtin(tmp_path):
    from importlib import resources

    src = resources.files("sopjax.data").joinpath("case33bw.m").read_text()
    path = tmp_path / "my33.m"
    path.write_text(src)
    a, b = sopjax.load_case(path), sopjax.ieee33()
    np.testing.assert_allclose(a.r_pu, b.r_pu)
    np.testing.assert_allclose(a.p_load_pu, b.p_load_pu)


def test_load_case_unknown_name():
    with pytest.raises(CaseFormatError, match="unknown case 'ieee34'"):
        sopjax.load_case("ieee34")


def test_load_case_missing_file(tmp_path):
    with pytest.raises(CaseFormatError, match="does not exist"):
        sopjax.load_case(tmp_path / "nope.m")
