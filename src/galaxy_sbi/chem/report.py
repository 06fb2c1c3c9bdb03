"""The chemistry study's table: our estimates per data set and combination, the study's published values beside.

The study's values (seed 001, CHEMPY + the study's Gaussian product, 1,000 stars) are quoted in their own
columns, never in our rows: :data:`STUDY_TABLE`."""

from __future__ import annotations

import csv

import numpy as np

#: data set -> the name in the table
DATASET_NAMES = {
    "simulator": "simulator, training yields",
    "simulator_alt": "simulator, alternative yields",
    "tng": "TNG galaxy",
    "vice": "VICE one-zone",
}

#: The study's published estimates at 1,000 stars (alpha_IMF, its error, log10_N_Ia, its error), per data set:
#: CHEMPY with the TNG yields, with its alternative yields (Nomoto+13 / Karakas & Lugaro 16 / Thielemann+03), and
#: the TNG galaxy 523071 (the study's table; its published version gives -2.298 +- 0.002 / -2.885 +- 0.003 with the
#: TNG yields). The VICE galaxy is ours: the study has no such row.
STUDY_TABLE = {
    "simulator": (-2.294, 0.003, -2.888, 0.005),
    "simulator_alt": (-2.385, 0.003, -3.072, 0.007),
    "tng": (-2.270, 0.005, -2.913, 0.006),
}
#: The study's headline targets (its README): emulator APE, NPE APE (median over all six parameters), etc.
STUDY_TARGETS = {
    "emulator_ape_median_percent": 1.6,
    "npe_ape_median_percent": 9.1,
    "alpha_imf_delta_percent_1000_stars": 0.3,
    "log10_n_ia_delta_percent_1000_stars": 0.1,
    "seconds_1000_stars": 10.0,
}
METHODS = ("gaussian", "grid", "grid_stat")
HEADER = [
    "data set",
    "combination",
    "stars",
    "alpha_IMF",
    "alpha_IMF_err",
    "log10_N_Ia",
    "log10_N_Ia_err",
    "delta_alpha_IMF_percent",
    "delta_log10_N_Ia_percent",
    "study_alpha_IMF",
    "study_alpha_IMF_err",
    "study_log10_N_Ia",
    "study_log10_N_Ia_err",
]


def summarise(results: list[dict]) -> tuple[list[list], dict]:
    """Rows of the table (HEADER order) and the per-data-set summary of the chem_multistar results."""
    rows, per_set = [], {}
    for r in results:
        last = r["rows"][-1]  # the most stars
        truth = np.asarray(r["truth"])
        entry = {"n_stars": last["n_stars"], "note": r["note"]}
        study = STUDY_TABLE.get(r["dataset"], (None,) * 4)
        for method in METHODS:
            if f"{method}_mean" not in last:
                continue
            m, s = np.asarray(last[f"{method}_mean"]), np.asarray(last[f"{method}_sd"])
            delta = 100 * np.abs(m - truth) / np.abs(truth)
            entry[method] = {
                "alpha_IMF": [m[0], s[0]],
                "log10_N_Ia": [m[1], s[1]],
                "delta_percent": delta.tolist(),
                "pull": ((m - truth) / s).tolist(),
                "credibility_of_truth": last[f"{method}_credibility"],
            }
            rows.append(
                [
                    DATASET_NAMES[r["dataset"]],
                    method,
                    last["n_stars"],
                    m[0],
                    s[0],
                    m[1],
                    s[1],
                    delta[0],
                    delta[1],
                    *study,
                ]
            )
        per_set[r["dataset"]] = entry
    return rows, per_set


def write_csv(rows: list[list], path) -> None:
    with open(path, "w", newline="") as f:  # csv quotes the data-set names (they hold commas)
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows([*row[:3], *("" if v is None else f"{v:.5g}" for v in row[3:])] for row in rows)


def markdown(rows: list[list], systematic_sd, skipped=()) -> str:
    def study(row):
        if row[9] is None:
            return "—"
        return f"{row[9]:.3f} ± {row[10]:.3f} / {row[11]:.3f} ± {row[12]:.3f}"

    md = [
        "| data set | combination | stars | α_IMF | log10 N_Ia | Δα_IMF | Δlog10 N_Ia | the study (α_IMF / log10 N_Ia) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        md.append(
            f"| {row[0]} | {row[1]} | {row[2]} | {row[3]:.3f} ± {row[4]:.3f} | {row[5]:.3f} ± {row[6]:.3f} "
            f"| {row[7]:.2f} % | {row[8]:.2f} % | {study(row)} |"
        )
    md += [
        "",
        "Combinations: gaussian = the study's product of per-star Gaussian fits; grid = the calibrated method "
        "(global-NPE likelihood summed on a grid, acceptance term, convolved with the systematic kernel of "
        f"systematics.json, sd {np.round(systematic_sd, 4).tolist()}); grid_stat = the same grid posterior "
        "without the systematic kernel (statistical errors only).",
        "",
        "Truth: α_IMF = −2.3, log10 N_Ia = −2.89. The last column quotes the study's published values (CHEMPY and its "
        "Gaussian product, 1,000 stars) for its data set of the same name, for comparison: they are not ours. Its "
        "'alternative yields' are Nomoto+13 / Karakas & Lugaro 16 / Thielemann+03 through CHEMPY, the default "
        "chem.alternative_yields (source study_alternative); compare with our row only when that is the set.",
    ]
    md += [f"\nSkipped: {note}" for note in skipped]
    return "\n".join(md) + "\n"


def report_metrics(emu: dict, npe: dict, syst: dict, results: list[dict], per_set: dict, skipped=()) -> dict:
    """results/chem/metrics.json: the emulator's and NPEs' validation numbers, the multi-star estimates, the
    systematic kernel, the timing and what was reached against the study's targets."""
    sim = per_set.get("simulator", {})
    sim_timing = next((r["timing"] for r in results if r["dataset"] == "simulator"), {})
    return {
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
        "studies": "coverage over mock galaxies (coverage_metrics.json) and the emcee timing (timing.md): "
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
        "skipped": list(skipped),
    }
