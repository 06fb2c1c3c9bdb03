"""Rule ssp_interpolate: put the native cube on the configured [M/H] / [alpha/Fe] grid."""

import xarray as xr

from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.spectra.ssp import interpolate_library
from galaxy_sbi.workflow import run_script


def main(smk):
    grid = smk.params.grid
    with xr.open_dataset(smk.input.library) as library:
        out = interpolate_library(library.load(), grid["metallicities"], grid["alphas"])
    out.attrs.update(provenance_attrs(grid, stage="ssp_interpolate"))
    write_netcdf(out, smk.output.grid, chunk_sizes={"alpha": 1, "metallicity": 1})


run_script(main, snakemake)  # noqa: F821
