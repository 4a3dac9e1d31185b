"""Analyses of trained minimisers, all computed on the flat parameter vectors that runs save:
geometry (distances, update norms), 1-D interpolation, Keskar sharpness, filter-normalised loss
surfaces, gradient noise scale, top Hessian eigenvalue and gradient competition.

Every analysis talks to the loss only through an `Objective` (value and exact gradient at a flat
theta), so the same code runs on the engine's model and on closed-form test functions."""
from .errors import AnalysisError

__all__ = ["AnalysisError"]
