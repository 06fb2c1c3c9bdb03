"""Aggregate the simulator chunks into one netCDF: theta (sample, parameter), abundance (sample, element), split."""

import numpy as np
import xarray as xr

from galaxy_sbi.chem import PARAMETER_NAMES
from galaxy_sbi.chem.datasets import OBS_LABELS
from galaxy_sbi.io import provenance_attrs, write_netcdf
from galaxy_sbi.workflow import run_script


def main(smk):
    theta, x, split, acc = [], [], [], []
    for path in smk.input.chunks:
        with np.load(path) as d:
            for s in ("train", "validation", "population"):
                theta.append(d[f"theta_{s}"])
                x.append(d[f"x_{s}"])
                split += [s] * len(d[f"theta_{s}"])
                acc.append(float(d[f"acceptance_{s}"]))
    ds = xr.Dataset(
        {
            "theta": (("sample", "parameter"), np.concatenate(theta)),
            "abundance": (("sample", "observable"), np.concatenate(x), {"units": "dex"}),
        },
        coords={
            "parameter": list(PARAMETER_NAMES),
            "observable": list(OBS_LABELS),
            "split": ("sample", np.array(split)),
        },
        attrs={
            **provenance_attrs(smk.params.chem, "chem_collect"),
            "description": "accepted simulator runs (rejected sets dropped); split train / validation: the uniform "
            "training box, population: the Gaussian population prior (the study's distribution "
            "at the seed's time); [H/Fe] = -[Fe/H] dropped",
            "mean_acceptance": float(np.mean(acc)),
        },
    )
    write_netcdf(ds, smk.output.simulations)


run_script(main, snakemake)  # noqa: F821
