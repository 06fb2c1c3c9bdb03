"""Figures a person browses in results/: shared style and one function per plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

# Absorption features a spectroscopist looks for first (air wavelengths, Angstrom).
SPECTRAL_FEATURES = {
    "Ca H&K": 3950.0,
    "Hδ": 4101.7,
    "G band": 4300.0,
    "Hβ": 4861.3,
    "Mg b": 5175.0,
    "Fe5270": 5270.0,
    "Fe5335": 5335.0,
    "Na D": 5892.9,
    "Hα": 6562.8,
}


def _style():
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", font_scale=0.95)


def _save(fig, path, dpi=120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def mark_features(ax, features=SPECTRAL_FEATURES, label=True):
    """Dotted lines at the classic absorption features; names above the axes (where no data hides them)."""
    lo, hi = ax.get_xlim()
    for name, wave in features.items():
        if lo < wave < hi:
            ax.axvline(wave, color="0.6", lw=0.6, ls=":", zorder=0)
            if label:
                ax.text(
                    wave,
                    1.02,
                    name,
                    transform=ax.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color="0.3",
                )


def _nearest(values: np.ndarray, wanted) -> list[float]:
    return list(dict.fromkeys(float(values[np.argmin(np.abs(values - w))]) for w in wanted))


def plot_ssp_overview(library: xr.Dataset, ages_gyr, metallicities, path: str | Path) -> Path:
    """SSPs of several ages (one panel per metallicity) and metallicities at the oldest requested age.

    Spectra are divided by their median (the forward model's normalisation) so shapes can be compared.
    When the library has an [alpha/Fe] axis a last panel shows the alpha-enhanced / scaled-solar ratio.
    """
    _style()
    flux = library["flux"]
    if "alpha" in flux.dims:
        flux_by_alpha = flux
        flux = flux.sel(alpha=float(flux.alpha.min()))
    else:
        flux_by_alpha = None
    wave = library["wavelength"].values
    ages = _nearest(library["age"].values, ages_gyr)
    mets = _nearest(library["metallicity"].values, metallicities)
    n_panels = len(mets) + 1 + (flux_by_alpha is not None)
    fig, axes = plt.subplots(n_panels, 1, figsize=(13, 2.9 * n_panels + 0.6), sharex=True, constrained_layout=True)
    legend_kw = dict(frameon=False, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, title_fontsize=8)
    cmap = plt.get_cmap("plasma_r")
    log_ages = np.log10(ages)
    norm = plt.Normalize(log_ages.min() - 0.1, log_ages.max() + 0.1)

    for ax, met in zip(axes, mets):
        for age in ages:
            f = flux.sel(metallicity=met, age=age).values
            ax.plot(wave, f / np.median(f), lw=0.7, color=cmap(norm(np.log10(age))), label=f"{age:g} Gyr")
        ax.set_ylabel("flux / median")
        ax.legend(title=f"[M/H] = {met:+.2f}\nage", **legend_kw)

    ax = axes[len(mets)]
    old = ages[-1]
    met_colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(library["metallicity"])))
    for color, met in zip(met_colors, library["metallicity"].values):
        f = flux.sel(metallicity=met, age=old).values
        ax.plot(wave, f / np.median(f), lw=0.6, color=color, label=f"{met:+.2f}")
    ax.set_ylabel("flux / median")
    ax.legend(title=f"age = {old:g} Gyr\n[M/H]", **legend_kw)

    if flux_by_alpha is not None:
        ax = axes[-1]
        lo, hi = float(flux_by_alpha.alpha.min()), float(flux_by_alpha.alpha.max())
        for age in ages:
            ratio = (
                flux_by_alpha.sel(alpha=hi, metallicity=mets[-1], age=age)
                / flux_by_alpha.sel(alpha=lo, metallicity=mets[-1], age=age)
            ).values
            ax.plot(wave, ratio / np.median(ratio), lw=0.7, color=cmap(norm(np.log10(age))), label=f"{age:g} Gyr")
        ax.set_ylabel(f"[α/Fe]={hi:+.1f} / {lo:+.1f}")
        ax.legend(title=f"[M/H] = {mets[-1]:+.2f}\nage", **legend_kw)

    for i, ax in enumerate(axes):
        ax.set_xlim(wave[0], wave[-1])
        mark_features(ax, label=i == 0)
    axes[-1].set_xlabel("air wavelength [Å]")
    attrs = library.attrs
    imf = str(attrs.get("imf", "")).split(" (")[0]
    fig.suptitle(
        f"SSP library: source {attrs.get('source', '?')}, {imf} IMF, {attrs.get('isochrones', '')}, "
        f"FWHM {attrs.get('resolution_fwhm_angstrom', '?')} Å; spectra divided by their median",
        fontsize=10,
    )
    return _save(fig, path, dpi=130)


# ---------------------------------------------------------------------------------------------
# SFHs and synthetic spectra
# ---------------------------------------------------------------------------------------------


def _pick_examples(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of n examples spread over the range of `values` (quantiles of the sorted order)."""
    order = np.argsort(values, kind="stable")
    return order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)]


