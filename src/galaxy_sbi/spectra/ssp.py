"""Single-stellar-population (SSP) libraries: three sources, one cube format, and grid interpolation.

Every source returns an `xarray.Dataset` with a `flux` variable on dims
(alpha, metallicity, age, wavelength) -- `alpha` only when the source has [alpha/Fe]-variable models --
in Lsun / Angstrom / Msun (per solar mass *formed*, the MILES convention), wavelengths in air.

Sources (config `ssp.source`):
  fastar      FASTAR (fastar-astro): SSPs synthesised offline from a MILES-trained stellar emulator and
              BaSTI-IAC isochrones, with the Kroupa universal IMF passed explicitly (FASTAR's default is
              Salpeter). No [alpha/Fe] axis.
  milespy     the official MILES repository file through milespy (BaSTI "T" isochrones, KU IMF).
  miles_fits  a folder of MILES FITS files named as the MILES web site distributes them.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError

log = logging.getLogger(__name__)

# The MILES optical grid (air wavelengths): 3540.5 ... 7409.6 Angstrom in 0.9 Angstrom steps.
MILES_WAVELENGTH = 3540.5 + 0.9 * np.arange(4300)
MILES_FWHM_ANGSTROM = 2.51
FLUX_UNITS = "Lsun / Angstrom / Msun"
KROUPA_UNIVERSAL_SLOPE = 1.30
BASE_ALPHA = "base"


def _lsun_per_angstrom_per_10pc_flux() -> float:
    """Factor from f_lambda at 10 pc (erg/s/cm2/A, FASTAR's unit) to L_lambda in Lsun/A: 4 pi (10 pc)^2 / Lsun."""
    from astropy import constants, units

    area = 4 * np.pi * (10 * units.pc).to(units.cm) ** 2
    return float((area / constants.L_sun.to(units.erg / units.s)).value)


# ---------------------------------------------------------------------------------------------
# the common cube
# ---------------------------------------------------------------------------------------------


def ssp_dataset(
    flux: np.ndarray,
    ages_gyr: Sequence[float],
    metallicities: Sequence[float],
    wavelength: np.ndarray,
    alphas: Sequence[float] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Wrap a flux array (alpha?, metallicity, age, wavelength) as the library's netCDF cube."""
    dims = ("metallicity", "age", "wavelength")
    coords = {
        "metallicity": ("metallicity", np.asarray(metallicities, float), {"units": "dex", "long_name": "[M/H]"}),
        "age": ("age", np.asarray(ages_gyr, float), {"units": "Gyr", "long_name": "age of the population"}),
        "wavelength": (
            "wavelength",
            np.asarray(wavelength, float),
            {"units": "Angstrom", "long_name": "air wavelength"},
        ),
    }
    if alphas is not None:
        dims = ("alpha",) + dims
        coords["alpha"] = ("alpha", np.asarray(alphas, float), {"units": "dex", "long_name": "[alpha/Fe]"})
    flux = np.asarray(flux, dtype=np.float32)
    expected = tuple(len(coords[d][1]) for d in dims)
    if flux.shape != expected:
        raise ValueError(f"flux has shape {flux.shape}, expected {expected} for dims {dims}")
    ds = xr.Dataset(
        {
            "flux": (
                dims,
                flux,
                {"units": FLUX_UNITS, "long_name": "SSP luminosity density per solar mass formed"},
            )
        },
        coords=coords,
        attrs=dict(attrs or {}),
    )
    ds.attrs["has_alpha_axis"] = int(alphas is not None)
    if alphas is None:
        ds.attrs.setdefault(
            "alpha_axis_note",
            "no [alpha/Fe] axis: this source has no [alpha/Fe]-variable models; later stages drop [alpha/Fe] "
            "from the labels instead of inventing it",
        )
    return ds


def has_alpha(ds: xr.Dataset) -> bool:
    return "alpha" in ds.dims


# ---------------------------------------------------------------------------------------------
# FASTAR
# ---------------------------------------------------------------------------------------------


def synthesize_fastar(
    ages_gyr: Sequence[float],
    metallicities: Sequence[float],
    imf: str = "kroupa",
    out_of_range: str = "error",
    chunk: int = 8,
    progress: bool = True,
    imf_slope: float | None = None,
) -> xr.Dataset:
    """Synthesise an (metallicity, age) grid of SSPs with FASTAR, offline.

    ``imf``: "kroupa" (MILES KU1.30), "salpeter" (slope 2.35) or "unimodal" (MILES UN: dN/dm ~ m^-(1 + imf_slope),
    0.1-100 Msun, as the MILES unimodal models are defined).

    Ages or [M/H] outside FASTAR's isochrones are refused (`out_of_range="error"`) or evaluated at the
    nearest valid value and recorded in the attributes (`"clamp"`): FASTAR itself would clamp silently.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # FASTAR runs fine on CPU; skip jax's TPU/GPU probing
    import jax
    from fastar import IntegratedSSPSynthesizer
    from fastar.imf import kroupa, single_power_law
    from tqdm.auto import tqdm

    imf_function = {"kroupa": kroupa, "salpeter": single_power_law, "unimodal": single_power_law}[imf]
    imf_params = {"alpha": 1.0 + float(imf_slope if imf_slope is not None else 1.3)} if imf == "unimodal" else {}
    synth = IntegratedSSPSynthesizer(imf_function=imf_function)
    met_lo, met_hi = float(np.min(synth.mets)), float(np.max(synth.mets))
    age_lo, age_hi = float(np.min(synth.ages)) / 1e3, float(np.max(synth.ages)) / 1e3  # isochrone ages in Myr

    ages = np.asarray(ages_gyr, float)
    mets = np.asarray(metallicities, float)
    bad_mets = mets[(mets < met_lo) | (mets > met_hi)]
    bad_ages = ages[(ages < age_lo) | (ages > age_hi)]
    clamped = []
    if bad_mets.size or bad_ages.size:
        what = (f"[M/H] {bad_mets.tolist()} outside FASTAR's [{met_lo}, {met_hi}]" if bad_mets.size else "") + (
            f"ages {bad_ages.tolist()} Gyr outside FASTAR's [{age_lo}, {age_hi}]" if bad_ages.size else ""
        )
        if out_of_range == "error":
            raise InputError(
                f"ssp.source=fastar: {what}. Remove them from ssp.ages_gyr / ssp.metallicities, or set "
                "ssp.fastar.out_of_range: clamp to evaluate them at the nearest valid value (recorded in the file)"
            )
        clamped = [f"[M/H] {m:+.2f} evaluated at {np.clip(m, met_lo, met_hi):+.2f}" for m in bad_mets]
        clamped += [f"age {a} Gyr evaluated at {np.clip(a, age_lo, age_hi)} Gyr" for a in bad_ages]
        log.warning("FASTAR clamping: %s", "; ".join(clamped))

    eval_ages = np.clip(ages, age_lo, age_hi)
    eval_mets = np.clip(mets, met_lo, met_hi)
    # vmap over a fixed-size block of ages: one compilation, bounded memory (a whole 53-age row peaks ~6 GB).
    spectra_of = jax.jit(jax.vmap(lambda a, m: synth.synthesize(a, m, imf_params), in_axes=(0, None)))
    n_pad = -len(eval_ages) % chunk
    padded = np.concatenate([eval_ages, np.full(n_pad, eval_ages[-1])])
    flux = np.empty((len(mets), len(ages), len(synth.wave)), dtype=np.float32)
    to_lsun = _lsun_per_angstrom_per_10pc_flux()
    bar = tqdm(total=len(mets) * len(padded) // chunk, desc="FASTAR SSPs", unit="block", disable=not progress)
    for i, met in enumerate(eval_mets):
        row = []
        for start in range(0, len(padded), chunk):
            row.append(np.asarray(spectra_of(padded[start : start + chunk], met)))
            bar.update()
        flux[i] = (np.concatenate(row)[: len(ages)] * to_lsun).astype(np.float32)
    bar.close()
    if not np.all(np.isfinite(flux)):
        raise RuntimeError("FASTAR returned non-finite fluxes")

    attrs = {
        "source": "fastar",
        "source_detail": "FASTAR IntegratedSSPSynthesizer (fastar-astro): MILES-trained stellar emulator",
        "imf": {
            "kroupa": "Kroupa universal (slopes 0.3/1.3/2.3, breaks 0.08/0.5 Msun, 0.1-100 Msun) = MILES KU1.30",
            "salpeter": "Salpeter (slope 2.35, 0.1-100 Msun)",
            "unimodal": f"unimodal (dN/dm ~ m^-{imf_params.get('alpha', 0):.2f}, 0.1-100 Msun) = MILES "
            f"UN{imf_params.get('alpha', 0) - 1:.2f}",
        }[imf],
        "isochrones": "BaSTI-IAC (as interpolated by FASTAR)",
        "resolution_fwhm_angstrom": MILES_FWHM_ANGSTROM,
        "flux_units": FLUX_UNITS,
        "flux_conversion": f"FASTAR f_lambda at 10 pc (erg/s/cm2/A per Msun formed) x {to_lsun:.6g} = Lsun/A/Msun",
        "wavelength_medium": "air",
        "fastar_valid_metallicity": f"[{met_lo}, {met_hi}]",
        "fastar_valid_age_gyr": f"[{age_lo}, {age_hi}]",
        "clamped": "; ".join(clamped) if clamped else "none",
    }
    return ssp_dataset(flux, ages, mets, np.asarray(synth.wave, float), alphas=None, attrs=attrs)


# ---------------------------------------------------------------------------------------------
# MILES FITS files
# ---------------------------------------------------------------------------------------------

# The MILES naming scheme (miles.iac.es, "Tune SSP models"): library, IMF type and slope, [M/H], age, isochrone with
# its [alpha/Fe], the alpha flavour, and an optional tail the web tool or a distributor appends, e.g.
#   Mku1.30Zp0.06T10.0000_iTp0.00_baseFe.fits                            MILES, Kroupa universal 1.30, BaSTI
#   Mbi1.30Zm0.25T03.5481_iTp0.40_Ep0.40.fits                            MILES, bimodal 1.30, BaSTI, [alpha/Fe] 0.4
#   Eun1.30Zm0.40T00.0631_iPp0.00_baseFe_linear_FWHM_variable.fits       E-MILES, unimodal 1.30, Padova+00 (ppxf 8.1)
_FITS_NAME = re.compile(
    r"^(?P<library>[A-Z])(?P<imf>[a-z]{2})(?P<slope>\d\.\d{2})Z(?P<zsign>[mp])(?P<z>\d\.\d{2})T(?P<age>\d{2}\.\d{4})"
    r"_i(?P<iso>[A-Z])(?P<isosign>[mp])(?P<isoalpha>\d\.\d{2})_(?P<alpha>baseFe|E[mp]\d\.\d{2})"
    r"(?P<suffix>(?:_[A-Za-z0-9.]+)*)\.fits$"
)
MILES_LIBRARIES = {"M": "MILES", "E": "E-MILES", "C": "CaT", "I": "MIUSCAT"}
MILES_IMFS = {
    "un": "unimodal",
    "bi": "bimodal",
    "ku": "Kroupa universal",
    "kb": "Kroupa revised",
    "ch": "Chabrier",
}
MILES_ISOCHRONES = {"T": "BaSTI", "P": "Padova+00"}
#: what a folder of files must agree on: one value per key, chosen in the config when the folder mixes them
MILES_FLAVOUR_KEYS = ("library", "imf", "slope", "isochrone", "suffix")
DEFAULT_FLAVOUR = {"library": "M", "imf": "ku", "slope": KROUPA_UNIVERSAL_SLOPE, "isochrone": "T", "suffix": ""}


def miles_fits_name(age_gyr: float, metallicity: float, alpha: float | str = BASE_ALPHA, **flavour) -> str:
    """File name of a MILES SSP, by default BaSTI KU1.30: Mku1.30Zp0.06T10.0000_iTp0.00_baseFe.fits."""
    f = {**DEFAULT_FLAVOUR, **{k: v for k, v in flavour.items() if v is not None}}
    z = f"Z{'m' if metallicity < 0 else 'p'}{abs(metallicity):.2f}"
    if alpha == BASE_ALPHA:
        tail = f"i{f['isochrone']}p0.00_baseFe"
    else:
        sign = "m" if alpha < 0 else "p"
        tail = f"i{f['isochrone']}{sign}{abs(alpha):.2f}_E{sign}{abs(alpha):.2f}"
    return f"{f['library']}{f['imf']}{float(f['slope']):.2f}{z}T{age_gyr:07.4f}_{tail}{f['suffix']}.fits"


def parse_miles_fits_name(name: str) -> dict | None:
    """Library, IMF, slope, [M/H], age, isochrone, [alpha/Fe] and tail of a MILES SSP file name, or None."""
    m = _FITS_NAME.match(name)
    if not m:
        return None
    sign = -1.0 if m["zsign"] == "m" else 1.0
    alpha = BASE_ALPHA if m["alpha"] == "baseFe" else (-1.0 if m["alpha"][1] == "m" else 1.0) * float(m["alpha"][2:])
    return {
        "library": m["library"],
        "imf": m["imf"],
        "slope": float(m["slope"]),
        "metallicity": sign * float(m["z"]),
        "age": float(m["age"]),
        "isochrone": m["iso"],
        "alpha": alpha,
        "suffix": m["suffix"],
    }


def describe_flavour(flavour: dict) -> str:
    """E.g. 'E-MILES, unimodal IMF slope 1.30, Padova+00 isochrones'."""
    return (
        f"{MILES_LIBRARIES.get(flavour['library'], flavour['library'])}, "
        f"{MILES_IMFS.get(flavour['imf'], flavour['imf'])} IMF slope {flavour['slope']:.2f}, "
        f"{MILES_ISOCHRONES.get(flavour['isochrone'], flavour['isochrone'])} isochrones"
    )


def _read_miles_fits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Flux and wavelength of one MILES FITS file; any failure names the file."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            hdul.verify("exception")
            header = hdul[0].header
            data = hdul[0].data
            if data is None:
                raise ValueError("primary HDU has no data")
            flux = np.asarray(data, dtype=np.float64).squeeze()
            n = int(header["NAXIS1"])
            crval, cdelt = float(header["CRVAL1"]), float(header["CDELT1"])
            crpix = float(header.get("CRPIX1", 1.0))
    except Exception as exc:  # astropy raises OSError, ValueError, KeyError, TypeError... for broken files
        raise InputError(f"{path}: not a readable MILES SSP FITS file ({type(exc).__name__}: {exc})") from exc
    if flux.ndim != 1 or flux.size != n:
        raise InputError(f"{path}: expected a 1-D spectrum of NAXIS1={n} pixels, found shape {flux.shape}")
    if not np.all(np.isfinite(flux)):
        raise InputError(f"{path}: flux contains NaN or infinite values")
    wavelength = crval + cdelt * (np.arange(n) + 1 - crpix)
    return flux, wavelength


def _miles_index(directory: Path, wanted: dict) -> tuple[dict, dict]:
    """{(alpha, [M/H], age): path} of the folder's MILES files of one flavour, and that flavour.

    ``wanted`` holds the configured flavour keys (None: whatever the folder has, if it has only one).
    """
    files = [(p, parse_miles_fits_name(p.name)) for p in sorted(directory.glob("*.fits"))]
    files = [(p, meta) for p, meta in files if meta]
    if not files:
        raise InputError(
            f"{directory}: no files named like MILES SSPs (e.g. {miles_fits_name(10.0, 0.06)} or "
            f"{miles_fits_name(10.0, 0.0, library='E', imf='un', isochrone='P', suffix='_linear_FWHM_variable')})"
        )

    def matches(meta):
        return all(
            wanted.get(k) is None or (abs(meta[k] - float(wanted[k])) < 1e-6 if k == "slope" else meta[k] == wanted[k])
            for k in MILES_FLAVOUR_KEYS
        )

    kept = [(p, meta) for p, meta in files if matches(meta)]
    found = sorted({tuple(meta[k] for k in MILES_FLAVOUR_KEYS) for _, meta in files})
    listing = "; ".join(
        describe_flavour(dict(zip(MILES_FLAVOUR_KEYS, f))) + (f" (tail {f[-1]!r})" if f[-1] else "") for f in found
    )
    asked = {k: v for k, v in wanted.items() if v is not None}
    if not kept:
        raise InputError(f"{directory}: no MILES SSPs of the configured flavour {asked}; the folder has: {listing}")
    flavours = sorted({tuple(meta[k] for k in MILES_FLAVOUR_KEYS) for _, meta in kept})
    if len(flavours) > 1:
        raise InputError(
            f"{directory}: the folder mixes MILES flavours ({listing}); choose one with the keys "
            f"{list(MILES_FLAVOUR_KEYS)} of the miles_fits section"
        )
    index = {(meta["alpha"], round(meta["metallicity"], 2), round(meta["age"], 4)): p for p, meta in kept}
    return index, dict(zip(MILES_FLAVOUR_KEYS, flavours[0]))


def miles_grid(directory: str | Path, **flavour) -> dict:
    """The ages, [M/H] and alpha flavours a MILES folder holds (of one flavour), without reading the spectra."""
    index, chosen = _miles_index(Path(directory), flavour)
    return {
        "ages_gyr": sorted({k[2] for k in index}),
        "metallicities": sorted({k[1] for k in index}),
        "alphas": sorted({k[0] for k in index}, key=str),
        "flavour": chosen,
    }


def _crop_to_miles_range(flux: np.ndarray, wavelength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E-MILES and other extended libraries: keep the MILES optical range (3540.5-7409.6 A), where the resolution
    is MILES's 2.51 A; spectra inside that range are kept whole."""
    keep = (wavelength >= MILES_WAVELENGTH[0] - 1e-6) & (wavelength <= MILES_WAVELENGTH[-1] + 1e-6)
    if keep.all() or not keep.any():
        return flux, wavelength
    return flux[..., keep], wavelength[keep]


def load_miles_fits(
    directory: str | Path,
    ages_gyr: Sequence[float] | None,
    metallicities: Sequence[float] | None,
    alpha_models: str | Sequence[float] = BASE_ALPHA,
    **flavour,
) -> xr.Dataset:
    """Read a (alpha?, metallicity, age) grid of MILES SSPs of one flavour from a folder of FITS files.

    ``flavour``: library (M, E, ...), imf (ku, un, bi, ...), slope, isochrone (T, P) and suffix; a key left out or
    None takes the folder's only value (an error names the flavours when the folder mixes them). The default
    flavour is the seed's BaSTI KU1.30 MILES models. ``ages_gyr`` / ``metallicities`` None: every one the folder has.
    Extended libraries (E-MILES) are cut to the MILES optical range.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: MILES FITS folder does not exist (config key ssp.miles_fits.directory)")
    # no flavour named: the seed's models, with whatever tail the files carry
    wanted = {**DEFAULT_FLAVOUR, "suffix": None} if not flavour else {k: flavour.get(k) for k in MILES_FLAVOUR_KEYS}
    index, chosen = _miles_index(directory, wanted)
    ages_gyr = sorted({k[2] for k in index}) if ages_gyr is None else list(ages_gyr)
    metallicities = sorted({k[1] for k in index}) if metallicities is None else list(metallicities)

    alphas = [BASE_ALPHA] if alpha_models == BASE_ALPHA else [float(a) for a in alpha_models]
    flux = None
    reference: tuple[Path, np.ndarray] | None = None
    for ia, alpha in enumerate(alphas):
        for im, met in enumerate(metallicities):
            for it, age in enumerate(ages_gyr):
                path = index.get((alpha, round(float(met), 2), round(float(age), 4)))
                if path is None:
                    raise InputError(
                        f"{directory / miles_fits_name(age, met, alpha, **chosen)}: no such file for the requested "
                        f"age {age} Gyr, [M/H] {met:+.2f}, [alpha/Fe] {alpha} (check ssp.ages_gyr, "
                        "ssp.metallicities, ssp.alpha_models)"
                    )
                spectrum, wavelength = _read_miles_fits(path)
                if reference is None:
                    reference = (path, wavelength)
                    flux = np.empty((len(alphas), len(metallicities), len(ages_gyr), wavelength.size))
                elif wavelength.size != reference[1].size or not np.allclose(wavelength, reference[1], atol=1e-6):
                    raise InputError(
                        f"{path}: wavelength grid ({wavelength[0]:.2f}-{wavelength[-1]:.2f} A, {wavelength.size} px) "
                        f"differs from {reference[0].name} ({reference[1][0]:.2f}-{reference[1][-1]:.2f} A, "
                        f"{reference[1].size} px)"
                    )
                flux[ia, im, it] = spectrum

    assert reference is not None and flux is not None
    flux, wavelength = _crop_to_miles_range(flux, reference[1])
    attrs = _miles_attrs("miles_fits", f"MILES SSP FITS files from {directory}", alpha_models, chosen)
    if wavelength.size != reference[1].size:
        attrs["wavelength_cut"] = (
            f"{reference[1][0]:.1f}-{reference[1][-1]:.1f} A in the files, cut to the MILES range "
            f"{wavelength[0]:.1f}-{wavelength[-1]:.1f} A"
        )
    if alpha_models == BASE_ALPHA:
        return ssp_dataset(flux[0], ages_gyr, metallicities, wavelength, alphas=None, attrs=attrs)
    return ssp_dataset(flux, ages_gyr, metallicities, wavelength, alphas=alphas, attrs=attrs)


def _miles_attrs(source: str, detail: str, alpha_models, flavour: dict | None = None) -> dict:
    flavour = flavour or DEFAULT_FLAVOUR
    imf = MILES_IMFS.get(flavour["imf"], flavour["imf"])
    attrs = {
        "source": source,
        "source_detail": detail,
        "library": MILES_LIBRARIES.get(flavour["library"], flavour["library"]),
        "imf": f"{imf}, slope {flavour['slope']:.2f} (MILES {flavour['imf'].upper()}{flavour['slope']:.2f})",
        "isochrones": f"{MILES_ISOCHRONES.get(flavour['isochrone'], flavour['isochrone'])} "
        f"(MILES '{flavour['isochrone']}' models)",
        "resolution_fwhm_angstrom": MILES_FWHM_ANGSTROM,
        "flux_units": FLUX_UNITS,
        "wavelength_medium": "air",
        "alpha_models": "base ([alpha/Fe] follows the Milky-Way pattern)"
        if alpha_models == BASE_ALPHA
        else f"alpha-variable models, [alpha/Fe] = {list(alpha_models)}",
    }
    if alpha_models == BASE_ALPHA:
        attrs["alpha_axis_note"] = (
            "no [alpha/Fe] axis: base models follow the Milky-Way [alpha/Fe]-[Fe/H] relation; later stages "
            "drop [alpha/Fe] from the labels"
        )
    return attrs


# ---------------------------------------------------------------------------------------------
# milespy
# ---------------------------------------------------------------------------------------------

MILESPY_REPOSITORY_NAME = "MILES_SSP_v9.1.hdf5"


def _open_milespy_library(repository: str | Path | None, download_dir: str | Path):
    """An SSPLibrary (BaSTI, KU) from a local repository file, or downloaded by milespy into download_dir."""
    from milespy import SSPLibrary
    from milespy.configuration import config as milespy_config

    if repository is None:
        # milespy asks on stdin before downloading unless auto_download is set; a pipeline cannot answer.
        download_dir = Path(download_dir)
        download_dir.mkdir(parents=True, exist_ok=True)
        milespy_config["repository_folder"] = f"{download_dir.resolve()}/"
        milespy_config["auto_download"] = True
        return SSPLibrary(source="MILES_SSP", version="9.1", isochrone="T", imf_type="ku")

    repository = Path(repository)
    if not repository.is_file():
        raise InputError(f"{repository}: milespy repository file does not exist (config key ssp.milespy.repository)")
    # milespy only knows a local file through its repository folder under its canonical name, so link it there.
    folder = Path(tempfile.mkdtemp(prefix="milespy-"))
    (folder / MILESPY_REPOSITORY_NAME).symlink_to(repository.resolve())
    milespy_config["repository_folder"] = f"{folder}/"
    milespy_config["auto_download"] = False
    try:
        return SSPLibrary(source="MILES_SSP", version="9.1", isochrone="T", imf_type="ku")
    except (AssertionError, OSError, KeyError, ValueError) as exc:
        raise InputError(f"{repository}: not a readable milespy SSP repository ({type(exc).__name__}: {exc})") from exc


def load_milespy(
    repository: str | Path | None,
    ages_gyr: Sequence[float],
    metallicities: Sequence[float],
    alpha_models: str | Sequence[float] = BASE_ALPHA,
    download_dir: str | Path = "resources/milespy",
) -> xr.Dataset:
    """Read a (alpha?, metallicity, age) grid of MILES BaSTI KU1.30 SSPs through milespy."""
    lib = _open_milespy_library(repository, download_dir)
    meta = lib.models.meta
    age = np.asarray(meta["age"].value if hasattr(meta["age"], "value") else meta["age"], float)
    met = np.asarray(meta["met"].value if hasattr(meta["met"], "value") else meta["met"], float)
    alpha = np.asarray(meta["alpha"].value if hasattr(meta["alpha"], "value") else meta["alpha"], float)
    slope = np.asarray(meta["imf_slope"], float)
    flux_all = np.asarray(lib.models.flux.value)
    wavelength = np.asarray(lib.models.spectral_axis.value, float)
    where = repository or "the downloaded MILES_SSP_v9.1 repository"

    alphas = [BASE_ALPHA] if alpha_models == BASE_ALPHA else [float(a) for a in alpha_models]
    flux = np.empty((len(alphas), len(metallicities), len(ages_gyr), wavelength.size))
    for ia, a in enumerate(alphas):
        alpha_match = np.isnan(alpha) if a == BASE_ALPHA else np.isclose(alpha, a, atol=1e-3)
        for im, m in enumerate(metallicities):
            for it, t in enumerate(ages_gyr):
                hit = np.flatnonzero(
                    alpha_match
                    & np.isclose(met, m, atol=5e-3)
                    & np.isclose(age, t, rtol=1e-4, atol=1e-4)
                    & np.isclose(slope, KROUPA_UNIVERSAL_SLOPE, atol=1e-3)
                )
                if hit.size == 0:
                    raise InputError(
                        f"{where}: no BaSTI KU1.30 SSP for age {t} Gyr, [M/H] {m:+.2f}, [alpha/Fe] {a} "
                        "(check ssp.ages_gyr, ssp.metallicities, ssp.alpha_models)"
                    )
                flux[ia, im, it] = flux_all[hit[0]]

    attrs = _miles_attrs(
        "milespy", f"milespy SSPLibrary(MILES_SSP 9.1, isochrone T, imf ku) from {where}", alpha_models
    )
    if alpha_models == BASE_ALPHA:
        return ssp_dataset(flux[0], ages_gyr, metallicities, wavelength, alphas=None, attrs=attrs)
    return ssp_dataset(flux, ages_gyr, metallicities, wavelength, alphas=alphas, attrs=attrs)


# ---------------------------------------------------------------------------------------------
# dispatch and interpolation
# ---------------------------------------------------------------------------------------------


def load_library(ssp_config: dict, progress: bool = True) -> xr.Dataset:
    """Build the native SSP cube from the `ssp:` config section."""
    source = ssp_config["source"]
    ages, mets = ssp_config["ages_gyr"], ssp_config["metallicities"]
    if source == "fastar":
        cfg = ssp_config["fastar"]
        return synthesize_fastar(ages, mets, imf=cfg["imf"], out_of_range=cfg["out_of_range"], progress=progress)
    if source == "milespy":
        return load_milespy(ssp_config["milespy"]["repository"], ages, mets, ssp_config["alpha_models"])
    if source == "miles_fits":
        cfg = ssp_config["miles_fits"]
        flavour = {k: cfg.get(k) for k in MILES_FLAVOUR_KEYS}
        return load_miles_fits(cfg["directory"], ages, mets, ssp_config["alpha_models"], **flavour)
    raise InputError(f"ssp.source: unknown source {source!r}")


def interpolate_library(
    library: xr.Dataset, metallicities: Sequence[float], alphas: Sequence[float] | None = None
) -> xr.Dataset:
    """Linear interpolation of the cube in [M/H] (and [alpha/Fe] when it has that axis); ages stay native.

    Never extrapolates: a requested value outside the native grid is an error. Without an alpha axis the
    requested alphas are ignored and the attributes say so.
    """
    targets = {"metallicity": np.asarray(metallicities, float)}
    if has_alpha(library) and alphas is not None:
        targets["alpha"] = np.asarray(alphas, float)
    for dim, values in targets.items():
        lo, hi = float(library[dim].min()), float(library[dim].max())
        outside = values[(values < lo - 1e-9) | (values > hi + 1e-9)]
        if outside.size:
            raise InputError(f"interpolation in {dim}: {outside.tolist()} outside the native grid [{lo}, {hi}]")
        targets[dim] = np.clip(values, lo, hi)  # remove round-off just outside the edges

    out = library.interp(targets, method="linear")
    out["flux"] = out["flux"].astype(np.float32)
    out["flux"].attrs = library["flux"].attrs
    for dim in targets:
        out[dim].attrs = library[dim].attrs
    out.attrs = dict(library.attrs)
    out.attrs["interpolation"] = (
        "linear in [M/H]" + (" and [alpha/Fe]" if "alpha" in targets else "") + " between native models; ages native"
    )
    if not has_alpha(library) and alphas is not None:
        out.attrs["requested_alphas_ignored"] = (
            f"{list(alphas)} requested, but the native library has no [alpha/Fe] axis"
        )
    return out
