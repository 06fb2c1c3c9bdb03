"""Data shipped with galaxy-sbi (src/galaxy_sbi/data/chem/, MIT, see its README.md and LICENSE).

The IllustrisTNG yield tables in CHEMPY's format and the study's TNG mock galaxy, found through
importlib.resources so that they work from an installed package as from the checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: the value of chem.yields.source / chem.multistar.tng_mock that means "the copy shipped with galaxy-sbi"
PACKAGED = "packaged"


def data_dir() -> Path:
    return Path(str(resources.files("galaxy_sbi") / "data" / "chem"))


def tng_yields_dir() -> Path:
    """Folder with CHEMPY's TNG SNII.hdf5, AGB.hdf5 and SNIa.hdf5."""
    return data_dir() / "yields" / "TNG"


def alternative_yields_dir() -> Path:
    """Folder with the study's alternative tables in CHEMPY's layout (Nomoto2013/, Karakas2016/, Thielemann2003/)."""
    return data_dir() / "yields" / "alternative"


def tng_mock_path() -> Path:
    """Mock_Data_TNG.npz: 1,000 star particles of the IllustrisTNG galaxy 523071."""
    return data_dir() / "Mock_Data_TNG.npz"