def plot_sfh_examples(sfh: xr.Dataset, path: str | Path, n: int = 6) -> Path:
    """Example SFHs (spread in t50) with their cumulative mass curve and the percentiles t10...t90 marked."""
    _style()
    time = sfh["time"].values
    perc = sfh["percentiles"].values
    names = [str(v) for v in sfh["label_name"].values]
    idx = _pick_examples(perc[:, len(names) // 2], n)
    ncols = 3
    nrows = int(np.ceil(len(idx) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(12, 3.0 * nrows), sharex=True, constrained_layout=True, squeeze=False
    )
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.95, len(names)))
    for ax, i in zip(axes.flat, idx):
        sfr = sfh["sfr"].values[i]
        ax.fill_between(time, sfr, color="C0", alpha=0.25, lw=0)
        ax.plot(time, sfr, color="C0", lw=1.0)
        ax.set_ylim(0, sfr.max() * 1.15)
        ax2 = ax.twinx()
        ax2.plot(time, sfh["cumulative_mass_fraction"].values[i], color="0.3", lw=0.9, ls="--")
        for k, (t_p, color) in enumerate(zip(perc[i], colors)):
            ax.axvline(t_p, color=color, lw=0.8, alpha=0.8)
            ax2.plot(t_p, sfh["percentile"].values[k] / 100, "o", ms=3.5, color=color)
        ax2.set_ylim(0, 1.05)
        ax2.set_yticks([0, 0.5, 1])
        ax2.tick_params(labelsize=8)
        title = f"SFH {int(sfh['sfh'].values[i])}:"
        if "t0" in sfh:
            title += f" t0 = {float(sfh['t0'].values[i]):.2f}, τ = {float(sfh['tau'].values[i]):.2f},"
        ax.set_title(title + f" t50 = {perc[i, len(names) // 2]:.2f} Gyr", loc="left", fontsize=9)
        ax.set_ylabel("SFR [M$_\\odot$/yr]", fontsize=9)
        ax2.set_ylabel("cumulative mass", fontsize=8, color="0.3")
    for ax in axes.flat[len(idx) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("cosmic time [Gyr]")
        ax.set_xlim(time[0], time[-1])
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3.5, lw=0.8) for c in colors]
    fig.legend(handles, names, ncol=len(names), loc="outside lower center", fontsize=8, frameon=False)
    fig.suptitle(
        f"{sfh.attrs.get('family', '?')} SFHs ({sfh.sizes['sfh']} in total, observed at t = {sfh.attrs.get('t_obs_gyr', 0):.2f} Gyr, "
        f"M = {sfh.attrs.get('stellar_mass_msun', 0):.0e} M$_\\odot$): SFR (blue), cumulative mass (dashed), percentiles",
        fontsize=10,
    )
    return _save(fig, path)


