"""Rule miles_models_fetch: ppxf 8.1.0's E-MILES SSPs from its source distribution on PyPI, unpacked."""

from galaxy_sbi.spectra.miles_download import fetch_ppxf_miles_models
from galaxy_sbi.workflow import run_script


def main(smk):
    fetch_ppxf_miles_models(smk.output.models)


run_script(main, snakemake)  # noqa: F821
