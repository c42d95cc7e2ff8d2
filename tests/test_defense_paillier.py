"""Paillier: the C++ core against Python's own big integers, PaillierTensor against torch, encrypted
FedAVG against plaintext FedAVG, and every kind of bad input."""
import math
import pickle
import random
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aijack_lab.defense.paillier import (
    PaillierCipherArray,
    PaillierCipherText,
    PaillierKeyGenerator,
    PaillierKeySizeWarning,
    PaillierPublicKey,
    PaillierSecretKey,
    PaillierTensor,
    get_num_threads,
    set_num_threads,
)

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def keypair(bits=512, seed=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        return PaillierKeyGenerator(bits, seed=seed).generate_keypair()


@pytest.fixture(scope="module")
def keys():
    return keypair(512, seed=11)


@pytest.fixture(scope="module")
def other_keys():
    return keypair(512, seed=12)


def is_probable_prime(p: int) -> bool:
    if p < 2 or p % 2 == 0:
        return False
    d, s = p - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(p)
    for _ in range(20):
        x = pow(rng.randrange(2, p - 1), d, p)
        if x in (1, p - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, p)
            if x == p - 1:
                break
        else:
            return False
    return True


# ---- keys ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [512, 768, 1024])
def test_keygen_modulus_has_exactly_the_requested_bits_and_prime_factors(bits):
    pk, sk = keypair(bits)
    assert pk.n.bit_length() == bits
    assert sk.p * sk.q == pk.n and sk.p != sk.q
    assert sk.p.bit_length() == sk.q.bit_length() == bits // 2
    assert is_probable_prime(sk.p) and is_probable_prime(sk.q)
    assert pk.g == pk.n + 1 and pk.max_int == pk.n // 3 - 1


def test_keygen_is_random_unless_seeded():
    assert keypair(512)[0].n != keypair(512)[0].n
    assert keypair(512, seed=5)[0].n == keypair(512, seed=5)[0].n
    assert keypair(512, seed=5)[0].n != keypair(512, seed=6)[0].n


def test_key_size_warning_and_bad_key_sizes():
    with pytest.warns(PaillierKeySizeWarning):
        PaillierKeyGenerator(512)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PaillierKeyGenerator(2048)  # no warning, no work done in the constructor
    for bits in (256, 510, 4098, 8192):
        with pytest.raises(ValueError, match="bits"):
            PaillierKeyGenerator(bits)
    with pytest.raises(ValueError, match="even"):
        PaillierKeyGenerator(1025)
    for bad in (512.0, "512", True, None):
        with pytest.raises(TypeError, match="bits"):
            PaillierKeyGenerator(bad)
    with pytest.raises(ValueError, match="seed"):
        PaillierKeyGenerator(2048, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        PaillierKeyGenerator(2048, seed=1.5)


# ---- against Python's big integers ------------------------------------------------------------------
def test_textbook_reference_decrypts_core_ciphertexts_and_core_decrypts_reference(keys):
    pk, sk = keys
    n, n2 = pk.n, pk.n ** 2
    lam = math.lcm(sk.p - 1, sk.q - 1)
    mu = pow((pow(n + 1, lam, n2) - 1) // n, -1, n)
    rng = random.Random(0)
    for m in [0, 1, 13, -13, pk.max_int, -pk.max_int, rng.randrange(pk.max_int)]:
        c = pk.encrypt(m).value
        assert 0 < c < n2 and math.gcd(c, n) == 1
        residue = (pow(c, lam, n2) - 1) // n * mu % n
        assert residue == m % n
        r = rng.randrange(1, n)
        reference = pow(n + 1, m % n, n2) * pow(r, n, n2) % n2
        assert sk.decrypt2int(PaillierCipherText(pk, reference)) == m


@HYP
@given(a=st.integers(), b=st.integers(), k=st.integers(min_value=-(2**64), max_value=2**64))
def test_int_round_trip_sums_and_scalar_products(keys, a, b, k):
    pk, sk = keys
    bound = 2**200  # keeps a*k + b inside the plaintext range of a 512-bit key
    a, b = a % bound - bound // 2, b % bound - bound // 2
    ca, cb = pk.encrypt(a), pk.encrypt(b)
    assert sk.decrypt2int(ca) == a
    assert sk.decrypt2int(ca + cb) == a + b
    assert sk.decrypt2int(ca - cb) == a - b
    assert sk.decrypt2int(ca + b) == a + b
    assert sk.decrypt2int(b - ca) == b - a
    assert sk.decrypt2int(ca * k) == a * k
    assert sk.decrypt2int(k * ca + cb) == a * k + b
    assert sk.decrypt2int(-ca) == -a


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@HYP
@given(x=finite, y=finite, s=st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))
def test_float_round_trip_sums_and_scalar_products(keys, x, y, s):
    pk, sk = keys
    eps = 2.0**-33
    cx, cy = pk.encrypt(x), pk.encrypt(y)
    assert abs(sk.decrypt2float(cx) - x) <= eps + 1e-15 * abs(x)
    assert abs(sk.decrypt2float(cx + cy) - (x + y)) <= 2 * eps + 1e-15 * (abs(x) + abs(y))
    assert abs(sk.decrypt2float(cx - y) - (x - y)) <= 2 * eps + 1e-15 * (abs(x) + abs(y))
    # x*s: encoding errors of x (<= eps) and of s (<= eps) propagate
    expected = x * s
    err = eps * abs(s) + eps * abs(x) + eps * eps + 1e-15 * abs(expected)
    assert abs(sk.decrypt2float(cx * s) - expected) <= err
    assert abs(sk.decrypt2float(s * cx + cy) - (expected + y)) <= err + eps + 1e-15 * abs(y)


def test_paper_listing_numbers(keys):
    pk, sk = keys
    ct_1 = pk.encrypt(13)
    assert sk.decrypt2int(ct_1) == 13
    assert sk.decrypt2int(ct_1 * 2) == 26
    assert abs(sk.decrypt2float(ct_1 + 5.6) - 18.6) < 1e-6
    assert sk.decrypt2int(ct_1 + pk.encrypt(18)) == 31
    assert abs(sk.decrypt2float(ct_1 / 4) - 3.25) < 1e-9
    assert abs(sk.decrypt2float(pk.encrypt(-2.5) * -0.5) - 1.25) < 1e-9


def test_encryption_is_randomised_and_ciphertexts_hide_the_plaintext(keys):
    pk, sk = keys
    c1, c2 = pk.encrypt(7), pk.encrypt(7)
    assert c1.value != c2.value
    assert sk.decrypt2int(c1) == sk.decrypt2int(c2) == 7
    arr = pk.encrypt_array(np.zeros(64))
    assert len(set(arr.values())) == 64


def test_batch_ops_match_python_reference_and_thread_count_does_not_matter(keys):
    pk, sk = keys
    rng = np.random.default_rng(0)
    ints = rng.integers(-(10**12), 10**12, size=300)
    k = rng.integers(-1000, 1000, size=300)
    arr = pk.encrypt_array(ints)
    assert arr.scale_bits == 0 and len(arr) == 300
    before = get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            set_num_threads(threads)
            out = arr.mul_plain(k).add(arr).add_plain(ints)
            results.append(sk.decrypt_array_int(out))
            assert sk.decrypt2int(arr.sum()) == int(ints.sum())
    finally:
        set_num_threads(0)
    expected = [int(a) * int(b) + 2 * int(a) for a, b in zip(ints, k)]
    assert results[0] == results[1] == results[2] == expected
    assert get_num_threads() == before


def test_batch_calls_release_the_gil():
    pk, sk = keypair(1024, seed=13)
    arr = pk.encrypt_array(np.arange(1500, dtype=np.float64))
    stamps, duration = [], []

    def work():
        t0 = time.perf_counter()
        sk.decrypt_array(arr)
        duration.append(time.perf_counter() - t0)

    worker = threading.Thread(target=work)
    set_num_threads(1)
    try:
        worker.start()
        while worker.is_alive():
            stamps.append(time.perf_counter())
        worker.join()
    finally:
        set_num_threads(0)
    gaps = np.diff(stamps) if len(stamps) > 1 else np.array([duration[0]])
    assert duration[0] > 0.02
    assert gaps.max() < 0.5 * duration[0]  # the main thread kept running during the C++ call


# ---- bad input ----------------------------------------------------------------------------------
def test_out_of_range_nan_inf_and_wrong_types_raise(keys):
    pk, sk = keys
    for bad in (pk.max_int + 1, -pk.max_int - 1, pk.n):
        with pytest.raises(ValueError, match="out of range"):
            pk.encrypt(bad)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="NaN or infinity"):
            pk.encrypt(bad)
        with pytest.raises(ValueError, match="NaN or infinity"):
            pk.encrypt_array(np.array([1.0, bad]))
        with pytest.raises(ValueError):
            pk.encrypt(1) * bad
    for bad in ("13", b"1", None, [1], 1 + 2j):
        with pytest.raises(TypeError):
            pk.encrypt(bad)
    with pytest.raises(TypeError):
        pk.encrypt(1) + "a"
    with pytest.raises(TypeError, match="cannot be multiplied"):
        pk.encrypt(1) * pk.encrypt(2)
    with pytest.raises(ValueError, match="precision"):
        pk.encrypt(1.5, precision=-1)
    with pytest.raises(TypeError):
        pk.encrypt_array(np.array(["a", "b"]))


def test_overflow_on_decryption_is_reported(keys):
    pk, sk = keys
    big = pk.encrypt(pk.max_int)
    with pytest.raises(OverflowError, match="outside the plaintext range"):
        sk.decrypt2int(big + big)


def test_keys_never_mix(keys, other_keys):
    pk, sk = keys
    pk2, sk2 = other_keys
    ct = pk.encrypt(5)
    with pytest.raises(ValueError, match="different public key"):
        sk2.decrypt2int(ct)
    with pytest.raises(ValueError, match="different Paillier public keys"):
        sk2.decrypt_array(pk.encrypt_array(np.ones(3)))
    with pytest.raises(ValueError, match="different Paillier public keys"):
        ct + pk2.encrypt(1)
    with pytest.raises(ValueError, match="different Paillier public keys"):
        pk.encrypt_array(np.ones(3)).add(pk2.encrypt_array(np.ones(3)))
    with pytest.raises(ValueError, match="different public key"):
        PaillierCipherText.from_bytes(pk2, ct.to_bytes())
    with pytest.raises(ValueError, match="p and q"):
        PaillierSecretKey(pk, sk2.p, sk2.q)


def test_garbage_and_tampered_ciphertexts_are_rejected(keys):
    pk, sk = keys
    n2 = pk.n ** 2
    for bad in (0, n2, n2 + 5, -3, sk.p * 7):
        with pytest.raises(ValueError, match="malformed ciphertext"):
            PaillierCipherText(pk, bad)
    with pytest.raises(TypeError):
        PaillierCipherText(pk, 1.5)
    data = bytearray(pk.encrypt(42).to_bytes())
    for pos in (0, 7, 20, len(data) - 12, len(data) - 1):
        tampered = bytearray(data)
        tampered[pos] ^= 0x40
        with pytest.raises(ValueError, match="cannot parse"):
            PaillierCipherText.from_bytes(pk, bytes(tampered))
    for cut in (0, 5, 12, len(data) - 1):
        with pytest.raises(ValueError, match="cannot parse"):
            PaillierCipherText.from_bytes(pk, bytes(data[:cut]))
    with pytest.raises(ValueError, match="cannot parse"):
        PaillierPublicKey.from_bytes(bytes(data))
    arr_bytes = bytearray(pk.encrypt_array(np.ones(4)).to_bytes())
    arr_bytes[30] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        PaillierCipherArray.from_bytes(pk, bytes(arr_bytes))
    key_bytes = bytearray(sk.to_bytes())
    key_bytes[40] ^= 1
    with pytest.raises(ValueError, match="cannot parse"):
        PaillierSecretKey.from_bytes(bytes(key_bytes))
    with pytest.raises(ValueError, match="cannot parse"):
        PaillierCipherArray(pk, bytes(arr_bytes))  # what unpickling a corrupted array calls



def test_serialization_and_pickle_round_trip(keys):
    pk, sk = keys
    pk_b = PaillierPublicKey.from_bytes(pk.to_bytes())
    sk_b = PaillierSecretKey.from_bytes(sk.to_bytes())
    assert pk_b == pk and pk_b.hs == pk.hs and sk_b.p == sk.p
    ct = pk.encrypt(-123456789)
    assert sk_b.decrypt2int(PaillierCipherText.from_bytes(pk_b, ct.to_bytes())) == -123456789
    x = np.linspace(-3, 3, 17)
    arr = pk.encrypt_array(x)
    t = PaillierTensor.encrypt(pk, torch.arange(6.0).reshape(2, 3))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        pk2, sk2, ct2, arr2, t2 = pickle.loads(pickle.dumps((pk, sk, ct, arr, t), protocol=protocol))
        assert pk2 == pk and sk2.decrypt2int(ct2) == -123456789
        assert np.abs(sk2.decrypt_array(arr2) - x).max() < 1e-9
        assert torch.equal(t2.decrypt(sk2), torch.arange(6.0).reshape(2, 3))
    assert len(ct.to_bytes()) == pk.ciphertext_bytes + 25


# ---- PaillierTensor ---------------------------------------------------------------------------------
def test_paillier_tensor_matches_torch(keys):
    pk, sk = keys
    g = torch.Generator().manual_seed(0)
    x, y, z = torch.randn(3, 4, generator=g), torch.randn(4, generator=g), torch.randn(3, 4, generator=g)
    px, pz = PaillierTensor.encrypt(pk, x), PaillierTensor.encrypt(pk, z)
    assert px.shape == torch.Size([3, 4]) and px.numel() == 12 and px.nbytes == 12 * pk.ciphertext_bytes
    checks = {
        "px+pz": (px + pz, x + z),
        "px+y": (px + y, x + y),
        "y+px": (y + px, x + y),
        "px-y": (px - y, x - y),
        "y-px": (y - px, y - x),
        "px-pz": (px - pz, x - z),
        "px*y": (px * y, x * y),
        "y*px": (y * px, x * y),
        "px*0.3+2": (px * 0.3 + 2, x * 0.3 + 2),
        "3-px": (3 - px, 3 - x),
        "px/4": (px / 4, x / 4),
        "-px": (-px, -x),
        "torch.add": (torch.add(x, px), 2 * x),
        "torch.sub": (torch.sub(z, px), z - x),
        "torch.mul": (torch.mul(px, z), x * z),
        "torch.sum0": (torch.sum(px, 0), x.sum(0)),
        "sum1": (px.sum(1), x.sum(1)),
        "sum": (px.sum(), x.sum()),
        "index": (px[1:, ::2], x[1:, ::2]),
        "reshape": (px.reshape(2, 6) + x.reshape(2, 6), 2 * x.reshape(2, 6)),
        "flatten": (torch.flatten(px), x.flatten()),
        "ndarray+px": (y.numpy() + px, x + y),
        "ndarray*px": (z.numpy() * px, x * z),
    }
    for name, (enc, ref) in checks.items():
        got = enc.decrypt(sk, dtype=torch.float64)
        assert got.shape == ref.shape, name
        assert torch.allclose(got, ref.double(), atol=1e-6), name


def test_paillier_tensor_from_ciphertexts_and_int_decrypt(keys):
    pk, sk = keys
    t = PaillierTensor([[pk.encrypt(1), pk.encrypt(-2)], [pk.encrypt(3), pk.encrypt(2**100)]])
    assert t.shape == (2, 2)
    assert t.decrypt2int(sk).tolist() == [[1, -2], [3, 2**100]]
    mixed = PaillierTensor([pk.encrypt(1), pk.encrypt(0.5)])  # scales align exactly
    assert mixed.decrypt(sk, dtype=torch.float64).tolist() == [1.0, 0.5]


def test_paillier_tensor_bad_input(keys, other_keys):
    pk, sk = keys
    px = PaillierTensor.encrypt(pk, torch.ones(2, 3))
    with pytest.raises(TypeError, match="cannot be multiplied"):
        px * px
    with pytest.raises(ValueError):
        px + torch.ones(4)
    with pytest.raises(TypeError, match="public_key"):
        PaillierTensor.encrypt("pk", torch.ones(2))
    with pytest.raises(TypeError, match="sk"):
        px.decrypt(pk)
    with pytest.raises(ValueError, match="different Paillier public keys"):
        px.decrypt(other_keys[1])
    with pytest.raises(ValueError, match="different Paillier public keys"):
        px + PaillierTensor.encrypt(other_keys[0], torch.ones(2, 3))
    with pytest.raises(TypeError, match="PaillierCipherText"):
        PaillierTensor([1, 2])
    with pytest.raises(ValueError, match="NaN"):
        PaillierTensor.encrypt(pk, torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="zero"):
        px / 0
    with pytest.raises(TypeError):
        torch.matmul(px, torch.ones(3))


def test_public_key_from_modulus_is_validated_and_interoperates(keys):
    pk, sk = keys
    same = PaillierPublicKey(pk.n)  # a fresh randomness base, same key
    assert same == pk and hash(same) == hash(pk)
    assert sk.decrypt2int(same.encrypt(-77)) == -77
    assert sk.decrypt2int(same.encrypt(5) + pk.encrypt(6)) == 11
    for bad in (pk.n + 1, 2**511 + 1 - 2**600, 3**100, -pk.n):
        with pytest.raises(ValueError, match="modulus"):
            PaillierPublicKey(bad)
    with pytest.raises(ValueError, match="hs"):
        PaillierPublicKey(pk.n, sk.p)