def plot_spectra_examples(cubes: list[xr.Dataset], path: str | Path, n: int = 5) -> Path:
    """Example spectra: several SFHs (spread in t50) in the middle cell, and one SFH across the cells' [M/H]."""
    _style()
    middle = cubes[len(cubes) // 2]
    labels = middle["labels"].values
    params = [str(p) for p in middle["parameter"].values]
    i50 = params.index("t50") if "t50" in params else 0
    idx = _pick_examples(labels[:, i50], n)
    wave = middle["wavelength"].values
    fig, axes = plt.subplots(2, 1, figsize=(13, 7), sharex=True, constrained_layout=True)
    legend_kw = dict(frameon=False, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)
    t50 = labels[idx, i50]
    cmap = plt.get_cmap("plasma")
    norm = plt.Normalize(t50.min() - 0.5, t50.max() + 0.5)
    for i, t in zip(idx, t50):
        axes[0].plot(wave, middle["flux"].values[i], lw=0.6, color=cmap(norm(t)), label=f"t50 = {t:.2f} Gyr")
    axes[0].set_title(
        f"{middle.attrs.get('family', '?')} spectra in cell {middle.attrs.get('cell', '?')}: "
        "SFHs of different t50 (cosmic time)",
        loc="left",
        fontsize=10,
        pad=34,
    )
    axes[0].legend(**legend_kw)

    i = int(idx[len(idx) // 2])
    alpha0 = [
        c for c in cubes if "alpha" not in c.coords or float(c["alpha"]) == float(cubes[0].coords.get("alpha", 0))
    ]
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(alpha0)))
    for color, cube in zip(colors, alpha0):
        axes[1].plot(
            wave, cube["flux"].values[i], lw=0.6, color=color, label=f"[M/H] = {float(cube['metallicity']):+.2f}"
        )
    title = f"SFH {int(middle['sample'].values[i])} (t50 = {labels[i, i50]:.2f} Gyr) across [M/H]"
    if "alpha" in cubes[0].coords:
        title += f" at [α/Fe] = {float(cubes[0]['alpha']):.2f}"
    axes[1].set_title(title, loc="left", fontsize=10, pad=34)
    axes[1].legend(**legend_kw)
    for ax in axes:
        ax.set_ylabel("flux / median")
        ax.set_xlim(wave[0], wave[-1])
        mark_features(ax)
    axes[-1].set_xlabel("air wavelength [Å]")
    return _save(fig, path)


def plot_label_distributions(
    labels: np.ndarray, names: list[str], split: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """One histogram per label, stacked by train / validation / test split."""
    import pandas as pd
    import seaborn as sns

    _style()
    frame = pd.DataFrame(labels, columns=names)
    frame["split"] = split
    ncols = 4
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.6 * nrows), constrained_layout=True, squeeze=False)
    order = [s for s in ("train", "validation", "test") if s in set(split)]
    for ax, name in zip(axes.flat, names):
        values = np.unique(frame[name])
        if len(values) <= 20:  # grid labels ([M/H], [alpha/Fe]): one bar per grid value
            width = np.min(np.diff(values)) if len(values) > 1 else 0.1
            binning = {"binwidth": width, "binrange": (values[0] - width / 2, values[-1] + width / 2)}
        else:
            binning = {"bins": 40}
        sns.histplot(
            frame,
            x=name,
            hue="split",
            hue_order=order,
            multiple="stack",
            ax=ax,
            **binning,
            legend=ax is axes.flat[0],
            element="bars",
            linewidth=0,
            shrink=0.9,
        )
        unit = " [dex]" if name in ("metallicity", "alpha") else " [Gyr]"
        pretty = {"metallicity": "[M/H]", "alpha": "[α/Fe]"}.get(name, name)
        ax.set_xlabel(pretty + unit)
        ax.set_ylabel("")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# encoder latents (seed section 3)
# ---------------------------------------------------------------------------------------------


