"""sopjax: soft open point studies in distribution networks, fast and differentiable."""

import jax as _jax

# Power-flow tolerances of 1e-8 need float64; kernels still run in float32 when
# given float32 arrays. This is the only JAX setting made on import; XLA flags are
# set by an explicit call, sopjax.configure_xla() (the CLI makes it).
_jax.config.update("jax_enable_x64", True)

from sopjax.cases import BUILTIN_CASES, ieee33, ieee69, ieee85, load_case  # noqa: E402
from sopjax.devices import add_capacitors, add_demand_response, add_pv, add_sops  # noqa: E402
from sopjax.errors import (  # noqa: E402
    CaseFormatError,
    ConfigError,
    NetworkError,
    SopjaxError,
    TopologyError,
    UnsupportedElementError,
)
from sopjax.io.matpower import read_matpower  # noqa: E402
from sopjax.jax_config import configure_xla  # noqa: E402
from sopjax.io.pandapower import from_pandapower  # noqa: E402
from sopjax.io.pandapower_export import to_pandapower  # noqa: E402
from sopjax.kernels.radial import Grid, PowerFlowResult, VfCoupling  # noqa: E402
from sopjax.network import Network, make_network  # noqa: E402
from sopjax.powerflow import batched_solver, make_grid, shard_samples, solve  # noqa: E402
from sopjax.topology import Topology, compile_topology, stack_topologies  # noqa: E402
from sopjax.sampling import Samples, UncertaintyError, UncertaintyModel  # noqa: E402
from sopjax.problems.planning import CostModel, PlanningInputError, make_planning_problem  # noqa: E402
from sopjax.strategies import SOPSetting, Strategy, StrategyError, compile_strategies  # noqa: E402
from sopjax.kernels.dispatch import (  # noqa: E402
    DispatchInfeasibleError, DispatchInputError, DispatchInputs, DispatchResult, compile_dispatch, dispatch_native,
)

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_CASES", "CaseFormatError", "ConfigError", "Grid", "Network", "NetworkError", "PowerFlowResult",
    "SopjaxError", "Topology", "TopologyError", "UnsupportedElementError", "VfCoupling",
    "add_capacitors", "configure_xla", "add_demand_response", "add_pv", "add_sops", "batched_solver",
    "compile_topology", "ieee33", "ieee69", "ieee85", "load_case", "make_grid",
    "make_network", "read_matpower", "shard_samples", "solve", "stack_topologies",
    "from_pandapower", "to_pandapower",
    "Samples", "UncertaintyError", "UncertaintyModel",
    "CostModel", "PlanningInputError", "make_planning_problem",
    "SOPSetting", "Strategy", "StrategyError", "compile_strategies",
    "DispatchInfeasibleError", "DispatchInputError", "DispatchInputs", "DispatchResult", "compile_dispatch",
    "dispatch_native",
]
