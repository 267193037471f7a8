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


@pytest.mark.parametrize('num', [72, 24])
def test_generated_filters_sum_to_one_and_are_centred(num):
    filters = make_filter_dictionary(num)
    assert filters.shape == (num, 5, 5) and filters.dtype == torch.float32
    torch.testing.assert_close(filters.double().sum((1, 2)), torch.ones(num, dtype=torch.float64), atol=1e-6, rtol=0)
    assert centre_of_mass(filters).abs().max() < 1e-6
    torch.testing.assert_close(filters, filters.flip(1, 2))  # point-symmetric, as all the authors' filters


def test_generated_dictionary_structure():
    filters = make_filter_dictionary()
    gaussians, delta, rings = filters[:50], filters[50], filters[51:]
    assert (gaussians > 0).all() and (gaussians[:, 2, 2] == gaussians.amax((1, 2))).all()
    assert abs(delta[2, 2].item() - 0.845) < 1e-3
    assert len(rings) == 21 and (rings[:, 2, 2] < 0).all() and (rings.amin((1, 2)) == rings[:, 2, 2]).all()
    assert rings[1, 2, 2].item() == pytest.approx(-0.4) and rings[2, 2, 2].item() == pytest.approx(-0.4)
    for i in (0, 31, 50, 51, 52, 53):  # isotropic members
        torch.testing.assert_close(filters[i], filters[i].T)
    # orientation: ratio 0.2 at 0 degrees lies along the middle row, at 90 degrees along the middle column
    assert filters[19][2].sum() > 0.9 and filters[25][:, 2].sum() > 0.9
    torch.testing.assert_close(filters[19], filters[25].T)  # and 30 degrees mirrors 60, etc.
    torch.testing.assert_close(filters[2], filters[3].T)
    with pytest.raises(ValueError, match=r'num must be one of \[24, 72\], got 50'):
        make_filter_dictionary(50)


@needs_shared
@pytest.mark.parametrize('num', [72, 24])
def test_authors_pickle_loads_and_generated_dictionary_is_close(num):
    """The authors' files load as (N, 5, 5) summing to 1; ours equals them where the recipe is known
    (Gaussians and the sharpened DoGs) and stays within 0.036 on the ring filters."""
    authors = load_filter_dictionary(AUTHORS / f'kernel_{num}_k5.pkl')
    assert authors.shape == (num, 5, 5) and authors.dtype == torch.float32
    torch.testing.assert_close(authors.double().sum((1, 2)), torch.ones(num, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    diff = (make_filter_dictionary(num) - authors).abs().amax((1, 2))
    rings = [51, *range(54, 72)] if num == 72 else [21]
    exact = [i for i in range(num) if i not in rings]
    assert diff[exact].max() < 1e-6 and diff[rings].max() < 0.036


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
    with pytest.raises(ValueError, match='dict.pkl: expected a floating-point array .* got dict'):
        load_filter_dictionary(tmp_path / 'dict.pkl')
    np.save(tmp_path / 'int.npy', np.ones((72, 25), np.int64))
    with pytest.raises(ValueError, match='int.npy: expected a floating-point array .* got int64 array'):
        load_filter_dictionary(tmp_path / 'int.npy')
    (tmp_path / 'junk.pt').write_bytes(b'not a tensor file')
    with pytest.raises(ValueError, match='junk.pt: cannot read it'):
        load_filter_dictionary(tmp_path / 'junk.pt')
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
