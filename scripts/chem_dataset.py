"""Rule chem_dataset: observables of the stars of one galaxy (one data set)."""

import logging

import numpy as np

from galaxy_sbi.chem.datasets import OBS_LABELS, build_dataset
from galaxy_sbi.workflow import run_script


def main(smk):
    name = smk.wildcards.dataset
    # this data set's settings only (workflow/rules/common.smk: chem_dataset_settings)
    data, truth, note = build_dataset(name, smk.params.dataset)
    logging.getLogger("chem_dataset").info("%s: %d stars; %s", name, len(data["obs"]), note)
    np.savez(
        smk.output.data,
        obs=data["obs"],
        true=data["true"],
        truth=truth,
        labels=np.array(OBS_LABELS),
        note=np.array(note),
        **({"theta": data["theta"]} if "theta" in data else {}),  # the stars' parameters, where they are known
    )


run_script(main, snakemake)  # noqa: F821
