"""SecureBoost (Cheng et al., 2021): the XGBoost trees of ``xgboost.py`` with the gradients crossing
only Paillier-encrypted.

    pk, sk = PaillierKeyGenerator(2048).generate_keypair()
    active = SecureBoostClient(x0, 2, [0, 1], 0)        # holds the labels
    passive = SecureBoostClient(x1, 2, [2, 3], 1)
    for p in (active, passive):
        p.set_publickey(pk)
    active.set_secretkey(sk)
    clf = SecureBoostClassifierAPI(2, boosting_rounds=20, depth=3).fit([active, passive], y)

Per tree the active party encrypts, for every row, its gradient and hessian (fixed point, several
slots of one plaintext) with the core's Paillier. Each passive party multiplies the ciphertexts of
the rows in each of its bins (encrypted sums, no key), packs several bins' sums into one plaintext
and sends them; the active party decrypts them in threaded batches, finds the best split over all
parties and tells the owner, which records the threshold in its own lookup table. Because the sums
are exact integers, the trees equal the plaintext ``XGBoostClassifierAPI`` trees on the same bins.
``timings`` splits the cost into encryption, aggregation (passive side, incl. packing), decryption
and tree building (plaintext histograms, gains, partitions).
"""
from typing import Sequence

from ...defense.paillier import PaillierPublicKey, PaillierSecretKey
from .xgboost import XGBoostClassifierAPI, XGBoostClient


class SecureBoostClient(XGBoostClient):
    """A SecureBoost party; ``set_publickey`` on every party, ``set_secretkey`` on the active one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.public_key = None
        self.secret_key = None

    def set_publickey(self, pk) -> None:
        if not isinstance(pk, PaillierPublicKey):
            raise TypeError(f"pk must be a PaillierPublicKey, got {type(pk).__name__}")
        self.public_key = pk

    def set_secretkey(self, sk) -> None:
        if not isinstance(sk, PaillierSecretKey):
            raise TypeError(f"sk must be a PaillierSecretKey, got {type(sk).__name__}")
        if self.public_key is not None and sk.public_key != self.public_key:
            raise ValueError("sk does not belong to this party's public key")
        self.secret_key = sk


class SecureBoostClassifierAPI(XGBoostClassifierAPI):
    """``XGBoostClassifierAPI`` over ``SecureBoostClient`` parties with Paillier-encrypted gradients."""

    _client_type = SecureBoostClient

    def fit(self, parties: Sequence[SecureBoostClient], y, progress=None) -> "SecureBoostClassifierAPI":
        parties, y = self._check_fit(parties, y)
        active = next(p for p in parties if p.party_id == self.active_party_id)
        if active.secret_key is None or active.public_key is None:
            raise ValueError("the active party needs set_publickey(pk) and set_secretkey(sk)")
        for p in parties:
            if p.public_key is None or p.public_key != active.public_key:
                raise ValueError(f"party {p.party_id} needs set_publickey with the active party's public key")
        for p in parties:
            p._party = p._new_party()
        booster = self._make_booster()
        booster.fit([p._party for p in parties], y, active.public_key, active.secret_key, progress=progress)
        self.parties, self._booster = parties, booster
        self.logging_loss = list(booster.loss)
        return self

    @property
    def timings(self) -> dict:
        """Seconds in encryption, aggregation, decryption, building; counts of encryptions,
        decryptions (packed ciphertexts) and encrypted bin sums."""
        return {} if self._booster is None else dict(self._booster.timings)
