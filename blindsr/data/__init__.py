"""data"""

from blindsr.data import hr_dataset, paired_dataset  # noqa: F401  (registration)
