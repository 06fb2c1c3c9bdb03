"""The study's table (CSV + Markdown), estimate vs number of stars, and results/chem/metrics.json."""

import json
import logging
from pathlib import Path

import numpy as np

from galaxy_sbi.chem.report import DATASET_NAMES, STUDY_TARGETS, markdown, summarise, write_csv
from galaxy_sbi.plots import plot_chem_vs_nstars
from galaxy_sbi.workflow import run_script


def main(smk):
    log = logging.getLogger("chem_report")
    results = [json.loads(Path(f).read_text()) for f in smk.input.multistar]
    emu = json.loads(Path(smk.input.emulator).read_text())
    npe = json.loads(Path(smk.input.npe).read_text())
    syst = json.loads(Path(smk.input.systematics).read_text())
    rows, per_set = summarise(results)
    write_csv(rows, smk.output.csv)
    Path(smk.output.md).write_text(markdown(rows, syst.get("sys_sd", [0, 0]), smk.params.skipped))
    plot_chem_vs_nstars(results, DATASET_NAMES, smk.output.png)
    sim = per_set.get("simulator", {})
    sim_timing = next((r["timing"] for r in results if r["dataset"] == "simulator"), {})
    metrics = {
        "emulator": {
            "ape_percent": emu["ape_percent"],
            "n_train": emu["n_train"],
            "n_validation": emu["n_validation"],
            "ape_percent_population": emu.get("ape_percent_population"),
            "ape_median_per_observable": emu.get("ape_median_per_observable"),
            "training_time_s": emu.get("training_time_s"),
            "note": emu.get("note"),
        },
        "npe": {
            "ape_percent_all": npe["ape_percent_all"],
            "ape_percent": npe["ape_percent"],
            "ape_percent_all_population": npe.get("ape_percent_all_population"),
            "ape_percent_globals": npe.get("ape_percent_globals"),
            "note": "the study's 9.1 (+16.6 -6.2) % is the median APE of the posterior mean pooled over ALL six "
            "parameters (25/75 % quartiles) on CHEMPY sets drawn from the Gaussian population prior: "
            "ape_percent_all_population; ape_percent_all: the same on the uniform-box validation sets",
            "sbc_ks_pvalue": npe["sbc_ks_pvalue"],
            "tarp_atc": npe["tarp_atc"],
            "tarp_ks_pvalue": npe["tarp_ks_pvalue"],
        },
        "multistar": per_set,
        "systematics": {
            k: syst.get(k)
            for k in ("sys_sd", "sys_cov", "mean_offset", "rms_offset", "mean_stat_sd", "n_galaxies", "n_stars")
        },
        "timing": {"npe_1000_stars": sim_timing},
        "studies": "coverage over mock galaxies (coverage_metrics.json) and the emcee timing (timing_emcee.json): "
        "`snakemake chem_studies`",
        "targets_from_the_seed": STUDY_TARGETS,
        "reached": {
            "emulator_ape_median_percent": emu["ape_percent"]["median"],
            "npe_ape_median_percent": (npe.get("ape_percent_all_population") or {}).get("median"),
            "npe_ape_median_percent_box": npe["ape_percent_all"]["median"],
            "npe_ape_median_percent_globals": (npe.get("ape_percent_globals") or {}).get("median"),
            "emulator_ape_median_percent_population": (emu.get("ape_percent_population") or {}).get("median"),
            "alpha_imf_delta_percent": sim.get("grid", {}).get("delta_percent", [None])[0],
            "log10_n_ia_delta_percent": sim.get("grid", {}).get("delta_percent", [None, None])[1],
            "alpha_imf_delta_percent_gaussian": sim.get("gaussian", {}).get("delta_percent", [None])[0],
            "log10_n_ia_delta_percent_gaussian": sim.get("gaussian", {}).get("delta_percent", [None, None])[1],
            "alpha_imf_1000_stars_grid": sim.get("grid", {}).get("alpha_IMF"),
            "log10_n_ia_1000_stars_grid": sim.get("grid", {}).get("log10_N_Ia"),
            "truth_within_2sigma_grid": (
                None if "grid" not in sim else bool(np.all(np.abs(np.asarray(sim["grid"]["pull"])) <= 2))
            ),
            "seconds_gaussian": sim_timing.get("gaussian_s"),
            "seconds_grid": sim_timing.get("grid_s"),
            "n_stars": sim_timing.get("n_stars"),
        },
        "skipped": list(smk.params.skipped),
    }
    Path(smk.output.metrics).write_text(json.dumps(metrics, indent=2, default=float))
    log.info("reached: %s", metrics["reached"])


run_script(main, snakemake)  # noqa: F821
