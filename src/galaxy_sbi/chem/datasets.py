"""Observed abundance vectors and the multi-star data sets.

Observables. The simulator returns 9 numbers, [C/Fe], [Fe/H], [H/Fe], [He/Fe], [Mg/Fe], [N/Fe], [Ne/Fe],
[O/Fe], [Si/Fe]; [H/Fe] = -[Fe/H] exactly (chem-model.md 1.2), so it carries no information and only
double-counts [Fe/H]'s noise. It is dropped everywhere (emulator output, NPE input, observations), which
also makes the TNG mock (8 elements, no H) map one-to-one: :data:`OBS_LABELS`.

Data sets of one galaxy (1,000 stars sharing alpha_IMF and log10_N_Ia, local parameters from the
population prior, 0.05 dex Gaussian noise):

* ``simulator``: our simulator with the training yields;
* ``simulator_alt``: our simulator with the alternative yields (misspecified);
* ``tng``: the IllustrisTNG galaxy 523071 (Mock_Data_TNG.npz; its own noise, truth = the study's values);
* ``vice``: stars of ``vice.singlezone`` runs, a different code (see :func:`vice_galaxy` for the mapping).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError
from .gce import OUTPUT_LABELS, simulate
from .priors import Priors

log = logging.getLogger(__name__)

#: Observables: the simulator's outputs without the redundant [H/Fe] column.
OBS_LABELS: tuple[str, ...] = tuple(lab for lab in OUTPUT_LABELS if lab != "[H/Fe]")
KEEP = [i for i, lab in enumerate(OUTPUT_LABELS) if lab != "[H/Fe]"]
#: element symbol -> observable label (Fe is [Fe/H], the rest [X/Fe])
ELEMENT_TO_LABEL = {lab.strip("[]").split("/")[0]: lab for lab in OBS_LABELS}


def drop_h(abundances: np.ndarray) -> np.ndarray:
    """(N, 9) simulator outputs -> (N, 8) observables."""
    return np.asarray(abundances)[:, KEEP]


def simulate_valid(theta_draw, n: int, yields, rng: np.random.Generator, max_rounds: int = 20):
    """Draw parameter sets with ``theta_draw(m, rng)`` and simulate until ``n`` are accepted.

    Returns (theta (n, 6), observables (n, 8), acceptance fraction)."""
    thetas, xs, tried = [], [], 0
    need = n
    for _ in range(max_rounds):
        m = int(need * 1.3) + 16
        th = theta_draw(m, rng)
        ab, ok = simulate(th, yields)
        tried += m
        thetas.append(th[ok])
        xs.append(drop_h(ab[ok]))
        need -= int(ok.sum())
        if need <= 0:
            break
    theta, x = np.concatenate(thetas)[:n], np.concatenate(xs)[:n]
    if len(theta) < n:
        raise RuntimeError(f"only {len(theta)} of {n} parameter sets accepted by the simulator")
    return theta, x, (sum(len(t) for t in thetas) / tried)


def simulated_galaxy(yields, priors: Priors, global_values, n_stars: int, noise_dex: float, rng: np.random.Generator):
    """One galaxy: stars with shared globals, local parameters from the population prior, noisy observables.

    Returns dict(theta (n, 6), true (n, 8), obs (n, 8), acceptance)."""
    theta, x, acc = simulate_valid(lambda m, r: priors.draw_population(m, r, global_values), n_stars, yields, rng)
    return {"theta": theta, "true": x, "obs": x + rng.normal(0.0, noise_dex, x.shape), "acceptance": acc}


def load_tng_mock(path) -> dict:
    """The TNG galaxy: columns mapped by element name onto :data:`OBS_LABELS`. ``packaged``: the study's
    Mock_Data_TNG.npz shipped with galaxy-sbi."""
    from .packaged import PACKAGED, tng_mock_path

    path = tng_mock_path() if str(path) == PACKAGED else Path(path)
    if not path.is_file():
        raise InputError(f"chem.multistar.tng_mock: file not found: {path}")
    with np.load(path, allow_pickle=False) as d:
        missing = {"elements", "abundances"} - set(d.files)
        if missing:
            raise InputError(f"{path}: missing arrays {sorted(missing)} (expected elements, abundances)")
        elements = [str(e) for e in d["elements"]]
        unknown = [e for e in ELEMENT_TO_LABEL if e not in elements]
        if unknown:
            raise InputError(f"{path}: elements {unknown} missing (has {elements}; needs {list(ELEMENT_TO_LABEL)})")
        order = [elements.index(lab.strip("[]").split("/")[0]) for lab in OBS_LABELS]
        obs = d["abundances"][:, order].astype(float)
        true = d["true_abuns"][:, order].astype(float) if "true_abuns" in d.files else np.full_like(obs, np.nan)
        birth = d["true_time"] if "true_time" in d.files else np.full(len(obs), np.nan)
        # the observed ages of the stars, as birth times (Gyr) with their errors, where the file has them
        ages = np.column_stack(
            [d[k] if k in d.files else np.full(len(obs), np.nan) for k in ("obs_time", "obs_time_err")]
        )
    keep = np.isfinite(obs).all(1)
    return {
        "obs": obs[keep],
        "true": true[keep],
        "birth_time": birth[keep],
        "birth_time_obs": ages[keep],
        "source": str(path),
    }


def _chabrier_power_law(alpha_imf: float):
    """CHEMPY's IMF shape: Chabrier (2003) log-normal below 1 Msun, power law m^alpha above (continuous)."""
    import math

    mc, s = 0.079, 0.69

    def lognormal(m):
        return math.exp(-((math.log10(m) - math.log10(mc)) ** 2) / (2 * s * s)) / m

    norm = lognormal(1.0)

    def imf(m):
        return lognormal(m) if m < 1.0 else norm * m**alpha_imf

    return imf


def vice_galaxy(
    global_values,
    priors: Priors,
    n_stars: int,
    n_runs: int,
    noise_dex: float,
    rng: np.random.Generator,
    workdir,
    preset: str = "tng_like",
    dt: float = 0.05,
) -> dict:
    """Stars of ``n_runs`` VICE one-zone runs (a different GCE code) with the galaxy's global parameters.

    Mapping CHEMPY -> VICE (honest where possible, approximate where VICE has no equivalent):

    * alpha_IMF: VICE takes a callable IMF; we pass CHEMPY's shape (Chabrier log-normal below 1 Msun, power
      law m^alpha_IMF above). The CCSN yields are re-integrated over that IMF
      (``vice.yields.ccsne.fractional(..., IMF=callable)``) from the preset's study at solar [M/H], linear in
      [M/H] between the study's two nearest tables (NKT13 has none at 0: -0.24 and +0.15), and held fixed in
      time (VICE's one-zone constant yields; CHEMPY's depend on the SSP metallicity); AGB yields are tables
      that VICE integrates over the run's IMF itself, at the ISM's metallicity.
    * log10_N_Ia: SN Ia yields per unit mass formed = 10^log10_N_Ia x mass per event of the preset's SN Ia
      model (``vice.yields.sneia.single``); DTD t^-1.12 after 0.04 Gyr as in CHEMPY (VICE normalises it
      over its own time horizon, CHEMPY up to 13.8 Gyr: a few per cent difference in the Ia count).
    * local parameters: one draw per run from the population prior (``n_runs`` = ``n_stars`` gives every
      star its own); SFR history gamma(shape 2, scale s) (``mode="sfr"``), gas = SFR / SFE (tau_star =
      1/SFE), no mass-loaded wind (eta = 0) and a fraction 1 - f_out of all ejecta retained by the ISM
      (``entrainment``) as CHEMPY's outflow fraction.
    * birth times: uniform in the prior's range, as the NPE assumes (the ISM abundances interpolated in time
      at each star's birth time); the observables are VICE's [X/Fe] and [Fe/H] (Asplund 2009 solar scale,
      as CHEMPY).

    Not mapped: CHEMPY's corona/infall bookkeeping, its time grid, its SN Ia hydrogen accretion, its
    metallicity-dependent CCSN yields. So this data set is a misspecification test by construction, not a
    reproduction.
    """
    import vice

    from .yields import VICE_PRESETS, vice_ccsn_fractional

    elements = ("c", "fe", "he", "mg", "n", "ne", "o", "si")
    alpha, log_nia = map(float, global_values)
    imf = _chabrier_power_law(alpha)
    cfg = VICE_PRESETS[preset]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in elements:
            vice.yields.ccsne.settings[e] = vice_ccsn_fractional(vice, e, cfg["ccsne"], 0.0, imf)
            # VICE returns 0 for an element a SN Ia model does not report
            m_ia = float(vice.yields.sneia.single(e, study=cfg["sneia"], model=cfg["sneia_model"]))
            vice.yields.sneia.settings[e] = 10.0**log_nia * m_ia
            vice.yields.agb.settings[e] = cfg["agb"]
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    per_run = np.diff(np.linspace(0, n_stars, n_runs + 1).round().astype(int))
    obs_all, theta_all = [], []
    t_lo, t_hi = priors.birth_time
    for r, n_r in enumerate(per_run):
        loc = priors.draw_population(1, rng)[0]
        sfe, scale, f_out = 10.0 ** loc[2], 10.0 ** loc[3], loc[4]

        def sfr(t, scale=scale):
            return 1e9 * t * np.exp(-t / scale) / scale**2 + 1e-3  # Msun/yr, gamma shape 2

        sz = vice.singlezone(
            name=str(workdir / f"run{r}"),
            elements=elements,
            IMF=imf,
            mode="sfr",
            func=sfr,
            tau_star=1.0 / sfe,
            eta=0.0,
            delay=0.04,
            RIa=lambda t: t**-1.12,
            dt=dt,
            Mg0=1e8,
            verbose=False,
        )
        for ch in ("ccsne", "sneia", "agb"):
            for e in elements:
                getattr(sz.entrainment, ch)[e] = 1.0 - f_out
        out = sz.run(np.arange(0.0, t_hi + dt, dt), overwrite=True, capture=True)
        hist = out.history
        time = np.asarray(hist["time"])
        birth = rng.uniform(t_lo, t_hi, n_r)
        cols = []
        for lab in OBS_LABELS:
            el = lab.strip("[]").split("/")[0].lower()
            cols.append(np.asarray(hist["[fe/h]"]) if el == "fe" else np.asarray(hist[f"[{el}/fe]"]))
        x = np.column_stack([np.interp(birth, time, c) for c in cols])
        th = np.tile(np.append(loc[:5], 0.0), (n_r, 1))
        th[:, :2] = global_values
        th[:, 5] = birth
        obs_all.append(x)
        theta_all.append(th)
        log.info("vice run %d: SFE %.3f /Gyr, SFR scale %.2f Gyr, f_out %.2f -> %d stars", r, sfe, scale, f_out, n_r)
    true = np.concatenate(obs_all)
    good = np.isfinite(true).all(1)
    true = true[good]
    return {
        "theta": np.concatenate(theta_all)[good],
        "true": true,
        "obs": true + rng.normal(0.0, noise_dex, true.shape),
    }


