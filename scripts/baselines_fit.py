"""Rule baselines_fit: ANPE, emcee (parametric family) and pPXF on the same picked test spectra of one family."""

import json
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from galaxy_sbi.spectra import baselines
from galaxy_sbi.spectra.datasets import load_family
from galaxy_sbi.spectra.encoder import load_encoder
from galaxy_sbi.spectra.posterior import SpectraPosterior
from galaxy_sbi.spectra.ppxf_baseline import write_sps_templates
from galaxy_sbi.workflow import run_script


def main(smk):
    p = smk.params
    data = load_family(list(smk.input.cubes))
    post = SpectraPosterior.load(smk.input.posterior)
    encoder_seconds = json.loads(Path(smk.input.encoder_metrics).read_text()).get("training_time_s", np.nan)
    training = encoder_seconds + post.summary.get("training_time_s", np.nan)
    with (
        xr.open_dataset(smk.input.grid) as grid,
        xr.open_dataset(smk.input.library) as library,
        tempfile.TemporaryDirectory() as tmp,
    ):
        grid, allowed = baselines.single_alpha(grid.load(), data)
        library = baselines.library_at_alpha(library.load(), grid)
        rows = baselines.pick_spectra(data, p.baselines["n_spectra"], p.baselines["seed"], allowed)
        sps = write_sps_templates(grid.isel(age=slice(None, None, p.baselines["ppxf"]["age_step"])), f"{tmp}/sps.npz")
        out = baselines.fit_family(
            data,
            rows,
            load_encoder(smk.input.encoder),
            post,
            grid,
            library,
            p.baselines,
            p.sfh_parametric,
            sps,
            training,
            p.instrument,
        )
    np.savez(smk.output.fits, **out)


run_script(main, snakemake)  # noqa: F821
