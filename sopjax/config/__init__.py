"""The config layer: checks on parsed config tables and the typed ``[network]`` spec.

A base-layer package (it imports only :mod:`sopjax.errors`): every study's TOML
parser builds on it, so that one key check, one number check and one
:class:`~sopjax.errors.ConfigError` serve them all. The library reads no files;
the CLI parses the TOML and hands the mapping to a study's ``*_from_config``.
"""

from sopjax.config.network import NETWORK_KEYS, NetworkSpec, PVSpec, SOPSpec, parse_network
from sopjax.config.numbers import MAX_SEED, integer, integer_list, number, number_list, seed
from sopjax.config.tables import require, sub_table, table, table_list
from sopjax.config.values import boolean, choice, string
from sopjax.errors import ConfigError

__all__ = [
    "ConfigError", "MAX_SEED", "NETWORK_KEYS", "NetworkSpec", "PVSpec", "SOPSpec", "boolean", "choice", "integer",
    "integer_list", "number", "number_list", "parse_network", "require", "seed", "string", "sub_table", "table",
    "table_list",
]