def plot_latent_distributions(latents: np.ndarray, split: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One histogram per latent component, train / validation / test overlaid (density)."""
    _style()
    k = latents.shape[1]
    ncols = 4
    nrows = int(np.ceil(k / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(12, 2.3 * nrows), constrained_layout=True, squeeze=False)
    colors = {"train": "C0", "validation": "C1", "test": "C2"}
    for i, ax in enumerate(axes.flat[:k]):
        z = latents[:, i]
        bins = np.linspace(*np.percentile(z, [0.1, 99.9]), 41) if np.ptp(z) > 0 else 10
        for s, c in colors.items():
            sel = split == s
            if sel.any():
                ax.hist(z[sel], bins=bins, density=True, histtype="step", color=c, lw=1.1, label=s)
        ax.set_title(f"z{i}: mean {z.mean():+.2f}, sd {z.std():.2f}", fontsize=8.5, loc="left")
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
    for ax in axes.flat[k:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_latent_correlation(corr: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Heatmap of the latent-latent correlation matrix with the values written in."""
    import seaborn as sns

    _style()
    k = len(corr)
    fig, ax = plt.subplots(figsize=(8.5, 7.2), constrained_layout=True)
    sns.heatmap(
        corr,
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=True,
        fmt=".1f",
        annot_kws={"fontsize": 6.5},
        square=True,
        cbar_kws={"label": "Pearson r", "shrink": 0.8},
        ax=ax,
        xticklabels=[f"z{i}" for i in range(k)],
        yticklabels=[f"z{i}" for i in range(k)],
    )
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_latent_flux_correlation(
    fcorr: np.ndarray, wavelength: np.ndarray, mean_flux: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Correlation of each latent (rows) with the flux at each wavelength (columns), the mean spectrum above."""
    _style()
    k = fcorr.shape[0]
    fig, (ax0, ax) = plt.subplots(
        2,
        1,
        figsize=(13, 2.2 + 0.32 * k + 1.6),
        sharex=True,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [1.0, max(2.0, 0.2 * k)]},
    )
    ax0.plot(wavelength, mean_flux, color="0.2", lw=0.6)
    ax0.set_ylabel("mean flux\n/ median", fontsize=8)
    ax0.set_xlim(wavelength[0], wavelength[-1])
    mark_features(ax0)
    vmax = max(0.2, float(np.nanmax(np.abs(fcorr))))
    mesh = ax.pcolormesh(
        wavelength,
        np.arange(k),
        np.nan_to_num(fcorr),
        cmap="RdBu_r",
        vmin=-vmax,
        vmax=vmax,
        shading="nearest",
        rasterized=True,
    )
    ax.set_yticks(np.arange(k), [f"z{i}" for i in range(k)], fontsize=7.5)
    ax.set_ylim(k - 0.5, -0.5)
    mark_features(ax, label=False)
    for wave in SPECTRAL_FEATURES.values():
        if wavelength[0] < wave < wavelength[-1]:
            ax.axvline(wave, color="k", lw=0.5, ls=":", alpha=0.7)
    ax.set_xlabel("air wavelength [Å]")
    fig.colorbar(mesh, ax=ax, label="Pearson r (latent, flux)", shrink=0.9, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi=130)


def plot_latent_umap(embedding: np.ndarray, colours: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """The 2-D UMAP of the latents, one panel per colouring (line strengths, percentiles, [M/H], [alpha/Fe])."""
    _style()
    n = len(colours)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.5 * nrows), constrained_layout=True, squeeze=False)
    size = float(np.clip(3000 / len(embedding), 0.5, 12))
    for ax, (name, values) in zip(axes.flat, colours.items()):
        order = np.argsort(values, kind="stable")  # extreme values on top
        lo, hi = np.nanpercentile(values, [1, 99])
        sc = ax.scatter(
            embedding[order, 0],
            embedding[order, 1],
            c=values[order],
            s=size,
            cmap="viridis",
            vmin=lo,
            vmax=hi if hi > lo else lo + 1e-6,
            linewidths=0,
            rasterized=True,
        )
        fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.01)
        ax.set_title(name, fontsize=9.5, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_predicted_vs_true(
    true: np.ndarray, pred: np.ndarray, names: list[str], path: str | Path, history=None, title: str = ""
) -> Path:
    """Predicted vs true label per parameter (with R^2), and the training curves from history.csv."""
    import pandas as pd

    _style()
    n = len(names) + (history is not None)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(13, 3.1 * nrows), constrained_layout=True, squeeze=False)
    for ax, (i, name) in zip(axes.flat, enumerate(names)):
        t, p = true[:, i], pred[:, i]
        ss = np.sum((t - t.mean()) ** 2)
        r2 = 1 - np.sum((t - p) ** 2) / ss if ss > 0 else np.nan
        ax.scatter(t, p, s=4, alpha=0.5, linewidths=0, rasterized=True)
        lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, ls="--")
        pretty = {"metallicity": "[M/H]", "alpha": "[α/Fe]"}.get(name, name)
        ax.set_title(f"{pretty}: R² = {r2:.3f}", fontsize=9, loc="left")
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
        ax.tick_params(labelsize=7.5)
    if history is not None:
        ax = axes.flat[len(names)]
        frame = pd.read_csv(history)
        for col, label in (("train_loss", "train"), ("val_loss", "validation")):
            if col in frame:
                rows = frame.dropna(subset=[col])
                ax.plot(rows["epoch"], rows[col], marker="o", ms=3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("loss (standardised labels)", fontsize=8)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title("training curves", fontsize=9, loc="left")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


# ---- chemistry (the CHEMPY study) -------------------------------------------------------------------------
def plot_chem_emulator_loss(history: dict, path: str | Path) -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax.plot(history["epoch"], history["val_loss"], "s-", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE (standardised abundances)", yscale="log", title="Emulator loss")
    ax.legend()
    return _save(fig, path)


def plot_chem_emulator_ape(ape: np.ndarray, labels, path: str | Path) -> Path:
    _style()
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
    return _save(fig, path)


def plot_chem_sbc(
    ranks: np.ndarray, n_samples: int, names, path: str | Path, bins: int = 20, sets: str = "validation"
) -> Path:
    _style()
    from scipy import stats

    d = ranks.shape[1]
    fig, axes = plt.subplots(2, (d + 1) // 2, figsize=(3.3 * ((d + 1) // 2), 5.6), layout="constrained")
    n = len(ranks)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / bins)
    for i, ax in enumerate(axes.ravel()):
        if i >= d:
            ax.axis("off")
            continue
        ax.axhspan(lo, hi, color="0.85")
        ax.hist(ranks[:, i], bins=np.linspace(0, n_samples, bins + 1), color="C0")
        ax.set(title=names[i], xlabel="rank", yticks=[])
    fig.suptitle(f"SBC ranks of the joint NPE on {n} {sets} sets (grey: 99 % band of a uniform histogram)")
    return _save(fig, path)


def plot_chem_tarp(ecp, alpha, atc: float, path: str | Path) -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(4.6, 4.4), layout="constrained")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.plot(np.asarray(alpha), np.asarray(ecp), lw=2, label=f"NPE (ATC {atc:.3f})")
    ax.set(xlabel="credibility level", ylabel="expected coverage", title="TARP, joint NPE", xlim=(0, 1), ylim=(0, 1))
    ax.legend()
    return _save(fig, path)


def plot_chem_vs_nstars(results: list[dict], names: dict, path: str | Path) -> Path:
    """Estimates of alpha_IMF and log10_N_Ia against the number of stars, one column per data set."""
    _style()
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
    return _save(fig, path)


def plot_chem_coverage(res: dict, levels, path: str | Path) -> Path:
    """Empirical vs nominal coverage of both combinations, one panel per number of stars."""
    _style()
    from .inference.calibration import coverage_band, empirical_coverage

    counts = list(res["star_counts"])
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 4.2), layout="constrained", squeeze=False)
    n_gal = len(res["truths"])
    lo, hi = coverage_band(n_gal, levels)
    for j, n in enumerate(counts):
        ax = axes[0, j]
        ax.fill_between(levels, lo, hi, color="0.85", label="95 % band (calibrated)")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        for method, colour, label in (
            ("gaussian", "C0", "Gaussian product (study)"),
            ("grid", "C3", "grid (calibrated)"),
        ):
            ax.plot(
                levels,
                empirical_coverage(res[f"credibility_{method}"][:, j], levels),
                "o-",
                ms=3,
                color=colour,
                label=label,
            )
        ax.set(
            xlabel="credibility level (HPD, 2-D)",
            ylabel="empirical coverage",
            xlim=(0, 1),
            ylim=(0, 1),
            title=f"{n} stars per galaxy, {n_gal} galaxies",
        )
    axes[0, 0].legend(fontsize=8, loc="upper left")
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# ANPE posteriors on the spectra graph's test set (seed sections 4, 5, 7)
# ---------------------------------------------------------------------------------------------

LABEL_TEX = {"metallicity": "[M/H]", "alpha": "[α/Fe]"}


def _label_title(name: str) -> str:
    return LABEL_TEX.get(name, f"$t_{{{name[1:]}}}$" if name.startswith("t") else name)


def _grid(d: int, ncols: int = 4, size=(3.2, 3.0)):
    nrows = (d + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), layout="constrained", squeeze=False
    )
    for ax in axes.ravel()[d:]:
        ax.axis("off")
    return fig, axes.ravel()


def plot_posterior_accuracy(
    true, mean, std, names, metrics: dict, path, title: str = "", max_points: int = 1500
) -> Path:
    """Posterior mean (error bar: posterior std) vs truth per label, with R², bias, scatter, outliers."""
    _style()
    true, mean, std = np.asarray(true), np.asarray(mean), np.asarray(std)
    idx = np.random.default_rng(0).permutation(len(true))[:max_points]
    fig, axes = _grid(len(names))
    for i, (ax, name) in enumerate(zip(axes, names)):
        m = metrics[name]
        lo, hi = min(true[:, i].min(), mean[:, i].min()), max(true[:, i].max(), mean[:, i].max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.1
        ax.errorbar(
            true[idx, i], mean[idx, i], yerr=std[idx, i], fmt="o", ms=2, lw=0.4, alpha=0.35, color="C0", elinewidth=0.4
        )
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
        ax.set(
            xlim=(lo - pad, hi + pad),
            ylim=(lo - pad, hi + pad),
            title=_label_title(name),
            xlabel="true" + (" (Gyr)" if name.startswith("t") else " (dex)"),
            ylabel="posterior mean",
        )
        ax.text(
            0.03,
            0.97,
            f"R² = {m['r2']:.3f}\nbias = {m['bias']:+.3f}\nσ_NMAD = {m['scatter_nmad']:.3f}\n"
            f"outliers = {100 * m['outlier_fraction']:.1f} %",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(fc="white", ec="0.8", alpha=0.85),
        )
    fig.suptitle(title or "posterior mean ± std vs truth (test split)")
    return _save(fig, path)


def plot_posterior_coverage(
    levels, coverage: dict, band, n: int, path, title: str = "", band_sfh=None, n_sfh: int | None = None
) -> Path:
    """Empirical vs nominal coverage, one line per label and the joint HPD, with the binomial 95 % band of n
    independent spectra and, when given, the wider 95 % band from resampling whole SFHs."""
    _style()
    levels = np.asarray(levels)
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    if band_sfh is not None:
        ax.fill_between(
            levels, band_sfh[0], band_sfh[1], color="0.93", label=f"95 % band, SFH bootstrap ({n_sfh} SFHs)"
        )
    ax.fill_between(levels, band[0], band[1], color="0.82", label=f"95 % band, {n} independent spectra")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for sign in (-1, 1):
        ax.plot(
            [0, 1], [sign * 0.05, 1 + sign * 0.05], color="0.45", lw=0.8, ls=":", label="± 0.05" if sign > 0 else None
        )
    cmap = plt.get_cmap("viridis")
    keys = [k for k in coverage if k != "joint"]
    for j, k in enumerate(keys):
        ax.plot(levels, coverage[k], color=cmap(j / max(len(keys) - 1, 1)), lw=1.2, label=_label_title(k))
    if "joint" in coverage:
        ax.plot(levels, coverage["joint"], color="C3", lw=2.5, label="joint (HPD)")
    ax.set(
        xlabel="nominal credibility",
        ylabel="empirical coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title or "coverage on the test split (above the diagonal: conservative)",
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return _save(fig, path)


def plot_posterior_sbc(ranks, n_samples: int, names, path, bins: int = 20, title: str = "") -> Path:
    """SBC rank histograms per label with the 99 % band of a uniform histogram."""
    _style()
    from scipy import stats

    ranks = np.asarray(ranks)
    fig, axes = _grid(len(names), size=(3.0, 2.4))
    n = len(ranks)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, 1.0 / bins)
    for i, (ax, name) in enumerate(zip(axes, names)):
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(n / bins, color="k", lw=0.8)
        ax.hist(ranks[:, i], bins=np.linspace(0, n_samples, bins + 1), color="C0")
        ax.set(title=_label_title(name), xlabel="rank", yticks=[])
    fig.suptitle(title or f"SBC ranks on {n} test spectra (grey: 99 % band of a uniform histogram)")
    return _save(fig, path)


def plot_posterior_tarp(ecp, alpha, atc: float, path, title: str = "", extra: dict | None = None) -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(4.8, 4.6), layout="constrained")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.plot(np.asarray(alpha), np.asarray(ecp), lw=2, label=f"clean (ATC {atc:+.3f})")
    for k, (e, a, t) in (extra or {}).items():
        ax.plot(np.asarray(a), np.asarray(e), lw=1.2, label=f"{k} (ATC {t:+.3f})")
    ax.set(
        xlabel="credibility level",
        ylabel="expected coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title or "TARP on the test split",
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_accuracy_vs_snr(snr_metrics: dict, names, path, title: str = "") -> Path:
    """R² per label and max coverage deviation against S/N (inf = clean spectra)."""
    _style()
    keys = list(snr_metrics)
    xs = np.arange(len(keys))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0), layout="constrained")
    cmap = plt.get_cmap("viridis")
    for j, name in enumerate(names):
        r2 = [snr_metrics[k]["labels"][name]["r2"] for k in keys]
        axes[0].plot(xs, r2, "o-", color=cmap(j / max(len(names) - 1, 1)), label=_label_title(name))
    axes[0].set(
        xticks=xs,
        xticklabels=keys,
        xlabel="S/N per pixel at the median flux",
        ylabel="R² of the posterior mean",
        title="accuracy vs S/N",
    )
    axes[0].legend(fontsize=7, ncol=2)
    dev = [snr_metrics[k]["coverage"]["max_abs_deviation_all"] for k in keys]
    axes[1].plot(xs, dev, "o-", color="C3")
    axes[1].axhline(0.05, color="k", ls="--", lw=1)
    axes[1].set(
        xticks=xs,
        xticklabels=keys,
        xlabel="S/N",
        ylabel="max |empirical − nominal| coverage",
        title="calibration vs S/N",
        ylim=(0, None),
    )
    fig.suptitle(title)
    return _save(fig, path)


def plot_reconstruction(wavelength, examples: list[dict], path, title: str = "") -> Path:
    """Input vs reconstructed spectra (posterior mean + 16-84 % band), residuals below each."""
    _style()
    k = len(examples)
    fig, axes = plt.subplots(
        2 * k,
        1,
        figsize=(11, 2.6 * k),
        layout="constrained",
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.2] * k},
        squeeze=False,
    )
    axes = axes.ravel()
    for j, ex in enumerate(examples):
        ax, rx = axes[2 * j], axes[2 * j + 1]
        ax.fill_between(
            wavelength, ex["band"][0], ex["band"][1], color="C1", alpha=0.35, lw=0, label="posterior 16–84 %"
        )
        ax.plot(wavelength, ex["flux"], color="k", lw=0.6, label="input")
        ax.plot(wavelength, ex["model"], color="C1", lw=0.6, label="reconstructed (posterior mean)")
        ax.set(ylabel="flux / median")
        ax.text(
            0.01,
            0.95,
            ex["text"],
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox=dict(fc="white", ec="0.8", alpha=0.85),
        )
        if j == 0:
            ax.legend(fontsize=8, loc="lower right", ncol=3)
        res = ex["flux"] - ex["model"]
        rx.fill_between(
            wavelength, ex["band"][0] - ex["model"], ex["band"][1] - ex["model"], color="C1", alpha=0.35, lw=0
        )
        rx.plot(wavelength, res, color="k", lw=0.5)
        rx.axhline(0, color="C1", lw=0.8)
        lim = max(0.02, 1.2 * np.percentile(np.abs(res), 99.5))
        rx.set(ylabel="residual", ylim=(-lim, lim))
    axes[-1].set(xlabel="wavelength (Å)")
    fig.suptitle(title)
    return _save(fig, path)


def plot_reconstruction_rms(rms: np.ndarray, rms_true: np.ndarray | None, path, title: str = "") -> Path:
    _style()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    vals = [np.asarray(rms)] + ([np.asarray(rms_true)] if rms_true is not None else [])
    hi = max(np.percentile(v, 99.5) for v in vals)
    bins = np.linspace(0, hi * 1.05, 40)
    ax.hist(
        100 * np.asarray(rms),
        bins=100 * bins,
        color="C1",
        alpha=0.7,
        label=f"posterior mean (median {100 * np.median(rms):.2f} %)",
    )
    if rms_true is not None:
        ax.hist(
            100 * np.asarray(rms_true),
            bins=100 * bins,
            histtype="step",
            color="k",
            lw=1.5,
            label=f"true percentiles (median {100 * np.median(rms_true):.2f} %)",
        )
    ax.set(
        xlabel="residual rms (% of the median flux)", ylabel="test spectra", title=title or "reconstruction residuals"
    )
    ax.legend(fontsize=8)
    return _save(fig, path)
