"""Plots of the SSP-library systematic: FASTAR against MILES SSPs, and the FASTAR-trained model on MILES spectra."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..spectra.latents import LINE_INDICES
from .style import label_title, name_above, save, use_style


def _shade_lick(ax, names):
    """Lick index bands shaded, their names above the axes."""
    for name in names:
        lo, hi = LINE_INDICES[name][0]
        ax.axvspan(lo, hi, color="C1", alpha=0.15, lw=0, zorder=0)
        name_above(ax, 0.5 * (lo + hi), name)


def plot_library_residuals(ds, path, ages=(0.1, 1.0, 3.1623, 10.0), metallicity=0.0):
    """FASTAR vs MILES: example spectra, the rms residual over the grid, residuals over wavelength by age and [M/H]."""
    use_style()
    wave = ds.wavelength.values
    mets, all_ages = ds.metallicity.values, ds.age.values
    met0 = mets[np.argmin(np.abs(mets - metallicity))]
    ages = [all_ages[np.argmin(np.abs(all_ages - a))] for a in ages]
    fig = plt.figure(figsize=(13, 10.5), layout="constrained")
    grid = fig.add_gridspec(3, 3)
    ax_res_age = fig.add_subplot(grid[1, :])
    ax_res_met = fig.add_subplot(grid[2, :], sharex=ax_res_age)
    ax_rms = fig.add_subplot(grid[0, 2])
    ax_sp = fig.add_subplot(grid[0, :2])

    colours = plt.cm.viridis(np.linspace(0, 0.9, len(ages)))
    for age, c in zip(ages, colours):
        r = ds.residual_percent.sel(metallicity=met0, age=age).values
        ax_res_age.plot(wave, r, color=c, lw=0.6, label=f"{age:.2g} Gyr (rms {np.sqrt(np.mean(r**2)):.1f} %)")
    ax_res_age.set(ylabel="FASTAR / MILES − 1 (%)")
    ax_res_age.set_title(f"[M/H] = {met0:+.2f}: residual by age", loc="left", pad=40)
    ax_res_age.axhline(0, color="k", lw=0.6)
    ax_res_age.legend(fontsize=8, ncol=len(ages), loc="lower right")
    colours = plt.cm.plasma(np.linspace(0, 0.85, len(mets)))
    age_old = ages[-1]
    for met, c in zip(mets, colours):
        r = ds.residual_percent.sel(metallicity=met, age=age_old).values
        ax_res_met.plot(wave, r, color=c, lw=0.6, label=f"[M/H] {met:+.2f} ({np.sqrt(np.mean(r**2)):.1f} %)")
    ax_res_met.set(xlabel="wavelength (Å, air)", ylabel="FASTAR / MILES − 1 (%)")
    ax_res_met.set_title(f"{age_old:.3g} Gyr: residual by [M/H] (Lick index bands shaded)", loc="left", pad=40)
    ax_res_met.axhline(0, color="k", lw=0.6)
    ax_res_met.legend(fontsize=8, ncol=3, loc="lower right")
    lim = np.percentile(np.abs(ds.residual_percent.sel(metallicity=met0).values), 99.5)
    for ax in (ax_res_age, ax_res_met):
        ax.set_ylim(-1.1 * lim, 1.1 * lim)
        ax.set_xlim(wave[0], wave[-1])
        _shade_lick(ax, ds["index"].values)

    im = ax_rms.pcolormesh(
        np.arange(len(all_ages) + 1),
        np.arange(len(mets) + 1),
        ds.rms_residual_percent.values,
        cmap="magma_r",
        shading="flat",
    )
    ax_rms.set_xticks(np.arange(len(all_ages))[::4] + 0.5, [f"{a:.2g}" for a in all_ages[::4]], fontsize=8)
    ax_rms.set_yticks(np.arange(len(mets)) + 0.5, [f"{m:+.2f}" for m in mets], fontsize=8)
    ax_rms.set(xlabel="age (Gyr)", ylabel="[M/H]", title="rms residual (%)")
    fig.colorbar(im, ax=ax_rms)

    ratio = ds.luminosity_ratio.sel(metallicity=met0).values
    ax_sp.semilogx(all_ages, ratio, "o-", color="C0", label=f"[M/H] {met0:+.2f}")
    for met, c in zip(mets, colours):
        if met != met0:
            ax_sp.semilogx(all_ages, ds.luminosity_ratio.sel(metallicity=met).values, "-", color=c, lw=0.8, alpha=0.7)
    ax_sp.axhline(1, color="k", lw=0.6)
    ax_sp.set(
        xlabel="age (Gyr)",
        ylabel="L per M⊙ formed, FASTAR / MILES",
        title="luminosity at the median wavelength (thin lines: other [M/H])",
    )
    ax_sp.legend(fontsize=8)
    fig.suptitle(
        f"FASTAR against {ds.attrs.get('miles', 'MILES').split(' (')[0]} at the same ages, [M/H] and IMF "
        f"({ds.attrs.get('miles', '').split('; ', 1)[-1]})",
        fontsize=10,
    )
    return save(fig, path)


def plot_cross_library(out: dict, arrays: dict, path, family: str):
    """Bias per label (median posterior mean - truth) from FASTAR and MILES spectra per setting, and coverage."""
    use_style()
    settings = list(out["results"])
    names = [n for n in out["results"]["clean"]["miles"]["labels"]]
    varying = [n for n in names if n in out["results"]["clean"]["miles"]["coverage"]["empirical"]]
    ages = [n for n in varying if n.startswith("t")]
    fig, axes = plt.subplots(2, max(len(settings), 2), figsize=(4.6 * max(len(settings), 2), 8), layout="constrained")
    for j, setting in enumerate(settings):
        ax = axes[0, j]
        res = out["results"][setting]
        x = np.arange(len(ages))
        for k, (lib, colour) in enumerate((("fastar", "0.5"), ("miles", "C3"))):
            bias = [res[lib]["labels"][n]["bias"] for n in ages]
            nmad = [res[lib]["labels"][n]["scatter_nmad"] for n in ages]
            ax.errorbar(
                x + (k - 0.5) * 0.25, bias, yerr=nmad, fmt="o", color=colour, capsize=2, label=f"{lib.upper()} spectra"
            )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(x, [label_title(n) for n in ages])
        met = "metallicity"
        txt = (
            "  ".join(
                f"{lib.upper()} [M/H] bias {res[lib]['labels'][met]['bias']:+.2f} dex" for lib in ("fastar", "miles")
            )
            if met in res["miles"]["labels"]
            else ""
        )
        ax.set(ylabel="posterior mean − truth (Gyr)", title=f"{setting}: bias ± σ_NMAD\n{txt}")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
        ax = axes[1, j]
        for lib, colour in (("fastar", "0.5"), ("miles", "C3")):
            a = arrays[(setting, lib)]
            for i, n in enumerate(varying):
                ax.plot(
                    a["levels"],
                    a["coverage"][n],
                    color=colour,
                    lw=0.8,
                    alpha=0.8,
                    label=f"{lib.upper()} (each label)" if i == 0 else None,
                )
        ax.plot([0, 1], [0, 1], "k--", lw=0.7)
        dev = {lib: res[lib]["coverage"]["max_abs_deviation_all"] for lib in ("fastar", "miles")}
        # spectra whose posterior had no sample inside the prior box are left out of the metrics: say how many
        out_of_box = {lib: res[lib].get("n_without_support", 0) for lib in ("fastar", "miles")}
        left_out = ", ".join(f"{n} {lib.upper()}" for lib, n in out_of_box.items() if n)
        ax.set(
            xlabel="credibility level",
            ylabel="empirical coverage",
            title=f"{setting}: max deviation FASTAR {dev['fastar']:.2f}, MILES {dev['miles']:.2f}"
            + (f"\n({left_out} spectra without posterior support in the prior box left out)" if left_out else ""),
        )
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    for j in range(len(settings), axes.shape[1]):
        axes[0, j].axis("off")
        axes[1, j].axis("off")
    fig.suptitle(
        f"{family}: the FASTAR-trained model on {out['n_test']} test spectra ({out['n_sfh']} SFHs × "
        f"{len(out['metallicity_cells'])} [M/H] cells) from {out.get('miles_library', 'MILES')} "
        f"({out.get('miles_isochrones', '')}, {out.get('miles_imf', '')}) and from FASTAR",
        fontsize=10,
    )
    return save(fig, path)
