"""The baselines stage: time per spectrum against accuracy, and one spectrum's posteriors from all methods."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .style import label_title, save, use_style

METHOD_STYLE = {"anpe": ("C3", "ANPE"), "emcee": ("C0", "emcee"), "ppxf": ("C2", "pPXF")}


def plot_time_vs_error(results: list[dict], path: str | Path, label: str = "t50") -> Path:
    """|error of ``label``| of every spectrum against its wall time (log), one panel per family; marker by setting
    (S/N, sigma)."""
    use_style()
    families = sorted({r["family"] for r in results}, key=lambda f: f != "parametric")
    settings = sorted({(r["snr"], r.get("sigma_kms", 0.0)) for r in results}, key=lambda s: (s[1], -s[0]))
    markers = dict(zip(settings, "os^Dv<>"))
    fig, axes = plt.subplots(1, len(families), figsize=(5.2 * len(families), 4.2), layout="constrained", squeeze=False)
    for ax, family in zip(axes[0], families):
        for r in (r for r in results if r["family"] == family):
            colour, name = METHOD_STYLE[r["method"]]
            i = r["labels"].index(label)
            err = np.abs(r["estimate"][:, i] - r["truth"][:, i])
            setting = (r["snr"], r.get("sigma_kms", 0.0))
            ax.scatter(r["seconds"], err, color=colour, marker=markers[setting], s=28, alpha=0.8,
                       label=f"{name}, S/N {setting[0]:g}, σ {setting[1]:g}")  # fmt: skip
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="wall time per spectrum (s, one core)",
            ylabel=f"|error| of {label_title(label)} (Gyr)",
        )
        ax.set_title(f"{family} family", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    return save(fig, path)


def plot_example_posteriors(example: dict, path: str | Path, labels=("t10", "t50", "t90", "metallicity")) -> Path:
    """One spectrum: ANPE's and emcee's posterior samples over each other, pPXF's estimate +- its bootstrap sd."""
    use_style()
    names = example["labels"]
    fig, axes = plt.subplots(1, len(labels), figsize=(3.3 * len(labels), 3.2), layout="constrained")
    for ax, lab in zip(axes, labels):
        i = names.index(lab)
        for method in ("anpe", "emcee"):
            if method in example["samples"]:
                colour, name = METHOD_STYLE[method]
                ax.hist(example["samples"][method][:, i], bins=40, density=True, histtype="stepfilled", alpha=0.35,
                        color=colour, label=name)  # fmt: skip
        if "ppxf" in example["estimate"]:
            est, sd = example["estimate"]["ppxf"][i], example["sd"]["ppxf"][i]
            ax.axvspan(est - sd, est + sd, color=METHOD_STYLE["ppxf"][0], alpha=0.25, label="pPXF ± boot. sd")
            ax.axvline(est, color=METHOD_STYLE["ppxf"][0], lw=1.5)
        ax.axvline(example["truth"][i], color="k", ls="--", lw=1.2, label="truth")
        ax.set(xlabel=label_title(lab) + (" (dex)" if lab == "metallicity" else " (Gyr)"), yticks=[])
    axes[0].legend(fontsize=7)
    sigma = f", σ {example['sigma_kms']:g} km/s" if example.get("sigma_kms") else ""
    fig.suptitle(f"{example['family']} test spectrum {example['row']} at S/N {example['snr']:g}{sigma}", fontsize=10)
    return save(fig, path)
