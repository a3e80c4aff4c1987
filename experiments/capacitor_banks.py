"""IEEE 33 with two capacitor banks at several steps: sopjax's sweep and pandapower's Newton-Raphson.

    PYTHONPATH=. python experiments/capacitor_banks.py

Banks: 3 x 100 kvar at bus 18 and 4 x 150 kvar at bus 30 (``sopjax.add_capacitors``). For each
pair of connected steps it prints the minimum voltage, the line losses, the substation's reactive
supply and the largest |V| difference to pandapower's Newton-Raphson on the exported network
(``to_pandapower`` writes each bank as a pandapower shunt with ``step`` / ``max_step``). The
figures of docs/networks.md, "Capacitor banks", come from this command.
"""

from __future__ import annotations

import warnings

import numpy as np

import sopjax
from sopjax.branch_model import with_capacitor_steps
from sopjax.io.pandapower_export import to_pandapower

STEPS = ([0, 0], [2, 4], [3, 4])


def main() -> None:
    import pandapower as pp

    net = sopjax.add_capacitors(sopjax.ieee33(), buses=[18, 30], q_unit_kvar=[100, 150], units=[3, 4])
    kva = 1e3 * net.base_mva
    print(f"{'steps (18, 30)':>15} {'Vmin p.u.':>10} {'at bus':>7} {'losses kW':>10} {'Q_sub kvar':>11} "
          f"{'max|dV| vs pandapower':>22}")
    for steps in STEPS:
        res, _ = sopjax.solve(net, capacitors=steps, tol=1e-11)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            pnet = to_pandapower(with_capacitor_steps(net, steps))
            pp.runpp(pnet, algorithm="nr", tolerance_mva=1e-10, init="flat", numba=False)
        pos = [pnet.bus.index.get_loc(b) for b in net.bus_ids]
        dv = float(np.max(np.abs(res.vm_pu - pnet.res_bus.vm_pu.to_numpy()[pos])))
        b = int(np.argmin(res.vm_pu))
        print(f"{str(tuple(steps)):>15} {res.vm_pu.min():10.4f} {net.bus_ids[b]:7d} "
              f"{float(res.losses_pu) * kva:10.2f} {float(res.q_source_pu[0]) * kva:11.1f} {dv:22.1e}")


if __name__ == "__main__":
    main()
