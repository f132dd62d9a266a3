"""Hypothesis profiles for the property tests (issue 10).

`ci` (the default, used by `make test`) keeps the whole property set to a few seconds
on a 2-core box; `fuzz` (`make fuzz`, or HYPOTHESIS_PROFILE=fuzz) runs many more
examples. Neither has a deadline: a shared CI machine's timing is not a property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    # No example database in the checkout: `make test` leaves nothing behind, and a
    # failure prints the seed/blob that reproduces it instead.
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "3000")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
