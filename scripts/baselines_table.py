"""Rule baselines_table: the comparison table (CSV, Markdown), speed-ups, time-vs-error and example posteriors."""

import csv
import json

import numpy as np

from galaxy_sbi.benchmarking import cpu_model
from galaxy_sbi.plots import plot_example_posteriors, plot_time_vs_error
from galaxy_sbi.spectra import baselines
from galaxy_sbi.workflow import run_script


def main(smk):
    results, example, training = baselines.load_results(list(smk.input.fits))
    rows = baselines.table_rows(results)
    speedups = baselines.ratios(rows, training)
    with open(smk.output.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(smk.output.md, "w") as f:
        f.write(baselines.markdown(rows, speedups, cpu_model(), training))
    summary = {"rows": rows, "speedups": speedups, "anpe_training_seconds": training, "machine": cpu_model()}
    summary["anpe_batch_seconds_per_spectrum"] = {
        f"{r['family']}/{baselines.setting_key(r)}": float(r["batch_seconds_per_spectrum"])
        for r in results
        if r["method"] == "anpe"
    }
    summary["emcee_runs"] = {
        baselines.setting_key(r): baselines.emcee_summary(r) for r in results if r["method"] == "emcee"
    }
    summary["ppxf_sigma_fitted_kms_median"] = {
        f"{r['family']}/{baselines.setting_key(r)}": float(np.median(r["sigma_fitted_kms"]))
        for r in results
        if r["method"] == "ppxf"
    }
    with open(smk.output.summary, "w") as f:
        json.dump(summary, f, indent=1)
    plot_time_vs_error(results, smk.output.time_vs_error)
    plot_example_posteriors(example, smk.output.example)


run_script(main, snakemake)  # noqa: F821
