"""The study's table (CSV + Markdown), estimate vs number of stars, and results/chem/metrics.json."""

import json
import logging
from pathlib import Path

from galaxy_sbi.chem.report import DATASET_NAMES, markdown, report_metrics, summarise, write_csv
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
    metrics = report_metrics(emu, npe, syst, results, per_set, smk.params.skipped)
    Path(smk.output.metrics).write_text(json.dumps(metrics, indent=2, default=float))
    log.info("reached: %s", metrics["reached"])


run_script(main, snakemake)  # noqa: F821
