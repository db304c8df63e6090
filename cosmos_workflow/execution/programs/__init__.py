"""Standard-library programs shipped with a job and run as processes.

The simulated model and upsampler, the local job supervisor and the prompt
capture wrapper. They import nothing from the package, so each can be
copied to a host and run there with ``python3 -S``.
"""

from pathlib import Path

PROGRAMS_DIR = Path(__file__).resolve().parent
