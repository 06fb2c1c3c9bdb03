"""Real MILES models for whoever asks: the 150 E-MILES SSPs that ppxf 8.1.0's source distribution ships.

ppxf dropped its MILES files after 8.1; its 8.1.0 sdist on PyPI (25 MB) still holds them in ``ppxf/miles_models/``:
E-MILES, Padova+00 isochrones, unimodal IMF 1.30, base [alpha/Fe], 6 [M/H] x 25 ages, 2.51 A FWHM over the MILES
range. This module downloads that sdist with pip (the package registry is the one network source every install
already trusts) and unpacks the models into a folder of ``resources/``. It is never on the default run's path: the
``ssp_systematic`` target asks for it, or a user runs::

    python -m galaxy_sbi.spectra.miles_download resources/miles_models/ppxf-8.1.0

The files carry the MILES team's terms (their FITS headers: non-commercial use, cite the MILES project); they are
fetched onto the user's machine, never committed to this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

PPXF_VERSION = "8.1.0"
MODELS_DIR = "ppxf/miles_models/"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_ppxf_sdist(directory: Path, version: str = PPXF_VERSION) -> Path:
    """``pip download`` of ppxf's source distribution (no dependencies, no wheel) into ``directory``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"ppxf=={version}"]
    cmd += ["-d", str(directory), "--quiet"]
    log.info("downloading ppxf %s's source distribution: %s", version, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(directory.glob(f"ppxf-{version}.tar.gz"))
    if done.returncode != 0 or not found:
        said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(
            f"could not download ppxf=={version}'s source distribution from the package index ({said[0]}); "
            f"download it where you can (pip download --no-deps --no-binary :all: ppxf=={version}) and run "
            f"python -m galaxy_sbi.spectra.miles_download --sdist ppxf-{version}.tar.gz DESTINATION"
        )
    return found[0]


def unpack_miles_models(sdist: Path, destination: Path, version: str = PPXF_VERSION) -> list[Path]:
    """The files under ``ppxf/miles_models/`` of the sdist, flat in ``destination``; returns the FITS files."""
    prefix = f"ppxf-{version}/{MODELS_DIR}"
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)]
            if not any(m.name.endswith(".fits") for m in members):
                raise InputError(f"{sdist}: holds no {prefix}*.fits (is it ppxf {version}'s source distribution?)")
            destination.mkdir(parents=True, exist_ok=True)
            for member in members:
                name = Path(member.name).name
                with tar.extractfile(member) as src, open(destination / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"{sdist}: not a readable .tar.gz ({type(exc).__name__}: {exc})") from exc
    return sorted(destination.glob("*.fits"))


def fetch_ppxf_miles_models(destination: str | Path, sdist: str | Path | None = None, version: str = PPXF_VERSION):
    """Download (or take ``sdist``) and unpack ppxf's MILES models into ``destination``, with a SOURCE.txt that
    says where they came from (sdist name and SHA-256). Returns the destination."""
    destination = Path(destination)
    with tempfile.TemporaryDirectory(prefix="ppxf-sdist-") as tmp:
        archive = Path(sdist) if sdist else download_ppxf_sdist(Path(tmp), version)
        if not archive.is_file():
            raise InputError(f"{archive}: no such file (the ppxf {version} source distribution)")
        fits_files = unpack_miles_models(archive, destination, version)
        (destination / "SOURCE.txt").write_text(
            f"{len(fits_files)} MILES SSP FITS files from {MODELS_DIR} of {archive.name} "
            f"(sha256 {_sha256(archive)}), the ppxf {version} source distribution on PyPI.\n"
            "E-MILES models (Vazdekis et al. 2016), Padova+00 isochrones, unimodal IMF slope 1.30, base [alpha/Fe].\n"
            "Terms: the MILES team's, in every file's FITS header (non-commercial use; cite the MILES project).\n"
        )
    log.info("%d MILES SSPs in %s", len(fits_files), destination)
    return destination


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", nargs="?", default=f"resources/miles_models/ppxf-{PPXF_VERSION}")
    parser.add_argument("--sdist", help="a ppxf source distribution already downloaded (else pip downloads it)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        fetch_ppxf_miles_models(args.destination, args.sdist)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
