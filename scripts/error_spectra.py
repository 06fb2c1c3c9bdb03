"""Rule error_spectra: the listed observed error spectra's shapes on the model grid -> error_spectra.{nc,png}."""

import xarray as xr

from galaxy_sbi.io import provenance_attrs
from galaxy_sbi.plots import plot_error_spectra
from galaxy_sbi.spectra.error_spectra import error_spectra_dataset
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    with xr.open_dataset(smk.input.grid) as grid:
        wavelength = grid["wavelength"].values.astype(float)
    ds = error_spectra_dataset(
        p.error_spectra["sources"], wavelength, p.preparation, p.error_spectra["smooth_angstrom"]
    )
    ds.attrs.update(provenance_attrs({"error_spectra": p.error_spectra}, stage="error_spectra"))
    ds.to_netcdf(smk.output.shapes)
    plot_error_spectra(ds, p.error_spectra["power_range"], p.error_spectra["evaluation"], smk.output.png)


run_script(main, snakemake)  # noqa: F821
