"""Generated data with learnable dynamics, written in the FourCastNet layout, for any grid size.

A few latent anomaly fields evolve in zonal Fourier space, row by row: each time step they are
advected eastward by a latitude-dependent angular velocity (jets and trade winds shear them), diffused
zonally and meridionally, damped, and forced by smooth noise. Physical channels are a climatology
(latitude structure, a seasonal cycle of opposite sign in each hemisphere, a diurnal wave for near-surface
temperature) plus fixed linear mixtures of the latents scaled to realistic magnitudes. The next state is
therefore mostly a smooth function of the current one (advection), so a model that learns beats
persistence (which ignores the motion) and climatology (which ignores the anomaly).

Ocean data adds depth: anomalies decay with depth, land comes from a random bathymetry so that it grows
with depth, and a few atmospheric forcing channels drive the ocean latents, so the forcings carry
information a model can use.

Everything is drawn from one ``numpy.random.Generator`` in a fixed order, one step at a time: output is
deterministic for a seed whatever the chunk size, and memory holds a few steps, never the whole file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from earthport.data.base import Channel, Metadata
from earthport.data.channels import (
    CHANNEL_SETS,
    FORCING_VARIABLES,
    FOURCASTNET_CHANNELS,
    OCEAN_SETS,
    depth_channels,
    parse_depth_channel,
    parse_level_channel,
)
from earthport.data.fcn_writer import split_by_year, write_fcn
from earthport.data.stats import Stats
from earthport.errors import DataError

DEFAULT_STEP_HOURS = {"atmosphere": 6.0, "ocean": 24.0}
LATENTS = 4
OCEAN_NOISE = 0.2  # the ocean's own random forcing, relative to the atmosphere's (the rest is the atmosphere's push)
OCEAN_SCALE = 3.0  # ocean anomalies are broader than the weather's
SOLAR_CONSTANT = 1361.0  # W m-2


def default_channels(kind: str, channel_set: str = "default") -> tuple[Channel, ...]:
    """FourCastNet's 20 channels for the atmosphere; t/s/u/v x depth + zos + forcings for the ocean."""
    if kind not in CHANNEL_SETS:
        raise DataError(f"kind {kind!r}", "expected 'atmosphere' or 'ocean'")
    if channel_set not in CHANNEL_SETS[kind]:
        raise DataError(f"channel set {channel_set!r}", f"the {kind} sets are {list(CHANNEL_SETS[kind])}")
    if kind == "atmosphere":
        return tuple(Channel(name) for name in FOURCASTNET_CHANNELS)
    depths, forcing_names = OCEAN_SETS[channel_set]
    forcings = [Channel(name, role="forcing") for name in forcing_names]
    return (*(Channel(name) for name in depth_channels(depths)), *forcings)


