"""Pure JAX numerical kernels: radial power flow, scoring, the SOP dispatch.

No file I/O, no logging, no cvxpy. Kernels are written for one sample or for a batch
axis and compose with ``jit`` / ``vmap``; failure is data (``converged`` flags), raised
only at the Python boundary by their callers.
"""
