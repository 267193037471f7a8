"""Record the state-dict keys and shapes of every zoo configuration into tests/data/zoo_keys.json.gz.

tests/test_zoo.py detects the arch and arguments of each recorded list (in every layout users bring)
without building the networks or needing the authors' files. Each entry holds ``{key: shape}`` and the
values of the mean-shift biases (from which the value range is read). Besides the zoo's configurations
it records BasicSR's pixel-unshuffle ``RRDBNet`` x2, a layout users bring for RRDB networks.

    python scripts/record_arch_keys.py            # rewrite tests/data/zoo_keys.json.gz
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import torch

import blindsr  # noqa: F401  (registrations)
from blindsr.registry import ARCH_REGISTRY
from blindsr.zoo import ZOO

OUT = Path(__file__).resolve().parents[1] / 'tests' / 'data' / 'zoo_keys.json.gz'
EXTRA = {'basicsr_rrdbnet_x2': ('RRDBNet', {'num_in_ch': 3, 'num_out_ch': 3, 'scale': 2})}


def record(arch: str, args: dict) -> dict:
    sd = ARCH_REGISTRY.get(arch)(**args).state_dict()
    return {'arch': arch, 'args': args, 'shapes': {k: list(v.shape) for k, v in sd.items()},
            'values': {k: v.tolist() for k, v in sd.items() if k.endswith('mean.bias')}}


def main() -> None:
    torch.manual_seed(0)
    configs: dict[str, tuple[str, dict]] = {}
    for entry in ZOO.values():  # one recording per distinct configuration, under its first zoo name
        if (entry.arch, dict(entry.args)) not in configs.values():
            configs[entry.name] = (entry.arch, dict(entry.args))
    configs.update(EXTRA)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], check=True, capture_output=True, text=True).stdout.strip()
    data = {'_provenance': f'scripts/record_arch_keys.py at blindsr commit {commit}: state dicts of blindsr\'s '
                           'archs (BasicSR 1.4.2 for RRDBNet) built with these arguments',
            **{name: record(*cfg) for name, cfg in configs.items()}}
    OUT.write_bytes(gzip.compress((json.dumps(data, separators=(',', ':')) + '\n').encode(), mtime=0))
    print(f'{OUT}: {len(configs)} configurations, {OUT.stat().st_size / 1024:.0f} KiB')


if __name__ == '__main__':
    main()
