"""The front page of `snakemake --report`: this run's headline numbers as reStructuredText tables.

Read from the metrics files the run wrote (the standard library only: the Snakefile calls it while parsing);
a stage that has not run yet is said to be missing, not left blank.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

SPECTRA_LABELS = [f"t{p}" for p in range(10, 100, 10)] + ["metallicity", "alpha"]
CHEM_COLUMNS = ["data set", "combination", "stars", "α_IMF", "log10 N_Ia", "Δα_IMF %", "Δlog10 N_Ia %"]


def rst_table(header: list[str], rows: list[list[str]]) -> str:
    """A reStructuredText grid table (cells may hold any text, including '|')."""
    cells = [header, *rows]
    width = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    line = "+" + "+".join("-" * (w + 2) for w in width) + "+"

    def row(r):
        return "|" + "|".join(f" {str(c).ljust(w)} " for c, w in zip(r, width)) + "|"

    body = [line, row(header), line.replace("-", "=")]
    for r in rows:
        body += [row(r), line]
    return "\n".join(body)


def spectra_headline(results: Path, families: list[str]) -> str:
    rows, names = [], None
    for family in families:
        path = results / "evaluation" / family / "metrics.json"
        if not path.is_file():
            rows.append([family, "not run yet (snakemake posterior)"])
            continue
        m = json.loads(path.read_text())
        names = [n for n in SPECTRA_LABELS if n in m["labels"]]
        dev = m["coverage"]["max_abs_deviation"]
        rows.append([f"{family} R²"] + [f"{m['labels'][n]['r2']:.3f}" for n in names])
        rows.append(
            [f"{family} coverage"]
            + [f"{dev[n]:.3f}" if n in dev else "–" for n in names]
            + ([f"{dev['joint']:.3f}"] if "joint" in dev else [])
        )
    if names is None:
        return "Spectra graph: no evaluation yet (``snakemake posterior``)."
    header = ["test split"] + [{"metallicity": "[M/H]", "alpha": "[α/Fe]"}.get(n, n) for n in names] + ["joint"]
    rows = [r if len(r) == len(header) else r + [""] * (len(header) - len(r)) for r in rows]
    return rst_table(header, rows)


def chem_headline(results: Path) -> str:
    path = results / "chem" / "table.csv"
    if not path.is_file():
        return "Chemistry graph: no table yet (``snakemake chem``)."
    with path.open() as f:
        rows = list(csv.DictReader(f))
    out = [
        [
            r["data set"],
            r["combination"],
            r["stars"],
            f"{float(r['alpha_IMF']):.3f} ± {float(r['alpha_IMF_err']):.3f}",
            f"{float(r['log10_N_Ia']):.3f} ± {float(r['log10_N_Ia_err']):.3f}",
            f"{float(r['delta_alpha_IMF_percent']):.2f}",
            f"{float(r['delta_log10_N_Ia_percent']):.2f}",
        ]
        for r in rows
    ]
    text = rst_table(CHEM_COLUMNS, out)
    metrics = results / "chem" / "metrics.json"
    if metrics.is_file():
        reached = json.loads(metrics.read_text())["reached"]
        text += (
            f"\n\nEmulator APE (median, population prior) {reached['emulator_ape_median_percent_population']:.2f} %"
            f" (the study: 1.6 %); joint NPE APE (pooled median) {reached['npe_ape_median_percent']:.1f} %"
            " (the study: 9.1 %)."
        )
    return text


def observed_headline(results: Path, galaxies: list[str]) -> str:
    """One row per observed galaxy: t50 and [M/H] of the matched posterior and of pPXF, and the OOD verdict."""
    rows = []
    for galaxy in galaxies:
        path = results / "observed" / galaxy / "summary.json"
        if not path.exists():
            rows.append([galaxy, "not run yet (snakemake observed)", "", "", ""])
            continue
        s = json.loads(path.read_text())
        post, ppxf = s["posterior"], s["ppxf"]
        t50, mh = post["t50"], post["metallicity"]
        rows.append(
            [
                galaxy,
                f"{t50['median']:.2f} ({t50['low_68']:.2f}–{t50['high_68']:.2f})",
                f"{mh['median']:+.2f} ({mh['low_68']:+.2f}–{mh['high_68']:+.2f})",
                f"{ppxf['labels']['t50']:.2f}, {ppxf['labels']['metallicity']:+.2f}",
                "yes" if s["out_of_distribution"]["out_of_distribution"] else "no",
            ]
        )
    header = ["galaxy", "t50 (Gyr), 68 %", "[M/H], 68 %", "pPXF t50, [M/H]", "out of distribution"]
    return rst_table(header, rows) if rows else "No observed galaxies configured."


def headline_rst(results: str | Path, families: list[str], galaxies: list[str] = ()) -> str:
    """Both graphs' headline tables, for the report's front page."""
    results = Path(results)
    return "\n".join(
        [
            "Spectra → star-formation histories",
            "----------------------------------",
            "",
            "R² of the posterior mean and the largest coverage deviation (\\|empirical − nominal\\| over the credibility "
            "levels of the central intervals; joint: the HPD region) per label, on the clean test spectra of each "
            "family (– where the evaluation has no coverage for a label).",
            "",
            spectra_headline(results, families),
            "",
            "Chemical abundances → galactic parameters",
            "-----------------------------------------",
            "",
            "The study's table (truth α_IMF = −2.3, log10 N_Ia = −2.89): estimate ± error from the largest number of "
            "stars of each data set.",
            "",
            chem_headline(results),
            "",
            "Observed galaxies",
            "-----------------",
            "",
            "The matched posterior (median and 68 % interval, cosmic time) beside pPXF with the same SSPs, and whether "
            "the out-of-distribution checks (latents, reconstruction χ²) flag the galaxy: where they do, its "
            "posterior is not to be trusted.",
            "",
            observed_headline(results, list(galaxies)),
            "",
        ]
    )
