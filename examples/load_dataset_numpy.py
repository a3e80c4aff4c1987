"""Read a sopjax dataset with numpy + xarray only (no sopjax import), as a graph per sample.

    python examples/load_dataset_numpy.py results/ieee33_dataset.zarr [split]

Prints the split sizes and the first sample of the split as a graph: ``edge_index`` (2, edge)
in PyTorch Geometric's convention (closed branches, from-bus row then to-bus row), node
features ``x`` (bus, 4) = [p_net_pu, q_net_pu, is_slack, energized], edge features
``edge_attr`` (edge, 2) = [r_pu, x_pu], node targets ``y`` (bus, 2) = [vm_pu, va_rad] and
edge targets (edge, 2) = [p_from_pu, q_from_pu]. Wrap the arrays in ``torch_geometric.data.Data``
or ``jraph.GraphsTuple`` as they are.
"""

import json
import sys

import numpy as np
import xarray as xr


def sample_graph(ds: xr.Dataset, i: int) -> dict:
    s = ds.isel(sample=i)
    closed = s["branch_closed"].values.astype(bool)
    k = np.flatnonzero(closed)
    edge_index = np.stack([ds["f_bus"].values[k], ds["t_bus"].values[k]]).astype(np.int64)
    x = np.stack(
        [s["p_net_pu"].values, s["q_net_pu"].values, ds["is_slack"].values, s["energized"].values], 1
    )
    edge_attr = np.stack([ds["r_pu"].values[k], ds["x_pu"].values[k]], 1)
    y = np.stack([s["vm_pu"].values, s["va_rad"].values], 1)
    y_edge = np.stack([s["p_from_pu"].values[k], s["q_from_pu"].values[k]], 1)
    return {
        "edge_index": edge_index,
        "x": x.astype(float),
        "edge_attr": edge_attr,
        "y": y,
        "y_edge": y_edge,
        "branch": k,
    }


def main(path: str, split: str = "train") -> None:
    ds = xr.open_zarr(path, consolidated=False)
    names = json.loads(ds.attrs["split_names"])
    done = ds["done"].values.astype(bool)
    codes = ds["split"].values
    print(ds.attrs["title"], "| case", ds.attrs["case"], "| base", ds.attrs["base_mva"], "MVA")
    print({n: int(((codes == c) & done).sum()) for c, n in enumerate(names)})
    idx = np.flatnonzero(done & (codes == names.index(split)))
    g = sample_graph(ds, int(idx[0]))
    print(
        f"sample {int(ds['sample'].values[idx[0]])} ({split}): {g['x'].shape[0]} nodes, "
        f"{g['edge_index'].shape[1]} edges; edge_index[:, :5] = {g['edge_index'][:, :5].tolist()}"
    )
    print(
        f"  Vmin {g['y'][:, 0][g['x'][:, 3] > 0].min():.4f} p.u., losses "
        f"{float(ds['losses_pu'].values[idx[0]]) * 1e3 * float(ds.attrs['base_mva']):.2f} kW"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
