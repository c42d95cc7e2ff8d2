"""Packed (slot) Paillier encryption and CRT encryption against Python's own integers.

Every packed result is checked against a Python big-integer reference: either the decryption is
exactly right, or (when the tracked slot bound says a slot could overflow) the op raises
OverflowError before computing anything. Never a silently wrong number.
"""
import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aijack_lab.defense.paillier import (
    PaillierCipherArray,
    PaillierKeyGenerator,
    PaillierKeySizeWarning,
    PaillierPackedArray,
    PaillierTensor,
)

HYP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BITS = 512  # slots = (512 - 3) // slot_bits


def keypair(seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        return PaillierKeyGenerator(BITS, seed=seed).generate_keypair()


@pytest.fixture(scope="module")
def keys():
    return keypair(21)


@pytest.fixture(scope="module")
def other_keys():
    return keypair(22)


def fnv1a(data: bytes) -> int:
    """The serialization checksum (FNV-1a 64), to forge well-formed but lying data."""
    h = 1469598103934665603
    for byte in data:
        h = ((h ^ byte) * 1099511628211) % 2**64
    return h


def limit(slot_bits):
    return 2 ** (slot_bits - 1) - 1


def enc_ints(key, values, slot_bits):
    return key.encrypt_array(np.array(values, dtype=object), pack=True, slot_bits=slot_bits)


def dec_ints(sk, c):
    return [int(v) for v in sk.decrypt_array_int(c)]


slot_widths = st.sampled_from([8, 16, 33, 64, 100, 127])


@st.composite
def packed_case(draw, n_min=1, n_max=40):
    """(slot_bits, values) with values anywhere in the slot range, boundaries and zero favoured."""
    b = draw(slot_widths)
    lim = limit(b)
    val = st.one_of(st.integers(-lim, lim), st.sampled_from([0, 1, -1, lim, -lim, lim - 1, -lim + 1]))
    values = draw(st.lists(val, min_size=n_min, max_size=n_max))
    return b, values


# ---- layout and round trip ------------------------------------------------------------------------
def test_layout_slots_per_ciphertext(keys):
    pk, sk = keys
    assert pk.packed_slots(128) == 3 and pk.packed_slots(64) == 7 and pk.packed_slots(8) == 63
    c = enc_ints(pk, list(range(10)), 64)
    assert isinstance(c, PaillierPackedArray)
    assert (len(c), c.slots, c.num_ciphertexts, c.slot_bits, c.scale_bits) == (10, 7, 2, 64, 0)
    assert c.nbytes == 2 * pk.ciphertext_bytes and c.bound == 9 and c.slot_limit == 2**63 - 1
    with pytest.raises(ValueError, match="slot_bits"):
        pk.encrypt_array(np.zeros(3), pack=True, slot_bits=7)
    with pytest.raises(ValueError, match="slot_bits"):
        pk.encrypt_array(np.zeros(3), pack=True, slot_bits=510)


@HYP
@given(case=packed_case())
def test_packed_int_round_trip_including_negatives_and_slot_boundaries(keys, case):
    pk, sk = keys
    b, values = case
    c = enc_ints(pk, values, b)
    assert c.num_ciphertexts == -(-len(values) // pk.packed_slots(b))
    assert dec_ints(sk, c) == values
    assert c.bound == max(abs(v) for v in values)


def test_borrows_between_neighbouring_slots(keys):
    pk, sk = keys
    lim = limit(16)
    values = [-1, 0, -1, -lim, lim, -lim, 1, -1, lim, 0, -lim] * 7  # every kind of neighbour, 11 ciphertexts
    assert dec_ints(sk, enc_ints(pk, values, 16)) == values
    c = enc_ints(sk, values, 16)  # CRT encryption packs alike
    assert dec_ints(sk, c) == values


def test_value_beyond_a_slot_raises_at_encryption(keys):
    pk, sk = keys
    lim = limit(16)
    for bad in (lim + 1, -lim - 1, -(2**15)):
        with pytest.raises(OverflowError, match="slot overflow at encryption"):
            enc_ints(pk, [0, bad, 0], 16)
    with pytest.raises(OverflowError, match="slot overflow"):
        pk.encrypt_array(np.array([1.0, 2.0**40]), pack=True, slot_bits=64)  # 2^40 * 2^32 needs 73 bits
    with pytest.raises(ValueError, match="NaN"):
        pk.encrypt_array(np.array([1.0, np.nan]), pack=True)


# ---- homomorphic ops, exact reference or OverflowError ------------------------------------------------
def expect(fn, reference, bound, b):
    """Either the op's bound fits (then exact) or it raised OverflowError."""
    if bound > limit(b):
        with pytest.raises(OverflowError, match="slot overflow"):
            fn()
        return None
    out = fn()
    assert out.bound == bound
    return out


@HYP
@given(case=packed_case(), data=st.data())
def test_packed_add_ct_ct_and_plain(keys, case, data):
    pk, sk = keys
    b, xs = case
    lim = limit(b)
    ys = data.draw(st.lists(st.integers(-lim, lim), min_size=len(xs), max_size=len(xs)))
    cx, cy = enc_ints(pk, xs, b), enc_ints(pk, ys, b)
    bx, by = max(map(abs, xs)), max(map(abs, ys))
    s = expect(lambda: cx + cy, None, bx + by, b)
    if s is not None:
        assert dec_ints(sk, s) == [x + y for x, y in zip(xs, ys)]
    p = expect(lambda: cx.add_plain(np.array(ys, dtype=object)), None, bx + by, b)
    if p is not None:
        assert dec_ints(sk, p) == [x + y for x, y in zip(xs, ys)]
    d = expect(lambda: cx - cy, None, bx + by, b)
    if d is not None:
        assert dec_ints(sk, d) == [x - y for x, y in zip(xs, ys)]


@HYP
@given(case=packed_case(), k=st.one_of(st.integers(-1000, 1000), st.sampled_from([0, 1, -1, 2**20, -(2**31)])))
def test_packed_scalar_multiply_and_negate(keys, case, k):
    pk, sk = keys
    b, xs = case
    c = enc_ints(pk, xs, b)
    bound = max(map(abs, xs))
    m = expect(lambda: c * k, None, bound * abs(k), b)
    if m is not None:
        assert dec_ints(sk, m) == [x * k for x in xs]
        assert dec_ints(sk, k * c) == [x * k for x in xs]
    n = -c
    assert n.bound == bound and dec_ints(sk, n) == [-x for x in xs]
    assert dec_ints(sk, c.negate().negate()) == xs


@HYP
@given(b=st.sampled_from([16, 40, 64]), clients=st.integers(1, 9), data=st.data())
def test_packed_sum_over_clients(keys, b, clients, data):
    pk, sk = keys
    lim = limit(b)
    n = data.draw(st.integers(1, 20))
    small = lim // 8
    updates = [data.draw(st.lists(st.integers(-small, small), min_size=n, max_size=n)) for _ in range(clients)]
    cts = [enc_ints(pk, u, b) for u in updates]
    bound = sum(max(map(abs, u)) for u in updates)
    total = expect(lambda: sum(cts), None, bound, b)  # sum() starts at 0: 0 + packed is the packed array
    if total is not None:
        assert dec_ints(sk, total) == [sum(col) for col in zip(*updates)]


@HYP
@given(xs=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30),
       scalar=st.floats(-8, 8, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
       shift=st.floats(-1e3, 1e3, allow_nan=False))
def test_packed_floats_fixed_point_scale_tracking(keys, xs, scalar, shift):
    pk, sk = keys
    x = np.array(xs)
    c = pk.encrypt_array(x, pack=True, slot_bits=100)
    assert c.scale_bits == 32
    assert np.allclose(sk.decrypt_array(c), x, atol=2**-32)
    m = c * scalar  # scale 32 + the scalar's fractional bits
    assert m.scale_bits >= 32 and np.allclose(sk.decrypt_array(m), x * scalar, atol=1e-8 * (1 + abs(scalar)))
    assert np.allclose(sk.decrypt_array(m + c), x * scalar + x, atol=1e-7)  # scales aligned exactly
    assert np.allclose(sk.decrypt_array(c + shift), x + shift, atol=1e-8)
    assert np.allclose(sk.decrypt_array(c - x), 0, atol=1e-9)
    # 1000 at a ~64-bit scale needs ~74 of the 99 bits; a second 32-bit float factor must overflow, not wrap
    big = pk.encrypt_array(np.array([1000.0, -1.0]), pack=True, slot_bits=100) * 0.123456789
    with pytest.raises(OverflowError, match="slot overflow in multiply by a scalar"):
        big * 0.3  # round(0.3 * 2^32) is odd: 32 more fractional bits, ~101 bits in all


def test_rescale_overflow_is_caught_before_the_add(keys):
    pk, sk = keys
    a = pk.encrypt_array(np.array([3.0, -4.0]), pack=True, slot_bits=48)  # scale 32
    b = enc_ints(pk, [1, 2], 48)  # scale 0
    assert np.allclose(sk.decrypt_array(a + b), [4.0, -2.0])
    big = enc_ints(pk, [2**20, 0], 48)
    with pytest.raises(OverflowError, match="slot overflow"):
        a + big  # big aligned to scale 32 needs 52 bits


# ---- bad input ----------------------------------------------------------------------------------------------
def test_mixing_keys_layouts_and_kinds_raises(keys, other_keys):
    pk, sk = keys
    pk2, sk2 = other_keys
    a = enc_ints(pk, [1, 2, 3], 64)
    with pytest.raises(ValueError, match="different Paillier public keys"):
        a + enc_ints(pk2, [1, 2, 3], 64)
    with pytest.raises(ValueError, match="different Paillier public keys"):
        sk2.decrypt_array(a)
    with pytest.raises(ValueError, match="layouts differ"):
        a + enc_ints(pk, [1, 2, 3], 32)
    with pytest.raises(ValueError, match="length mismatch"):
        a + enc_ints(pk, [1, 2], 64)
    with pytest.raises(ValueError, match="length mismatch"):
        a.add_plain(np.arange(4))
    with pytest.raises(TypeError, match="packed and unpacked"):
        a + pk.encrypt_array(np.arange(3))
    with pytest.raises(TypeError, match="pack=False"):
        a.mul_plain(np.arange(3))
    with pytest.raises(TypeError, match="pack=False"):
        a * np.arange(3)
    with pytest.raises(TypeError, match="multiplied together"):
        a * a
    with pytest.raises(TypeError, match="slots"):
        a.sum()


def test_packed_serialization_round_trips_and_rejects_tampering(keys, other_keys):
    pk, sk = keys
    pk2, _ = other_keys
    a = pk.encrypt_array(np.array([1.5, -2.5, 3.25, -4.0, 5.0, 0.0, -1e-3, 7.0]), pack=True, slot_bits=64)
    data = a.to_bytes()
    for b in (PaillierPackedArray.from_bytes(pk, data), PaillierPackedArray(pk, data), pickle.loads(pickle.dumps(a))):
        assert (len(b), b.slots, b.scale_bits, b.bound) == (len(a), a.slots, a.scale_bits, a.bound)
        assert np.array_equal(sk.decrypt_array(b), sk.decrypt_array(a))
    with pytest.raises(ValueError, match="different public key"):
        PaillierPackedArray.from_bytes(pk2, data)
    corrupt = bytearray(data)
    corrupt[40] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        PaillierPackedArray.from_bytes(pk, bytes(corrupt))
    with pytest.raises(ValueError, match="magic"):
        PaillierPackedArray.from_bytes(pk, pk.encrypt_array(np.ones(2)).to_bytes())
    # a ciphertext of another key spliced in (same length, valid group element, fixed checksum) is
    # refused at decryption instead of giving numbers
    foreign = pk2.encrypt_array(np.array([1.0] * 8), pack=True, slot_bits=64).values()[0] % pk.n_squared
    body = bytearray(data[:-8])
    body[-pk.ciphertext_bytes:] = foreign.to_bytes(pk.ciphertext_bytes, "big")
    with pytest.raises((OverflowError, ValueError)):
        sk.decrypt_array(PaillierPackedArray.from_bytes(pk, bytes(body) + fnv1a(bytes(body)).to_bytes(8, "little")))


def test_decryption_checks_slots_against_the_bound(keys):
    """A ciphertext whose slots exceed the recorded bound (here: a forged, too small bound) is refused."""
    pk, sk = keys
    a = enc_ints(pk, [5, -7, 9], 64)
    data = bytearray(a.to_bytes())
    # header: magic 4 | version 1 | fingerprint 8 | length 8 | slot_bits 4 | scale 4 | bound blob (len 4 + 1 byte)
    assert data[29:33] == (1).to_bytes(4, "little") and data[33] == 9
    data[33] = 3
    body = bytes(data[:-8])
    forged = PaillierPackedArray.from_bytes(pk, body + fnv1a(body).to_bytes(8, "little"))
    assert forged.bound == 3
    with pytest.raises(OverflowError, match="bound"):
        sk.decrypt_array(forged)


# ---- CRT encryption ----------------------------------------------------------------------------------------
@HYP
@given(m=st.integers(-(2**200), 2**200), x=st.floats(-1e6, 1e6, allow_nan=False))
def test_crt_encryption_decrypts_like_public_key_encryption(keys, m, x):
    pk, sk = keys
    c = sk.encrypt(m)
    assert c.public_key == pk and sk.decrypt2int(c) == m
    assert sk.decrypt2int(c + pk.encrypt(m)) == 2 * m  # CRT and public-key ciphertexts mix
    assert abs(sk.decrypt2float(sk.encrypt(x)) - x) <= 2**-32


def test_crt_encryption_arrays_and_values(keys, other_keys):
    pk, sk = keys
    x = np.random.default_rng(0).normal(size=50) * 100
    c = sk.encrypt_array(x)
    assert isinstance(c, PaillierCipherArray) and c.scale_bits == 32
    assert np.allclose(sk.decrypt_array(c), x, atol=2**-32)
    assert np.allclose(sk.decrypt_array(c.add(pk.encrypt_array(x))), 2 * x, atol=1e-9)
    ints = np.arange(-25, 25)
    assert sk.decrypt_array_int(sk.encrypt_array(ints)) == list(range(-25, 25))
    # a CRT ciphertext is a valid group element of the public key (the server can check and use it)
    v = c.values()[0]
    assert 0 < v < pk.n_squared
    t = PaillierTensor.encrypt(sk, torch.tensor([[1.0, -2.0], [3.5, 0.25]]))
    assert torch.allclose(t.decrypt(sk, dtype=torch.float64), torch.tensor([[1.0, -2.0], [3.5, 0.25]], dtype=torch.float64))
    # and randomised: two encryptions of the same value differ
    assert sk.encrypt(5).value != sk.encrypt(5).value
    with pytest.raises(ValueError, match="NaN"):
        sk.encrypt(float("nan"))
    with pytest.raises(ValueError, match="out of range"):
        sk.encrypt(pk.n)


# ---- batched inversion (negation, negative scalars) against Python's pow --------------------------------------
@HYP
@given(xs=st.lists(st.integers(-(2**60), 2**60), min_size=1, max_size=25),
       ks=st.lists(st.integers(-(2**40), 2**40), min_size=25, max_size=25), k=st.integers(-(2**40), 2**40))
def test_unpacked_negation_and_negative_factors(keys, xs, ks, k):
    pk, sk = keys
    c = pk.encrypt_array(np.array(xs, dtype=object))
    assert sk.decrypt_array_int(c.negate()) == [-x for x in xs]
    assert sk.decrypt_array_int(c.mul_scalar(k)) == [x * k for x in xs]
    kk = ks[: len(xs)]
    assert sk.decrypt_array_int(c.mul_plain(np.array(kk, dtype=object))) == [x * y for x, y in zip(xs, kk)]
    # the negated ciphertext is the modular inverse Python computes
    assert c.negate().values()[0] == pow(c.values()[0], -1, pk.n_squared)


# ---- PaillierTensor(packed=True) ------------------------------------------------------------------------------
def test_packed_paillier_tensor(keys):
    pk, sk = keys
    g = torch.randn(4, 5, dtype=torch.float64)
    h = torch.randn(4, 5, dtype=torch.float64)
    t = PaillierTensor.encrypt(pk, g, packed=True, slot_bits=100)
    u = PaillierTensor.encrypt(sk, h, packed=True, slot_bits=100)  # CRT, same layout
    assert t.packed and t.slots == 5 and t.num_ciphertexts == 4 and t.shape == g.shape
    assert "packed 5 per ciphertext" in repr(t)
    assert torch.allclose(t.decrypt(sk, dtype=torch.float64), g, atol=1e-9)
    assert torch.allclose((t + u).decrypt(sk, dtype=torch.float64), g + h, atol=1e-9)
    assert torch.allclose((t - u).decrypt(sk, dtype=torch.float64), g - h, atol=1e-9)
    assert torch.allclose((t * 0.25 + h).decrypt(sk, dtype=torch.float64), g * 0.25 + h, atol=1e-9)
    assert torch.allclose((h - t).decrypt(sk, dtype=torch.float64), h - g, atol=1e-9)
    assert torch.allclose((-t / 4).decrypt(sk, dtype=torch.float64), -g / 4, atol=1e-9)
    assert torch.allclose(torch.add(t, u).decrypt(sk, dtype=torch.float64), g + h, atol=1e-9)
    assert torch.allclose(t.reshape(20).decrypt(sk, dtype=torch.float64), g.reshape(20), atol=1e-9)
    assert t.ciphertexts().shape == (4,)
    assert torch.allclose(pickle.loads(pickle.dumps(t)).decrypt(sk, dtype=torch.float64), g, atol=1e-9)
    with pytest.raises(TypeError, match="packed=False"):
        t * h
    with pytest.raises(TypeError, match="packed=False"):
        t[0]
    with pytest.raises(TypeError, match="packed=False"):
        t.sum()
    with pytest.raises(TypeError, match="packed=False"):
        t + PaillierTensor.encrypt(pk, g[0], packed=True, slot_bits=100)  # broadcasting
    with pytest.raises(TypeError, match="packed and unpacked"):
        t + PaillierTensor.encrypt(pk, g)
    with pytest.raises(TypeError, match="packed"):
        PaillierTensor.encrypt(pk, g, packed="yes")
    # the paper API is unchanged
    plain = PaillierTensor.encrypt(pk, g)
    assert not plain.packed and plain.slots == 1 and plain.ciphertexts().shape == (4, 5)


def test_packed_subtraction_operand_kinds(keys):
    pk, sk = keys
    c = enc_ints(pk, [1, 2, 3], 64)
    assert dec_ints(sk, c - [1, 2, 3]) == [0, 0, 0]
    assert dec_ints(sk, c - np.array([True, False, True])) == [0, 2, 2]
    assert dec_ints(sk, c - np.array([2**40, -5, 0], dtype=object)) == [1 - 2**40, 7, 3]
    assert dec_ints(sk, 10 - c) == [9, 8, 7] and dec_ints(sk, c - 1) == [0, 1, 2]
    assert np.allclose(sk.decrypt_array(c - 0.25), [0.75, 1.75, 2.75])
    with pytest.raises(TypeError, match="ints or floats"):
        c - "x"
    with pytest.raises(TypeError, match="ints or floats"):
        c + "x"
