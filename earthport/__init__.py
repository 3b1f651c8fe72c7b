"""earthport: move weather and ocean AI models between frameworks and chips, prove parity, measure cost."""

__version__ = "0.1.0"
