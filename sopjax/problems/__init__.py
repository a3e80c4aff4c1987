"""One folder per optimization problem, each with its builder, result extraction and study.

* :mod:`~sopjax.problems.restoration` -- service restoration with SOPs and reconfiguration (seed 002);
* :mod:`~sopjax.problems.reconfiguration` -- minimum-loss reconfiguration;
* :mod:`~sopjax.problems.planning` -- multi-period SOP siting and sizing (seed 000);
* :mod:`~sopjax.problems.dispatch` -- convex SOP dispatch as a cvxpy / cvxpylayers model.

Problems import downward only: solvers, kernels, strategies, Monte Carlo, inputs, base.
"""
