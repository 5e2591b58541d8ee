"""The raw-form helpers (``_rawform``): the one place that knows a raw may be a tuple."""

import pytest
import torch

from functional_struct import _rawform

S = torch.Size
FORM = (S([3, 2]), (S([2]), S([4, 2])))


def test_leaves_unflatten_and_count_agree_on_nested_forms():
    raw = (torch.zeros(5, 3, 2), (torch.zeros(5, 2), torch.zeros(5, 4, 2)))
    parts = list(_rawform.leaves(raw))
    assert len(parts) == _rawform.count(FORM) == 3
    back = _rawform.unflatten(FORM, parts)
    assert isinstance(back[1], tuple)
    assert all(a is b for a, b in zip(_rawform.leaves(back), parts, strict=True))
    with pytest.raises(ValueError, match="fewer tensors"):
        _rawform.unflatten(FORM, [*parts, torch.zeros(1)])


def test_a_size_is_one_tensor_though_it_is_a_tuple():
    assert not _rawform.is_factored(S([3, 3]))
    assert _rawform.is_factored(FORM)
    assert list(_rawform.leaves(S([2, 2]))) == [S([2, 2])]
    assert _rawform.describe(S([1])) == "a tensor"
    assert _rawform.describe(FORM) == "a tuple of 2 raws, one per part"


def test_core_shapes_reads_batch_and_core_dims_against_the_form():
    raw = (torch.zeros(7, 3, 2), (torch.zeros(7, 2), torch.zeros(7, 4, 2)))
    cores, batches = _rawform.core_shapes(raw, FORM)
    assert cores == (S([3, 2]), (S([2]), S([4, 2])))
    assert batches == [(7,), (7,), (7,)]


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (torch.zeros(3, 2), TypeError, "raw must be a tuple of 2 raws, one per part, got Tensor"),
        ((torch.zeros(3, 2),), TypeError, "got a tuple of 1"),
        ((torch.zeros(3, 2), (torch.zeros(2), [1])), TypeError, "raw part 1 part 1 must be a"),
        ((torch.zeros(2), (torch.zeros(2), torch.zeros(4, 2))), ValueError, "a matrix in its"),
    ],
)
def test_core_shapes_says_what_does_not_fit(raw, error, message):
    with pytest.raises(error, match=message):
        _rawform.core_shapes(raw, FORM)


def test_map_raw_and_parts_of():
    raw = (torch.ones(2), (torch.ones(1), torch.ones(3)))
    doubled = _rawform.map_raw(lambda t: 2 * t, raw)
    assert [t.sum().item() for t in _rawform.leaves(doubled)] == [4.0, 2.0, 6.0]
    assert _rawform.parts_of(FORM) is FORM
    with pytest.raises(ValueError, match="one tensor"):
        _rawform.parts_of(S([2]))
