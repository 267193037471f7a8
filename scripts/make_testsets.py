"""Write a versioned benchmark test set: LR images of a protocol plus a JSON of the exact parameters.

    python scripts/make_testsets.py --hr $BLINDSR_DATA/Set5 --protocol bicubic --scale 4 --out testsets/Set5_bicubic_x4

Layout of ``--out``: ``HR/<name>.png`` (HR mod-cropped to the scale), ``<setting>/<name>.png`` (LR, one
folder per setting of the protocol, e.g. per kernel width) and ``params.json`` (protocol, version,
scale, seed, per-image per-setting parameters, sha256 of every PNG). Each image's random generator is
seeded by ``seed`` and its file name, so the same inputs and seed give byte-identical PNGs whatever
else is in the folder. Evaluate with a ``TestSetFolder`` (``dataroot: <out>``) and ``python -m blindsr.test``.

``--layout manet`` (protocol ``manet9`` only) writes the same LR images the way MANet's
``codes/prepare_testset.py`` lays them out, which CDSR's test.py reads: ``<out>/<Set>_x<s>/HR_si/`` (an
HR copy per kernel) and ``<out>/<Set>_x<s>/LR_mode0_noise<n>/``, files ``<stem>_<sig1>_<sig2>_<theta>.png``
(one decimal each, theta in radians: ``baby_9.0_1.0_0.8.png``), plus ``params.json``. ``<Set>`` is
``--name`` (default: the HR folder's name, or its parent's when it is called ``HR``). ``TestSetFolder``
reads such a folder too, including one MANet's own script wrote.

    python scripts/make_testsets.py --hr $BLINDSR_DATA/Set5 --protocol manet9 --scale 4 --layout manet --out testsets/manet
"""

from __future__ import annotations

import argparse
import hashlib
import json

import blindsr  # noqa: F401
from blindsr.degradations.protocols import PROTOCOLS
from blindsr.testsets import LAYOUTS, make_testset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hr', required=True, help='folder of HR images')
    parser.add_argument('--protocol', required=True, choices=sorted(PROTOCOLS))
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--layout', choices=LAYOUTS, default='blindsr',
                        help="'manet': MANet's <Set>_x<s>/HR_si + LR_mode0_noise<n> under --out (manet9 only)")
    parser.add_argument('--name', help="the set's name in the manet layout (default: from --hr)")
    args = parser.parse_args(argv)
    record = make_testset(args.hr, args.protocol, args.scale, args.out, args.seed, args.layout, args.name)
    digest = hashlib.sha256(json.dumps(record['sha256'], sort_keys=True).encode()).hexdigest()
    print(f"{len(record['images'])} images -> {record['folder']}; sha256 of the set's PNG hashes: {digest}")


if __name__ == '__main__':
    from blindsr import cli

    cli.run(main)
