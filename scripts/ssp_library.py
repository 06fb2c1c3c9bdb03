"""Rule ssp_library: build the native SSP cube from the configured source."""

from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.spectra.ssp import load_library
from galaxy_sbi.workflow import run_script


def main(smk):
    cfg = smk.params.ssp
    library = load_library(cfg)
    library.attrs.update(provenance_attrs(cfg, stage="ssp_library"))
    write_netcdf(library, smk.output.library, chunk_sizes={"alpha": 1, "metallicity": 1})


run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
