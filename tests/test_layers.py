"""The layer contract of pyproject.toml (docs/architecture.md) holds, and it catches a violation."""

import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"layers": LayersContract, "forbidden": ForbiddenContract}

configuration.configure()  # import-linter's own settings (timers, readers), as its CLI does


@pytest.fixture(scope="module")
def config():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def contracts(config):
    session = {"root_packages": [config["root_package"]]}
    for c in config["contracts"]:
        # import-linter reads option values as strings, as its own config readers give them
        options = {k: str(v).lower() if isinstance(v, bool) else v for k, v in c.items()
                   if k not in ("id", "name", "type")}
        yield c["id"], KINDS[c["type"]](name=c["name"], session_options=session, contract_options=options)


def graph():
    return grimp.build_graph("sopjax", exclude_type_checking_imports=True, cache_dir=None)


def broken(config, importer, imported):
    g = graph()
    g.add_import(importer=importer, imported=imported, line_number=1, line_contents="(test)")
    return {cid: c.check(g, verbose=False).kept for cid, c in contracts(config)}


def test_every_contract_is_kept(config):
    g = graph()
    failed = [cid for cid, c in contracts(config) if not c.check(g, verbose=False).kept]
    assert failed == [], f"layer contracts broken: {failed} (run `lint-imports` for the chains)"


def test_an_upward_import_breaks_the_layer_contract(config):
    # a kernel reaching up into the Monte Carlo engine
    kept = broken(config, "sopjax.kernels.radial", "sopjax.montecarlo.runner")
    assert kept["layers"] is False


def test_solvers_reaching_into_kernels_break_their_contract(config):
    # solvers may sit above the kernels but import only the base layer
    kept = broken(config, "sopjax.solvers.model", "sopjax.kernels.radial")
    assert kept["layers"] is True and kept["solvers-base-only"] is False


def test_a_new_top_level_module_must_be_given_a_layer(config):
    g = graph()
    g.add_module("sopjax.unplaced")
    g.add_import(importer="sopjax.unplaced", imported="sopjax.network", line_number=1, line_contents="(test)")
    layers = dict(contracts(config))["layers"]
    assert layers.check(g, verbose=False).kept is False


def test_no_module_above_600_lines_without_a_reason():
    """Small modules, one concept each (issue 12): a module over 600 lines must say why in its
    docstring, on a line starting with ``Size:``."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "sopjax"
    long = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 600:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if not any(line.startswith("Size:") for line in doc.splitlines()):
                long.append(f"{path.relative_to(root.parent)} ({text.count(chr(10))} lines)")
    assert long == [], f"modules over 600 lines without a 'Size:' reason in their docstring: {long}"
