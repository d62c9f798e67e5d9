"""pytest plugin loaded by quality/mutate's runs: the same Hypothesis examples for every mutant.

Hypothesis otherwise draws new examples on each run and replays failures it saved from earlier
runs, so a mutant could be killed in one run and survive the next.
"""

from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None)
settings.load_profile("mutation")
