"""Index values are checked where Jittor and PyTorch check them (kiln/_index.py,
Embedding, cross-entropy targets): a value out of range raises IndexError at
the sync, naming the op, instead of reading 0; boolean masks must match the
dims they index; jt.flags.check_indices = 0 turns the value check off."""
import numpy as np
import pytest

import kiln as jt


@pytest.fixture
def x():
    return jt.array(np.arange(12, dtype="float32").reshape(3, 4))


def test_var_indices_in_range_gather_as_numpy(x):
    a = np.arange(12, dtype="float32").reshape(3, 4)
    i = np.array([2, -1, 0, -3])
    np.testing.assert_array_equal(x[jt.array(i)].numpy(), a[i])
    np.testing.assert_array_equal(x[:, jt.array([3, -4])].numpy(), a[:, [3, -4]])


@pytest.mark.parametrize("bad", [3, -4, 100])
def test_var_index_out_of_range_raises_at_the_sync(x, bad):
    y = x[jt.array([0, bad])]                       # building is lazy
    with pytest.raises(IndexError, match=rf"getitem on dim 0 of shape \(3, 4\): index {bad} "
                                         r"is out of range \[-3, 3\)"):
        y.numpy()
    with pytest.raises(IndexError):                 # still pending: it fails again
        y.sum().item()
    with pytest.raises(IndexError, match="dim 1"):
        x[:, jt.array([4])].numpy()


def test_setitem_with_a_bad_var_index_raises(x):
    x[jt.array([5])] = 1.0
    with pytest.raises(IndexError, match="index 5"):
        x.numpy()


def test_embedding_ids_are_checked():
    emb = jt.nn.Embedding(3, 2)
    assert emb(jt.array([0, 2])).shape == (2, 2)
    with pytest.raises(IndexError, match=r"Embedding with 3 rows: index 7 is out of range \[0, 3\)"):
        emb(jt.array([[1, 7]])).numpy()
    with pytest.raises(IndexError, match="index -1"):
        emb(jt.array([-1])).numpy()


def test_cross_entropy_targets_are_checked_but_ignore_index_passes():
    logits = jt.array(np.random.default_rng(0).standard_normal((3, 4)).astype("float32"))
    with pytest.raises(IndexError, match=r"cross_entropy target \(4 classes\): index 9"):
        jt.nn.cross_entropy_loss(logits, jt.array([1, 9, 0])).item()
    ok = jt.nn.cross_entropy_loss(logits, jt.array([1, -100, 0]), ignore_index=-100).item()
    assert np.isfinite(ok)
    with pytest.raises(IndexError, match="index -100"):
        jt.nn.cross_entropy_loss(logits, jt.array([1, -100, 0])).item()


def test_the_flag_turns_the_check_off(x):
    jt.flags.check_indices = 0
    try:
        np.testing.assert_array_equal(x[jt.array([7])].numpy(), np.zeros((1, 4), "float32"))
    finally:
        jt.flags.check_indices = 1
    with pytest.raises(IndexError):
        x[jt.array([7])].numpy()


@pytest.mark.parametrize("mask", [np.array([True, False]), np.ones(4, bool),
                                  (slice(None), np.ones(5, bool)), np.ones((3, 3), bool),
                                  np.ones((2, 4), bool)])
def test_boolean_masks_must_match_their_dims(x, mask):
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[mask]
    with pytest.raises(IndexError, match="boolean index did not match"):
        x[mask] = 0.0


def test_boolean_masks_of_the_right_shape(x):
    a = np.arange(12, dtype="float32").reshape(3, 4)
    m = a % 3 == 0
    np.testing.assert_array_equal(x[m].numpy(), a[m])
    np.testing.assert_array_equal(x[jt.array([True, False, True])].numpy(), a[[True, False, True]])
    np.testing.assert_array_equal(x[..., np.array([1, 0, 0, 1], bool)].numpy(),
                                  a[..., [True, False, False, True]])
