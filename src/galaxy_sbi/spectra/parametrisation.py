"""Label parametrisations of the spectra graph's posteriors: labels (t10...t90, [M/H], [alpha/Fe]) <-> the flow's theta.

- ``naive``: theta = the labels.
- ``ordered`` (order-preserving): theta = the labels, as naive (the same flow, trained the same way), but the
  posterior is the flow restricted to t10 < t20 < ... < t90, the only region where the true posterior has mass
  (rejection sampling, as for the prior box; renormalising a density onto the target's support can only lower
  KL(p || q)). Unlike log_gaps, no percentile is built from a sum of others, so no error accumulates.
- ``log_gaps`` (order-preserving): theta = (t10, log(t20 - t10), ..., log(t90 - t80), [M/H], [alpha/Fe]);
  every sample maps back to t10 < t20 < ... < t90 by construction. Gaps are floored at ``min_gap`` (1e-3
  Gyr) before the log, so a training SFH with two (numerically) equal percentiles stays finite.
- ``linexp`` (the parametric family only, order-preserving): theta = (t0, log10 tau, [M/H], [alpha/Fe]) of the
  linear-exponential SFH whose percentiles the labels are (fitted from all nine, exact to ~1e-5 Gyr on the
  SFH files' labels); samples map back through the closed-form percentiles. The nine percentiles of this
  family lie on a 2-D surface, so a 10-D flow over them must spread density off it; over (t0, tau) it need not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARAMETRISATIONS = ("naive", "ordered", "log_gaps", "linexp")


def percentile_columns(names) -> list[int]:
    """Columns of the time percentiles t10...t90 among the label names."""
    return [i for i, n in enumerate(names) if str(n).startswith("t") and str(n)[1:].isdigit()]


@dataclass
class LabelParametrisation:
    """Map labels (t10...t90, [M/H], [alpha/Fe]) <-> the flow's theta."""

    kind: str
    names: list[str]
    min_gap: float = 1e-3
    #: linexp only: (start, end) of the SFHs' time window in Gyr (mass formed between them; the end is t_obs)
    sfh_window: tuple[float, float] | None = None

    def __post_init__(self):
        if self.kind not in PARAMETRISATIONS:
            raise ValueError(f"unknown parametrisation {self.kind!r} (one of {PARAMETRISATIONS})")
        self.names = [str(n) for n in self.names]
        self.cols = percentile_columns(self.names)
        if self.kind in ("ordered", "log_gaps", "linexp") and self.cols != list(
            range(self.cols[0], self.cols[0] + len(self.cols))
        ):
            raise ValueError(f"{self.kind} needs the percentile columns to be contiguous")
        if self.kind == "linexp" and self.sfh_window is None:
            raise ValueError("linexp needs sfh_window = (start, t_obs) of the linear-exponential SFHs")
        self.percentiles = [float(self.names[c][1:]) for c in self.cols]

    @property
    def support(self):
        """None, or (ordered) a callable: torch theta samples (..., D) -> mask (...) of those the posterior keeps
        beyond the prior box."""
        return self._ordered if self.kind == "ordered" else None

    def _ordered(self, theta):
        t = theta[..., self.cols]
        return (t[..., 1:] > t[..., :-1]).all(-1)

    @property
    def theta_names(self) -> list[str]:
        if self.kind in ("naive", "ordered"):
            return list(self.names)
        if self.kind == "linexp":
            c = self.cols
            return self.names[: c[0]] + ["t0", "log10_tau"] + self.names[c[-1] + 1 :]
        out = list(self.names)
        for a, b in zip(self.cols[:-1], self.cols[1:]):
            out[b] = f"log({self.names[b]}-{self.names[a]})"
        return out

    def to_theta(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, float)
        if self.kind in ("naive", "ordered"):
            return labels.copy()
        if self.kind == "linexp":
            from .sfh import linexp_parameters

            c = self.cols
            flat = labels.reshape(-1, labels.shape[-1])
            t0, tau = linexp_parameters(flat[:, c], *self.sfh_window, self.percentiles)
            theta = np.concatenate([flat[:, : c[0]], t0[:, None], np.log10(tau)[:, None], flat[:, c[-1] + 1 :]], 1)
            return theta.reshape(labels.shape[:-1] + (theta.shape[-1],))
        theta = labels.copy()
        t = labels[..., self.cols]
        theta[..., self.cols[1:]] = np.log(np.maximum(np.diff(t, axis=-1), self.min_gap))
        return theta

    def to_labels(self, theta: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        theta = np.asarray(theta, float)
        if self.kind in ("naive", "ordered"):
            return theta.copy()
        if self.kind == "linexp":
            from .sfh import linexp_percentiles

            c0 = self.cols[0]
            flat = theta.reshape(-1, theta.shape[-1])
            perc = (
                np.concatenate(
                    [
                        linexp_percentiles(
                            flat[i : i + chunk, c0],
                            10.0 ** flat[i : i + chunk, c0 + 1],
                            *self.sfh_window,
                            self.percentiles,
                        )
                        for i in range(0, len(flat), chunk)
                    ]
                )
                if len(flat)
                else np.zeros((0, len(self.cols)))
            )
            labels = np.concatenate([flat[:, :c0], perc, flat[:, c0 + 2 :]], 1)
            return labels.reshape(theta.shape[:-1] + (labels.shape[-1],))
        labels = theta.copy()
        first = theta[..., self.cols[0] : self.cols[0] + 1]
        gaps = np.exp(np.clip(theta[..., self.cols[1:]], -50, 10))
        labels[..., self.cols] = np.concatenate([first, first + np.cumsum(gaps, axis=-1)], axis=-1)
        return labels


def order_violation_fraction(labels: np.ndarray, names) -> float:
    """Fraction of label vectors (any leading shape) whose percentiles are not strictly increasing."""
    t = np.asarray(labels)[..., percentile_columns(names)]
    return float(np.any(np.diff(t, axis=-1) <= 0, axis=-1).mean())
