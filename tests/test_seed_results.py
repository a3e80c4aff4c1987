"""The docs quote the committed seed results (docs/seed_results/, written by experiments/run_seeds.py).

No solving: every ``<!-- results: <study> table <i> -->`` block of the results documents must equal
that table as re-rendered from the committed JSON, and each committed report must hold the same
tables as its JSON.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_seeds", ROOT / "experiments" / "run_seeds.py")
run_seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_seeds)

COMMITTED = sorted((ROOT / "docs" / "seed_results").glob("*.json"))


@pytest.mark.parametrize("doc", run_seeds.DOCS)
def test_docs_blocks_equal_the_committed_results(doc):
    text = (ROOT / doc).read_text()
    found = run_seeds.blocks(text)
    assert found, f"{doc} has no results block"
    for study, i, body in found:
        assert body == run_seeds.render(study, i), f"{doc}: block {study} table {i} differs from docs/seed_results/{study}.json"
    assert run_seeds.fill(text) == text


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_report_matches_its_json(path):
    data = json.loads(path.read_text())
    assert run_seeds.tables(path.with_suffix(".md").read_text()) == data["tables"]
    run = data["run"]
    assert run["command"].startswith("python ") and run["time_limits"]
    assert path.stem == "index" or (path.stem in run_seeds.STUDIES and run["wall_s"] > 0)


def test_every_study_is_committed_and_quoted():
    quoted = {s for doc in run_seeds.DOCS for s, _, _ in run_seeds.blocks((ROOT / doc).read_text())}
    assert {p.stem for p in COMMITTED} <= {*run_seeds.STUDIES, "index"}
    assert quoted <= {p.stem for p in COMMITTED}


def test_a_changed_number_is_caught(tmp_path):
    (tmp_path / "docs" / "seed_results").mkdir(parents=True)
    md = "# t\n\n| a | b |\n|---|---|\n| x | 1.00 % |\n\ntext\n\n| c |\n|---|\n| 2 |\n"
    (tmp_path / "docs" / "seed_results" / "s.json").write_text(json.dumps({"tables": run_seeds.tables(md)}))
    good = "intro\n<!-- results: s table 0 -->\n| a | b |\n|---|---|\n| x | 1.00 % |\n<!-- /results -->\nend\n"
    bad = good.replace("1.00 %", "1.01 %")
    assert run_seeds.blocks(good) == [("s", 0, "| a | b |\n|---|---|\n| x | 1.00 % |\n")]
    assert run_seeds.render("s", 1, tmp_path) == "| c |\n|---|\n| 2 |\n"
    assert run_seeds.fill(bad, tmp_path) == good != bad


def test_seed001_orderings_hold_in_the_committed_full_run():
    """Issue 13's must-show, read from the committed full-size report: loss cost case 3 < 2 < 1, the
    SOP + DR contingency case (6) reaches the lowest VCPI, case 10 a higher utilization than case 9.
    (The quick run's 8 x 3 contingency GA does not converge far enough for the front-level claim;
    docs/allocation.md reports both runs.)"""
    s = json.loads((ROOT / "docs" / "seed_results" / "seed001-full.json").read_text())
    loss = [s["main"]["cases"][c]["line_loss_cost"] for c in ("case1_no_sop_no_cb", "case2_cb_only", "case3_sop_cb")]
    assert loss[2] < loss[1] < loss[0]
    # case 6 (SOP + DR) reaches the lowest VCPI of the three fronts, and its front weakly dominates
    # every point of case 5's (SOP only; a superset of its decisions). The compromise plans of the
    # fronts are reported in the docs, not ordered here (docs/allocation.md says why).
    cont = s["main"]["contingency"]
    front = {c: list(zip(cont[c]["front_vcpi"], cont[c]["front_cost"])) for c in ("dr", "sop", "sop_dr")}
    lowest = {c: min(v for v, _ in f) for c, f in front.items()}
    assert min(lowest, key=lowest.get) == "sop_dr"
    assert all(any(v6 <= v5 and c6 <= c5 for v6, c6 in front["sop_dr"]) for v5, c5 in front["sop"])
    assert s["case10"]["utilization_pct"] > s["case9"]["utilization_pct"]
