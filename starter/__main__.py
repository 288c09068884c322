import os
import sys

from starter.cli import main

code = main()
# Leave without interpreter finalisation: the Temporal SDK's runtime can abort the process
# (exit 134) while finalising after all the work succeeded, which would hide our exit code.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
