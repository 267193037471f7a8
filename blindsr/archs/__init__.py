"""archs"""

from blindsr.archs import bsrnet_arch  # noqa: F401
from blindsr.archs import darsr_arch  # noqa: F401
from blindsr.archs import dasr_arch  # noqa: F401
from blindsr.archs import kdsr_arch  # noqa: F401
from blindsr.archs import srfbn_arch  # noqa: F401
