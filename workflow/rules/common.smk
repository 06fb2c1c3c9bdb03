# Snakemake glue shared by the stage files (workflow/rules/*.smk). Which files a stage reads, which config
# values the outputs of each step depend on (its params), memory requests. Pure Python over the config (no
# torch, sbi or jax, so `snakemake -n` builds the DAG in seconds); the science lives in src/galaxy_sbi/.
#
# Params are exactly the config values its outputs depend on, so changing a key
# re-runs the stages that read it and what is downstream of them, nothing else. Settings that change only
# speed, storage or display (threads, progress bars, accelerator, batch sizes of pure inference, netCDF
# chunking) are read by the scripts from the config directly (galaxy_sbi.workflow.RUNTIME_KEYS).
from galaxy_sbi.config import family_value
from galaxy_sbi.spectra.sfh import parametric_grid
from galaxy_sbi.spectra.synth import spectra_cells
from galaxy_sbi.workflow import RUNTIME_KEYS
from types import SimpleNamespace


def pick(section, *keys):
    """The named keys of a config section."""
    return {k: section[k] for k in keys}


def without_runtime(name):
    """Config section `name` without its speed / display keys."""
    return {
        k: v for k, v in config[name].items() if k not in RUNTIME_KEYS.get(name, ())
    }


# Scheduling precedence on a small machine (the default's 2 cores): the spectra chain (SSPs -> spectra -> encoder
# -> latents -> NPE -> evaluation) is the run's longest path, the chemistry jobs fill the cores it leaves free.
# Without priorities Snakemake starts the jobs with the largest inputs first, the chemistry graph's. Its local
# scheduler never holds a core back for a job that needs two, and it weighs the sum of the priorities of the
# jobs it starts together, so the chain up to the encoders (both families) takes two threads and a priority
# above any two other jobs together: those jobs run one at a time and never leave a lone core to a one-thread
# job. The jobs after them take one thread and run beside the chemistry jobs, the parametric family's first
# (its NPE, ~14 minutes, is the longest job after the encoders).
CHAIN_PRIORITY_TO_ENCODERS = 100
# The chemistry graph's own longest path (simulator -> emulator -> joint NPE -> multi-star) is ~8 minutes of
# one-thread jobs: it runs beside the parametric NPE, before the non-parametric family's jobs.
CHEM_PRIORITY = 15


def critical_path_priority(wildcards):
    """Priority of a spectra-chain job after the encoders: the parametric family's first, the chemistry
    graph's (CHEM_PRIORITY) between the two families."""
    return {"parametric": 40, "nonparametric": 10}[wildcards.family]


def bench(path):
    """Benchmark file of a job (wall time, memory): benchmarks/sum_rule_benchmarks.py sums them per stage."""
    return f"logs/benchmarks/{path}.tsv"


# --- SSP library ------------------------------------------------------------------------------------------


def ssp_library_settings():
    """The keys the native cube depends on: its source's own section, not the other sources'."""
    ssp = config["ssp"]
    keys = ["source", "ages_gyr", "metallicities", ssp["source"]]
    if ssp["source"] != "fastar":
        keys.append("alpha_models")
    return pick(ssp, *keys)


def ssp_library_inputs():
    """User files the native cube is read from (inputs, so Snakemake checks them before any job)."""
    ssp = config["ssp"]
    if ssp["source"] == "miles_fits":
        return [ssp["miles_fits"]["directory"]]
    if ssp["source"] == "milespy" and ssp["milespy"]["repository"]:
        return [ssp["milespy"]["repository"]]
    return []


# --- encoder ----------------------------------------------------------------------------------------------


ERROR_SPECTRA = "results/spectra/error_spectra.nc"


def encoder_settings(wildcards):
    """The encoder section for one family: ``augmentation.enabled`` (true, false or a list of families) resolved to
    this family's true / false and ``basis_components`` (a number or one per family) to this family's number, so
    switching another family's setting re-runs nothing here.
    """
    out = without_runtime("encoder")
    aug = dict(out["augmentation"])
    enabled = aug["enabled"]
    aug["enabled"] = (
        bool(enabled) if isinstance(enabled, bool) else wildcards.family in enabled
    )
    # the augmentation's noise takes the error_spectra shapes to a random power (encoder_train's input)
    if aug["enabled"]:
        aug["error_spectra"] = ERROR_SPECTRA
        aug["error_power_range"] = config["error_spectra"]["power_range"]
    out["augmentation"] = aug
    out["basis_components"] = int(
        family_value(out.get("basis_components", 0), wildcards.family, 0)
    )
    return out


# --- SFHs and spectra -------------------------------------------------------------------------------------

