"""Read MATPOWER ``.m`` distribution cases.

MATPOWER's distribution cases (``case33bw``, ``case69``, ``case85``, ``case141``,
... 25 of them in MATPOWER 8) give branch impedances in ohms and loads in kW,
followed by MATLAB code that converts them to per unit and MW. We do not run
MATLAB: the conversion idioms those cases use are recognised and applied in file
order, any other statement is rejected with its line number, because silently
ignoring code would give wrong numbers. The idioms:

* ``[...] = idx_bus;`` / ``idx_brch`` / ``idx_gen`` / ``idx_cost`` (column names);
* ``Vbase = mpc.bus(1, BASE_KV) * 1e3;`` and ``Sbase = mpc.baseMVA * 1e6;``;
* ``mpc.branch(:, [BR_R BR_X]) = mpc.branch(:, [BR_R BR_X]) / (Vbase^2 / Sbase);`` (ohms);
* ``mpc.bus(:, [PD, QD]) = mpc.bus(:, [PD, QD]) / 1e3;`` (kW);
* case141's power-factor block, loads given in kVA::

      pf = 0.85;
      mpc.bus(:, QD) = mpc.bus(:, PD) * sin(acos(pf));
      mpc.bus(:, PD) = mpc.bus(:, PD) * pf;

Branch charging ``BR_B``, bus shunts ``GS``/``BS`` (MW demanded / Mvar injected at
1 p.u.) and transformer ratios ``TAP`` (at the from side) are modelled; a phase
shift ``SHIFT`` is refused.
"""

from __future__ import annotations

import ast
import math
import operator
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
_PF = re.compile(r"^pf=([0-9.eE+-]+);$")
_Q_FROM_PF = "mpc.bus(:,qd)=mpc.bus(:,pd)*sin(acos(pf));"
_P_FROM_PF = "mpc.bus(:,pd)=mpc.bus(:,pd)*pf;"
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


_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.Pow: operator.pow}  # fmt: skip


def _number(token: str) -> float:
    """A numeric entry: a number, or MATLAB arithmetic of numbers with ``sqrt`` (``135/sqrt(3)``).

    Raises:
        ValueError: anything else (names, other functions).
    """
    try:
        return float(token)
    except ValueError:
        pass

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
                and len(node.args) == 1 and not node.keywords):  # fmt: skip
            return math.sqrt(ev(node.args[0]))
        raise ValueError(f"could not convert string to float: {token!r}")

    try:
        tree = ast.parse(token.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ValueError(f"could not convert string to float: {token!r}") from None
    return ev(tree.body)


def _matrix(body: str, name: str, line: int) -> np.ndarray:
    body = body.strip().rstrip(";").strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise CaseFormatError(f"line {line}: mpc.{name} is not a numeric matrix")
    rows = [r for r in re.split(r"[;\n]", body[1:-1]) if r.strip()]
    try:
        data = [[_number(v) for v in re.split(r"[\s,]+", r.strip()) if v] for r in rows]
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
                    case[key] = (line, _number(value))
                except ValueError:
                    case[key] = (line, value)
            continue
        compact = re.sub(r"\s+", "", stmt).lower()
        pf = _PF.match(compact)
        if pf:
            value = float(pf.group(1))
            if not 0 < value <= 1:
                raise CaseFormatError(f"{source}, line {line}: power factor pf = {value} is not in (0, 1]")
            case["_pf"] = value
        elif compact in (_Q_FROM_PF, _P_FROM_PF):
            if "_pf" not in case:
                raise CaseFormatError(f"{source}, line {line}: {stmt.strip()!r} uses pf before it is set")
            conversions.append((compact, case["_pf"]))
        elif compact in (_OHMS_TO_PU, _KW_TO_MW):
            conversions.append((compact, None))
        elif any(p.match(compact) for p in _HARMLESS) or compact in ("end", "return"):
            continue
        else:
            raise CaseFormatError(
                f"{source}, line {line}: unsupported MATLAB code {stmt[:60]!r}; sopjax applies only "
                "MATPOWER's ohm->p.u., kW->MW and power-factor conversion blocks"
            )
    for key in ("baseMVA", "bus", "branch"):
        if key not in case:
            raise CaseFormatError(f"{source}: missing mpc.{key}")
    out = {k: (v[1] if isinstance(v, tuple) else v) for k, v in case.items() if not k.startswith("_")}
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
    for kind, pf in conversions:  # in file order, as MATLAB would run them
        if kind == _OHMS_TO_PU:
            vbase = bus[0, BASE_KV] * 1e3
            branch[:, [BR_R, BR_X]] /= vbase**2 / (base * 1e6)
        elif kind == _KW_TO_MW:
            bus[:, [PD, QD]] /= 1e3
        elif kind == _Q_FROM_PF:
            bus[:, QD] = bus[:, PD] * np.sin(np.arccos(pf))
        elif kind == _P_FROM_PF:
            bus[:, PD] = bus[:, PD] * pf
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
    for col, what in ((F_BUS, "from"), (T_BUS, "to")):
        ends = branch[:, col]
        bad = np.flatnonzero(~np.isfinite(ends) | (np.abs(ends) > 2**31) | (ends != np.round(ends)))
        if bad.size:
            raise NetworkError(f"{source}: branch {bad[0] + 1} has a {what} bus {ends[bad[0]]:g} that is not an integer")
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
    nz = np.flatnonzero(branch[:, SHIFT] != 0)
    if nz.size:
        raise NetworkError(
            f"{source}: branch {nz[0] + 1} has a phase shift of {branch[nz[0], SHIFT]:g} degrees; "
            "phase-shifting transformers are not modelled"
        )
    tap = np.where(branch[:, TAP] == 0, 1.0, branch[:, TAP])
    kv = dict(zip(ids.astype(int), bus[:, BASE_KV]))
    f_kv = np.array([kv.get(int(b), np.nan) for b in branch[:, F_BUS]])
    t_kv = np.array([kv.get(int(b), np.nan) for b in branch[:, T_BUS]])
    transformer = (branch[:, TAP] != 0) | (f_kv != t_kv)
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
        shunt_g_pu=bus[:, GS] / float(case["baseMVA"]),
        shunt_b_pu=bus[:, BS] / float(case["baseMVA"]),
        branch_b_pu=branch[:, BR_B],
        tap=tap,
        transformer=transformer,
    )
