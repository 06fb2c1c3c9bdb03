"""Plots of one observed galaxy (seed section 8): the posterior as a corner plot, the mass-assembly history with its
band against pPXF's, and the spectrum reconstructed from the posterior over the observed one."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter

from .style import label_title, mark_features, save, use_style

MASK_COLOURS = {"bad_pixel": "C3", "uncovered": "0.6", "sky": "C0", "emission": "C1"}


def plot_observed_corner(samples, names, path, truth_like=None, title: str = "", ood_note: str = "") -> Path:
    """Corner plot of the posterior samples (2-D: 39 / 86 % density contours of a histogram; 1-D: histograms) with
    pPXF's estimate (``truth_like``, one value per label, NaN to skip) marked in red."""
    use_style()
    samples = np.asarray(samples, float)
    d = samples.shape[1]
    fig, axes = plt.subplots(d, d, figsize=(1.45 * d + 1, 1.45 * d + 1), layout="constrained")
    lims = []
    for i in range(d):  # the samples' 99 % range, widened to show pPXF's value
        lo, hi = np.percentile(samples[:, i], [0.5, 99.5])
        if truth_like is not None and np.isfinite(truth_like[i]):
            lo, hi = min(lo, truth_like[i]), max(hi, truth_like[i])
        pad = 0.04 * (hi - lo) if hi > lo else 0.1
        lims.append((lo - pad, hi + pad))
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(samples[:, i], bins=40, range=lims[i], color="C0", histtype="stepfilled", alpha=0.6)
                ax.set_yticks([])
                q = np.percentile(samples[:, i], [16, 50, 84])
                for v, ls in zip(q, ("--", "-", "--")):
                    ax.axvline(v, color="C0", lw=0.8, ls=ls)
                ax.set_title(
                    f"{label_title(names[i])} = {q[1]:.2f}$^{{+{q[2] - q[1]:.2f}}}_{{-{q[1] - q[0]:.2f}}}$", fontsize=8
                )
            else:
                h, xe, ye = np.histogram2d(samples[:, j], samples[:, i], bins=25, range=[lims[j], lims[i]])
                h = gaussian_filter(h, 1.0)  # a few thousand samples: smooth before drawing contours
                levels = _density_levels(h, (0.86, 0.39))
                ax.contourf(
                    0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1]), h.T, levels=[*levels, h.max()], cmap="Blues"
                )
                ax.set_ylim(lims[i])
            if truth_like is not None and np.isfinite(truth_like[j]):
                ax.axvline(truth_like[j], color="C3", lw=0.9)
                if i != j and np.isfinite(truth_like[i]):
                    ax.axhline(truth_like[i], color="C3", lw=0.9)
                    ax.plot(truth_like[j], truth_like[i], "s", color="C3", ms=3)
            ax.set_xlim(lims[j])
            ax.tick_params(labelsize=6)
            if i < d - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel(label_title(names[j]), fontsize=8)
            if j > 0 or i == 0:
                ax.set_yticklabels([]) if i != j else None
            else:
                ax.set_ylabel(label_title(names[i]), fontsize=8)
    fig.suptitle((title or "posterior") + ("\n" + ood_note if ood_note else ""), fontsize=10)
    axes[0, d - 1].text(
        1.0, 1.0, "blue: matched ANPE posterior\nred: pPXF (regularised)", ha="right", va="top", fontsize=9,
        transform=axes[0, d - 1].transAxes,
    )  # fmt: skip
    return save(fig, path)


def _density_levels(h: np.ndarray, masses) -> list[float]:
    """Histogram values enclosing the given probability masses (descending masses -> ascending levels)."""
    flat = np.sort(h.ravel())[::-1]
    cum = np.cumsum(flat) / flat.sum()
    return sorted({float(flat[min(np.searchsorted(cum, m), len(flat) - 1)]) for m in masses})


