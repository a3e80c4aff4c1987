"""Built-in test feeders and the ``load_case`` entry point.

``ieee33``  Baran & Wu 33-bus feeder (MATPOWER ``case33bw``) with its five tie
            lines, branches 33-37, open.
``ieee69``  MATPOWER ``case69`` plus the five standard tie lines (branches
            69-73, open): 11-43, 13-21, 15-46, 50-59, 27-65.
``ieee85``  MATPOWER ``case85`` (no tie lines).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from sopjax.errors import CaseFormatError
from sopjax.io.matpower import network_from_tables, parse_matpower
from sopjax.network import Network

__all__ = ["ieee33", "ieee69", "ieee85", "load_case", "BUILTIN_CASES"]

# (from, to, r_ohm, x_ohm): the tie lines of the 69-bus feeder used across the
# reconfiguration literature (e.g. Chiang & Jean-Jumeau 1990; Savier & Das 2007).
IEEE69_TIE_LINES = (
    (11, 43, 0.5, 0.5),
    (13, 21, 0.5, 0.5),
    (15, 46, 1.0, 0.5),
    (50, 59, 2.0, 1.0),
    (27, 65, 1.0, 0.5),
)


def _tables(filename: str) -> dict:
    text = resources.files("sopjax.data").joinpath(filename).read_text()
    return parse_matpower(text, filename)


def ieee33() -> Network:
    """IEEE 33-bus feeder (``case33bw``), tie lines 33-37 open."""
    return network_from_tables(_tables("case33bw.m"), name="ieee33")


def ieee69() -> Network:
    """IEEE 69-bus feeder (``case69``) with five open tie lines numbered 69-73."""
    case = _tables("case69.m")
    branch = case["branch"]
    vbase = case["bus"][0, 9] * 1e3
    zbase = vbase**2 / (case["baseMVA"] * 1e6)
    ties = np.zeros((len(IEEE69_TIE_LINES), branch.shape[1]))
    for k, (f, t, r, x) in enumerate(IEEE69_TIE_LINES):
        ties[k, :4] = (f, t, r / zbase, x / zbase)
        ties[k, 10] = 0  # open
        if branch.shape[1] > 12:
            ties[k, 11:13] = (-360, 360)
    case["branch"] = np.vstack([branch, ties])
    return network_from_tables(case, name="ieee69")


def ieee85() -> Network:
    """85-bus feeder (``case85``)."""
    return network_from_tables(_tables("case85.m"), name="ieee85")


BUILTIN_CASES = {"ieee33": ieee33, "ieee69": ieee69, "ieee85": ieee85,
                 "case33bw": ieee33, "case69": ieee69, "case85": ieee85}


def load_case(case: str | Path) -> Network:
    """A built-in case by name (``ieee33``, ``ieee69``, ``ieee85``), a MATPOWER ``.m`` path, a SimBench
    grid ``"simbench:<code>"`` or a ``pandapower.networks`` grid ``"pandapower:<builder>"``.

    Raises:
        CaseFormatError: if ``case`` is neither a built-in name nor a readable ``.m`` file.
        NetworkError: an unknown SimBench code or pandapower builder.
    """
    key = str(case)
    if key.lower() in BUILTIN_CASES:
        return BUILTIN_CASES[key.lower()]()
    if key.startswith("simbench:"):
        from sopjax.io.simbench import load_simbench

        return load_simbench(key.split(":", 1)[1])
    if key.startswith("pandapower:"):
        from sopjax.io.pandapower import load_pandapower_network

        return load_pandapower_network(key.split(":", 1)[1])
    path = Path(key)
    if path.suffix != ".m":
        raise CaseFormatError(
            f"unknown case {key!r}: give a built-in name ({', '.join(sorted(set(BUILTIN_CASES)))}), a .m file, "
            "simbench:<code> or pandapower:<builder>"
        )
    if not path.is_file():
        raise CaseFormatError(f"case file {key} does not exist")
    from sopjax.io.matpower import read_matpower

    return read_matpower(path)
