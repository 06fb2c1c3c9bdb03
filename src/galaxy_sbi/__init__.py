"""galaxy-sbi: simulation-based inference of galaxy properties (spectra -> SFHs, abundances -> GCE parameters)."""

__version__ = "0.1.0"