SFH_FAMILIES = config["sfh"]["families"]
SPECTRA_CELLS = spectra_cells(config)


def sfh_settings(wildcards):
    """The values one family's SFH file depends on (the other family's section is not among them)."""
    sfh = config["sfh"]
    out = pick(sfh, "stellar_mass", "percentiles", wildcards.family)
    if (
        wildcards.family == "nonparametric"
        or sfh["parametric"]["sampling"] == "continuous"
    ):
        out["seed"] = config["seed"]  # drawn; the parametric lattice is not
    if (
        wildcards.family == "nonparametric"
        and sfh["nonparametric"].get("per_cell", "shared") == "distinct"
    ):
        out["cells"] = SPECTRA_CELLS  # each cell its own SFHs
    return out


def off_grid_sfh_settings(wildcards):
    """What a family's off-grid test SFHs depend on: its prior's ranges, not the training set's size or lattice."""
    out = {
        k: v for k, v in sfh_settings(wildcards).items() if k not in ("seed", "cells")
    }
    drop = {
        "parametric": ("thin", "sampling"),
        "nonparametric": ("n_per_cell", "per_cell"),
    }[wildcards.family]
    out[wildcards.family] = {
        k: v for k, v in out[wildcards.family].items() if k not in drop
    }
    return out


def spectra_files(wildcards):
    """Every cube of the job's family."""
    return [f"results/spectra/{wildcards.family}/{cell}.nc" for cell in SPECTRA_CELLS]


def family_size(family):
    """Number of spectra of a family (known before any job runs)."""
    if family == "parametric":
        n_sfh = len(parametric_grid(config["sfh"]["parametric"], config["seed"])[1])
    else:
        n_sfh = config["sfh"]["nonparametric"]["n_per_cell"]
    return n_sfh * len(SPECTRA_CELLS)


def family_memory_mb(wildcards, n_wavelength=4300):
    """Memory a job that holds a family's flux asks for: twice the float32 array plus 3 GB."""
    return int(2 * family_size(wildcards.family) * n_wavelength * 4 / 2**20) + 3000


# --- posteriors -------------------------------------------------------------------------------------------

NPE = config["npe"]
EVALUATION = config["evaluation"]
PARAMETRISATION_OTHER = {
    "naive": "ordered",
    "ordered": "naive",
    "log_gaps": "naive",
    "linexp": "naive",
}


def family_parametrisation(setting, family):
    """npe.parametrisation is one kind for every family or a {family: kind} mapping (log_gaps if absent)."""
    return family_value(setting, family, "log_gaps")


def other_parametrisation(family):
    """The parametrisation a family's ordering study compares the configured one with."""
    return PARAMETRISATION_OTHER[family_parametrisation(NPE["parametrisation"], family)]


def npe_noise(family):
    """The family's degraded training copies and what its NPE is told (conditioning.npe_training_set), or None when
    it trains on clean spectra."""
    noise = NPE["noise"]
    if family not in noise["families"]:
        return None
    out = pick(noise, "snr_range", "copies", "inputs")
    # observation-like copies: the instrument of the degraded test spectra
    if "sigma_100kms" in noise["inputs"]:
        out.update(pick(noise, "sigma_kms_range", "mask_probability"))
        out["instrument"] = pick(
            EVALUATION["degraded"],
            "instrumental_fwhm_angstrom",
            "blue_mask_below_angstrom",
        )
        # the copies' noise takes the error_spectra shapes to a random power (the rule loads the shapes)
        out["error_power_range"] = config["error_spectra"]["power_range"]
    return out


def npe_settings(wildcards):
    """The NPE settings of one family in the job's parametrisation."""
    kind = wildcards.parametrisation
    out = {k: v for k, v in NPE.items() if k not in ("parametrisation", "noise")}
    out["parametrisation"] = kind
    out["batch_size"] = family_value(NPE["batch_size"], wildcards.family, None)
    out["noise"] = npe_noise(wildcards.family)
    if kind == "linexp":  # the linear-exponential SFHs' window (start, t_obs)
        t = config["sfh"]["parametric"]["time_gyr"]
        out["sfh_window"] = [t["start"], t["stop"]]
    return out


def configured_npe_settings(wildcards):
    """npe_settings of the family's configured parametrisation."""
    kind = family_parametrisation(NPE["parametrisation"], wildcards.family)
    return npe_settings(SimpleNamespace(family=wildcards.family, parametrisation=kind))


def configured_posterior(wildcards_or_family):
    """The family's posterior in the configured parametrisation: the one the evaluation and reconstruction use."""
    family = getattr(wildcards_or_family, "family", wildcards_or_family)
    return f"results/npe/{family}/posterior_{family_parametrisation(NPE['parametrisation'], family)}.pt"