def plot_mass_assembly(time, curves, t_obs, ppxf_curve, path, title: str = "", note: str = "") -> Path:
    """Cumulative formed mass against cosmic time: the posterior's median curve and 68 / 95 % bands (curves:
    (S, n_time) of the samples), pPXF's (``ppxf_curve``: (time, cumulative) or None), the lookback-time axis on top."""
    use_style()
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    q = np.percentile(curves, [2.5, 16, 50, 84, 97.5], axis=0)
    ax.fill_between(time, q[0], q[4], color="C0", alpha=0.18, lw=0, label="ANPE 95 %")
    ax.fill_between(time, q[1], q[3], color="C0", alpha=0.35, lw=0, label="ANPE 68 %")
    ax.plot(time, q[2], color="C0", lw=2, label="ANPE median")
    if ppxf_curve is not None:
        # each template's mass spread evenly over its age bin: linear between the bin edges
        ax.plot(ppxf_curve[0], ppxf_curve[1], color="C3", lw=1.6, label="pPXF (regularised mass weights)")
    ax.set(xlabel="cosmic time (Gyr)", ylabel="fraction of the stellar mass formed", xlim=(0, t_obs), ylim=(0, 1.02))
    sec = ax.secondary_xaxis("top", functions=(lambda t: t_obs - t, lambda lb: t_obs - lb))
    sec.set_xlabel("lookback time (Gyr)")
    ax.legend(loc="upper left", fontsize=8)
    if note:
        # wrapped to the axes' width: a one-line systematic ran past the y label
        note = "\n".join(textwrap.fill(line, 80) for line in note.splitlines())
        ax.text(0.98, 0.04, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox=dict(fc="white", ec="0.8", alpha=0.9))  # fmt: skip
    ax.set_title(title or "mass assembly")
    return save(fig, path)


def plot_observed_reconstruction(
    wavelength, flux, model, band, mask_reason, mask_bits, path, title="", note="", best=None
) -> Path:
    """Observed (prepared) spectrum, the posterior-mean labels' spectrum and the 68 % band of the draws' spectra,
    the best-fitting draw's (the chi^2 check's fit) when given; residuals in per cent below; masked pixels shaded."""
    use_style()
    w = np.asarray(wavelength)
    good = np.asarray(mask_reason) == 0
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(3, 1.3), layout="constrained")
    obs = np.where(good, flux, np.nan)
    ax.plot(w, obs, color="k", lw=0.6, label="observed (rest frame, air)")
    ax.fill_between(w, band[0], band[1], color="C1", alpha=0.35, lw=0, label="posterior 68 % band")
    ax.plot(w, model, color="C1", lw=0.9, label="posterior-mean labels")
    resid = 100 * (obs - model) / model
    axr.plot(w, resid, color="C1", lw=0.5, label="observed − posterior-mean labels")
    if best is not None:
        ax.plot(w, best, color="C0", lw=0.7, label="best-fitting draw (χ² check)")
        axr.plot(w, 100 * (obs - best) / best, color="C0", lw=0.5, label="observed − best-fitting draw")
        axr.legend(loc="upper right", fontsize=8, ncol=2)
    axr.axhline(0, color="0.3", lw=0.8)
    for a in (ax, axr):
        for name, bit in mask_bits.items():
            m = (np.asarray(mask_reason) & bit) > 0
            _shade(a, w, m, MASK_COLOURS.get(name, "0.8"), name.replace("_", " ") if a is ax else None)
    finite = obs[np.isfinite(obs)]
    ax.set(ylabel="flux / median", xlim=(w[0], w[-1]), ylim=(0, 1.15 * np.percentile(finite, 99.5)))
    r = resid[np.isfinite(resid)]
    lim = max(2.0, 1.2 * np.percentile(np.abs(r), 99))
    axr.set(xlabel="rest-frame wavelength (Å)", ylabel="residual (%)", ylim=(-lim, lim))
    mark_features(ax)
    ax.legend(loc="lower right", fontsize=8, ncol=3)
    if note:  # above the residuals: the spectrum's top edge carries the feature names
        axr.set_title(textwrap.fill(note, 160), fontsize=9)
    fig.suptitle(title or "reconstruction")
    return save(fig, path)


def _shade(ax, w, mask, colour, label):
    """Shade the runs of True in mask."""
    if not mask.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    for k, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(w[a], w[b - 1], color=colour, alpha=0.18, lw=0, label=label if k == 0 else None)
