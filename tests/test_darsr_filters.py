"""DARSR's 5x5 filter dictionary: blindsr's generated one (sums, centring, structure), loading the
authors' pickle and tensor files, and clear errors for missing or malformed files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import SHARED

from blindsr.archs.darsr_filters import load_filter_dictionary, make_filter_dictionary

AUTHORS = SHARED / 'weights' / 'darsr'
needs_shared = pytest.mark.skipif(not AUTHORS.is_dir(), reason=f'shared weights not found at {AUTHORS} '
                                  '(set BLINDSR_SHARED to the shared folder)')


def centre_of_mass(filters: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(5, dtype=torch.float64) - 2
    f = filters.double()
    return torch.stack([(f.sum(2) * offsets).sum(1), (f.sum(1) * offsets).sum(1)], 1) / f.sum((1, 2))[:, None]


def test_generated_filters_sum_to_one_and_are_centred():
    filters = make_filter_dictionary()
    assert filters.shape == (72, 5, 5) and filters.dtype == torch.float32
    torch.testing.assert_close(filters.double().sum((1, 2)), torch.ones(72, dtype=torch.float64), atol=1e-6, rtol=0)
    assert centre_of_mass(filters).abs().max() < 1e-6


def test_generated_dictionary_structure():
    filters = make_filter_dictionary()
    gaussians, delta, rings = filters[:50], filters[50], filters[51:]
    assert (gaussians > 0).all() and (gaussians[:, 2, 2] == gaussians.amax((1, 2))).all()
    assert abs(delta[2, 2].item() - 0.845) < 1e-3
    assert len(rings) == 21 and (rings[:, 2, 2] < 0).all()
    # groups of one isotropic + oriented Gaussians: filters 0 and 31 are symmetric under transposition
    for i in (0, 31):
        torch.testing.assert_close(filters[i], filters[i].T)
    assert make_filter_dictionary(24).shape == (24, 5, 5)
    torch.testing.assert_close(make_filter_dictionary(24), filters[:24])


@needs_shared
def test_authors_pickle_loads_as_72_filters_summing_to_one():
    filters = load_filter_dictionary(AUTHORS / 'kernel_72_k5.pkl')
    assert filters.shape == (72, 5, 5) and filters.dtype == torch.float32
    torch.testing.assert_close(filters.double().sum((1, 2)), torch.ones(72, dtype=torch.float64), atol=1e-6, rtol=0)
    assert load_filter_dictionary(AUTHORS / 'kernel_24_k5.pkl').shape == (24, 5, 5)


def test_tensor_and_numpy_files_load(tmp_path):
    filters = make_filter_dictionary()
    torch.save(filters, tmp_path / 'd.pt')
    np.save(tmp_path / 'd.npy', filters.reshape(72, 25).double().numpy())
    with (tmp_path / 'd.pkl').open('wb') as f:
        pickle.dump(filters.reshape(72, 25).double().numpy(), f)
    for name in ('d.pt', 'd.npy', 'd.pkl'):
        torch.testing.assert_close(load_filter_dictionary(tmp_path / name), filters)


def test_missing_or_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='filter dictionary not found: .*nothing.pkl'):
        load_filter_dictionary(tmp_path / 'nothing.pkl')
    (tmp_path / 'junk.pkl').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='junk.pkl: cannot read it'):
        load_filter_dictionary(tmp_path / 'junk.pkl')
    with (tmp_path / 'dict.pkl').open('wb') as f:
        pickle.dump({'filters': [1, 2]}, f)
    with pytest.raises(ValueError, match='dict.pkl: expected a numeric array'):
        load_filter_dictionary(tmp_path / 'dict.pkl')
    with (tmp_path / 'evil.pkl').open('wb') as f:
        pickle.dump(np.float64(1).__class__, f)  # any global other than a numpy array's
    with pytest.raises(ValueError, match='evil.pkl: cannot read it .*refusing to unpickle'):
        load_filter_dictionary(tmp_path / 'evil.pkl')
    np.save(tmp_path / 'shape.npy', np.ones((72, 9)))
    with pytest.raises(ValueError, match=r'shape.npy: expected shape \(N, 25\) or \(N, 5, 5\), got \(72, 9\)'):
        load_filter_dictionary(tmp_path / 'shape.npy')
    torch.save(torch.full((2, 5, 5), float('nan')), tmp_path / 'nan.pt')
    with pytest.raises(ValueError, match='nan.pt: contains NaN'):
        load_filter_dictionary(tmp_path / 'nan.pt')
    (tmp_path / 'd.txt').write_text('1')
    with pytest.raises(ValueError, match="d.txt: unknown file type '.txt'"):
        load_filter_dictionary(tmp_path / 'd.txt')
