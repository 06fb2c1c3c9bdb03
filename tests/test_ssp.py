"""SSP sources (MILES FITS, milespy, FASTAR) and grid interpolation, all offline on files the tests write."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits

from galaxy_sbi.errors import InputError
from galaxy_sbi.spectra import ssp

AGES = [1.0, 10.0]
METS = [-0.35, 0.06]
NPIX = 64
WAVE0, DWAVE = 3540.5, 0.9


def fake_flux(age, met, alpha, npix=NPIX):
    """A smooth, distinct spectrum for each (age, met, alpha): lets the tests check what landed where."""
    x = np.linspace(0, 1, npix)
    alpha_value = 0.0 if alpha == ssp.BASE_ALPHA else alpha
    return (1e-5 * (1 + age) * (1 + 0.5 * met) * (1 + 0.3 * alpha_value) * (1 + 0.2 * np.sin(6 * x))).astype(np.float32)


def write_miles_fits(folder, age, met, alpha=ssp.BASE_ALPHA, crval=WAVE0, npix=NPIX, **flavour):
    header = fits.Header()
    header["CRVAL1"], header["CDELT1"], header["CRPIX1"] = crval, DWAVE, 1.0
    path = folder / ssp.miles_fits_name(age, met, alpha, **flavour)
    fits.PrimaryHDU(fake_flux(age, met, alpha, npix), header=header).writeto(path)
    return path


@pytest.fixture
def fits_folder(tmp_path):
    for alpha in (ssp.BASE_ALPHA, 0.0, 0.4):
        for met in METS:
            for age in AGES:
                write_miles_fits(tmp_path, age, met, alpha)
    (tmp_path / "README.txt").write_text("files that are not SSPs are ignored")
    return tmp_path


# --------------------------------------------------------------------------------- MILES FITS


def test_miles_fits_names_follow_the_seed():
    assert ssp.miles_fits_name(10.0, 0.06) == "Mku1.30Zp0.06T10.0000_iTp0.00_baseFe.fits"
    assert ssp.miles_fits_name(0.03, -2.27, 0.4) == "Mku1.30Zm2.27T00.0300_iTp0.40_Ep0.40.fits"
    parsed = ssp.parse_miles_fits_name("Mku1.30Zm0.35T01.2500_iTp0.40_Ep0.40.fits")
    assert parsed == {
        "library": "M",
        "imf": "ku",
        "slope": 1.30,
        "metallicity": -0.35,
        "age": 1.25,
        "isochrone": "T",
        "alpha": 0.4,
        "suffix": "",
    }
    assert ssp.parse_miles_fits_name("notes.fits") is None


EMILES_PADOVA = {"library": "E", "imf": "un", "slope": 1.30, "isochrone": "P", "suffix": "_linear_FWHM_variable"}


def test_miles_names_of_other_flavours_parse():
    """The names ppxf 8.1 ships (E-MILES, unimodal, Padova+00, a tail) and a bimodal alpha model, both ways."""
    name = "Eun1.30Zm0.40T00.0631_iPp0.00_baseFe_linear_FWHM_variable.fits"
    meta = ssp.parse_miles_fits_name(name)
    assert meta["library"] == "E" and meta["imf"] == "un" and meta["isochrone"] == "P"
    assert meta["metallicity"] == -0.40 and meta["age"] == 0.0631 and meta["suffix"] == "_linear_FWHM_variable"
    assert ssp.miles_fits_name(0.0631, -0.40, **EMILES_PADOVA) == name
    bimodal = ssp.parse_miles_fits_name("Mbi1.80Zp0.22T03.5481_iTp0.40_Ep0.40.fits")
    assert (bimodal["imf"], bimodal["slope"], bimodal["alpha"]) == ("bi", 1.80, 0.4)
    assert ssp.describe_flavour(meta) == "E-MILES, unimodal IMF slope 1.30, Padova+00 isochrones"


def test_emiles_files_are_cut_to_the_miles_range(tmp_path):
    """E-MILES spectra (1680 A onwards in ppxf's files) are read on the MILES optical range only."""
    crval = WAVE0 - 0.9 * 20  # starts 20 pixels blue of MILES, ends past 7409.6
    npix = 4300 + 40
    for met in METS:
        for age in AGES:
            write_miles_fits(tmp_path, age, met, crval=crval, npix=npix, **EMILES_PADOVA)
    lib = ssp.load_miles_fits(tmp_path, None, None, ssp.BASE_ALPHA, **EMILES_PADOVA)
    np.testing.assert_allclose(lib.wavelength.values, ssp.MILES_WAVELENGTH, atol=1e-6)
    full = fake_flux(10.0, 0.06, ssp.BASE_ALPHA, npix)
    np.testing.assert_allclose(lib.flux.sel(age=10.0, metallicity=0.06).values, full[20:4320], rtol=1e-6)
    assert "Padova" in lib.attrs["isochrones"] and "unimodal" in lib.attrs["imf"] and lib.attrs["library"] == "E-MILES"
    assert "cut to the MILES range" in lib.attrs["wavelength_cut"]
    grid = ssp.miles_grid(tmp_path)
    assert grid["ages_gyr"] == AGES and grid["metallicities"] == METS and grid["flavour"]["imf"] == "un"


def test_a_folder_of_mixed_flavours_needs_a_choice(tmp_path):
    for age in AGES:
        write_miles_fits(tmp_path, age, 0.06)
        write_miles_fits(tmp_path, age, 0.06, imf="un")
    with pytest.raises(InputError, match="mixes MILES flavours.*Kroupa universal.*unimodal"):
        ssp.load_miles_fits(tmp_path, AGES, [0.06], imf=None, library="M", slope=1.3, isochrone="T")
    lib = ssp.load_miles_fits(tmp_path, AGES, [0.06], imf="un", library=None, slope=None, isochrone=None)
    assert "unimodal" in lib.attrs["imf"]
    with pytest.raises(InputError, match="no MILES SSPs of the configured flavour.*'bi'.*the folder has"):
        ssp.load_miles_fits(tmp_path, AGES, [0.06], imf="bi")


def test_miles_fits_base_models(fits_folder):
    lib = ssp.load_miles_fits(fits_folder, AGES, METS, ssp.BASE_ALPHA)
    assert lib["flux"].dims == ("metallicity", "age", "wavelength")
    assert not ssp.has_alpha(lib)
    np.testing.assert_allclose(lib.wavelength.values, WAVE0 + DWAVE * np.arange(NPIX))
    np.testing.assert_allclose(lib.flux.sel(age=10.0, metallicity=-0.35).values, fake_flux(10.0, -0.35, ssp.BASE_ALPHA))
    assert lib.attrs["source"] == "miles_fits" and "KU1.30" in lib.attrs["imf"] and "BaSTI" in lib.attrs["isochrones"]


def test_miles_fits_alpha_variable_models(fits_folder):
    lib = ssp.load_miles_fits(fits_folder, AGES, METS, [0.0, 0.4])
    assert lib["flux"].dims == ("alpha", "metallicity", "age", "wavelength")
    np.testing.assert_allclose(lib.alpha.values, [0.0, 0.4])
    np.testing.assert_allclose(lib.flux.sel(alpha=0.4, age=1.0, metallicity=0.06).values, fake_flux(1.0, 0.06, 0.4))


def test_miles_fits_missing_folder(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'nowhere'}: MILES FITS folder does not exist"):
        ssp.load_miles_fits(tmp_path / "nowhere", AGES, METS)


def test_miles_fits_requested_age_without_file_names_the_file(fits_folder):
    with pytest.raises(InputError, match="Mku1.30Zm0.35T05.0000_iTp0.00_baseFe.fits: no such file"):
        ssp.load_miles_fits(fits_folder, [1.0, 5.0], METS)


def test_miles_fits_requested_metallicity_without_file_names_the_file(fits_folder):
    with pytest.raises(InputError, match="Mku1.30Zm1.26T01.0000_iTp0.00_Ep0.00.fits: no such file"):
        ssp.load_miles_fits(fits_folder, AGES, [-1.26], [0.0, 0.4])


def test_miles_fits_inconsistent_wavelength_grid_names_the_file(fits_folder):
    odd = fits_folder / ssp.miles_fits_name(10.0, 0.06)
    odd.unlink()
    write_miles_fits(fits_folder, 10.0, 0.06, crval=WAVE0 + 0.45)
    with pytest.raises(InputError, match=f"{odd}: wavelength grid .* differs from"):
        ssp.load_miles_fits(fits_folder, AGES, METS)


def test_miles_fits_corrupt_file_names_the_file(fits_folder):
    bad = fits_folder / ssp.miles_fits_name(1.0, 0.06)
    bad.write_bytes(bad.read_bytes()[:3000])  # truncated in the data unit
    with pytest.raises(InputError, match=f"{bad}: not a readable MILES SSP FITS file"):
        ssp.load_miles_fits(fits_folder, AGES, METS)
    bad.write_bytes(b"this is not a FITS file at all" * 100)
    with pytest.raises(InputError, match=f"{bad}: not a readable MILES SSP FITS file"):
        ssp.load_miles_fits(fits_folder, AGES, METS)


# --------------------------------------------------------------------------------- milespy


def write_milespy_repository(path, alphas=(np.nan, 0.0, 0.4)):
    """A tiny repository in milespy's HDF5 layout (wave, spec/<iso>/<imf>/data, one metadata row per model)."""
    rows = [(a, m, t) for a in alphas for m in METS for t in AGES]
    # A Padova/Chabrier model too, which the BaSTI/KU selection must skip.
    iso = [b"T"] * len(rows) + [b"P"]
    imf = [b"ku"] * len(rows) + [b"ch"]
    with h5py.File(path, "w") as f:
        f["wave"] = WAVE0 + DWAVE * np.arange(NPIX)
        f["spec/T/ku/data"] = np.stack(
            [fake_flux(t, m, ssp.BASE_ALPHA if np.isnan(a) else a) for a, m, t in rows], axis=1
        )
        f["spec/P/ch/data"] = np.ones((NPIX, 1))
        f["isochrone"] = np.array(iso)
        f["imf_type"] = np.array(imf)
        f["filename"] = np.array([b"/models/m%03d.fits" % i for i in range(len(iso))])
        f["alpha"] = np.array([a for a, _, _ in rows] + [np.nan])
        f["met"] = np.array([m for _, m, _ in rows] + [0.0])
        f["age"] = np.array([t for _, _, t in rows] + [1.0])
        f["imf_slope"] = np.array([1.3] * len(rows) + [1.3])
    return path


def test_milespy_reader_alpha_variable(tmp_path):
    repo = write_milespy_repository(tmp_path / "my_miles.hdf5")
    lib = ssp.load_milespy(repo, AGES, METS, [0.0, 0.4])
    assert lib["flux"].dims == ("alpha", "metallicity", "age", "wavelength")
    np.testing.assert_allclose(
        lib.flux.sel(alpha=0.4, age=10.0, metallicity=0.06).values, fake_flux(10.0, 0.06, 0.4), rtol=1e-6
    )
    np.testing.assert_allclose(lib.wavelength.values, WAVE0 + DWAVE * np.arange(NPIX))
    assert lib.attrs["source"] == "milespy"


def test_milespy_reader_base_models(tmp_path):
    repo = write_milespy_repository(tmp_path / "my_miles.hdf5")
    lib = ssp.load_milespy(repo, AGES, METS, ssp.BASE_ALPHA)
    assert not ssp.has_alpha(lib)
    np.testing.assert_allclose(
        lib.flux.sel(age=1.0, metallicity=-0.35).values, fake_flux(1.0, -0.35, ssp.BASE_ALPHA), rtol=1e-6
    )


def test_milespy_reader_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.hdf5: milespy repository file does not exist"):
        ssp.load_milespy(tmp_path / "missing.hdf5", AGES, METS)
    repo = write_milespy_repository(tmp_path / "my_miles.hdf5")
    with pytest.raises(InputError, match=r"my_miles.hdf5: no BaSTI KU1.30 SSP for age 3.0 Gyr"):
        ssp.load_milespy(repo, [3.0], METS)
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(b"\x89HDF garbage")
    with pytest.raises(InputError, match="broken.hdf5: not a readable milespy SSP repository"):
        ssp.load_milespy(broken, AGES, METS)


# --------------------------------------------------------------------------------- interpolation


def _cube(alphas=(0.0, 0.4)):
    mets = [-1.0, 0.0, 0.4]
    rng = np.random.default_rng(1)
    flux = rng.uniform(1, 2, size=(len(alphas), len(mets), len(AGES), NPIX))
    return ssp.ssp_dataset(flux, AGES, mets, WAVE0 + DWAVE * np.arange(NPIX), alphas=list(alphas))


def test_interpolation_is_exact_at_nodes():
    cube = _cube()
    out = ssp.interpolate_library(cube, [-1.0, 0.0, 0.4], [0.0, 0.4])
    np.testing.assert_array_equal(out.flux.values, cube.flux.values)


def test_interpolation_is_linear_between_nodes():
    cube = _cube()
    out = ssp.interpolate_library(cube, [-0.5, 0.1], [0.0, 0.2, 0.3])
    f = cube.flux.values.astype(np.float64)
    # [M/H] -0.5 halfway between -1.0 and 0.0; 0.1 a quarter of the way from 0.0 to 0.4
    expected_met = np.stack([0.5 * f[:, 0] + 0.5 * f[:, 1], 0.75 * f[:, 1] + 0.25 * f[:, 2]], axis=1)
    expected = np.stack(
        [
            expected_met[0],
            0.5 * expected_met[0] + 0.5 * expected_met[1],
            0.25 * expected_met[0] + 0.75 * expected_met[1],
        ]
    )
    np.testing.assert_allclose(out.flux.values, expected, rtol=2e-7)
    assert out.flux.dims == ("alpha", "metallicity", "age", "wavelength")
    assert out.flux.dtype == np.float32


def test_interpolation_never_extrapolates():
    with pytest.raises(InputError, match="metallicity"):
        ssp.interpolate_library(_cube(), [0.6], [0.0])


def test_interpolation_without_alpha_axis_says_so():
    cube = _cube().isel(alpha=0, drop=True)
    cube.attrs["has_alpha_axis"] = 0
    out = ssp.interpolate_library(cube, [-0.2], [0.0, 0.2, 0.4])
    assert "alpha" not in out.dims
    assert "no [alpha/Fe] axis" in out.attrs["requested_alphas_ignored"]


def test_netcdf_round_trip(tmp_path):
    from galaxy_sbi.io import provenance_attrs, write_netcdf

    cube = _cube()
    cube.attrs.update(provenance_attrs({"a": 1}, stage="test"))
    path = write_netcdf(cube, tmp_path / "cube.nc", chunk_sizes={"alpha": 1, "metallicity": 1})
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back.flux.values, cube.flux.values)
        assert back.flux.attrs["units"] == ssp.FLUX_UNITS
        assert back.age.attrs["units"] == "Gyr"
        assert back.attrs["config_hash"] == cube.attrs["config_hash"]


