"""Rule observed_ppxf: pPXF's regularised population fit of one prepared galaxy with the project's SSPs."""

import tempfile

import numpy as np
import xarray as xr

from galaxy_sbi.spectra.observed import load_prepared, ppxf_fit
from galaxy_sbi.spectra.ppxf_baseline import write_sps_templates
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    prepared, _ = load_prepared(smk.input.prepared)
    with xr.open_dataset(smk.input.sfh) as sfh:
        t_obs, t_start = float(sfh.attrs["t_obs_gyr"]), float(sfh["time"].values[0])
    with xr.open_dataset(smk.input.grid) as grid, tempfile.TemporaryDirectory() as tmp:
        sps = write_sps_templates(grid.load().isel(age=slice(None, None, p.ppxf["age_step"])), f"{tmp}/sps.npz")
        fit = ppxf_fit(prepared, sps, p.ppxf, t_obs, t_start, p.seed)
    np.savez(smk.output.fit, t_obs=t_obs, t_start=t_start, **fit)


run_script(main, snakemake)  # noqa: F821
