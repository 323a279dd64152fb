"""Plotting helpers for the notebooks (matplotlib). Each returns the matplotlib Figure it drew on."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch


def plot_functions(functions: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], *,
                   lo: float = -5.0, hi: float = 5.0, steps: int = 501, derivatives: bool = True,
                   title: str = "") -> plt.Figure:
    """Plot each ``functions[name](x)`` for x in [lo, hi] and, if ``derivatives``, its derivative by autograd.

    Each function takes a float32 tensor of shape (steps,) and must return one of the same shape. The
    derivative is d f(x) / dx computed with ``torch.autograd.grad``, so it shows what backpropagation sees.
    """
    x = torch.linspace(lo, hi, steps)
    fig, axes = plt.subplots(1, 2 if derivatives else 1, figsize=(11 if derivatives else 6, 4), squeeze=False)
    for name, f in functions.items():
        xg = x.clone().requires_grad_(True)
        y = f(xg)
        axes[0, 0].plot(x, y.detach(), label=name)
        if derivatives:
            (dy,) = torch.autograd.grad(y.sum(), xg)
            axes[0, 1].plot(x, dy, label=name)
    axes[0, 0].set_title(title or "f(x)")
    if derivatives:
        axes[0, 1].set_title("f'(x) by autograd")
    for ax in axes[0]:
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_decision_boundaries(models: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], X: torch.Tensor,
                             y: torch.Tensor, *, steps: int = 200, margin: float = 0.5,
                             titles: Sequence[str] | None = None) -> plt.Figure:
    """Side by side, the regions each model assigns to each class, with the points ``X`` coloured by ``y``.

    ``X``: float (n, 2); ``y``: int64 (n,) class indices. Each model maps a float32 (m, 2) tensor on
    ``X.device`` to logits of shape (m, classes); a region's class is the argmax. ``titles`` overrides the
    names shown above the panels.
    """
    Xc, yc = X.detach().cpu(), y.detach().cpu()
    (x0, y0), (x1, y1) = Xc.min(0).values - margin, Xc.max(0).values + margin
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, steps), torch.linspace(y0, y1, steps), indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(X.device)
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for k, (ax, (name, model)) in enumerate(zip(axes[0], models.items())):
        with torch.no_grad():
            region = model(grid).argmax(dim=1).reshape(steps, steps).cpu()
        levels = [c - 0.5 for c in range(int(yc.max()) + 2)]
        ax.contourf(gx, gy, region, alpha=0.3, cmap="coolwarm", levels=levels)
        ax.scatter(Xc[:, 0], Xc[:, 1], c=yc, cmap="coolwarm", s=8, edgecolors="none")
        ax.set_title(titles[k] if titles else name)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig
