"""Figures a person browses in results/, one module per stage over one shared style (:mod:`.style`).

Plotting functions take computed numbers (metrics, coverage, ranks); the one SBC and the one TARP plot
(:mod:`.calibration`) serve both graphs."""

from .baselines import plot_example_posteriors, plot_time_vs_error
from .calibration import plot_sbc, plot_tarp
from .chem import (
    plot_chem_coverage,
    plot_chem_emulator_ape,
    plot_chem_emulator_loss,
    plot_chem_timing,
    plot_chem_vs_nstars,
    plot_vice_against_simulator,
)
from .latents import (
    plot_latent_correlation,
    plot_latent_distributions,
    plot_latent_flux_correlation,
    plot_latent_umap,
    plot_predicted_vs_true,
)
from .posterior import (
    plot_accuracy_vs_snr,
    plot_conditioning,
    plot_degraded_grid,
    plot_posterior_accuracy,
    plot_posterior_coverage,
    plot_reconstruction,
    plot_reconstruction_rms,
)
from .spectra import (
    plot_error_spectra,
    plot_label_distributions,
    plot_sfh_examples,
    plot_spectra_examples,
    plot_ssp_overview,
)
from .style import LABEL_NAMES, SPECTRAL_FEATURES, label_title, mark_features

__all__ = [
    "LABEL_NAMES",
    "SPECTRAL_FEATURES",
    "label_title",
    "mark_features",
    "plot_accuracy_vs_snr",
    "plot_error_spectra",
    "plot_conditioning",
    "plot_degraded_grid",
    "plot_example_posteriors",
    "plot_time_vs_error",
    "plot_chem_coverage",
    "plot_chem_emulator_ape",
    "plot_chem_emulator_loss",
    "plot_chem_timing",
    "plot_chem_vs_nstars",
    "plot_label_distributions",
    "plot_latent_correlation",
    "plot_latent_distributions",
    "plot_latent_flux_correlation",
    "plot_latent_umap",
    "plot_posterior_accuracy",
    "plot_posterior_coverage",
    "plot_predicted_vs_true",
    "plot_reconstruction",
    "plot_reconstruction_rms",
    "plot_sbc",
    "plot_sfh_examples",
    "plot_spectra_examples",
    "plot_ssp_overview",
    "plot_tarp",
    "plot_vice_against_simulator",
]
