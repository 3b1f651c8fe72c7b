"""Channel names, units and the name maps between on-disk conventions.

Channel names are short and carry their level: ``z500`` (geopotential at 500 hPa), ``t2m``, ``so_10m``
(salinity at 10 m depth). Sources: NVlabs FourCastNet ``data_process/parallel_copy_small_set.py`` for the
20-channel order; WeatherBench2 ``era5`` store variable names; HYCOM GOFS 3.1 and CMEMS GLORYS12 variable
names (see shared/reference/evaluation.md §2-3).
"""

from __future__ import annotations

import re

# NVlabs FourCastNet channel order; index 20 of the published 21-channel files is an unused spare slot.
FOURCASTNET_CHANNELS: tuple[str, ...] = (
    "u10", "v10", "t2m", "sp", "msl", "t850", "u1000", "v1000", "z1000", "u850",
    "v850", "z850", "u500", "v500", "z500", "t500", "z50", "r500", "r850", "tcwv",
)  # fmt: skip

# Surface (single-level) channels: short name -> (WeatherBench2 variable, units).
SURFACE_VARIABLES: dict[str, tuple[str, str]] = {
    "u10": ("10m_u_component_of_wind", "m s-1"),
    "v10": ("10m_v_component_of_wind", "m s-1"),
    "u100": ("100m_u_component_of_wind", "m s-1"),
    "v100": ("100m_v_component_of_wind", "m s-1"),
    "t2m": ("2m_temperature", "K"),
    "sp": ("surface_pressure", "Pa"),
    "msl": ("mean_sea_level_pressure", "Pa"),
    "tcwv": ("total_column_water_vapour", "kg m-2"),
    "tp6": ("total_precipitation_6hr", "m"),
    "sst": ("sea_surface_temperature", "K"),
    "lsm": ("land_sea_mask", "1"),
    "orog": ("geopotential_at_surface", "m2 s-2"),
}

# Pressure-level channels: letter -> (WeatherBench2 variable, units); the level in hPa follows the letter.
LEVEL_VARIABLES: dict[str, tuple[str, str]] = {
    "z": ("geopotential", "m2 s-2"),
    "t": ("temperature", "K"),
    "u": ("u_component_of_wind", "m s-1"),
    "v": ("v_component_of_wind", "m s-1"),
    "q": ("specific_humidity", "kg kg-1"),
    "r": ("relative_humidity", "%"),
    "w": ("vertical_velocity", "Pa s-1"),
}

# Ocean channels: canonical (CMEMS/GLORYS) short name -> (HYCOM name, units, has depth).
# HYCOM's water_temp is in-situ temperature where GLORYS's thetao is potential temperature; the two are
# mapped to one channel name and the difference (< 0.1 K in the upper 500 m) is left to the user.
OCEAN_VARIABLES: dict[str, tuple[str, str, bool]] = {
    "thetao": ("water_temp", "degC", True),
    "so": ("salinity", "1e-3", True),
    "uo": ("water_u", "m s-1", True),
    "vo": ("water_v", "m s-1", True),
    "zos": ("surf_el", "m", False),
}
HYCOM_TO_CANONICAL = {hycom: name for name, (hycom, _, _) in OCEAN_VARIABLES.items()}

_LEVEL_NAME = re.compile(r"^([a-z])(\d+)$")
_DEPTH_NAME = re.compile(r"^([a-z]+)_(\d+(?:\.\d+)?)m$")


def parse_level_channel(name: str) -> tuple[str, int] | None:
    """``"z500"`` -> ``("z", 500)``; None where the name is not a pressure-level channel."""
    if name in SURFACE_VARIABLES:
        return None
    match = _LEVEL_NAME.match(name)
    if match and match.group(1) in LEVEL_VARIABLES:
        return match.group(1), int(match.group(2))
    return None


def parse_depth_channel(name: str) -> tuple[str, float] | None:
    """``"so_10m"`` -> ``("so", 10.0)``; None where the name carries no depth."""
    match = _DEPTH_NAME.match(name)
    if match:
        return match.group(1), float(match.group(2))
    return None


def depth_channel(variable: str, depth: float) -> str:
    """``("so", 10.0)`` -> ``"so_10m"``; fractional depths keep their digits (``"so_0.494m"``)."""
    return f"{variable}_{depth:g}m"


def units_of(name: str) -> str:
    """Physical units of a channel name, or "1" where earthport does not know the variable."""
    if name in SURFACE_VARIABLES:
        return SURFACE_VARIABLES[name][1]
    level = parse_level_channel(name)
    if level:
        return LEVEL_VARIABLES[level[0]][1]
    depth = parse_depth_channel(name)
    variable = depth[0] if depth else name
    if variable in OCEAN_VARIABLES:
        return OCEAN_VARIABLES[variable][1]
    return "1"