# --------------------------------------------------------------------------------- FASTAR


@pytest.fixture(scope="module")
def fastar_small():
    # +0.40 lies beyond FASTAR's isochrones: with "clamp" it is evaluated at +0.30 and recorded.
    return ssp.synthesize_fastar([1.0, 10.0], [-0.35, 0.06, 0.4], imf="kroupa", out_of_range="clamp", progress=False)


def test_fastar_grid_is_miles_like(fastar_small):
    lib = fastar_small
    assert lib.flux.shape == (3, 2, 4300)
    assert lib.wavelength.values[0] == pytest.approx(3540.5)
    assert lib.wavelength.values[-1] == pytest.approx(7409.6)
    np.testing.assert_allclose(np.diff(lib.wavelength.values), 0.9, atol=1e-6)
    assert not ssp.has_alpha(lib) and "no [alpha/Fe] axis" in lib.attrs["alpha_axis_note"]
    for key in ("source", "imf", "isochrones", "resolution_fwhm_angstrom", "flux_units"):
        assert key in lib.attrs
    assert "Kroupa" in lib.attrs["imf"]


def test_fastar_physics(fastar_small):
    """Older populations are fainter per unit mass and redder; metal-rich ones redder too."""
    f = fastar_small.flux
    blue = slice(4000, 4500)
    red = slice(6000, 6500)

    def colour(age, met):
        s = f.sel(age=age, metallicity=met)
        return float(s.sel(wavelength=red).mean() / s.sel(wavelength=blue).mean())

    assert float(f.sel(age=10.0, metallicity=0.06).mean()) < float(f.sel(age=1.0, metallicity=0.06).mean())
    assert colour(10.0, 0.06) > colour(1.0, 0.06)
    assert colour(10.0, 0.06) > colour(10.0, -0.35)
    # Lsun/A/Msun of an old solar population: order 1e-5 (MILES: ~1e-5 at 5000 A for 10 Gyr)
    assert 1e-6 < float(f.sel(age=10.0, metallicity=0.06).median()) < 1e-4


