"""Rule spectra_plots: example SFHs, example spectra and label distributions of one family."""

import numpy as np
import xarray as xr

from galaxy_sbi.plots import plot_label_distributions, plot_sfh_examples, plot_spectra_examples
from galaxy_sbi.workflow import run_script


def main(smk):
    with xr.open_dataset(smk.input.sfh) as sfh:
        plot_sfh_examples(sfh.load(), smk.output.sfhs)
    cubes = [xr.open_dataset(path) for path in smk.input.cubes]
    try:
        plot_spectra_examples(cubes, smk.output.spectra)
        names = [str(p) for p in cubes[0]["parameter"].values]
        labels = np.concatenate([c["labels"].values for c in cubes])
        split = np.concatenate([c["split"].values.astype(str) for c in cubes])
        title = (
            f"{cubes[0].attrs['family']} labels: {len(labels)} spectra in {len(cubes)} cells "
            f"({', '.join(f'{s} {np.mean(split == s):.0%}' for s in ('train', 'validation', 'test'))})"
        )
        plot_label_distributions(labels, names, split, smk.output.labels, title=title)
    finally:
        for cube in cubes:
            cube.close()


run_script(main, snakemake)  # noqa: F821
