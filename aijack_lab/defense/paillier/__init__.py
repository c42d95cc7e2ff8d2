"""Paillier homomorphic encryption (Paillier, EUROCRYPT 1999; paper Code 8).

``PaillierKeyGenerator(bits).generate_keypair()`` gives ``(pk, sk)``; ``pk.encrypt(x)`` encrypts an
int exactly or a float in fixed point; ciphertexts add to ciphertexts and plaintexts and multiply
by plaintext scalars; ``PaillierTensor`` holds a tensor of ciphertexts; and
``PaillierGradientClientManager(pk, sk).attach(FedAVGClient)`` makes FL clients upload encrypted
gradients that the server aggregates without a key. The arithmetic runs in the C++ core
(``aijack_lab._core.paillier``, GMP, threaded batches that release the GIL).

Packing: ``pk.encrypt_array(x, pack=True)`` / ``PaillierTensor.encrypt(pk, x, packed=True)`` /
``PaillierGradientClientManager(pk, sk, packing=True)`` put ``pk.packed_slots(slot_bits)`` values in
each ciphertext (15 at 2048 bits with 128-bit slots), with tracked slot bounds (``OverflowError``
instead of a wrapped slot). CRT encryption for the holder of the secret key: ``sk.encrypt(x)``,
``sk.encrypt_array(x)``, ``PaillierTensor.encrypt(sk, x)``.
"""
from .keys import (
    DEFAULT_PRECISION,
    DEFAULT_SLOT_BITS,
    PaillierCipherArray,
    PaillierCipherText,
    PaillierKeyGenerator,
    PaillierKeySizeWarning,
    PaillierPackedArray,
    PaillierPublicKey,
    PaillierSecretKey,
    get_num_threads,
    set_num_threads,
)
from .tensor import PaillierTensor
from .fedavg import PaillierGradientClientManager

__all__ = [
    "PaillierKeyGenerator",
    "PaillierPublicKey",
    "PaillierSecretKey",
    "PaillierCipherText",
    "PaillierCipherArray",
    "PaillierPackedArray",
    "PaillierTensor",
    "PaillierGradientClientManager",
    "PaillierKeySizeWarning",
    "DEFAULT_PRECISION",
    "DEFAULT_SLOT_BITS",
    "get_num_threads",
    "set_num_threads",
]
