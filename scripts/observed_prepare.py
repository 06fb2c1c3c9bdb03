"""Rule observed_prepare: read one galaxy's spectrum, check it, put it on the model grid, measure its sigma."""

import tempfile

import xarray as xr

from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.spectra.observed import prepare_galaxy
from galaxy_sbi.spectra.ppxf_baseline import write_sps_templates
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    with xr.open_dataset(smk.input.grid) as grid, tempfile.TemporaryDirectory() as tmp:
        sps = write_sps_templates(grid.load().isel(age=slice(None, None, p.ppxf["age_step"])), f"{tmp}/sps.npz")
        ds = prepare_galaxy(smk.wildcards.galaxy, p.entry, smk.input.grid, p.preparation, p.ppxf, sps)
    ds.attrs.update(provenance_attrs({"entry": p.entry, "preparation": p.preparation}, "observed_prepare"))
    write_netcdf(ds, smk.output.prepared)


run_script(main, snakemake)  # noqa: F821