def load_yields(cfg) -> object:
    """Yield set from a config mapping {source: tng|study_alternative|chempy|vice, preset, directory}."""
    from .chempy_tables import load_study_alternative_yields
    from .packaged import tng_yields_dir
    from .yields import load_chempy_yields, load_vice_yields

    if cfg["source"] == "tng":  # CHEMPY's TNG tables, shipped with galaxy-sbi
        return load_chempy_yields(tng_yields_dir(), name="TNG")
    if cfg["source"] == "study_alternative":  # Nomoto+13 / Karakas & Lugaro 16 / Thielemann+03, as CHEMPY reads them
        return load_study_alternative_yields()
    if cfg["source"] == "chempy":
        directory = Path(cfg["directory"])
        if not directory.is_dir():
            raise InputError(f"CHEMPY yield folder not found: {directory}")
        return load_chempy_yields(directory)
    return load_vice_yields(cfg["preset"])


#: the study's global parameters of the TNG galaxy (its truth in the table)
TNG_TRUTH = (-2.3, -2.89)


def build_dataset(name: str, settings: dict) -> tuple[dict, np.ndarray, str]:
    """One data set's stars from its settings (workflow/rules/common.smk: chem_dataset_settings): the TNG galaxy
    (a file), VICE one-zone runs, or our simulator with the training / alternative yields. Returns (data, truth,
    note)."""
    import tempfile

    from ..seeding import derived_rng

    if name == "tng":
        data = load_tng_mock(settings["tng_mock"])
        n = settings["n_stars"]
        for key in ("obs", "true", "birth_time", "birth_time_obs"):
            data[key] = data[key][:n]
        return data, np.array(TNG_TRUTH), f"IllustrisTNG galaxy from {data['source']} (its own 0.05 dex noise)"
    priors = Priors.from_config(settings["priors"])
    truth = np.asarray(settings["global_values"], float)
    rng = derived_rng(settings["seed"], "chem_dataset", name)
    if name == "vice":
        v = settings["vice"]
        with tempfile.TemporaryDirectory(prefix="vice_") as workdir:
            data = vice_galaxy(
                truth,
                priors,
                v["n_stars"],
                v["n_runs"],
                settings["noise_dex"],
                rng,
                workdir=workdir,
                preset=v["preset"],
            )
        return (
            data,
            truth,
            (
                f"vice.singlezone, {v['n_runs']} runs, {v['preset']} yields, CCSN yields at solar [M/H] "
                "(see galaxy_sbi.chem.datasets.vice_galaxy)"
            ),
        )
    yields = load_yields(settings["yields"])
    data = simulated_galaxy(yields, priors, truth, settings["n_stars"], settings["noise_dex"], rng)
    return data, truth, f"our simulator, yields {yields.name}: {yields.description}"


def vice_against_simulator(data: dict, yields) -> dict:
    """The VICE stars against our simulator at the same parameters (globals, locals, birth time) and the same
    published yields (the VICE preset converted to CHEMPY's convention): what differs is the code. Returns the
    per-observable median and spread of VICE - ours over the stars both accept, and both abundance arrays."""
    ours, ok = simulate(data["theta"], yields)
    ours = drop_h(ours)
    vice = np.asarray(data["true"])
    good = ok & np.isfinite(ours).all(1) & np.isfinite(vice).all(1)
    diff = vice[good] - ours[good]
    return {
        "vice": vice[good],
        "ours": ours[good],
        "n_stars": int(good.sum()),
        "n_rejected_by_ours": int((~ok).sum()),
        "median_difference_dex": dict(zip(OBS_LABELS, np.median(diff, 0).tolist())),
        "nmad_difference_dex": dict(
            zip(OBS_LABELS, (1.4826 * np.median(np.abs(diff - np.median(diff, 0)), 0)).tolist())
        ),
    }
