"""Tests that kill the mutants mutmut found surviving (``make mutation``) in passes/partition and
synapse_memory, hwsim/synapse, events, fixed and gpu. Expectations are computed by hand in the comments."""
import torch

from hwsim import fixed


# ---------------------------------------------------------------------------------------------- hwsim.fixed
def test_wrap32_wraps_like_an_int32_at_both_ends():
    x = torch.tensor([5, -5, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32 + 3], dtype=torch.int64)
    assert fixed.wrap32(x).tolist() == [5, -5, 2**31 - 1, -2**31, -2**31, 2**31 - 1, 3]


def test_decay_truncates_toward_zero_in_int64():
    # -7 * 3 / 4 = -5.25: toward zero -5 (floor would give -6); an int32 state times a 12-bit factor
    # overflows int32, so the product must be formed in int64: 2^30 * 4095 / 4096 = 2^30 - 2^18
    assert fixed.decay(torch.tensor([-7, 7, 0]), 3, 4).tolist() == [-5, 5, 0]
    big = fixed.decay(torch.tensor([2**30], dtype=torch.int32), 4095, 4096)
    assert big.dtype == torch.int64 and big.tolist() == [2**30 - 2**18]


def test_current_wraps_once_or_modularly_into_the_half_open_range():
    # half_range 8: the range is [-7, 8]; 9 -> -7, -8 -> 8; once only: 25 -> 9 (modular: 25 - 16 - 16 = -7)
    u = torch.tensor([-9, -8, -7, 0, 8, 9, 23, 25], dtype=torch.int64)
    assert fixed.wrap_u_once(u, 8).tolist() == [7, 8, -7, 0, 8, -7, 7, 9]
    inplace = u.clone()
    out = fixed.wrap_u_modular_(inplace, 8)
    assert out.data_ptr() == inplace.data_ptr()
    assert inplace.tolist() == [7, 8, -7, 0, 8, -7, 7, -7]


def test_voltage_saturates_symmetrically_in_place():
    v = torch.tensor([-9, -7, 0, 7, 9], dtype=torch.int64)
    fixed.saturate_v_(v, 7)
    assert v.tolist() == [-7, -7, 0, 7, 7]
