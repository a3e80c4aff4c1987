"""Solving a built cvxpy model: solver choice, the SCIP bridge, the solve report."""
