"""Paillier keys and ciphertexts: thin Python front of the C++ core (``aijack_lab._core.paillier``).

Key-size convention: ``PaillierKeyGenerator(bits)`` makes a modulus n = p*q of exactly ``bits``
bits (the usual convention; the original AIJack made *primes* of ``bits`` bits, i.e. an n twice
as long). 2048 is the default; 512 and 1024 are accepted for teaching with a warning.

Plaintexts: Python ints (and numpy integers) of any sign with ``|m| <= pk.max_int`` (about n/3)
are encrypted exactly; floats are encoded in fixed point as ``round(x * 2**precision)`` with
``precision = 32`` fractional bits by default (absolute error <= 2**-33 per encoding). Sums align
scales exactly; multiplying by a float scalar adds that scalar's fractional bits (at most
``precision``, trailing zero bits dropped), so ``ct * 0.5`` costs one bit. NaN/inf and
out-of-range values raise ``ValueError``; a decryption that falls outside the plaintext range
raises ``OverflowError``; ciphertexts of different keys never mix (``ValueError``).

Packing (``pk.encrypt_array(x, pack=True, slot_bits=128)``, a ``PaillierPackedArray``): several
values per ciphertext in signed ``slot_bits``-bit slots (BatchCrypt / FATE style), i.e.
``(bits - 3) // slot_bits`` values per ciphertext (15 at 2048 bits with 128-bit slots). Sums,
plaintext sums, products by one int/float scalar and negation act slot-wise; each array tracks a
proven bound on every slot and an op that could overflow a slot raises ``OverflowError`` before it
runs. Elementwise ``ct * vector`` is impossible on packed data and raises ``TypeError``.

CRT encryption: a holder of the secret key may call ``sk.encrypt(x)`` / ``sk.encrypt_array(x,
pack=...)``: the same ciphertexts as the public-key path, with the randomness power computed mod
p^2 and q^2 from half-size tables.
"""
import numbers
import warnings
from typing import Optional, Tuple

from ... import core

_P = core().paillier

PaillierPublicKey = _P.PaillierPublicKey
PaillierSecretKey = _P.PaillierSecretKey
PaillierCipherText = _P.PaillierCipherText
PaillierCipherArray = _P.PaillierCipherArray
PaillierPackedArray = _P.PaillierPackedArray
DEFAULT_PRECISION: int = _P.DEFAULT_PRECISION
DEFAULT_SLOT_BITS: int = _P.DEFAULT_SLOT_BITS
MIN_KEY_BITS = 512
MAX_KEY_BITS = 4096


class PaillierKeySizeWarning(UserWarning):
    """A key shorter than 2048 bits: fine for teaching, not for protecting data."""


def get_num_threads() -> int:
    """Worker threads of the core's batch operations (default: all hardware threads)."""
    return _P.num_threads()


def set_num_threads(n: int) -> None:
    """Set the core's worker threads; ``n <= 0`` restores the default."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _P.set_num_threads(int(n))


class PaillierKeyGenerator:
    """``PaillierKeyGenerator(bits).generate_keypair() -> (pk, sk)``.

    Args:
        bits: size of the modulus n in bits (even, 512..4096; default 2048). Keys under 2048 bits
            emit a :class:`PaillierKeySizeWarning`.
        seed: ``None`` (default) draws the primes from the OS CSPRNG (``getrandom``). An int makes
            key generation deterministic, for reproducible teaching demos only; encryption
            randomness always comes from the OS.

    Primes are probable primes of ``bits/2`` bits with their top two bits set (so n has exactly
    ``bits`` bits), each passing GMP's Baillie-PSW test and 40 further Miller-Rabin rounds.
    """

    def __init__(self, bits: int = 2048, seed: Optional[int] = None):
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
            raise TypeError(f"bits must be an int, got {type(bits).__name__}")
        bits = int(bits)
        if bits < MIN_KEY_BITS or bits > MAX_KEY_BITS:
            raise ValueError(f"bits must be in [{MIN_KEY_BITS}, {MAX_KEY_BITS}], got {bits}")
        if bits % 2:
            raise ValueError(f"bits must be even (n is the product of two primes of bits/2 bits), got {bits}")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
            if not 0 <= int(seed) < 2**62:
                raise ValueError(f"seed must be in [0, 2**62), got {seed}")
            seed = int(seed)
        if bits < 2048:
            warnings.warn(
                f"a {bits}-bit Paillier key is for teaching only; use 2048 bits or more to protect data",
                PaillierKeySizeWarning,
                stacklevel=2,
            )
        self.bits = bits
        self.seed = seed

    def generate_keypair(self) -> Tuple["PaillierPublicKey", "PaillierSecretKey"]:
        """A fresh ``(public_key, secret_key)`` pair."""
        return _P.generate_keypair(self.bits, self.seed)

    def __repr__(self) -> str:
        return f"PaillierKeyGenerator(bits={self.bits}{'' if self.seed is None else f', seed={self.seed}'})"
