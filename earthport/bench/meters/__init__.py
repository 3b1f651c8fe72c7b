"""Energy meters, one module per kind of source: ``nvml``, ``rapl``, the vendor tools (``vendors`` on ``cli``
and ``parsers``), and ``polling`` (background sampling and trapezoid integration) shared by them."""
