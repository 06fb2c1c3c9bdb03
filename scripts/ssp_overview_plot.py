"""Rule ssp_overview_plot: example SSPs of several ages and metallicities."""

import xarray as xr

from galaxy_sbi.plots import plot_ssp_overview
from galaxy_sbi.workflow import run_script


def main(smk):
    with xr.open_dataset(smk.input.library) as library:
        plot_ssp_overview(library.load(), smk.params.plot["ages_gyr"], smk.params.plot["metallicities"], smk.output.png)


run_script(main, snakemake)  # noqa: F821
