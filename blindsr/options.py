"""Option files: YAML in BasicSR's section layout, ``--set`` overrides, plugins, validation, defaults.

``load_options`` is the one way in: it reads the YAML, applies ``--set a.b.c=value`` overrides
(values parsed as YAML), expands ``${NAME}`` in string values from the environment (recipes say
``${BLINDSR_DATA}/Set5``: :mod:`blindsr.data_root`), imports the ``plugins:`` modules (so user archs, datasets or degradations
register before anything is built), checks keys and types against a schema and fills defaults.
Every error is an :class:`OptionsError` naming the file and the key path.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from blindsr.data_root import DATA_ROOT_VAR, UNSET_HINT
from blindsr.registry import (
    ARCH_REGISTRY,
    DATASET_REGISTRY,
    DEGRADATION_REGISTRY,
    METRIC_REGISTRY,
    MODEL_REGISTRY,
    RegistryError,
    lookup,
)
from blindsr.schema import (
    ANY,
    REQUIRED,
    Component,
    Context,
    MapOf,
    OptionsError,
    Section,
    Value,
    check_type,
    registered,
    resolve_keys,
    unknown_key,
)

__all__ = ['OptionsError', 'apply_override', 'dump_options', 'expand_environment', 'load_options', 'parse_yaml',
           'resolve_options']


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


# the sections every option file may have; a model adds its own (``BaseModel.sections``) and says which
# keys its ``train:`` section reads (``BaseModel.train_options``)
TOP_LEVEL: dict[str, Any] = {
    'name': Value(str, REQUIRED),
    'model_type': Value(str, REQUIRED),
    'scale': Value(int, REQUIRED, min=1),
    'num_gpu': Value(int, None),  # BasicSR's; blindsr takes the device from 'device' and torchrun
    'device': Value(str, 'auto'),
    'manual_seed': Value(int, 0),
    'deterministic': Value(bool, False),
    'plugins': Value(list, []),
    'is_train': Value(bool, True),
    'logger': Section({
        'print_freq': Value(int, 10, min=1),
        'save_checkpoint_freq': Value(int, 1000, min=1),
        'keep_last': Value(int, 3),  # <= 0 keeps every state
        'use_tb_logger': Value(bool, True),
    }, 'the logger section'),
    'dist': Section({
        'backend': Value(str, 'auto', choices=('auto', 'nccl', 'gloo')),
        'timeout_minutes': Value(float, 30, min=0.1),
    }, 'the dist section'),
}

# keys of every datasets.<phase> entry, read by the DataLoader and the entry points; a dataset class
# declares its own keys in ``option_keys`` (and ``train_required``: keys the train phase needs)
DATASET_COMMON: dict[str, Any] = {
    'type': Value(str, REQUIRED),
    'name': Value(str, None),
    'phase': Value(str, None, choices=('train', 'val')),
    'scale': Value(int, None, min=1),
    'seed': Value(int, None),
    'batch_size_per_gpu': Value(int, 1, min=1),
    'num_worker_per_gpu': Value(int, 0, min=0),
    'prefetch_factor': Value(int, None, min=1),  # None: torch's default (2 batches per worker)
    'persistent_workers': Value(bool, True),
    'pin_memory': Value(bool, None),  # None: on when the run's device is CUDA (blindsr.data.loader)
    'dataset_enlarge_ratio': Value(int, 1, min=1),
}

METRIC = Component(registered(METRIC_REGISTRY), 'metric', supplied=('img', 'img2'), closed=True)

VAL = Section({
    'val_freq': Value(int, 1000, min=1),
    'save_img': Value(bool, True),
    'save_img_count': Value(int, 4, min=0),
    'save_comparison': Value(bool, False),
    'bicubic_baseline': Value(bool, False),
    'summary_columns': Value(str, 'settings', choices=('settings', 'sets')),  # the test summary's layout
    'metrics': MapOf(METRIC, default={
        'psnr': {'type': 'calculate_psnr', 'crop_border': None, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': None, 'test_y_channel': True}}),
}, 'the val section')

# path keys besides the per-network ones; the run folder's sub-folders are derived (written out in the
# resolved options, recomputed on every load)
PATH_KEYS: dict[str, Any] = {key: Value(str, None) for key in (
    'experiments_root', 'results_root', 'models', 'training_states', 'visualization', 'tb_logger')}

# BasicSR's one-section-per-loss layout; blindsr lists the terms under train.losses instead
BASICSR_LOSS_SECTIONS = ('pixel_opt', 'perceptual_opt', 'gan_opt')


def load_options(path: str | Path, overrides: Iterable[str] = (), is_train: bool = True) -> dict:
    """Read, override, import plugins, validate and complete an option file."""
    path = Path(path)
    opt = read_yaml(path)
    for item in overrides:
        apply_override(opt, item, path)
    if isinstance(opt.get('datasets'), dict):  # --set datasets.X=null removes a dataset
        opt['datasets'] = {k: v for k, v in opt['datasets'].items() if v is not None}
    opt = expand_environment(opt, path)
    import_plugins(opt.get('plugins') or [], path)
    return resolve_options(opt, path, is_train)


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


_VARIABLE = re.compile(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}')


def expand_environment(node: Any, path: Path | str = '<options>', where: str = '') -> Any:
    """``node`` with every ``${NAME}`` in its strings replaced by the environment variable ``NAME``; an
    unset (or empty) one is an error naming the key and the variable."""
    if isinstance(node, dict):
        return {key: expand_environment(value, path, f'{where}.{key}' if where else str(key))
                for key, value in node.items()}
    if isinstance(node, list):
        return [expand_environment(value, path, f'{where}.{i}') for i, value in enumerate(node)]
    if not isinstance(node, str):
        return node

    def value_of(match: re.Match) -> str:
        name = match.group(1)
        if not os.environ.get(name):
            hint = UNSET_HINT if name == DATA_ROOT_VAR else 'set it, or give the value itself'
            raise OptionsError(f'{path}: {where} uses ${{{name}}}, which is not set; {hint}.')
        return os.environ[name]

    return _VARIABLE.sub(value_of, node)


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


def resolve_options(opt: dict, path: Path | str = '<options>', is_train: bool = True) -> dict:
    """Check every key of ``opt`` at every depth and return the options with every default spelled out
    (this is what the run folder records). Raises :class:`OptionsError` on the first problem."""
    ctx = Context(path, is_train)
    for key in ('name', 'model_type', 'scale'):
        if key not in opt:
            raise ctx.error('', f'required key {key!r} is missing.')
    check_type(opt['model_type'], str, 'model_type', ctx)
    try:
        model_cls = lookup(MODEL_REGISTRY, opt['model_type'])
    except RegistryError as err:
        raise ctx.error('model_type.type:', str(err)) from err
    if f'network_{model_cls.main_network}' not in opt:
        raise ctx.error('', f"required key 'network_{model_cls.main_network}' is missing.")
    networks = [key for key in opt if key.startswith('network_')]
    schema = {**TOP_LEVEL, **{key: Component(registered(ARCH_REGISTRY), 'arch') for key in networks},
              'degradation': Component(registered(DEGRADATION_REGISTRY), 'degradation', default=None,
                                       supplied=('scale', )),
              'path': Section({**PATH_KEYS, **_network_path_keys(networks), **model_cls.path_options},
                              'the path section'),
              **model_cls.sections}
    known = [*schema, 'datasets', 'train', 'val']
    for key in opt:
        if key not in known:
            raise unknown_key(key, known, '', 'the top level', ctx)
    out = resolve_keys({k: v for k, v in opt.items() if k in schema}, schema, '', 'the options', ctx)
    if out['degradation'] is None:
        del out['degradation']
    out['is_train'] = is_train
    out['datasets'] = _resolve_datasets(opt.get('datasets'), out, ctx)
    if is_train or opt.get('train') is not None:
        out['train'] = _resolve_train(opt.get('train'), model_cls, ctx)
    if 'val' in opt or any(phase != 'train' for phase in out['datasets']):
        out['val'] = _resolve_val(opt.get('val') or {}, out['scale'], ctx)
    _derive_paths(out)
    return out


def _network_path_keys(networks: list[str]) -> dict[str, Any]:
    """BasicSR's per-network keys: network_g -> pretrain_network_g, strict_load_g, param_key_g."""
    keys: dict[str, Any] = {}
    for network in networks:
        suffix = network.removeprefix('network_')
        keys.update({f'pretrain_network_{suffix}': Value(str, None), f'strict_load_{suffix}': Value(bool, True),
                     f'param_key_{suffix}': Value(str, None)})
    return keys