def regular_latlon(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pole-inclusive latitudes (90 -> -90, like ERA5's 721 rows) and longitudes from 0 east."""
    return np.linspace(90.0, -90.0, height), np.arange(width) * 360.0 / width


@dataclass(frozen=True)
class ChannelLook:
    """How one channel is made: mean(lat) + seasonal + diurnal + scale * (loadings . latents) * decay."""

    mean: np.ndarray  # [lat]
    seasonal: np.ndarray  # [lat], amplitude multiplying sin(2 pi (day of year) / 365.25)
    scale: float
    loadings: np.ndarray  # [LATENTS]
    diurnal: float = 0.0
    decay: float = 1.0  # depth decay of the anomaly (ocean)


def _look(name: str, lat: np.ndarray, rng: np.random.Generator) -> ChannelLook:
    """Realistic magnitudes per variable; unknown names get a unit-scale field."""
    s = np.sin(np.deg2rad(lat))
    c = np.cos(np.deg2rad(lat))
    loadings = rng.normal(size=LATENTS)
    loadings /= np.linalg.norm(loadings)
    depth = parse_depth_channel(name)
    variable, level = (depth[0], depth[1]) if depth else (name, None)
    parsed = parse_level_channel(name)
    if parsed:
        variable, level = parsed
    decay = float(np.exp(-(level or 0.0) / 100.0)) if depth else 1.0
    zero = np.zeros_like(lat)
    if variable in ("t2m", "t"):
        height_drop = 0.0 if variable == "t2m" else min(60.0, 6.5 * 7.4 * np.log(1000.0 / _pressure(name, level)))
        return ChannelLook(250 + 50 * c - height_drop, -12 * s, 4.0, loadings, diurnal=5.0 if name == "t2m" else 0.0)
    if variable == "z":
        z_km = 7.4 * np.log(1000.0 / _pressure(name, level))  # scale-height approximation
        return ChannelLook(9.81 * 1000 * z_km + 2000 * c, -800 * s, 800.0 * (1 + z_km / 10), loadings)
    if variable in ("u10", "v10", "u", "v"):
        jet = 25 * np.exp(-(((np.abs(lat) - 40) / 12) ** 2)) - 6 * c**8 if variable.startswith("u") else zero
        return ChannelLook(jet * (0.4 if variable in ("u10", "v10") else 1.0), 3 * s, 6.0, loadings)
    if variable in ("sp", "msl"):
        return ChannelLook(101_000 - 1500 * s**2 - (3000 if variable == "sp" else 0) + zero, 300 * s, 900.0, loadings)
    if variable == "r":
        return ChannelLook(55 + 25 * c**2, 5 * s, 12.0, loadings)
    if variable == "tcwv":
        return ChannelLook(5 + 40 * c**4, 5 * s, 4.0, loadings)
    if variable == "thetao":
        return ChannelLook(-1 + 29 * c**2 * decay + 4 * (1 - decay), -3 * s * decay, 1.0, loadings, decay=decay)
    if variable == "so":
        return ChannelLook(34.2 + 1.2 * c**2 * decay + zero, -0.2 * s * decay, 0.2, loadings, decay=decay)
    if variable in ("uo", "vo"):
        return ChannelLook(0.3 * np.sin(np.deg2rad(3 * lat)) * decay if variable == "uo" else zero, zero, 0.15,
                           loadings, decay=decay)  # fmt: skip
    if variable == "zos":
        return ChannelLook(0.6 * c**2 - 0.3, 0.05 * s, 0.1, loadings)
    return ChannelLook(zero, zero, 1.0, loadings)


def _pressure(name: str, level: float | None) -> float:
    """The level (hPa) of a pressure-level channel; a bare "t" or "z" has none (TypeError, as dividing by None was)."""
    if level is None:
        raise TypeError(f"channel {name!r} names no pressure level")
    return level


@dataclass
class LatentFlow:
    """Latent anomaly fields in zonal Fourier space: state [latent, lat, wavenumber <= 24] complex.

    Each step multiplies every row's Fourier coefficients by exp(-i m w(lat) dt) (advection by an angular
    velocity w), exp(-kappa m^2 dt) (zonal diffusion) and exp(-gamma dt) (damping), smooths along latitude
    (meridional diffusion) and adds smooth noise with a red spectrum. Stationary variance is about 1.

    A driven flow (the ocean) adds ``coupling`` times its ``driver``'s state (the atmosphere, stepped first) every
    step, and a little noise of its own: its day-to-day change is then mostly advection and the driver's push,
    which the driver's fields (the forcing channels of the predicted day) reveal.
    """

    lat: np.ndarray
    width: int
    step_hours: float
    rng: np.random.Generator
    speed: float = 1.0  # multiplies the angular velocity (ocean flows are slower)
    noise: float = 1.0  # multiplies the flow's own random forcing
    scale: float = 6.0  # the random forcing's wavenumber scale (larger: finer structure)
    driver: LatentFlow | None = None
    coupling: float = 0.1
    state: np.ndarray = field(init=False)
    norm: float = field(init=False)

    def __post_init__(self) -> None:
        # Scales are set in degrees, not grid cells, so every grid samples the same kind of world. Only
        # wavenumbers up to 24 (and that the grid resolves well) are carried; irfft pads the rest with zeros.
        m = np.arange(min(self.width // 3, 24) + 1)
        days = self.step_hours / 24.0
        # Eastward angular velocity in degrees of longitude per day: mid-latitude jets, easterly trades.
        lat_rad = np.deg2rad(self.lat)
        deg_per_day = self.speed * (20 * np.exp(-(((np.abs(self.lat) - 40) / 15) ** 2)) - 6 * np.cos(lat_rad) ** 6)
        phase = np.deg2rad(deg_per_day * days)[:, None] * m[None, :]
        damping = np.exp(-0.05 * days - 2e-4 * m**2 * days)
        self.propagator = np.exp(-1j * phase) * damping
        self.noise_spectrum = np.exp(-((m / self.scale) ** 2))
        self.noise_gain = np.sqrt(1 - np.exp(-0.1 * days))
        self.row_sigma = 8.0 / (180.0 / max(len(self.lat) - 1, 1))  # 8 degrees of latitude, in rows
        self.state = np.zeros((LATENTS, len(self.lat), m.size), np.complex128)
        self.norm = 1.0
        for _ in range(int(np.ceil(60 / days))):  # spin up towards the stationary state
            if self.driver is not None:
                self.driver.step()
            self.step()
        self.norm = max(float(np.fft.irfft(self.state, n=self.width, axis=-1).std()), 1e-12)

    def step(self) -> None:
        """Advance one step (a driven flow after its driver)."""
        shape = self.state.shape
        noise = self.rng.normal(size=shape) + 1j * self.rng.normal(size=shape)
        noise = gaussian_filter1d(noise.real, self.row_sigma, axis=1) + 1j * gaussian_filter1d(
            noise.imag, self.row_sigma, axis=1
        )
        gain = self.noise * self.noise_gain * self.noise_spectrum * np.sqrt(self.width)
        new = self.propagator * self.state + gain * noise
        if self.driver is not None:
            new += self.coupling * self.driver.state
        self.state = new

    def fields(self) -> np.ndarray:
        """Latents on the grid: [latent, lat, lon] float64, roughly unit variance."""
        return np.fft.irfft(self.state, n=self.width, axis=-1) / self.norm


class GeneratedSeries:
    """A FieldSeries computed step by step (reads must go forward in time, as writers do)."""

    def __init__(
        self,
        kind: str,
        height: int,
        width: int,
        years: int,
        steps_per_year: int,
        seed: int,
        channels: Sequence[str] | None = None,
        start_year: int = 2000,
        step_hours: float | None = None,
        channel_set: str = "default",
    ):
        self.kind = kind
        lat, lon = regular_latlon(height, width)
        step_hours = step_hours or DEFAULT_STEP_HOURS.get(kind, 6.0)
        if steps_per_year * step_hours > 8760:
            raise DataError("--steps-per-year", f"{steps_per_year} steps of {step_hours} h do not fit in a year")
        defaults = {c.name: c for c in default_channels(kind, channel_set)}
        names = list(channels) if channels else list(defaults)
        known = {n: Channel(n, role="forcing") for n in FORCING_VARIABLES}
        self.meta = Metadata(
            channels=tuple(defaults.get(n, known.get(n, Channel(n))) for n in names),
            lat=lat,
            lon=lon,
            time_step_hours=step_hours,
            kind=kind,
            source=f"earthport generated {kind}, seed {seed}",
        )
        self.time = _times(start_year, years, steps_per_year, step_hours)
        rng = np.random.default_rng(seed)
        looks = [_look(n, lat, rng) for n in names]
        self.loadings = np.stack([k.loadings * k.scale * k.decay for k in looks]).astype(np.float32)  # [C, latent]
        self.means = np.stack([k.mean for k in looks]).astype(np.float32)  # [C, lat]
        self.seasonal = np.stack([k.seasonal for k in looks]).astype(np.float32)
        self.diurnal = np.array([k.diurnal for k in looks], np.float32)
        self.solar = np.array([n == "tisr" for n in names])
        self.ocean_driven = np.array([kind == "ocean" and c.role != "forcing" for c in self.meta.channels])
        self.orography, self.mask = _surface(kind, lat, lon, self.meta, rng)
        self.atmosphere = LatentFlow(lat, width, step_hours, rng)
        self.ocean = (LatentFlow(lat, width, step_hours, rng, speed=0.25, noise=OCEAN_NOISE, scale=OCEAN_SCALE,
                                 driver=self.atmosphere)
                      if kind == "ocean" else None)  # fmt: skip
        self._next = 0

    def __len__(self) -> int:
        return len(self.time)

    def read(self, start: int, stop: int) -> np.ndarray:
        if start != self._next:
            raise DataError("generated series", f"reads must go forward in time: asked {start}, next is {self._next}")
        out = np.empty((stop - start, *self.meta.shape), np.float32)
        for i in range(stop - start):
            out[i] = self._fields(self.time[start + i])
            self._step()
        self._next = stop
        return out

    def _step(self) -> None:
        self.atmosphere.step()
        if self.ocean is not None:
            self.ocean.step()

    def _fields(self, time: np.datetime64) -> np.ndarray:
        """All channels at one time: [channel, lat, lon] float32, 0 on land."""
        day = (time - time.astype("datetime64[Y]")) / np.timedelta64(1, "D")
        hour = (time - time.astype("datetime64[D]")) / np.timedelta64(1, "h")
        season = np.sin(2 * np.pi * day / 365.25)
        height, width = self.meta.shape[1:]
        out = np.empty(self.meta.shape, np.float32)
        for rows, flow in ((~self.ocean_driven, self.atmosphere), (self.ocean_driven, self.ocean)):
            if rows.any():  # one matrix product for all channels that share these latents
                assert flow is not None  # only the ocean kind has ocean-driven rows, and it has an ocean flow
                latents = flow.fields().astype(np.float32).reshape(LATENTS, -1)
                out[rows] = (self.loadings[rows] @ latents).reshape(-1, height, width)
        out += (self.means + self.seasonal * np.float32(season))[:, :, None]
        for i in np.flatnonzero(self.diurnal):  # warmest at 14 local solar time
            local = np.deg2rad(self.meta.lon + 15 * (hour - 14))
            out[i] += self.diurnal[i] * np.cos(local)[None, :] * np.cos(np.deg2rad(self.meta.lat))[:, None]
        if self.solar.any():
            out[self.solar] = toa_solar_radiation(time, self.meta.lat, self.meta.lon)
        if self.mask is not None:
            out = np.where(self.mask, out, np.float32(0))
        return out


def toa_solar_radiation(time: np.datetime64, lat: np.ndarray, lon: np.ndarray, samples: int = 6) -> np.ndarray:
    """The sun's energy reaching the top of the atmosphere over the hour before ``time`` (ERA5's ``tisr``), from
    the solar declination and hour angle of ``samples`` instants in that hour: [lat, lon] float32 in J m-2."""
    total = np.zeros((lat.size, lon.size))
    phi = np.deg2rad(lat)[:, None]
    for k in range(samples):
        instant = time - np.timedelta64(int(3600 * (k + 0.5) / samples), "s")
        day = (instant - instant.astype("datetime64[Y]")) / np.timedelta64(1, "D")
        hours = (instant - instant.astype("datetime64[D]")) / np.timedelta64(1, "h")
        declination = np.deg2rad(-23.44) * np.cos(2 * np.pi * (day + 10) / 365.25)
        hour_angle = 2 * np.pi * (hours + lon[None, :] / 15.0 - 12.0) / 24.0
        cos_zenith = np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(hour_angle)
        total += SOLAR_CONSTANT * np.maximum(cos_zenith, 0.0) * 3600 / samples
    return total.astype(np.float32)


def _surface(kind: str, lat: np.ndarray, lon: np.ndarray, meta: Metadata, rng: np.random.Generator):
    """(orography [lat, lon] in m2 s-2, land mask [channel, lat, lon] or None): land grows with depth."""
    noise = gaussian_filter(rng.normal(size=(lat.size, lon.size)), sigma=max(1.0, lat.size / 12), mode="wrap")
    height = noise / max(float(noise.std()), 1e-12)
    orography = np.maximum(height - 0.3, 0) * 9.81 * 1500
    if kind != "ocean":
        return orography.astype(np.float32), None
    # Bathymetry in m below sea level: 30 % land at the surface, more at depth.
    bathymetry = np.where(height > 0.52, -1.0, 4000 * np.clip(0.52 - height, 0, None) / 2.0)
    mask = np.empty(meta.shape, bool)
    for i, channel in enumerate(meta.channels):
        depth = parse_depth_channel(channel.name)
        mask[i] = True if channel.role == "forcing" else bathymetry > (depth[1] if depth else 0.0)
    return orography.astype(np.float32), mask


def _times(start_year: int, years: int, steps_per_year: int, step_hours: float) -> np.ndarray:
    """Each year's first ``steps_per_year`` steps from 1 January: [years * steps_per_year] datetime64[s]."""
    offsets = (np.arange(steps_per_year) * step_hours * 3600).astype("timedelta64[s]")
    starts = [np.datetime64(f"{start_year + y:04d}-01-01T00:00:00", "s") for y in range(years)]
    return np.concatenate([start + offsets for start in starts])


def generate(
    out: Path | str,
    kind: str = "atmosphere",
    grid: tuple[int, int] = (32, 64),
    years: int = 3,
    steps_per_year: int = 120,
    seed: int = 0,
    channels: Sequence[str] | None = None,
    start_year: int = 2000,
    step_hours: float | None = None,
    progress: bool = False,
    channel_set: str = "default",
) -> Stats:
    """Generate a data set in the FourCastNet layout under ``out``; returns the training statistics. ``channels``
    picks names (any, known ones look real); ``channel_set`` names the kind's set used without them."""
    if years < 1 or steps_per_year < 2:
        raise DataError("generate", f"need at least 1 year of 2 steps, got {years} x {steps_per_year}")
    height, width = grid
    if height < 4 or width < 8:
        raise DataError("--grid", f"{height}x{width} is too small; expected at least 4x8")
    series = GeneratedSeries(kind, height, width, years, steps_per_year, seed, channels, start_year, step_hours,
                             channel_set)  # fmt: skip
    return write_fcn(
        out,
        series,
        split_by_year(start_year, start_year + years - 1),
        static={"orography": series.orography},
        chunk=1 if height * width > 200_000 else 8,
        progress=progress,
    )
