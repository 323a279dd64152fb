"""Randomness the student's code cannot reproduce, for the data of accuracy and quality checks.

A test set drawn from a fixed seed of a public generator (``make_spirals(seed=2000)``, scikit-learn's digits) can
be regenerated or looked up by the student's code, which then scores without learning anything. Graders draw
such data, or a transform of it (a rotation, a shift, noise), from :func:`fresh_generator`, seeded from the
operating system's randomness on the trusted side, and set thresholds with a margin measured over many seeds.
"""
from __future__ import annotations

import secrets

import torch


def fresh_generator() -> torch.Generator:
    """A torch Generator with a seed drawn from the OS's randomness on the trusted side (new each call)."""
    return torch.Generator().manual_seed(secrets.randbits(62))


def fresh_seed() -> int:
    """A seed drawn from the OS's randomness, for generators that take an int (``make_spirals(seed=...)``)."""
    return secrets.randbits(31)
