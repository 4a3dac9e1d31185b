"""Array kernels, one module per op family.

Every op exists as a plain NumPy/CuPy reference (backend-neutral, written to be read) and, where speed
matters on the CPU, as a numba kernel. Ops work on raw arrays and know nothing of autograd; the
engine wraps them as differentiable functions.
"""
