# galaxy-sbi: simulation-based inference of galaxy properties.
#   snakemake --cores all                              the embedded default (offline, laptop-sized)
#   snakemake --cores all --configfile config/paper.yaml   the seeds' full scale
#   snakemake --profile profiles/slurm                 on a SLURM cluster
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The rules import the library (installed with `pip install -e .`); the Snakefile itself also works
# from a snakemake outside that environment (--sdm conda), so it looks in src/ first.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from galaxy_sbi.config import validate_config
from galaxy_sbi.errors import ConfigError


# Absolute, so that `snakemake -d <workdir>` still finds the embedded default.
configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


# One message naming the offending key, before any job is scheduled.
try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


# The report's front page (snakemake --report results/report.html) shows this run's headline numbers, read
# from the metrics files at parse time; no rule reads this key.
from galaxy_sbi.report import headline_rst

config["report_headline"] = headline_rst(
    "results", config["sfh"]["families"], list(config["observed"]["galaxies"])
)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ssp.smk"
include: "workflow/rules/spectra.smk"
include: "workflow/rules/encoder.smk"
include: "workflow/rules/latents.smk"
include: "workflow/rules/chem.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/observed.smk"
include: "workflow/rules/ssp_systematic.smk"


rule all:
    default_target: True
    input:
        rules.ssp.input,
        rules.spectra.input,
        rules.latents.input,
        rules.chem.input,
        rules.posterior.input,
        rules.baselines.input,
