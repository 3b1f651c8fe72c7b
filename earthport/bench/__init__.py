"""Measuring what a run costs: step timing (``timing``), energy meters (``energy``), the ``earthport bench``
worker that runs one framework in its own process (``worker``) and each framework's steps (``*_steps``)."""