def ordering_posteriors(wildcards):
    family = wildcards.family
    return [
        configured_posterior(family),
        f"results/npe/{family}/posterior_{other_parametrisation(family)}.pt",
    ]


# --- baselines --------------------------------------------------------------------------------------------

BASELINES = config["baselines"]


def baselines_settings(wildcards):
    """The baselines settings of one comparison: its number of spectra instead of both sizes (so that changing
    the full comparison's size re-runs only it)."""
    out = {k: v for k, v in BASELINES.items() if k != "sizes"}
    out["n_spectra"] = BASELINES["sizes"][wildcards.size]
    return out


# --- chemistry --------------------------------------------------------------------------------------------

CHEM = config["chem"]


def chem_npe_settings(wildcards):
    """What one chemistry NPE's training reads: its own flow settings, its draws, the shared optimiser keys."""
    npe = CHEM["npe"]
    shared = pick(
        npe,
        "noise_dex",
        "batch_size",
        "learning_rate",
        "max_epochs",
        "stop_after_epochs",
    )
    if wildcards.kind == "joint":
        return {**shared, **pick(npe, "joint", "joint_prior", "n_simulations")}
    return {**shared, **pick(npe, "global", "global_source", "n_simulations_global")}


def chem_npe_yields(wildcards):
    """The simulator's yields, where the NPE draws from the simulator itself (the global NPE's default)."""
    if wildcards.kind == "global" and CHEM["npe"]["global_source"] == "simulator":
        return CHEM["yields"]
    return None


def chem_npe_inputs(wildcards):
    """The emulator, for the NPEs that draw from it: the global NPE on simulator draws trains beside it."""
    if wildcards.kind == "joint" or CHEM["npe"]["global_source"] == "emulator":
        return {"emulator": "results/chem/emulator.pt"}
    return {}


def chem_dataset_settings(wildcards):
    """What one data set's stars depend on: its size and its own source (a file, or a simulation's settings)."""
    ms, name = CHEM["multistar"], wildcards.dataset
    if name == "tng":  # a file of stars: nothing is drawn
        return pick(ms, "n_stars", "tng_mock")
    out = {
        **pick(ms, "global_values", "n_stars"),
        "seed": config["seed"],
        "priors": CHEM["priors"],
        "noise_dex": CHEM["npe"]["noise_dex"],
    }
    if name == "vice":
        out["vice"] = ms["vice"]
    else:
        out["yields"] = CHEM["yields" if name == "simulator" else "alternative_yields"]
    return out


def chem_grid_settings():
    """The grid of the calibrated combination."""
    return pick(CHEM["multistar"], "n_grid", "n_coarse")


# --- observed galaxies ------------------------------------------------------------------------------------

OBSERVED_GALAXIES = list(config["observed"]["galaxies"])
OBSERVED_FAMILY = config["observed"]["family"]
OBSERVED_FAMILY_WILDCARDS = SimpleNamespace(
    family=OBSERVED_FAMILY,
    parametrisation=family_parametrisation(NPE["parametrisation"], OBSERVED_FAMILY),
)


def observed_file(wildcards):
    """The galaxy's spectrum file (``package:path`` resolved inside the installed package)."""
    from galaxy_sbi.spectra.observation import resolve_path

    return str(resolve_path(config["observed"]["galaxies"][wildcards.galaxy]["file"]))


def error_spectra_files(wildcards):
    """The error_spectra sources' files (``package:path`` resolved inside the installed package)."""
    from galaxy_sbi.spectra.observation import resolve_path

    return [
        str(resolve_path(e["file"]))
        for e in config["error_spectra"]["sources"].values()
    ]


def observed_npe_settings(wildcards):
    """The matched NPE: the observed family's NPE settings in its configured parametrisation (no noise copies:
    the matched training set has the galaxy's own noise)."""
    out = npe_settings(OBSERVED_FAMILY_WILDCARDS)
    out.pop("noise")
    return out


# --- the SSP-library systematic ---------------------------------------------------------------------------

#: where miles_models_fetch unpacks ppxf 8.1.0's MILES models; a configured folder elsewhere is the user's own
MILES_FETCH_DIRECTORY = "resources/miles_models/ppxf-8.1.0"


def observed_systematic_input():
    """The observed family's cross-library test as an input of observed_summary, when observed.ssp_systematic."""
    if not config["observed"]["ssp_systematic"]:
        return {}
    return {
        "cross_library": f"results/evaluation/{config['observed']['family']}/cross_library.json"
    }
