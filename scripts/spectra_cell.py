"""Rule spectra_cell: the labelled spectra of one SFH family in one ([M/H], [alpha/Fe]) cell."""

import xarray as xr

from galaxy_sbi.io import provenance_attrs
from galaxy_sbi.spectra.synth import build_cell, write_cube
from galaxy_sbi.workflow import run_script, runtime


def main(smk):
    cfg, seed = smk.params.spectra, smk.params.seed
    with (
        xr.open_dataset(smk.input.sfh) as sfh,
        xr.open_dataset(smk.input.grid) as grid,
        xr.open_dataset(smk.input.library) as library,
    ):
        cube = build_cell(sfh, grid.load(), smk.wildcards.cell, cfg, seed, library=library.load())
    cube.attrs.update(
        provenance_attrs(
            {"spectra": cfg, "seed": seed}, stage=f"spectra_cell {smk.wildcards.family} {smk.wildcards.cell}"
        )
    )
    cube.attrs["sfh_config_hash"] = sfh.attrs.get("config_hash", "?")
    cube.attrs["ssp_config_hash"] = grid.attrs.get("config_hash", "?")
    storage = runtime(smk, "spectra")
    write_cube(cube, smk.output.cube, storage["chunk_samples"], storage["complevel"])


run_script(main, snakemake)  # noqa: F821