def test_fastar_refuses_metallicities_it_cannot_model():
    with pytest.raises(InputError, match=r"\[M/H\] \[0.4\] outside FASTAR"):
        ssp.synthesize_fastar([10.0], [0.4], out_of_range="error", progress=False)


def test_fastar_records_clamping(fastar_small):
    assert fastar_small.attrs["clamped"] == "[M/H] +0.40 evaluated at +0.30"
    np.testing.assert_array_equal(fastar_small.metallicity.values, [-0.35, 0.06, 0.4])


# --------------------------------------------------------------------------------- fetching ppxf's MILES models


def test_ppxf_sdist_models_unpack_flat_with_their_source(tmp_path):
    """The fetch helper on a small stand-in for ppxf 8.1.0's sdist: the models land flat, other files do not."""
    import tarfile

    from galaxy_sbi.spectra import miles_download

    src = tmp_path / "src" / "ppxf-8.1.0" / "ppxf" / "miles_models"
    src.mkdir(parents=True)
    path = write_miles_fits(src, 10.0, 0.0, **EMILES_PADOVA)
    (src.parent / "ppxf.py").write_text("not a model")
    sdist = tmp_path / "ppxf-8.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(tmp_path / "src" / "ppxf-8.1.0", arcname="ppxf-8.1.0")
    dest = miles_download.fetch_ppxf_miles_models(tmp_path / "models", sdist=sdist)
    assert sorted(p.name for p in dest.iterdir()) == sorted([path.name, "SOURCE.txt"])
    assert "sha256" in (dest / "SOURCE.txt").read_text()
    lib = ssp.load_miles_fits(dest, None, None, ssp.BASE_ALPHA, **EMILES_PADOVA)
    assert lib.sizes["age"] == 1 and lib.attrs["library"] == "E-MILES"
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.add(src.parent / "ppxf.py", arcname="ppxf-8.1.0/ppxf/ppxf.py")
    with pytest.raises(InputError, match="holds no ppxf-8.1.0/ppxf/miles_models"):
        miles_download.fetch_ppxf_miles_models(tmp_path / "m2", sdist=empty)
