"""Models, one package each: ``config.py`` (framework-free), ``torch.py`` and ``mindspore.py`` (mirrored trees)."""
