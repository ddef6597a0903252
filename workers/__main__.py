"""`python -m workers`: start a job worker (the same as `mmvae worker`)."""

import sys

from workers.cli import main

sys.exit(main())
