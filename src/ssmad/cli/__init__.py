"""The ``ssmad`` command line (see :mod:`ssmad.cli.main`).

The ``ssmad`` command imports this package before torch, which lets it shorten how long torch's idle OpenMP
workers busy-wait (libgomp reads ``GOMP_SPINCOUNT`` once, when torch loads it). By default an idle worker spins
for about 300,000 pause instructions (milliseconds) after every parallel torch operation, holding a core that the
compiled scan kernels' own worker thread needs for the next few milliseconds: on 2 cores the kernels then ran at
about half speed. 20,000 spins (well under a millisecond) still catch back-to-back torch operations. A user's own
``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is left as it is; library users who import torch first keep torch's
default.
"""

import os

#: Busy-wait iterations of an idle libgomp worker before it sleeps, set when the user has not chosen a policy.
GOMP_SPIN_COUNT = "20000"

if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPIN_COUNT
