"""Size of the dispatch interior-point method's own code, before (commit a6d84a7) and now.

    .venv/bin/python benchmarks/ipm_size.py          # table per definition, totals, ratio
    .venv/bin/python benchmarks/ipm_size.py --brief  # totals and ratio only

What counts (on both sides): every definition that is the interior-point method (the
problem in the SOP set-points and its rows, the Lagrangian, the Newton system and its
linear algebra, the iteration, its start, step and stop, the implicit derivatives and
the solve drivers, per sample and batched) and the module-level constants they use.

What does not count (on both sides, consistently):

* problem data: ``DispatchData``, ``compile_dispatch``, inputs and results, input
  validation, errors (``kernels/dispatch/data.py`` now; the first section of the old
  ``kernels/dispatch.py``) -- host-side preparation that any dispatch solver needs;
* the DistFlow physics: the sweep and its fixed point, ``distflow``, ``bus_voltage``
  (``kernels/dispatch/flow.py`` now; the "exact DistFlow" section of the old
  ``kernels/dispatch.py`` and the batched twin ``_Flow`` / ``_step`` of the old
  ``kernels/dispatch_batch.py``);
* the cvxpy / cvxpylayers dispatch (old ``solvers/dispatch.py``, now
  ``problems/dispatch/``): a different method (Clarabel and its adjoint), not this IPM;
* ``setpoint_tangents`` (now): the set-points' tangents of a batch in several directions at once,
  a capability added after the restructure that the old code did not have (callers wrote a
  ``vmap`` of ``jax.jvp``); the KKT system it solves, ``_kkt_tangents``, counts;
* imports, ``__all__``, package re-exports, docstrings, comments and blank lines
  (code lines are counted with :mod:`tokenize`: a line counts if it holds a token
  other than a comment or a docstring).

Old files are read from git (``git show a6d84a7:<path>``); run from the repository.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

BEFORE = "a6d84a7"
ROOT = Path(__file__).resolve().parents[1]

# (file, definitions that are NOT the IPM and why); every other top-level definition counts
_DATA = {"CAPACITY_FLOOR_PU", "DispatchInputError", "DispatchInfeasibleError", "DispatchData", "_DATA_FIELDS",
         "DispatchInputs", "DispatchResult", "_limit", "compile_dispatch", "nominal_inputs", "_concrete",
         "check_inputs", "_where", "jax.tree_util.register_dataclass"}
# (the old net_load counts: only the old IPM's _flow used it, as problem.problem / problem.flow now)
_FLOW_OLD = {"FlowState", "distflow_step", "distflow", "bus_voltage"}
BEFORE_FILES = {
    "sopjax/kernels/dispatch.py": _DATA | _FLOW_OLD,
    "sopjax/kernels/dispatch_batch.py": {"_Flow", "_step"},  # the batched DistFlow sweep's twin
}
NOW_FILES = {
    "sopjax/kernels/dispatch/problem.py": set(),
    "sopjax/kernels/dispatch/ipm.py": set(),
    "sopjax/kernels/dispatch/cholesky.py": set(),
    # several input directions for a whole batch at once: a capability the old code did not have
    # (it was a vmap of jax.jvp, no code of its own); the KKT system it solves (_kkt_tangents) counts
    "sopjax/kernels/dispatch/derivatives.py": {"setpoint_tangents"},
    "sopjax/kernels/dispatch/solve.py": set(),
}
NOT_COUNTED_NOW = {
    "sopjax/kernels/dispatch/data.py": "problem data",
    "sopjax/kernels/dispatch/flow.py": "DistFlow physics",
    "sopjax/kernels/dispatch/__init__.py": "re-exports",
}


def _code_lines(src: str) -> set[int]:
    """Line numbers holding code: no blank, comment-only or docstring lines."""
    toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines: set[int] = set()
    for i, t in enumerate(toks):
        if t.type in skip:
            continue
        if t.type == tokenize.STRING:  # a string statement on its own is a docstring
            j = i - 1
            while j >= 0 and toks[j].type in (tokenize.NL, tokenize.COMMENT):
                j -= 1
            if (j < 0 or toks[j].type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)) and toks[
                i + 1
            ].type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                continue
        lines.update(range(t.start[0], t.end[0] + 1))
    return lines


def _name(node: ast.stmt) -> str | None:
    """The name a top-level statement defines; None for imports, ``__all__`` and docstrings."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return None
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        name = ast.unparse(target)
        return None if name == "__all__" else name
    if isinstance(node, ast.Expr):
        if isinstance(node.value, ast.Constant):
            return None  # module docstring
        return ast.unparse(node.value.func) if isinstance(node.value, ast.Call) else ast.unparse(node.value)
    return ast.unparse(node).split("\n")[0]


def measure(src: str, excluded: set[str]) -> tuple[list, list, int]:
    """``(counted, excluded, imports)``: ``(definition, code lines)`` lists of one module's source,
    and the code lines of its imports and ``__all__`` (not counted)."""
    code = _code_lines(src)
    counted, left, imports = [], [], 0
    for node in ast.parse(src).body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        n = len(code & set(range(first, node.end_lineno + 1)))
        name = _name(node)
        if name is None:
            imports += n
        else:
            (left if name in excluded else counted).append((name, n))
    return counted, left, imports


def _old(path: str) -> str:
    cmd = ["git", "show", f"{BEFORE}:{path}"]
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def main(brief: bool = False) -> float:
    totals, imports = {}, {}
    sides = (("before", BEFORE_FILES, _old), ("now", NOW_FILES, lambda p: (ROOT / p).read_text()))
    for label, files, read in sides:
        total = imports[label] = 0
        for path, excluded in files.items():
            counted, left, n_imports = measure(read(path), excluded)
            n = sum(c for _, c in counted)
            total += n
            imports[label] += n_imports
            if not brief:
                print(f"{label:>6}  {path}: {n} code lines counted")
                print("          counted : " + ", ".join(f"{k} {c}" for k, c in counted))
                if left:
                    print("          excluded: " + ", ".join(f"{k} {c}" for k, c in left))
        totals[label] = total
    if not brief:
        for path, why in NOT_COUNTED_NOW.items():
            print(f"   now  {path}: not counted ({why})")
    ratio = totals["now"] / totals["before"]
    print(f"dispatch IPM code lines: before ({BEFORE}) {totals['before']}, now {totals['now']}, "
          f"ratio {ratio:.2f}")
    print(f"  (not counted: imports and __all__ of these files, before {imports['before']} (the old "
          f"dispatch.py's shared with data and flow), now {imports['now']})")
    return ratio


if __name__ == "__main__":
    main(brief="--brief" in sys.argv[1:])