def _resolve_datasets(datasets: Any, opt: dict, ctx: Context) -> dict:
    datasets = {} if datasets is None else datasets
    check_type(datasets, dict, 'datasets', ctx)
    if ctx.is_train and 'train' not in datasets:
        raise ctx.error('', 'datasets.train is required for training.')
    out = {}
    for phase, ds in datasets.items():
        where = f'datasets.{phase}'
        check_type(ds, dict, where, ctx)
        if 'type' not in ds:
            raise ctx.error(f'{where}.type', 'is required.')
        check_type(ds['type'], str, f'{where}.type', ctx)
        try:
            cls = lookup(DATASET_REGISTRY, ds['type'])
        except RegistryError as err:
            raise ctx.error(f'{where}.type:', str(err)) from err
        declared = getattr(cls, 'option_keys', None)  # BasicSR's datasets declare nothing: their keys pass
        keys = {**DATASET_COMMON, **(declared or {k: Value(ANY) for k in ds if k not in DATASET_COMMON})}
        required = getattr(cls, 'train_required', ()) if phase == 'train' else ()
        resolved = resolve_keys(ds, keys, where, f"dataset {ds['type']}", ctx, required=required)
        resolved.update(name=resolved['name'] or phase, phase='train' if phase == 'train' else 'val',
                        scale=resolved['scale'] or opt['scale'],
                        seed=opt['manual_seed'] if resolved['seed'] is None else resolved['seed'])
        if resolved.get('degradation', 0) is None:
            del resolved['degradation']
        if resolved['prefetch_factor'] is not None and not resolved['num_worker_per_gpu']:
            raise ctx.error(f'{where}.prefetch_factor', 'is the number of batches each DataLoader worker '
                            'prepares ahead; it needs num_worker_per_gpu > 0 (got 0).')
        out[phase] = resolved
    return out


