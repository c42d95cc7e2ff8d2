"""``PaillierGradientClientManager``: FL clients that upload Paillier-encrypted gradients (paper Code 8).

Each client encrypts its pseudo-gradient with the shared public key before upload; the server
aggregates ciphertexts with its usual weighted sum (``FedAVGServer.aggregate`` uses only ``+``
and scalar ``*``) without any key and sends the encrypted aggregate back; every client decrypts
it with the shared secret key and applies it to its copy of the global model. The result equals
plaintext FedAVG up to the fixed-point encoding (2**-33 per value).

``packing=True`` uploads packed tensors (``PaillierTensor.encrypt(..., packed=True)``): with the
default 128-bit slots a 2048-bit key carries 15 values per ciphertext, so encryption, upload size,
the server's weighted sum and decryption all shrink about 15-fold; the slot bounds are tracked and
an aggregate that could overflow a slot raises ``OverflowError`` instead of a wrong model.
Clients hold the secret key, so they encrypt with the CRT (``sk.encrypt_array``): the same
ciphertexts as public-key encryption, computed mod p^2 and q^2.
"""
from typing import List, Sequence

import torch

from ...manager import BaseManager
from .keys import DEFAULT_PRECISION, DEFAULT_SLOT_BITS, PaillierPublicKey, PaillierSecretKey
from .tensor import PaillierTensor


class PaillierGradientClientManager(BaseManager):
    """``PaillierGradientClientManager(pk, sk).attach(FedAVGClient)``.

    Args:
        pk, sk: the key pair shared by the clients (the server never gets ``sk``).
        precision: fractional bits of the fixed-point encoding of gradients (default 32).
        packing: pack several gradient values per ciphertext (default False: one per ciphertext).
        slot_bits: slot width when packing (default 128; must hold the gradient's magnitude, its
            ``precision`` bits, the aggregation weights' 32 bits and the number of clients).

    The attached client always applies the global update itself (``server_side_update=False``),
    because the server cannot read encrypted updates; it uploads encrypted gradients only
    (run ``FedAVGAPI`` with ``use_gradients=True``, the default).
    """

    def __init__(self, pk: PaillierPublicKey, sk: PaillierSecretKey, precision: int = DEFAULT_PRECISION,
                 packing: bool = False, slot_bits: int = DEFAULT_SLOT_BITS):
        if not isinstance(pk, PaillierPublicKey):
            raise TypeError(f"pk must be a PaillierPublicKey, got {type(pk).__name__}")
        if not isinstance(sk, PaillierSecretKey):
            raise TypeError(f"sk must be a PaillierSecretKey, got {type(sk).__name__}")
        if sk.public_key != pk:
            raise ValueError("sk does not belong to pk")
        if isinstance(precision, bool) or not isinstance(precision, int) or not 0 <= precision <= 256:
            raise ValueError(f"precision must be an int in [0, 256], got {precision!r}")
        if not isinstance(packing, bool):
            raise TypeError(f"packing must be a bool, got {type(packing).__name__}")
        if packing:
            if isinstance(slot_bits, bool) or not isinstance(slot_bits, int):
                raise TypeError(f"slot_bits must be an int, got {type(slot_bits).__name__}")
            try:
                pk.packed_slots(slot_bits)
            except ValueError as exc:
                raise ValueError(f"slot_bits: {exc}") from None
        super().__init__(pk, sk, precision=precision, packing=packing, slot_bits=slot_bits)
        self.pk, self.sk, self.precision = pk, sk, precision
        self.packing, self.slot_bits = packing, slot_bits

    def extend(self, cls: type) -> type:
        manager = self

        class PaillierGradientClient(cls):
            def __init__(self, *args, **kwargs):
                kwargs["server_side_update"] = False
                super().__init__(*args, **kwargs)
                self.public_key = manager.pk
                self.last_plain_gradients: List[torch.Tensor] = []

            def upload_gradients(self) -> List[PaillierTensor]:
                plain = super().upload_gradients()
                self.last_plain_gradients = [g.detach().clone() for g in plain]
                # clients hold sk: CRT encryption (the same ciphertexts as pk's, ~1.35x faster)
                return [PaillierTensor.encrypt(manager.sk, g, manager.precision, packed=manager.packing,
                                               slot_bits=manager.slot_bits) for g in plain]

            def upload_parameters(self):
                raise ValueError(
                    "a PaillierGradientClientManager client uploads encrypted gradients only; "
                    "run FedAVGAPI with use_gradients=True"
                )

            def download(self, payload) -> None:
                if isinstance(payload, (list, tuple)) and any(isinstance(g, PaillierTensor) for g in payload):
                    payload = [self._decrypt(g) for g in payload]
                super().download(payload)

            def _decrypt(self, g):
                if not isinstance(g, PaillierTensor):
                    return g
                return g.decrypt(manager.sk, dtype=torch.float64)

        return PaillierGradientClient
