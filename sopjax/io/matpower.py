"""Read MATPOWER ``.m`` distribution cases.

MATPOWER's distribution cases (``case33bw``, ``case69``, ``case85``) give branch
impedances in ohms and loads in kW, followed by MATLAB code that converts them
to per unit and MW. We do not run MATLAB: the known conversion statements are
recognised and applied; any other statement is rejected with its line number,
because silently ignoring code would give wrong numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sopjax.errors import CaseFormatError, NetworkError
from sopjax.network import Network, make_network

__all__ = ["read_matpower", "parse_matpower"]

# MATPOWER column indices (0-based)
BUS_I, BUS_TYPE, PD, QD, GS, BS, VM, BASE_KV, VMAX, VMIN = 0, 1, 2, 3, 4, 5, 7, 9, 11, 12
F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, TAP, SHIFT, BR_STATUS = 0, 1, 2, 3, 4, 5, 8, 9, 10
GEN_BUS, PG, QG, VG, GEN_STATUS = 0, 1, 2, 5, 7

_ASSIGN = re.compile(r"^mpc\.(\w+)\s*=\s*(.*)$", re.S)

# Statements of the conversion blocks shipped with MATPOWER's distribution cases.
_OHMS_TO_PU = "mpc.branch(:,[br_rbr_x])=mpc.branch(:,[br_rbr_x])/(vbase^2/sbase);"
_KW_TO_MW = "mpc.bus(:,[pd,qd])=mpc.bus(:,[pd,qd])/1e3;"
_HARMLESS = (
    re.compile(r"^\[.*\]=idx_(bus|brch|gen|cost);$"),
    re.compile(r"^vbase=mpc\.bus\(1,base_kv\)\*1e3;$"),
    re.compile(r"^sbase=mpc\.basemva\*1e6;$"),
)


def _strip_comment(line: str) -> str:
    # MATPOWER case files use no '%' inside strings of the numeric tables.
    out, quote = [], False
    for ch in line:
        if ch == "'":
            quote = not quote
        if ch == "%" and not quote:
            break
        out.append(ch)
    return "".join(out)


def _statements(text: str):
    """Yield (line_number, statement); bracketed matrices and ``...`` continuations are joined."""
    buf, start, depth = [], 0, 0
    for no, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if not buf:
            start = no
        continued = line.endswith("...")
        if continued:
            line = line[:-3]
        buf.append(line)
        depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
        if depth <= 0 and not continued:
            yield start, "\n".join(buf)
            buf, depth = [], 0
    if buf:
        yield start, "\n".join(buf)


def _matrix(body: str, name: str, line: int) -> np.ndarray:
    body = body.strip().rstrip(";").strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise CaseFormatError(f"line {line}: mpc.{name} is not a numeric matrix")
    rows = [r for r in re.split(r"[;\n]", body[1:-1]) if r.strip()]
    try:
        data = [[float(v) for v in re.split(r"[\s,]+", r.strip()) if v] for r in rows]
    except ValueError as e:
        raise CaseFormatError(f"line {line}: mpc.{name} holds a non-numeric entry ({e})") from None
    widths = {len(r) for r in data}
    if len(widths) > 1:
        raise CaseFormatError(f"line {line}: rows of mpc.{name} have different lengths {sorted(widths)}")
    if not data:
        raise CaseFormatError(f"line {line}: mpc.{name} is empty")
    return np.asarray(data, dtype=float).reshape(len(data), -1)


def parse_matpower(text: str, source: str = "<string>") -> dict:
    """Parse the text of a MATPOWER case into raw tables with conversions applied.

    Returns:
        ``{"name", "baseMVA", "bus", "gen", "branch"}`` with loads in MW and
        impedances in p.u. on ``baseMVA``.

    Raises:
        CaseFormatError: on syntax errors, missing tables or unsupported MATLAB code.
    """
    case: dict = {"name": Path(source).stem}
    conversions = []
    for line, stmt in _statements(text):
        if stmt.startswith("function"):
            m = re.match(r"function\s+(?:\w+\s*=\s*)?(\w+)", stmt)
            if m:
                case["name"] = m.group(1)
            continue
        m = _ASSIGN.match(stmt)
        if m:
            key, body = m.group(1), m.group(2).strip()
            if body.startswith("["):
                case[key] = (line, _matrix(body, key, line))
            elif body.startswith("{"):
                case[key] = (line, None)  # cell arrays (bus names) carry no numbers we need
            else:
                value = body.rstrip(";").strip().strip("'")
                try:
                    case[key] = (line, float(value))
                except ValueError:
                    case[key] = (line, value)
            continue
        compact = re.sub(r"\s+", "", stmt).lower()
        if compact in (_OHMS_TO_PU, _KW_TO_MW):
            conversions.append(compact)
        elif any(p.match(compact) for p in _HARMLESS) or compact in ("end", "return"):
            continue
        else:
            raise CaseFormatError(
                f"{source}, line {line}: unsupported MATLAB code {stmt[:60]!r}; sopjax applies only "
                "MATPOWER's ohm->p.u. and kW->MW conversion blocks"
            )
    for key in ("baseMVA", "bus", "branch"):
        if key not in case:
            raise CaseFormatError(f"{source}: missing mpc.{key}")
    out = {k: (v[1] if isinstance(v, tuple) else v) for k, v in case.items()}
    base = out["baseMVA"]
    if not isinstance(base, float) or not np.isfinite(base) or base <= 0:
        raise CaseFormatError(f"{source}: mpc.baseMVA must be a positive number, got {base!r}")
    for key in ("bus", "branch"):
        if not isinstance(out[key], np.ndarray) or out[key].ndim != 2 or out[key].shape[0] == 0:
            raise CaseFormatError(f"{source}: mpc.{key} must be a matrix with at least one row")
    bus, branch = out["bus"].copy(), out["branch"].copy()
    if bus.shape[1] < 13:
        raise CaseFormatError(f"{source}: mpc.bus has {bus.shape[1]} columns, MATPOWER needs 13")
    if branch.shape[1] < 11:
        raise CaseFormatError(f"{source}: mpc.branch has {branch.shape[1]} columns, MATPOWER needs 11")
    if _OHMS_TO_PU in conversions:
        vbase = bus[0, BASE_KV] * 1e3
        branch[:, [BR_R, BR_X]] /= vbase**2 / (base * 1e6)
    if _KW_TO_MW in conversions:
        bus[:, [PD, QD]] /= 1e3
    out["bus"], out["branch"] = bus, branch
    out.setdefault("gen", np.zeros((0, 10)))
    return out


def read_matpower(path: str | Path, name: str | None = None) -> Network:
    """Load a MATPOWER ``.m`` distribution case into a :class:`~sopjax.network.Network`.

    Args:
        path: the ``.m`` file.
        name: network name (default: the case function's name).

    Returns:
        The validated network. Branches keep the file's row order and 1-based
        numbers; the slack is the type-3 bus, at its generator's voltage set-point.

    Raises:
        CaseFormatError: unreadable file or unsupported content.
        NetworkError: invalid data, naming the bus or branch.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CaseFormatError(f"cannot read case file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CaseFormatError(f"case file {path} is not a text (UTF-8) file: byte {e.start} is "
                              f"0x{e.object[e.start]:02x}") from None
    return network_from_tables(parse_matpower(text, str(path)), name=name, source=str(path))


def network_from_tables(case: dict, name: str | None = None, source: str = "case") -> Network:
    """Compile parsed MATPOWER tables (MW, p.u.) into a validated Network."""
    bus, branch, gen = case["bus"], case["branch"], np.asarray(case["gen"])
    ids = bus[:, BUS_I]
    if not np.all(np.isfinite(ids)) or np.any(np.abs(ids) > 2**31) or np.any(ids != np.round(ids)):
        raise NetworkError(f"{source}: bus ids must be integers")
    slack = np.flatnonzero(bus[:, BUS_TYPE] == 3)
    if slack.size == 0:
        raise NetworkError(f"{source}: no slack bus (a bus of type 3)")
    if slack.size > 1:
        raise NetworkError(
            f"{source}: {slack.size} slack buses ({', '.join(str(int(ids[s])) for s in slack)}); "
            "a radial feeder has exactly one substation"
        )
    slack_id = int(ids[slack[0]])
    v_slack = float(bus[slack[0], VM])
    for g in gen:
        if g[GEN_STATUS] <= 0:
            continue
        if int(g[GEN_BUS]) == slack_id:
            v_slack = float(g[VG])
        elif abs(g[PG]) > 0 or abs(g[QG]) > 0:
            raise NetworkError(
                f"{source}: generator at bus {int(g[GEN_BUS])} is not at the slack bus; "
                "model distributed generation as PV units (sopjax.add_pv)"
            )
    nz = np.flatnonzero((bus[:, GS] != 0) | (bus[:, BS] != 0))
    if nz.size:
        raise NetworkError(
            f"{source}: bus {int(ids[nz[0]])} has a shunt (Gs/Bs); model capacitors with sopjax.add_capacitors"
        )
    for col, what in ((BR_B, "line charging b"), (SHIFT, "a phase shift")):
        nz = np.flatnonzero(branch[:, col] != 0)
        if nz.size:
            raise NetworkError(f"{source}: branch {nz[0] + 1} has {what}, which sopjax does not model")
    tap = branch[:, TAP]
    nz = np.flatnonzero((tap != 0) & (tap != 1))
    if nz.size:
        raise NetworkError(f"{source}: branch {nz[0] + 1} has tap ratio {tap[nz[0]]}; transformers are not modelled")
    return make_network(
        bus_ids=ids.astype(int),
        p_load_mw=bus[:, PD],
        q_load_mvar=bus[:, QD],
        branch_from=branch[:, F_BUS].astype(int),
        branch_to=branch[:, T_BUS].astype(int),
        r_pu=branch[:, BR_R],
        x_pu=branch[:, BR_X],
        slack_bus=slack_id,
        base_kv=bus[:, BASE_KV],
        base_mva=float(case["baseMVA"]),
        v_slack_pu=v_slack,
        v_min_pu=bus[:, VMIN],
        v_max_pu=bus[:, VMAX],
        rate_mva=branch[:, RATE_A],
        in_service=branch[:, BR_STATUS] > 0,
        switchable=branch[:, BR_STATUS] <= 0,
        name=name or str(case.get("name", "case")),
    )