def _resolve_train(train: Any, model_cls: type, ctx: Context) -> dict:
    if train is None:
        raise ctx.error('', 'section train is required for training.')
    check_type(train, dict, 'train', ctx)
    old = [k for k in BASICSR_LOSS_SECTIONS if k in train]
    if old:
        raise ctx.error(f'train.{old[0]}', "is BasicSR's layout; blindsr lists loss terms under train.losses, e.g. "
                        'losses: [{type: L1Loss, loss_weight: 1.0}, {type: GANLoss, gan_type: lsgan, '
                        'loss_weight: 0.1}].')
    return resolve_keys(train, model_cls.train_options, 'train', f'{model_cls.__name__} training', ctx)


def _resolve_val(val: Any, scale: int, ctx: Context) -> dict:
    check_type(val, dict, 'val', ctx)
    metrics = val.get('metrics', VAL.keys['metrics'].default)  # a user's metric list replaces the default one
    check_type(metrics, dict, 'val.metrics', ctx)
    with_border = {}
    for name, metric in metrics.items():  # crop_border defaults to the scale
        if isinstance(metric, dict) and metric.get('crop_border') is None:
            metric = {**metric, 'crop_border': scale}
        with_border[name] = metric
    return VAL.resolve({**val, 'metrics': with_border}, 'val', ctx)


def _derive_paths(opt: dict) -> None:
    # As in BasicSR, experiments_root is the run folder itself (default ./experiments/<name>);
    # it is made absolute here so that resuming never depends on the working directory.
    paths = opt['path']
    for key, parent in (('experiments_root', 'experiments'), ('results_root', 'results')):
        paths[key] = str(Path(paths[key] or Path(parent) / opt['name']).expanduser().resolve())
    run = Path(paths['experiments_root'])
    for sub in ('models', 'training_states', 'visualization', 'tb_logger'):
        paths[sub] = str(run / sub)

def dump_options(opt: dict, header: str = '') -> str:
    """YAML text of resolved options (key order kept), with an optional comment header."""
    text = yaml.safe_dump(opt, sort_keys=False, default_flow_style=None)
    return ''.join(f'# {line}\n' for line in header.splitlines()) + text
