"""The model zoo: the authors' published networks by name, with what is known about each file.

Each :class:`Pretrained` entry (timm's pretrained configs, torchvision's weights metadata) names the
registered arch and its constructor arguments, the scale, the value range the authors' code feeds the
network (blindsr's archs always take and return RGB in [0, 1]; ``rgb_range`` converts), where the
authors publish the file, its sha256 where known, and the numbers the authors report, each tagged
with the blindsr test-set protocol and setting that reproduce it (``scripts/make_testsets.py``), or
with the authors' own label where no protocol does.

Nothing is downloaded: a user fetches the file and passes it (``python -m blindsr.infer --model NAME
--weights FILE``), or keeps it in the folder ``$BLINDSR_WEIGHTS`` as ``<name>.pth``/``.pt`` or under the
authors' file name (:func:`local_weights`).

``python -m blindsr.zoo`` lists the zoo, ``python -m blindsr.zoo NAME`` shows one entry in full, and
``python -m blindsr.zoo --detect FILE`` says what a weights file holds (:mod:`blindsr.detect`) and which
entries it fits.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from blindsr.detect import Detected, detect, resolved_args

__all__ = ['ZOO', 'Pretrained', 'Reported', 'get', 'local_weights', 'matching', 'sha256_of']

WEIGHTS_ENV = 'BLINDSR_WEIGHTS'


class Reported(NamedTuple):
    """One number the authors report: on ``dataset`` under ``protocol``/``setting`` (blindsr's test-set
    names, ``mean`` = averaged over the protocol's settings), or the authors' own labels where no blindsr
    protocol reproduces the setting."""
    dataset: str
    protocol: str
    setting: str
    psnr: float
    ssim: float | None = None
    lpips: float | None = None


@dataclass(frozen=True)
class Pretrained:
    name: str
    arch: str  # registry name
    args: Mapping[str, Any]
    value_range: tuple[float, float]  # what the authors' code feeds their network
    url: str
    file: str  # the authors' file name
    sha256: str | None = None
    layout: str = 'raw state dict'
    reported: tuple[Reported, ...] = ()
    source_of_numbers: str = ''
    notes: str = ''

    @property
    def scale(self) -> int:
        return int(self.args['scale'])


def _rows(protocol: str, settings: list[str], table: dict[str, list]) -> tuple[Reported, ...]:
    """``Reported`` rows from a table: dataset -> one PSNR (or (PSNR, SSIM)) per setting."""
    out = []
    for dataset, values in table.items():
        for setting, v in zip(settings, values, strict=True):
            out.append(Reported(dataset, protocol, setting, *(v if isinstance(v, tuple) else (v,))))
    return tuple(out)


_DASR = 'https://github.com/The-Learning-And-Vision-Atelier-LAVA/DASR/blob/51524af/experiment'
_KDSR = 'https://github.com/Zj-BinXia/KDSR (README: Google Drive links)'
_KAIR = 'https://github.com/cszn/KAIR/releases/download/v1.0'
_DARSR = 'https://github.com/edbca/DARSR/blob/16b5b00/SRFBN'
_NINE = [f'kernel{i}' for i in range(1, 10)]  # the authors' nine pictured kernels; their parameters are unpublished

_ENTRIES = [
    Pretrained('dasr_x2_iso', 'DASR', {'scale': 2}, (0, 255), f'{_DASR}/blindsr_x2_bicubic_iso/model/model_600.pt',
               'model_600.pt', reported=_rows('dasr_iso', ['sig0.0', 'sig0.6', 'sig1.2', 'sig1.8'], {
                   'Set5': [37.87, 37.47, 37.19, 35.43], 'Set14': [33.34, 32.96, 32.78, 31.60],
                   'BSD100': [32.03, 31.78, 31.71, 30.54], 'Urban100': [31.49, 30.71, 30.36, 28.95]}),
               source_of_numbers='DASR README Table 2 (PSNR, Y, shave = scale)'),
    Pretrained('dasr_x3_iso', 'DASR', {'scale': 3}, (0, 255), f'{_DASR}/blindsr_x3_bicubic_iso/model/model_600.pt',
               'model_600.pt', reported=_rows('dasr_iso', ['sig0.0', 'sig0.8', 'sig1.6', 'sig2.4'], {
                   'Set5': [34.11, 34.08, 33.57, 32.15], 'Set14': [30.13, 29.99, 28.66, 28.42],
                   'BSD100': [28.96, 28.90, 28.62, 28.13], 'Urban100': [27.65, 27.36, 26.86, 25.95]}),
               source_of_numbers='DASR README Table 2 (PSNR, Y, shave = scale)'),
    Pretrained('dasr_x4_iso', 'DASR', {'scale': 4}, (0, 255), f'{_DASR}/blindsr_x4_bicubic_iso/model/model_600.pt',
               'model_600.pt', reported=_rows('dasr_iso', ['sig0.0', 'sig1.2', 'sig2.4', 'sig3.6'], {
                   'Set5': [31.99, 31.92, 31.75, 30.59], 'Set14': [28.50, 28.45, 28.28, 27.45],
                   'BSD100': [27.51, 27.52, 27.43, 26.83], 'Urban100': [25.82, 25.69, 25.44, 24.66]})
               + _rows('gaussian8', ['mean'], {
                   'Set5': [(31.46, 0.8789)], 'Set14': [(28.11, 0.7603)], 'BSD100': [(27.44, 0.7214)],
                   'Urban100': [(25.36, 0.7506)], 'Manga109': [(29.39, 0.8861)]}),
               source_of_numbers='DASR README Table 2; Gaussian8 means as re-measured in KDSR\'s README Table 1'),
    Pretrained('dasr_x4_aniso_noise', 'DASR', {'scale': 4}, (0, 255),
               f'{_DASR}/blindsr_x4_bicubic_aniso/model/model_600.pt', 'model_600.pt',
               reported=_rows('dasr_table3', [f'{k}_noise{n}' for n in (0, 5, 10) for k in _NINE], {'Set14': [
                   27.99, 27.97, 27.53, 27.45, 27.43, 27.22, 27.19, 26.83, 26.21,
                   27.25, 27.18, 26.37, 26.16, 26.09, 25.96, 25.85, 25.52, 25.04,
                   26.57, 26.51, 25.64, 25.47, 25.43, 25.31, 25.16, 24.80, 24.43]}),
               source_of_numbers='DASR README Table 3 (nine pictured anisotropic kernels x noise 0/5/10)'),
    Pretrained('kdsr_s_m_x4_iso', 'KDSR', {'scale': 4, 'n_feats': 64, 'n_blocks': 53, 'n_encoder_res': 9}, (0, 1),
               _KDSR, 'KDSRsM_iso_x4.pt', reported=_rows('gaussian8', ['mean'], {
                   'Set5': [(32.02, 0.8892)], 'Set14': [(28.46, 0.7761)], 'BSD100': [(27.52, 0.7281)],
                   'Urban100': [(25.96, 0.7760)], 'Manga109': [(30.58, 0.9026)]}),
               source_of_numbers='KDSR README Table 1 (Gaussian8 mean, PSNR/SSIM on Y)'),
    Pretrained('kdsr_s_l_x4_iso', 'KDSR', {'scale': 4, 'n_feats': 128, 'n_blocks': 28, 'n_encoder_res': 5}, (0, 1),
               _KDSR, 'KDSRsL_iso_x4.pt', reported=_rows('gaussian8', ['mean'], {
                   'Set5': [(32.11, 0.8933)], 'Set14': [(28.68, 0.7867)], 'BSD100': [(27.64, 0.7300)],
                   'Urban100': [(26.15, 0.7830)], 'Manga109': [(30.99, 0.9069)]}),
               source_of_numbers='KDSR README Table 1 (Gaussian8 mean, PSNR/SSIM on Y)'),
    Pretrained('kdsr_s_m_x4_anisonoise', 'KDSR', {'scale': 4, 'n_feats': 64, 'n_blocks': 53, 'n_encoder_res': 9},
               (0, 1), _KDSR, 'KDSRsM_anisonoise_x4.pt',
               reported=_rows('kdsr_table2', [f'{k}_noise{n}' for n in (0, 10, 20) for k in _NINE], {'Set14': [
                   27.67, 27.99, 28.14, 28.20, 28.12, 27.99, 27.80, 27.87, 26.52,
                   25.74, 25.91, 25.97, 26.00, 25.96, 25.88, 25.75, 25.50, 24.67,
                   24.72, 24.89, 24.92, 24.89, 24.92, 24.82, 24.70, 24.59, 23.84]}),
               source_of_numbers='KDSR README Table 2 (nine pictured anisotropic kernels x noise 0/10/20)'),
    Pretrained('kdsr_s_gan_x4', 'KDSR', {'scale': 4, 'n_feats': 128, 'n_blocks': 42, 'n_encoder_res': 6}, (0, 1),
               _KDSR, 'KDSRS-GAN.pth', layout='BasicSR params/params_ema',
               reported=(Reported('AIM2019', 'real', 'paired', 24.22, 0.7038, 0.3758),
                         Reported('NTIRE2020', 'real', 'paired', 27.12, 0.7614, 0.3198)),
               source_of_numbers='KDSR README Table 3 (PSNR/SSIM on Y, crop 4; LPIPS-VGG)'),
    Pretrained('kdsr_s_ganv2_x4', 'KDSR', {'scale': 4, 'n_feats': 128, 'n_blocks': 42, 'n_encoder_res': 6}, (0, 1),
               _KDSR, 'KDSRS-GANV2.pth', layout='BasicSR params/params_ema',
               notes='KDSR-GAN V2: the teacher saw the USM-sharpened HR'),
    Pretrained('kdsr_s_rec_x4', 'KDSR', {'scale': 4, 'n_feats': 128, 'n_blocks': 42, 'n_encoder_res': 6}, (0, 1),
               _KDSR, 'KDSRS-rec.pth', layout='BasicSR params/params_ema',
               notes='KDSR-GAN\'s student before the GAN stage (L1 + KD)'),
    Pretrained('kdsr_t_rec_x4', 'KDSRTeacher', {'scale': 4, 'n_feats': 128, 'n_blocks': 42, 'n_encoder_res': 6},
               (0, 1), _KDSR, 'KDSRT-rec.pth', layout='BasicSR params/params_ema',
               notes='KDSR-GAN\'s teacher: needs the HR image, so it only evaluates, it does not upscale'),
    Pretrained('bsrnet_x4', 'BSRNet', {'scale': 4}, (0, 1), f'{_KAIR}/BSRNet.pth', 'BSRNet.pth'),
    Pretrained('bsrgan_x4', 'BSRNet', {'scale': 4}, (0, 1), f'{_KAIR}/BSRGAN.pth', 'BSRGAN.pth',
               reported=(Reported('AIM2019', 'real', 'paired', 24.20, 0.6904, 0.4048),
                         Reported('NTIRE2020', 'real', 'paired', 26.75, 0.7386, 0.3691)),
               source_of_numbers='as measured by KDSR (README Table 3); the BSRGAN paper reports NIQE/NRQM/PI '
                                 'per image on RealSRSet only'),
    Pretrained('bsrgan_x2', 'BSRNet', {'scale': 2}, (0, 1), f'{_KAIR}/BSRGANx2.pth', 'BSRGANx2.pth'),
    Pretrained('srfbn_s_x2', 'SRFBN_S', {'scale': 2}, (0, 255), f'{_DARSR}/SRFBN-S_x2_BI.pth', 'SRFBN-S_x2_BI.pth',
               sha256='dd2426939a8df95f8ad79591f98ce6c564a5311cb8194020f3cb391723210132',
               layout='raw state dict, module. prefixes', reported=_rows('bicubic', ['bicubic'], {
                   'Set5': [(37.78, 0.9597)], 'Set14': [(33.35, 0.9156)], 'BSD100': [(32.00, 0.8970)]}),
               source_of_numbers='SRFBN paper Table 3 (BI, PSNR/SSIM on Y, shave = scale)',
               notes='non-blind (bicubic); the network DARSR corrects for'),
    Pretrained('srfbn_s_x4', 'SRFBN_S', {'scale': 4}, (0, 255), f'{_DARSR}/SRFBN-S_x4_BI.pth', 'SRFBN-S_x4_BI.pth',
               sha256='7ae85e3c298e7ce5087f156ead06b7245a5564b6960611aa18d51bea77c97e7f',
               layout='raw state dict, module. prefixes', reported=_rows('bicubic', ['bicubic'], {
                   'Set5': [(31.98, 0.8923)], 'Set14': [(28.45, 0.7779)], 'BSD100': [(27.44, 0.7313)]}),
               source_of_numbers='SRFBN paper Table 3 (BI, PSNR/SSIM on Y, shave = scale)',
               notes='non-blind (bicubic); the network DARSR corrects for'),
]

ZOO: dict[str, Pretrained] = {p.name: p for p in _ENTRIES}


def get(name: str) -> Pretrained:
    if name not in ZOO:
        raise ValueError(f"Unknown zoo model '{name}'; the zoo holds: {', '.join(ZOO)} (python -m blindsr.zoo).")
    return ZOO[name]


def local_weights(name: str) -> Path:
    """The weights file of zoo entry ``name`` in ``$BLINDSR_WEIGHTS`` (``<name>.pth``, ``<name>.pt`` or the
    authors' file name); an error saying where to put it when there is none."""
    entry = get(name)
    folder = os.environ.get(WEIGHTS_ENV)
    candidates = [f'{name}.pth', f'{name}.pt', entry.file]
    if folder:
        for candidate in candidates:
            if (Path(folder) / candidate).is_file():
                return Path(folder) / candidate
    where = f'${WEIGHTS_ENV} ({folder}) holds none of {candidates}' if folder else f'${WEIGHTS_ENV} is not set'
    raise FileNotFoundError(
        f"Zoo model '{name}' needs its weights file; blindsr downloads nothing. Get {entry.file} from {entry.url} "
        f'and pass it with --weights FILE, or put it in the folder ${WEIGHTS_ENV} as {name}.pth ({where}).')


def matching(detected: Detected) -> list[str]:
    """The zoo entries whose arch and arguments (defaults filled in) equal the detected ones."""
    have = resolved_args(detected.arch, detected.args)
    return [p.name for p in _ENTRIES if p.arch == detected.arch and resolved_args(p.arch, p.args) == have]


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: str | os.PathLike) -> str:
    """What ``python -m blindsr.zoo --detect`` prints for a weights file."""
    found = detect(path)
    digest = sha256_of(path)
    same_file = [p.name for p in _ENTRIES if p.sha256 == digest]
    fits = matching(found)
    lines = [f'file:    {path}', f'sha256:  {digest}', f'arch:    {found.arch}', f'args:    {found.args}',
             f'scale:   x{found.scale}', f'weights: {found.layout}']
    if same_file:
        lines.append(f'zoo:     the authors\' file of {", ".join(same_file)}')
    elif fits:
        lines.append(f'zoo:     same configuration as {", ".join(fits)} (not the authors\' file, or its sha256 is unknown)')
    else:
        lines.append('zoo:     no zoo entry has this configuration')
    return '\n'.join(lines)


def table() -> str:
    """The zoo as a markdown table."""
    rows = ['| name | arch | scale | arguments | authors\' range | authors\' file | sha256 | reported |',
            '|---|---|---|---|---|---|---|---|']
    for p in _ENTRIES:
        args = ', '.join(f'{k}={v}' for k, v in p.args.items() if k != 'scale') or '(defaults)'
        reported = f'{len(p.reported)} numbers' if p.reported else '-'
        rows.append(f'| {p.name} | {p.arch} | x{p.scale} | {args} | {p.value_range[0]}..{p.value_range[1]} | '
                    f'{p.file} | {(p.sha256 or "-")[:12]} | {reported} |')
    return '\n'.join(rows)


def entry_text(name: str) -> str:
    """One entry in full, its reported numbers as a table."""
    p = get(name)
    lines = [f'{p.name}: {p.arch}({", ".join(f"{k}={v!r}" for k, v in p.args.items())})',
             f'  authors\' value range {p.value_range[0]}..{p.value_range[1]} (blindsr takes [0, 1])',
             f'  file {p.file} ({p.layout}) from {p.url}', f'  sha256 {p.sha256 or "unknown"}']
    lines += [f'  {p.notes}'] if p.notes else []
    if p.reported:
        lines += [f'  reported ({p.source_of_numbers}):', '  | set | protocol | setting | PSNR | SSIM | LPIPS |',
                  '  |---|---|---|---|---|---|']
        lines += [f'  | {r.dataset} | {r.protocol} | {r.setting} | {r.psnr:.2f} | {r.ssim or "-"} | {r.lpips or "-"} |'
                  for r in p.reported]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m blindsr.zoo', description=__doc__.split('\n\n')[0])
    parser.add_argument('name', nargs='?', help='show this entry in full, with the numbers its authors report')
    parser.add_argument('--detect', metavar='FILE', help='say which arch and arguments a weights file holds')
    args = parser.parse_args(argv)
    if args.detect or args.name:
        print(describe(args.detect) if args.detect else entry_text(args.name))
        return
    print(table())
    print(f'\nWeights are not downloaded: pass --weights FILE to blindsr.infer, or keep them in ${WEIGHTS_ENV}.')


if __name__ == '__main__':
    from blindsr.cli import run

    run(main)
