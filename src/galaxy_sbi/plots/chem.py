"""Plots of the chemistry graph: emulator, multi-star estimates, coverage over mock galaxies."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import save, use_style


def plot_chem_emulator_loss(history: dict, path: str | Path) -> Path:
    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax.plot(history["epoch"], history["val_loss"], "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE (standardised abundances)", yscale="log", title="Emulator loss")
    ax.legend()
    return save(fig, path)


def plot_chem_emulator_ape(ape: np.ndarray, labels, path: str | Path) -> Path:
    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    flat = np.asarray(ape).ravel()
    flat = flat[np.isfinite(flat) & (flat > 0)]
    bins = np.logspace(np.log10(max(flat.min(), 1e-3)), np.log10(flat.max()), 50)
    axes[0].hist(flat, bins=bins, color="C0", alpha=0.8)
    q = np.percentile(flat, [16, 50, 84])
    for v, ls in zip(q, (":", "-", ":")):
        axes[0].axvline(v, color="k", ls=ls)
    axes[0].set(
        xscale="log",
        xlabel="absolute percentage error (%)",
        ylabel="count",
        title=f"all observables: median {q[1]:.2f} % (+{q[2] - q[1]:.2f}, -{q[1] - q[0]:.2f})",
    )
    med = [np.median(ape[:, i]) for i in range(ape.shape[1])]
    axes[1].bar(range(len(labels)), med, color="C1")
    axes[1].set_xticks(range(len(labels)), labels, rotation=45)
    axes[1].set(ylabel="median APE (%)", title="per observable")
    return save(fig, path)


def plot_chem_vs_nstars(results: list[dict], names: dict, path: str | Path) -> Path:
    """Estimates of alpha_IMF and log10_N_Ia against the number of stars, one column per data set."""
    use_style()
    k = len(results)
    fig, axes = plt.subplots(2, k, figsize=(3.8 * k, 6.2), layout="constrained", squeeze=False)
    for j, r in enumerate(results):
        n = np.array([row["n_stars"] for row in r["rows"]])
        for i, (_par, label) in enumerate(
            (("alpha_IMF", r"$\alpha_{\rm IMF}$"), ("log10_N_Ia", r"$\log_{10}N_{\rm Ia}$"))
        ):
            ax = axes[i, j]
            for method, colour, shift in (("gaussian", "C0", 0.94), ("grid", "C3", 1.06)):
                m = np.array([row[f"{method}_mean"][i] for row in r["rows"]])
                s = np.array([row[f"{method}_sd"][i] for row in r["rows"]])
                ax.fill_between(n * shift, m - s, m + s, color=colour, alpha=0.15)
                ax.errorbar(
                    n * shift,
                    m,
                    yerr=s,
                    fmt="o-",
                    ms=3,
                    color=colour,
                    capsize=2,
                    label="Gaussian product (study)" if method == "gaussian" else "grid (calibrated)",
                )
            ax.axhline(r["truth"][i], color="k", ls="--", lw=1, label="truth")
            ax.set_xscale("log")
            ax.set(xlabel="number of stars" if i == 1 else None, ylabel=label)
            if i == 0:
                ax.set_title(names.get(r["dataset"], r["dataset"]))
            # zoom on the many-star end, where the differences matter
            big = n >= min(10, n.max())
            ms = np.concatenate(
                [[row[f"{mm}_mean"][i] for row, b in zip(r["rows"], big) if b] for mm in ("gaussian", "grid")]
            )
            ss = np.concatenate(
                [[row[f"{mm}_sd"][i] for row, b in zip(r["rows"], big) if b] for mm in ("gaussian", "grid")]
            )
            lo, hi = min((ms - 2 * ss).min(), r["truth"][i]), max((ms + 2 * ss).max(), r["truth"][i])
            pad = 0.1 * (hi - lo) + 1e-3
            ax.set_ylim(lo - pad, hi + pad)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(
        "Global parameters against the number of stars (points with 1 sigma errors; y-range fits N >= 10)", fontsize=10
    )
    return save(fig, path)


def plot_chem_coverage(summary: dict, path: str | Path) -> Path:
    """Empirical vs nominal coverage of both combinations, one panel per number of stars (``summary``:
    :func:`galaxy_sbi.chem.multistar.coverage_summary`)."""
    use_style()
    from ..inference.calibration import coverage_band

    levels = np.asarray(summary["levels"])
    counts = list(summary["methods"]["grid"])
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 4.2), layout="constrained", squeeze=False)
    n_gal = summary["n_galaxies"]
    lo, hi = coverage_band(n_gal, levels)
    for j, n in enumerate(counts):
        ax = axes[0, j]
        ax.fill_between(levels, lo, hi, color="0.85", label="95 % band (calibrated)")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for method, colour, label in (
            ("gaussian", "C0", "Gaussian product (study)"),
            ("grid", "C3", "grid (calibrated)"),
        ):
            ax.plot(levels, summary["methods"][method][n]["coverage"], "o-", ms=3, color=colour, label=label)
        lines = ["log10 N_Ia: mean |Δ|/σ, 68 % / 95 % cov."]
        for method, label in (("gaussian", "Gaussian"), ("grid", "grid")):
            p = summary["methods"][method][n].get("parameters", {}).get("log10_N_Ia")
            if p:
                lines.append(f"{label}: {p['mean_abs_pull']:.2f}, {p['coverage_68']:.2f} / {p['coverage_95']:.2f}")
        if len(lines) > 1:
            box = dict(facecolor="white", alpha=0.85, edgecolor="none")
            ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=7, bbox=box)
        ax.set(
            xlabel="credibility level (HPD, 2-D)",
            ylabel="empirical coverage",
            xlim=(0, 1),
            ylim=(0, 1),
            title=f"{n} stars per galaxy, {n_gal} galaxies",
        )
    axes[0, 0].legend(fontsize=8, loc="upper left")
    return save(fig, path)


def plot_vice_against_simulator(comparison: dict, labels, path: str | Path, preset: str) -> Path:
    """Each observable of the VICE stars against our simulator's at the same parameters and yields."""
    use_style()
    d = len(labels)
    fig, axes = plt.subplots(2, (d + 1) // 2, figsize=(3.2 * ((d + 1) // 2), 6.2), layout="constrained")
    for i, ax in enumerate(axes.ravel()):
        if i >= d:
            ax.axis("off")
            continue
        v, o = comparison["vice"][:, i], comparison["ours"][:, i]
        lo, hi = min(v.min(), o.min()), max(v.max(), o.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.scatter(o, v, s=6, alpha=0.6, linewidths=0)
        med = comparison["median_difference_dex"][labels[i]]
        ax.set(xlabel="our simulator", ylabel="VICE")
        ax.set_title(f"{labels[i]}: VICE − ours {med:+.2f} dex", fontsize=9)
    fig.suptitle(
        f"VICE one-zone stars against our simulator, same parameters and {preset} yields "
        f"({comparison['n_stars']} stars)"
    )
    return save(fig, path)


def plot_chem_timing(result: dict, path: str | Path) -> Path:
    """Wall time against the number of stars: emcee to convergence (measured, fitted, extrapolated) and the NPE."""
    use_style()
    rows, fit = result["rows"], result["emcee_scaling"]
    n = np.array([r["n_stars"] for r in rows], float)
    fig, ax = plt.subplots(figsize=(6.0, 4.4), layout="constrained")
    grid = np.geomspace(1, 1000, 50)
    done = np.array([r["converged"] for r in rows])
    wall = np.array([r["wall_s"] for r in rows])
    ax.plot(n[done], wall[done], "o", color="C0", label="emcee on the emulator, converged")
    if (~done).any():
        ax.plot(n[~done], wall[~done], "o", mfc="none", color="C0", label="emcee stopped at the step cap (lower bound)")
        proj = np.array([r["projected_s"] for r in rows])
        ax.plot(n[~done], proj[~done], "x", color="C0", label="… projected to the rule (wall × 55 τ / steps)")
        pf = result["emcee_scaling_projected"]
        ax.plot(grid, pf["prefactor_s"] * grid ** pf["exponent"], ":", color="C0", lw=1,
                label=f"fit to all, projected: ∝ N^{pf['exponent']:.2f}")  # fmt: skip
    model = fit["prefactor_s"] * grid ** fit["exponent"]
    inside = grid <= max(fit["fitted_star_counts"])
    ax.plot(grid[inside], model[inside], "-", color="C0", lw=1, label=f"fit ∝ N^{fit['exponent']:.2f}")
    ax.plot(grid[~inside], model[~inside], "--", color="C0", lw=1, label="extrapolated (not run)")
    ax.plot(n, [r["npe_gaussian_s"] for r in rows], "s-", color="C1", ms=4, label="NPE, Gaussian product")
    ax.plot(n, [r["npe_grid_s"] for r in rows], "^-", color="C3", ms=4, label="NPE, calibrated grid")
    hmc = result["study_hmc"]
    ax.plot(hmc["n_stars"], hmc["seconds"], "*", color="k", ms=10, label="the study's HMC (~42 h, 200 stars)")
    ax.set(xscale="log", yscale="log", xlabel="stars", ylabel="wall time (s, one core)")
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)
