"""Building blocks models share, one file per framework (FFT adapters and their DFT fallback)."""
