"""SeamNet's config: a frozen dataclass with presets, as every earthport model's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from earthport.errors import ConfigError


@dataclass(frozen=True)
class SeamConfig:
    grid: tuple[int, int] = (16, 32)
    in_chans: int = 1
    out_chans: int = 1
    hidden: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(self.grid))
        if self.hidden < 1:
            raise ConfigError(f"model.hidden must be >= 1, got {self.hidden}")

    def to_dict(self) -> dict:
        return {**asdict(self), "grid": list(self.grid)}

    @classmethod
    def from_dict(cls, data: dict) -> SeamConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown SeamNet config keys {unknown}")
        return cls(**data)

    def for_data(self, rows: int, cols: int, inputs: int, outputs: int) -> SeamConfig:
        return replace(self, grid=(rows, cols), in_chans=inputs, out_chans=outputs)


PRESETS = {"tiny": SeamConfig()}
