"""Rule observed_summary: table, plots and summary.json of one galaxy (matched ANPE, pPXF, the checks)."""

import json

import numpy as np
import xarray as xr

from galaxy_sbi.spectra.observed import load_prepared, summarise, write_json
from galaxy_sbi.spectra.reconstruction import Reconstructor
from galaxy_sbi.workflow import run_script


def main(smk):
    prepared, _ = load_prepared(smk.input.prepared)
    with xr.open_dataset(smk.input.samples) as ds:
        samples, names = ds["samples"].values.astype(float), [str(n) for n in ds["parameter"].values]
    ppxf = dict(np.load(smk.input.ppxf))
    checks = json.loads(open(smk.input.checks).read())
    rec = Reconstructor.from_files(smk.input.grid, smk.input.sfh, ends=smk.params.reconstruction_ends)
    cross = json.loads(open(smk.input.cross_library).read()) if "cross_library" in smk.input.keys() else None
    summary = summarise(smk.wildcards.galaxy, prepared, samples, names, ppxf, checks, rec, dict(smk.output), cross)
    write_json(summary, smk.output.summary)


run_script(main, snakemake)  # noqa: F821
