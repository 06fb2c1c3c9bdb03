"""Copy the study's alternative yield tables out of a ChempyMulti checkout into galaxy-sbi's package data, and
rebuild the two Karakas & Lugaro (2016) surface files the checkout lacks.

    python tools/chempy_reference/make_alternative_tables.py /path/to/ChempyMulti

ChempyMulti (github:bGuenes/ChempyMulti, MIT) lists ``Chempy/input/yields/Karakas2016/surf_z007.dat`` and
``surf_z014.dat`` but its snapshot (like the original CHEMPY's) has no content for them. CHEMPY's
``Karakas16_net`` reads only the initial composition (the first block, column X(i)) from a surface file, so
that block is rebuilt from the Z = 0.03 file, whose initial composition is scaled-solar like all of Karakas &
Lugaro's: H by (1 - Y - Z) / (1 - 0.30 - 0.03) and He by Y / 0.30, with Z and Y from the header of the yield
file of the same metallicity (Z = 0.007, Y = 0.26; Z = 0.014, Y = 0.28), and every metal by one factor that
gives Fe the mass fraction of the 1 M☉ model's wind in that yield file (AGB stars do not make iron: in the
Z = 0.03 files the wind's X(Fe) is the initial one to 0.02 %). log e(X), [X/H], [X/Fe] and [X/O] move with
X(i) (CHEMPY reads only X(i)). The rebuilt files are written into the package data *and* into the checkout,
so that real CHEMPY (the regression, tools/chempy_reference/run_chempy.py) reads the very same numbers.

Only the first block of each surface file is kept in the package data (surf_z03.dat is 4 MB; CHEMPY's
parser reads the rows up to the element before the third ``p`` row, and the kept lines keep that row).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "galaxy_sbi" / "data" / "chem" / "yields" / "alternative"
NOMOTO = [f"nomoto_net_met_ind_{i}.npy" for i in range(5)]
KARAKAS_Z = {"001": (0.001, None), "007": (0.007, 0.26), "014": (0.014, 0.28), "03": (0.03, 0.30)}


def first_block(lines: list[str]) -> list[str]:
    """The header and initial-composition rows of a surface file, through the first row of the next block."""
    out, seen_p = [], 0
    for line in lines:
        out.append(line)
        if line.split()[:1] == ["p"]:
            seen_p += 1
            if seen_p == 3:
                return out
    raise ValueError("no third 'p' row: not a Karakas (2016) surface file")


def wind_iron_fraction(yield_lines: list[str]) -> float:
    """X(Fe) of the first (1 M☉) model's wind in a Karakas (2016) yield file (column 6 in both layouts)."""
    for line in yield_lines:
        parts = line.split()
        if parts and parts[0].lower() == "fe":
            return float(parts[5])
    raise ValueError("no Fe row in the yield file")


def block_fraction(block: list[str], element: str) -> float:
    """X(i) of one element in the initial-composition block."""
    return next(float(line.split()[6]) for line in block if line.split()[:1] == [element])


def rebuilt_surface(reference: list[str], z: float, y: float, fe: float, z_ref: float = 0.03, y_ref: float = 0.30):
    """The initial-composition block at (z, y) scaled from the block at (z_ref, y_ref), metals so that X(Fe) = fe."""
    import math

    hydrogen, helium = (1 - y - z) / (1 - y_ref - z_ref), y / y_ref
    metals = fe / block_fraction(reference, "fe")
    out, n_p = [], 0
    for line in reference:
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            out.append(line.replace(f"Z =  {z_ref:.4f}, Y =  {y_ref:.3f}", f"Z =  {z:.4f}, Y =  {y:.3f}"))
            continue
        el = parts[0]
        n_p += el == "p"  # the first p row is hydrogen, the second phosphorus, the third the next block's H
        f = hydrogen if el == "p" and n_p != 2 else helium if el == "he" else metals
        xi = float(parts[6]) * f
        shift = [math.log10(f / g) if xi > 0 else 0.0 for g in (hydrogen, hydrogen, metals, metals)]
        cols = [float(v) + d for v, d in zip(parts[2:6], shift)]  # log e(X), [X/H], [X/Fe], [X/O]
        out.append(f"{el:>3s} {int(parts[1]):3d} " + " ".join(f"{c:10.6f}" for c in cols) + f" {xi:.5E}\n")
    return out


def main(checkout: Path) -> None:
    src = checkout / "Chempy" / "input" / "yields"
    for sub in ("Nomoto2013", "Karakas2016", "Thielemann2003"):
        (PACKAGE / sub).mkdir(parents=True, exist_ok=True)
    for name in NOMOTO:
        shutil.copyfile(src / "Nomoto2013" / name, PACKAGE / "Nomoto2013" / name)
    shutil.copyfile(src / "Thielemann2003" / "0.02.txt", PACKAGE / "Thielemann2003" / "0.02.txt")
    z03 = first_block((src / "Karakas2016" / "surf_z03.dat").read_text().splitlines(keepends=True))
    for tag, (z, y) in KARAKAS_Z.items():
        shutil.copyfile(src / "Karakas2016" / f"yield_z{tag}.dat", PACKAGE / "Karakas2016" / f"yield_z{tag}.dat")
        path = src / "Karakas2016" / f"surf_z{tag}.dat"
        if path.is_file() and path.stat().st_size > 0:
            block = first_block(path.read_text().splitlines(keepends=True))
        else:
            fe = wind_iron_fraction((src / "Karakas2016" / f"yield_z{tag}.dat").read_text().splitlines())
            block = rebuilt_surface(z03, z, y, fe)
            path.write_text("".join(block))  # real CHEMPY reads the rebuilt block too
            print(f"rebuilt {path.name} from surf_z03.dat (Z {z}, Y {y})")
        (PACKAGE / "Karakas2016" / f"surf_z{tag}.dat").write_text("".join(block))
    print("wrote", PACKAGE)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
