"""Convex SOP dispatch as a cvxpy model: the reference solve and the cvxpylayers layer."""
