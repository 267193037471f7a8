"""Option files: YAML in BasicSR's section layout, ``--set`` overrides, plugins, validation, defaults.

``load_options`` is the one way in: it reads the YAML, applies ``--set a.b.c=value`` overrides
(values parsed as YAML), imports the ``plugins:`` modules (so user archs, datasets or degradations
register before anything is built), checks keys and types against a schema and fills defaults.
Every error is an :class:`OptionsError` naming the file and the key path.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from blindsr.registry import (
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    DEGRADATION_REGISTRY,
    LOSS_REGISTRY,
    MODEL_REGISTRY,
    Registry,
    RegistryError,
    lookup,
)


class OptionsError(ValueError):
    """A malformed or invalid option file."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.1, and so PyYAML, wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list('-+0123456789.'))


def parse_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


# Top-level keys. Model-specific sections are declared by the model classes (``extra_sections``).
TOP_LEVEL = {
    'name': str, 'model_type': str, 'scale': int, 'num_gpu': int, 'device': str, 'manual_seed': int,
    'deterministic': bool, 'plugins': list, 'datasets': dict, 'path': dict, 'train': dict, 'val': dict,
    'logger': dict, 'dist': dict, 'degradation': dict, 'is_train': bool,
}

DEFAULTS: dict[str, Any] = {
    'device': 'auto',
    'manual_seed': 0,
    'deterministic': False,
    'plugins': [],
    'path': {'experiments_root': None, 'results_root': None, 'pretrain_network_g': None,
             'strict_load_g': True, 'param_key_g': None},
    'logger': {'print_freq': 10, 'save_checkpoint_freq': 1000, 'keep_last': 3, 'use_tb_logger': True},
    'dist': {'backend': 'auto', 'timeout_minutes': 30},
}

TRAIN_DEFAULTS: dict[str, Any] = {
    'ema_decay': 0,
    'use_amp': False,
    'grad_clip': None,
    'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99], 'weight_decay': 0},
    'scheduler': {'type': 'MultiStepLR', 'milestones': [], 'gamma': 0.5},
    'losses': [{'type': 'L1Loss', 'loss_weight': 1.0}],
}

# BasicSR's one-section-per-loss layout; blindsr lists the terms under train.losses instead
BASICSR_LOSS_SECTIONS = ('pixel_opt', 'perceptual_opt', 'gan_opt')

VAL_DEFAULTS: dict[str, Any] = {
    'val_freq': 1000, 'save_img': True, 'save_img_count': 4, 'save_comparison': False, 'bicubic_baseline': False,
    'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': None, 'test_y_channel': True},
                'ssim': {'type': 'calculate_ssim', 'crop_border': None, 'test_y_channel': True}},
}

DATASET_DEFAULTS: dict[str, Any] = {'batch_size_per_gpu': 1, 'num_worker_per_gpu': 0, 'pin_memory': False}


def load_options(path: str | Path, overrides: Iterable[str] = (), is_train: bool = True) -> dict:
    """Read, override, import plugins, validate and complete an option file."""
    path = Path(path)
    opt = read_yaml(path)
    for item in overrides:
        apply_override(opt, item, path)
    if isinstance(opt.get('datasets'), dict):  # --set datasets.X=null removes a dataset
        opt['datasets'] = {k: v for k, v in opt['datasets'].items() if v is not None}
    import_plugins(opt.get('plugins') or [], path)
    opt['is_train'] = is_train
    validate(opt, path, is_train)
    return fill_defaults(opt, is_train)


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise OptionsError(f'Option file not found: {path}')
    try:
        opt = parse_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise OptionsError(f'{path}: malformed YAML: {err}') from err
    if not isinstance(opt, dict):
        raise OptionsError(f'{path}: the top level must be a mapping of sections, got {type(opt).__name__}.')
    return opt


