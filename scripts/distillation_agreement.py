"""How close a KDSR student's degradation representation (IDR) is to its teacher's, on held-out images.

``python scripts/distillation_agreement.py --teacher T.pth --student S.pth --net '{n_feats: 32, n_blocks: 6,
n_encoder_res: 2}' --hr $BLINDSR_DATA/BSD100 --scale 4``

Crops ``--patches`` HR patches from the images in ``--hr``, degrades each one with its own draw of the
``classic`` pipeline (``--preset kdsr``, ``--kernel iso``, seeded), and compares the student's IDR of
the LR patch with the teacher's IDR of (LR, HR): the distillation loss KL(teacher || student) at
``--temperature`` (as ``KDLoss`` computes it) and the mean cosine similarity. The same numbers for a
student whose estimator ``E_st`` is freshly initialised (the start of distillation; G does not enter)
are printed beside them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import blindsr  # noqa: F401  (registers everything)
from blindsr.archs.kdsr_arch import KDSR, KDSRTeacher
from blindsr.checkpoint import load_pretrained
from blindsr.data.image_io import list_images, read_image, to_tensor
from blindsr.degradations.degrader import Degrader
from blindsr.losses.distillation import KDLoss
from blindsr.options import parse_yaml


def patches(folder: Path, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random ``size`` crops, cycling over the images of ``folder``."""
    images = [to_tensor(read_image(p)) for p in list_images(folder)]
    out = []
    for i in range(count):
        img = images[i % len(images)]
        h, w = img.shape[-2:]
        top = int(torch.randint(0, h - size + 1, (1, ), generator=generator))
        left = int(torch.randint(0, w - size + 1, (1, ), generator=generator))
        out.append(img[:, top:top + size, left:left + size])
    return torch.stack(out)


@torch.no_grad()
def agreement(student: KDSR, teacher: KDSRTeacher, lq: torch.Tensor, gt: torch.Tensor, temperature: float):
    s_idr, t_idr = student.encode(lq)[1], teacher.encode(lq, gt)[1]
    kl = KDLoss(temperature=temperature)(s_idr, t_idr).item()
    return kl, F.cosine_similarity(s_idr, t_idr, dim=1).mean().item()


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--teacher', required=True, help='teacher weights (any layout load_pretrained reads)')
    parser.add_argument('--student', required=True, help='student weights')
    parser.add_argument('--net', default='{}', help="the archs' widths as YAML, e.g. '{n_feats: 32, n_blocks: 6}'")
    parser.add_argument('--hr', required=True, type=Path, help='a folder of held-out HR images')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--patches', type=int, default=64)
    parser.add_argument('--size', type=int, default=128, help='HR patch size')
    parser.add_argument('--preset', default='kdsr')
    parser.add_argument('--kernel', default='iso')
    parser.add_argument('--temperature', type=float, default=0.15)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    net = {'scale': args.scale, **parse_yaml(args.net)}
    teacher, student = KDSRTeacher(**net).eval(), KDSR(**net).eval()
    load_pretrained(teacher, args.teacher)
    torch.manual_seed(args.seed)
    fresh = KDSR(**net).eval()  # E_st as a student starts
    load_pretrained(student, args.student)
    generator = torch.Generator().manual_seed(args.seed)
    gt = patches(args.hr, args.patches, args.size, generator)
    degrader = Degrader({'type': 'classic', 'preset': args.preset, 'kernel': args.kernel}, args.scale, seed=args.seed)
    lq = torch.cat([degrader(gt[i:i + 1])[0] for i in range(len(gt))])  # a draw per patch
    results = {'initial E_st': agreement(fresh, teacher, lq, gt, args.temperature),
               'trained student': agreement(student, teacher, lq, gt, args.temperature)}
    print(f'{len(gt)} patches of {args.hr} ({args.size} px HR, x{args.scale}, {args.preset} {args.kernel}); '
          f'IDR of the student vs the teacher:')
    for name, (kl, cosine) in results.items():
        print(f'  {name:16s} KL (T={args.temperature}) {kl:.4f}   cosine {cosine:.4f}')
    return results


if __name__ == '__main__':
    main()
