"""Solving a built cvxpy model: solver choice, SCIP bridges, the solve report."""