def apply_override(opt: dict, item: str, path: Path | str = '<options>') -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML.

    Missing intermediate mappings are created; a numeric segment indexes a list.
    """
    key, sep, raw = item.partition('=')
    if not sep or not key.strip():
        raise OptionsError(f"--set expects key.path=value, got '{item}'.")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError as err:
        raise OptionsError(f"--set {item}: value is not valid YAML: {err}") from err
    parts = key.strip().split('.')
    node: Any = opt
    for i, part in enumerate(parts[:-1]):
        where = '.'.join(parts[:i + 1])
        if isinstance(node, list):
            node = node[_index(part, node, where, path)]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise OptionsError(f"{path}: --set {item}: '{where}' is a {type(node).__name__}, not a section.")
        if not isinstance(node, (dict, list)):
            raise OptionsError(f"{path}: --set {item}: '{where}' is a {type(node).__name__}, not a section.")
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, '.'.join(parts[:-1]), path)] = value
    else:
        node[last] = value


def _index(part: str, node: list, where: str, path: Path | str) -> int:
    if not part.lstrip('-').isdigit() or not -len(node) <= int(part) < len(node):
        raise OptionsError(f"{path}: '{where}' indexes a list of {len(node)} items with '{part}'.")
    return int(part)


def import_plugins(modules: list, path: Path | str = '<options>') -> None:
    """Import user modules (dotted names or ``.py`` files) so their registrations take effect."""
    if not isinstance(modules, list):
        raise OptionsError(f'{path}: plugins must be a list of module names or .py files.')
    for entry in modules:
        try:
            if str(entry).endswith('.py'):
                file = Path(entry)
                if not file.is_absolute():
                    file = (Path(path).parent / file) if (Path(path).parent / file).is_file() else file.resolve()
                name = f'blindsr_plugin_{file.stem}'
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, file)
                if spec is None or not file.is_file():
                    raise FileNotFoundError(f'no such file {file}')
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(str(entry))
        except Exception as err:
            raise OptionsError(f"{path}: plugins: cannot import '{entry}': {type(err).__name__}: {err}") from err


def _check_type(value: Any, expected: type | tuple, where: str, path: Path | str) -> None:
    expected_t = expected if isinstance(expected, tuple) else (expected, )
    ok = isinstance(value, expected_t) and not (isinstance(value, bool) and bool not in expected_t)
    if float in expected_t and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = ' or '.join(t.__name__ for t in expected_t)
        raise OptionsError(f'{path}: {where} must be {names}, got {type(value).__name__} {value!r}.')


def _check_registered(registry: Registry, section: Any, where: str, path: Path | str) -> None:
    _check_type(section, dict, where, path)
    if 'type' not in section:
        raise OptionsError(f'{path}: {where}.type is required.')
    _check_type(section['type'], str, f'{where}.type', path)
    try:
        lookup(registry, section['type'])
    except RegistryError as err:
        raise OptionsError(f'{path}: {where}.type: {err}') from err


def validate(opt: dict, path: Path | str, is_train: bool) -> None:
    """Check required keys, types and registry names; raise :class:`OptionsError` on the first problem."""
    for key in ('name', 'model_type', 'scale', 'network_g'):
        if key not in opt:
            raise OptionsError(f'{path}: required key {key!r} is missing.')
    _check_registered(MODEL_REGISTRY, {'type': opt['model_type']}, 'model_type', path)
    model_cls = lookup(MODEL_REGISTRY, opt['model_type'])
    extra = getattr(model_cls, 'extra_sections', {})
    for key, value in opt.items():
        if key.startswith('network_'):
            _check_registered(ARCH_REGISTRY, value, key, path)
        elif key in TOP_LEVEL:
            _check_type(value, TOP_LEVEL[key], key, path)
        elif key in extra:
            _check_type(value, extra[key], key, path)
        else:
            allowed = sorted(set(TOP_LEVEL) | set(extra) | {'network_g', 'network_d'})
            raise OptionsError(f'{path}: unknown top-level key {key!r}; known keys: {", ".join(allowed)}.')
    if opt['scale'] < 1:
        raise OptionsError(f"{path}: scale must be >= 1, got {opt['scale']}.")
    if 'degradation' in opt:
        _check_registered(DEGRADATION_REGISTRY, opt['degradation'], 'degradation', path)

    datasets = opt.get('datasets') or {}
    if is_train and 'train' not in datasets:
        raise OptionsError(f'{path}: datasets.train is required for training.')
    for phase, ds in datasets.items():
        _check_registered(DATASET_REGISTRY, ds, f'datasets.{phase}', path)
        for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
            if key in ds:
                _check_type(ds[key], int, f'datasets.{phase}.{key}', path)
        if 'degradation' in ds:
            _check_registered(DEGRADATION_REGISTRY, ds['degradation'], f'datasets.{phase}.degradation', path)

    if is_train:
        train = opt.get('train')
        if train is None:
            raise OptionsError(f'{path}: section train is required for training.')
        if 'total_iter' not in train:
            raise OptionsError(f'{path}: train.total_iter is required.')
        _check_type(train['total_iter'], int, 'train.total_iter', path)
        if train['total_iter'] < 1:
            raise OptionsError(f"{path}: train.total_iter must be >= 1, got {train['total_iter']}.")
        for key in ('optim_g', 'optim_d', 'scheduler'):  # a missing 'type' comes from TRAIN_DEFAULTS
            if train.get(key) is not None:
                _check_type(train[key], dict, f'train.{key}', path)
        old = [k for k in BASICSR_LOSS_SECTIONS if k in train]
        if old:
            raise OptionsError(f"{path}: train.{old[0]} is BasicSR's layout; blindsr lists loss terms under "
                               'train.losses, e.g. losses: [{type: L1Loss, loss_weight: 1.0}, {type: GANLoss, '
                               'gan_type: lsgan, loss_weight: 0.1}].')
        if 'losses' in train:
            _check_type(train['losses'], list, 'train.losses', path)
            for i, term in enumerate(train['losses']):
                _check_registered(LOSS_REGISTRY, term, f'train.losses[{i}]', path)
        if 'ema_decay' in train:
            _check_type(train['ema_decay'], float, 'train.ema_decay', path)
            if not 0 <= train['ema_decay'] < 1:
                raise OptionsError(f"{path}: train.ema_decay must be in [0, 1), got {train['ema_decay']}.")
    for section, keys in (('val', ('val_freq', )), ('logger', ('print_freq', 'save_checkpoint_freq', 'keep_last'))):
        for key in keys:
            if key in (opt.get(section) or {}):
                _check_type(opt[section][key], int, f'{section}.{key}', path)
    for key, value in (opt.get('path') or {}).items():
        if key.startswith(('pretrain_network', 'experiments_root', 'results_root')) and value is not None:
            _check_type(value, str, f'path.{key}', path)


def _merge(defaults: dict, given: dict | None) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in (given or {}).items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def fill_defaults(opt: dict, is_train: bool) -> dict:
    """Return the options with every default spelled out (this is what the run folder records)."""
    opt = _merge(DEFAULTS, opt)
    if is_train:
        opt['train'] = _merge(TRAIN_DEFAULTS, opt['train'])
    if 'val' in opt or any(k != 'train' for k in opt.get('datasets', {})):
        given_metrics = (opt.get('val') or {}).get('metrics')
        opt['val'] = _merge(VAL_DEFAULTS, opt.get('val'))
        if given_metrics is not None:  # a user's metric list replaces the default one
            opt['val']['metrics'] = given_metrics
        for metric in opt['val']['metrics'].values():
            if metric.get('crop_border') is None:
                metric['crop_border'] = opt['scale']
    for phase, ds in opt.get('datasets', {}).items():
        ds = _merge(DATASET_DEFAULTS, ds)
        ds.setdefault('name', phase)
        ds['phase'] = 'train' if phase == 'train' else 'val'
        ds.setdefault('scale', opt['scale'])
        ds.setdefault('seed', opt['manual_seed'])
        opt['datasets'][phase] = ds
    # As in BasicSR, experiments_root is the run folder itself (default ./experiments/<name>);
    # it is made absolute here so that resuming never depends on the working directory.
    paths = opt['path']
    for key, parent in (('experiments_root', 'experiments'), ('results_root', 'results')):
        paths[key] = str(Path(paths[key] or Path(parent) / opt['name']).expanduser().resolve())
    run = Path(paths['experiments_root'])
    for sub in ('models', 'training_states', 'visualization'):
        paths[sub] = str(run / sub)
    paths['tb_logger'] = str(run / 'tb_logger')
    return opt


def dump_options(opt: dict, header: str = '') -> str:
    """YAML text of resolved options (key order kept), with an optional comment header."""
    text = yaml.safe_dump(opt, sort_keys=False, default_flow_style=None)
    return ''.join(f'# {line}\n' for line in header.splitlines()) + text
