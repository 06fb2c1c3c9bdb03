"""Minutes per stage of a finished run, from the benchmark file every rule writes (logs/benchmarks/).

    python benchmarks/sum_rule_benchmarks.py [WORKDIR] [--wall-s SECONDS] [--json OUT.json]

Prints the README's Markdown table (job minutes per stage: the sum of its jobs' wall times, so stages that ran
side by side add up to more than the run's wall time; peak RSS of the largest job) and writes it as JSON.
--wall-s is the run's own end-to-end wall time (measured outside Snakemake, e.g. with /usr/bin/time).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from galaxy_sbi.benchmarking import cpu_model  # noqa: E402

# stage -> its name in the README
STAGES = {
    "ssp": "SSP library",
    "sfh": "SFHs",
    "spectra": "synthetic spectra",
    "encoder": "encoder training",
    "latents": "latents and their plots",
    "npe": "spectra NPEs",
    "evaluation": "evaluation and reconstruction",
    "baselines": "baselines (ANPE, emcee, pPXF)",
    "observed": "observed galaxies (own target)",
    "chem": "chemistry graph",
}
# rule-name prefix -> stage (benchmarks are logs/benchmarks/{rule}/..., workflow/rules/common.smk: bench); first match
RULE_STAGES = (
    ("npe_train", "npe"),
    ("npe_", "evaluation"),
    ("reconstruction", "evaluation"),
    ("off_grid_test_set", "evaluation"),  # the evaluation's headline test set
    ("conditioning", "evaluation"),
    ("cross_library", "ssp"),
    ("error_spectra", "spectra"),  # the noise's wavelength dependence, read by the encoders and NPEs
    ("baselines", "baselines"),
    ("observed", "observed"),
    ("ssp", "ssp"),
    ("sfh", "sfh"),
    ("spectra", "spectra"),
    ("encoder", "encoder"),
    ("latents", "latents"),
    ("chem", "chem"),
)


def stage_of(job: str) -> str:
    """Stage of a benchmark file named logs/benchmarks/{rule}[/{wildcards}]."""
    rule = job.split("/")[0]
    return next((stage for prefix, stage in RULE_STAGES if rule.startswith(prefix)), rule)


def read_benchmarks(workdir: Path) -> list[dict]:
    rows = []
    for path in sorted((workdir / "logs" / "benchmarks").rglob("*.tsv")):
        with path.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                rss = row.get("max_rss", "NA")
                job = str(path.relative_to(workdir / "logs" / "benchmarks").with_suffix(""))
                rows.append(
                    {
                        "job": job,
                        "stage": stage_of(job),
                        "wall_s": float(row["s"]),
                        "max_rss_mb": float(rss) if rss not in ("NA", "-") else None,
                    }
                )
    return rows


def summarise(rows: list[dict]) -> dict:
    stages = defaultdict(lambda: {"jobs": 0, "job_minutes": 0.0, "max_rss_mb": 0.0, "longest_job": ("", 0.0)})
    for r in rows:
        s = stages[r["stage"]]
        s["jobs"] += 1
        s["job_minutes"] += r["wall_s"] / 60
        s["max_rss_mb"] = max(s["max_rss_mb"], r["max_rss_mb"] or 0.0)
        if r["wall_s"] > s["longest_job"][1]:
            s["longest_job"] = (r["job"], r["wall_s"])
    order = [k for k in STAGES if k in stages] + sorted(set(stages) - set(STAGES))
    return {
        k: {
            **stages[k],
            "longest_job": {"job": stages[k]["longest_job"][0], "minutes": round(stages[k]["longest_job"][1] / 60, 2)},
            "job_minutes": round(stages[k]["job_minutes"], 2),
        }
        for k in order
    }


def markdown(summary: dict, wall_s: float | None) -> str:
    lines = ["| stage | jobs | job minutes | longest job (min) | peak RSS (GB) |", "|---|---|---|---|---|"]
    for key, s in summary.items():
        lines.append(
            f"| {STAGES.get(key, key)} | {s['jobs']} | {s['job_minutes']:.1f} | "
            f"{s['longest_job']['job']} ({s['longest_job']['minutes']:.1f}) | {s['max_rss_mb'] / 1024:.1f} |"
        )
    total = sum(s["job_minutes"] for s in summary.values())
    lines.append(f"| **all jobs** | {sum(s['jobs'] for s in summary.values())} | {total:.1f} | | |")
    if wall_s is not None:
        lines.append(f"| **end to end (wall)** | | {wall_s / 60:.1f} | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", nargs="?", default=".", type=Path)
    ap.add_argument("--wall-s", type=float, default=None, help="end-to-end wall time of the run, seconds")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here")
    args = ap.parse_args(argv)
    rows = read_benchmarks(args.workdir)
    if not rows:
        print(f"no benchmark files under {args.workdir / 'logs/benchmarks'}: run the workflow first", file=sys.stderr)
        return 1
    summary = summarise(rows)
    print(markdown(summary, args.wall_s))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
                    "wall_s": args.wall_s,
                    "stages": summary,
                    "jobs": rows,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
