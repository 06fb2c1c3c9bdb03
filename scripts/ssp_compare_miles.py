"""Rule ssp_compare_miles: real MILES SSPs read, FASTAR synthesised at their ages / [M/H] / IMF, the two compared."""

import json

from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.plots.ssp_systematic import plot_library_residuals
from galaxy_sbi.spectra.ssp import MILES_FLAVOUR_KEYS, load_miles_fits, miles_grid
from galaxy_sbi.spectra.ssp_systematic import compare_libraries, comparison_summary, fastar_twin
from galaxy_sbi.workflow import run_script


def main(smk):
    cfg = smk.params.miles
    flavour = miles_grid(smk.input.miles, **{k: cfg.get(k) for k in MILES_FLAVOUR_KEYS})["flavour"]
    miles = load_miles_fits(smk.input.miles, None, None, "base", **flavour)
    miles.attrs.update(provenance_attrs(cfg, stage="ssp_compare_miles"))
    write_netcdf(miles, smk.output.miles, chunk_sizes={"metallicity": 1})
    comparison = compare_libraries(fastar_twin(miles, flavour), miles)
    write_netcdf(comparison, smk.output.comparison)
    with open(smk.output.summary, "w") as f:
        json.dump(comparison_summary(comparison), f, indent=2)
    plot_library_residuals(comparison, smk.output.png)


run_script(main, snakemake)  # noqa: F821
