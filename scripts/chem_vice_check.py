"""Rule chem_vice_check: the VICE data set's stars against our simulator at the same parameters and yields."""

import json

import numpy as np

from galaxy_sbi.chem.datasets import OBS_LABELS, load_yields, vice_against_simulator
from galaxy_sbi.plots import plot_vice_against_simulator
from galaxy_sbi.workflow import run_script


def main(smk):
    preset = smk.params.preset
    with np.load(smk.input.data) as d:
        data = {"theta": d["theta"], "true": d["true"]}
    comparison = vice_against_simulator(data, load_yields({"source": "vice", "preset": preset}))
    plot_vice_against_simulator(comparison, list(OBS_LABELS), smk.output.png, preset)
    summary = {k: v for k, v in comparison.items() if k not in ("vice", "ours")}
    summary["note"] = (
        "VICE - ours at the same (alpha_IMF, log10_N_Ia, locals, birth time) and the same published "
        "yields: the difference is the code (see galaxy_sbi.chem.datasets.vice_galaxy for the mapping)"
    )
    with open(smk.output.summary, "w") as f:
        json.dump({"preset": preset, **summary}, f, indent=2)


run_script(main, snakemake)  # noqa: F821
