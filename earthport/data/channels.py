"""Channel names, units and the name maps between on-disk conventions.

Channel names are short and carry their level: ``z500`` (geopotential at 500 hPa), ``t2m``, ``so_10m``
(salinity at 10 m depth). Sources: NVlabs FourCastNet ``data_process/parallel_copy_small_set.py`` for the
20-channel order; WeatherBench2 ``era5`` store variable names; HYCOM GOFS 3.1 and CMEMS GLORYS12 variable
names (see shared/reference/evaluation.md §2-3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# NVlabs FourCastNet channel order; index 20 of the published 21-channel files is an unused spare slot.
FOURCASTNET_CHANNELS: tuple[str, ...] = (
    "u10", "v10", "t2m", "sp", "msl", "t850", "u1000", "v1000", "z1000", "u850",
    "v850", "z850", "u500", "v500", "z500", "t500", "z50", "r500", "r850", "tcwv",
)  # fmt: skip

# Ocean channel sets: (depths in m, ERA5 forcings). "aigoms" is AI-GOMS's 61 + 5 (Xiong et al. 2023).
OCEAN_SETS = {
    "default": ((0.0, 10.0, 30.0, 50.0, 100.0), ("u10", "v10", "t2m", "msl")),
    "aigoms": ((0.0, 6.0, 10.0, 20.0, 30.0, 50.0, 70.0, 100.0, 125.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0),
               ("u10", "v10", "t2m", "msl", "sp")),
}  # fmt: skip
CHANNEL_SETS = {"atmosphere": ("default",), "ocean": tuple(OCEAN_SETS)}  # what `data generate` writes

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
    "tisr": ("toa_incident_solar_radiation", "J m-2"),
}
# Channels that are forcings wherever they appear (known in advance, never predicted): the sun's radiation at the
# top of the atmosphere over the hour before each time, as ERA5 and GraphCast's inputs have it.
FORCING_VARIABLES = ("tisr",)

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


def depth_channels(depths: Sequence[float]) -> list[str]:
    """AI-GOMS's channel order: temperature, salinity, u, v at each depth, then sea surface height
    (``thetao_0m``, ..., ``vo_500m``, ``zos``)."""
    deep = [v for v, (_, _, has_depth) in OCEAN_VARIABLES.items() if has_depth]
    flat = [v for v, (_, _, has_depth) in OCEAN_VARIABLES.items() if not has_depth]
    return [depth_channel(v, float(d)) for v in deep for d in depths] + flat


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


def variable_and_level(name: str) -> tuple[str, int | None]:
    """A channel's variable and pressure level in hPa: ``"z500"`` -> ``("z", 500)``, ``"t2m"`` -> ``("t2m", None)``.
    Only pressure levels count as levels; any other name (``"so_10m"`` too) is a variable of its own."""
    level = parse_level_channel(name)
    return level if level else (name, None)


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
