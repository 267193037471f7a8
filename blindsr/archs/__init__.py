"""archs"""

from blindsr.archs import bsrnet_arch  # noqa: F401
