"""``PaillierTensor``: a tensor of Paillier ciphertexts that mixes with ``torch.Tensor``.

The ciphertexts live in one flat ``PaillierCipherArray`` of the C++ core (C order) plus a shape;
every operation is one threaded batch call of the core. Shapes broadcast like numpy/torch.

Supported: ``+`` and ``-`` with PaillierTensors, tensors, arrays and scalars; ``*`` and ``/`` by
plaintext tensors, arrays and scalars (never two ciphertexts); negation; ``sum``; ``reshape``/
``view``/``flatten``; indexing; ``decrypt(sk)``. Torch functions dispatch to it
(``__torch_function__``): ``torch.add``, ``torch.sub``, ``torch.mul``, ``torch.div``,
``torch.neg``, ``torch.sum``, ``torch.reshape``, ``torch.flatten`` and the ``Tensor`` operators,
so ``tensor + ptensor`` and ``tensor * ptensor`` work.

``PaillierTensor.encrypt(pk, x, packed=True)`` packs ``pk.packed_slots(slot_bits)`` values per
ciphertext (a ``PaillierPackedArray``): ``+``/``-`` with packed tensors of the same shape and key,
plaintext tensors/scalars, ``*``/``/`` by one scalar, negation, reshape and decryption work
slot-wise; indexing, broadcasting a packed operand, ``sum`` and ``* tensor`` need one ciphertext
per value and raise ``TypeError`` (use ``packed=False``). Passing the secret key instead of the
public key to ``encrypt`` uses CRT encryption.
"""
import numbers
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .keys import (
    DEFAULT_PRECISION,
    DEFAULT_SLOT_BITS,
    PaillierCipherArray,
    PaillierCipherText,
    PaillierPackedArray,
    PaillierPublicKey,
    PaillierSecretKey,
)

_PACKED_HINT = "; encrypt with packed=False for per-value ciphertexts"


def _as_plain(x) -> np.ndarray:
    """A plaintext operand as a numpy array (floats as float64, integers as int64/object)."""
    if torch.is_tensor(x):
        x = x.detach().cpu()
        if x.dtype == torch.bool:
            x = x.to(torch.int64)
        if x.is_complex():
            raise TypeError("complex tensors cannot be encrypted")
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64, copy=False)
    if arr.dtype.kind not in "iufO":
        raise TypeError(f"plaintext operands must hold ints or floats, got dtype {arr.dtype}")
    return arr


def _is_scalar(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, complex) or isinstance(x, np.generic) and np.isrealobj(x)


class PaillierTensor:
    """A tensor of Paillier ciphertexts.

    Build one with ``PaillierTensor.encrypt(pk, tensor)``, or from a (nested) list / object array
    of ``PaillierCipherText``: ``PaillierTensor([[ct1, ct2], [ct3, ct4]])``.
    """

    __slots__ = ("_data", "_shape")
    __array_ufunc__ = None  # numpy defers to our reflected operators (ndarray + PaillierTensor)

    def __init__(self, data, shape: Optional[Sequence[int]] = None):
        if isinstance(data, (PaillierCipherArray, PaillierPackedArray)):
            shape = (len(data),) if shape is None else tuple(int(s) for s in shape)
            if int(np.prod(shape, dtype=np.int64)) != len(data):
                raise ValueError(f"shape {shape} does not hold {len(data)} ciphertexts")
            self._data, self._shape = data, shape
            return
        if isinstance(data, PaillierCipherText):
            self._data, self._shape = PaillierCipherArray.from_ciphertexts([data]), ()
            return
        arr = np.empty(0, dtype=object)
        try:
            arr = np.array(data, dtype=object)
        except Exception as exc:  # pragma: no cover - numpy refuses ragged input
            raise TypeError(f"cannot build a PaillierTensor from {type(data).__name__}: {exc}") from None
        if arr.size == 0:
            raise ValueError("a PaillierTensor needs at least one ciphertext")
        flat = arr.ravel()
        bad = next((x for x in flat if not isinstance(x, PaillierCipherText)), None)
        if bad is not None:
            raise TypeError(f"PaillierTensor items must be PaillierCipherText, got {type(bad).__name__}")
        self._data = PaillierCipherArray.from_ciphertexts(list(flat))
        self._shape = tuple(arr.shape) if shape is None else tuple(shape)

    def __reduce__(self):
        return (PaillierTensor, (self._data, self._shape))

    # -- construction / decryption ---------------------------------------------------------------
    @classmethod
    def encrypt(cls, public_key, x, precision: int = DEFAULT_PRECISION, packed: bool = False,
                slot_bits: int = DEFAULT_SLOT_BITS) -> "PaillierTensor":
        """Encrypt a tensor/array/list elementwise (ints exactly, floats with ``precision`` bits).

        ``public_key`` may be a ``PaillierSecretKey`` (CRT encryption, same ciphertexts).
        ``packed=True`` packs several values per ciphertext in ``slot_bits``-bit slots.
        """
        if not isinstance(public_key, (PaillierPublicKey, PaillierSecretKey)):
            raise TypeError(f"public_key must be a PaillierPublicKey (or a PaillierSecretKey for CRT encryption), "
                            f"got {type(public_key).__name__}")
        if not isinstance(packed, bool):
            raise TypeError(f"packed must be a bool, got {type(packed).__name__}")
        if isinstance(slot_bits, bool) or not isinstance(slot_bits, numbers.Integral) or slot_bits < 1:
            raise ValueError(f"slot_bits must be a positive int, got {slot_bits!r}")
        arr = _as_plain(x)
        flat = np.ascontiguousarray(arr).reshape(-1)
        return cls(public_key.encrypt_array(flat, precision, pack=packed, slot_bits=int(slot_bits)), arr.shape)

    def decrypt(self, sk: PaillierSecretKey, device="cpu", dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """The plaintexts as a float tensor of this shape (``dtype`` defaults to torch's default)."""
        if not isinstance(sk, PaillierSecretKey):
            raise TypeError(f"sk must be a PaillierSecretKey, got {type(sk).__name__}")
        values = sk.decrypt_array(self._data).reshape(self._shape)
        return torch.as_tensor(values, dtype=dtype or torch.get_default_dtype(), device=device)

    def decrypt2int(self, sk: PaillierSecretKey) -> np.ndarray:
        """The plaintexts as exact Python ints (rounded when fixed-point), in an object array."""
        if not isinstance(sk, PaillierSecretKey):
            raise TypeError(f"sk must be a PaillierSecretKey, got {type(sk).__name__}")
        out = np.empty(len(self._data), dtype=object)
        out[:] = sk.decrypt_array_int(self._data)
        return out.reshape(self._shape)

    # -- properties --------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size(self._shape)

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self._shape[dim]

    def dim(self) -> int:
        return len(self._shape)

    ndim = property(dim)

    def numel(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d PaillierTensor")
        return self._shape[0]

    @property
    def public_key(self) -> PaillierPublicKey:
        return self._data.public_key

    @property
    def scale_bits(self) -> int:
        return self._data.scale_bits

    @property
    def nbytes(self) -> int:
        """Bytes of the ciphertexts (each as wide as n^2)."""
        return self._data.nbytes

    @property
    def cipher_array(self):
        """The flat core array (C order): a PaillierCipherArray, or a PaillierPackedArray when packed."""
        return self._data

    @property
    def packed(self) -> bool:
        """True when several values share each ciphertext (``encrypt(..., packed=True)``)."""
        return isinstance(self._data, PaillierPackedArray)

    @property
    def slots(self) -> int:
        """Values per ciphertext (1 when not packed)."""
        return self._data.slots if self.packed else 1

    @property
    def num_ciphertexts(self) -> int:
        return self._data.num_ciphertexts if self.packed else len(self._data)

    def ciphertexts(self) -> np.ndarray:
        """The raw ciphertexts as Python ints (what the server sees), in an object array (of this
        shape; flat, one per ciphertext, when packed)."""
        values = self._data.values()
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out if self.packed else out.reshape(self._shape)

    def __repr__(self) -> str:
        packing = f", packed {self.slots} per ciphertext" if self.packed else ""
        return (f"PaillierTensor(shape={tuple(self._shape)}, key={self.public_key.bits}-bit, "
                f"scale=2^-{self.scale_bits}{packing})")

    # -- shape ops -----------------------------------------------------------------------------------
    def _index_grid(self) -> np.ndarray:
        return np.arange(len(self._data), dtype=np.int64).reshape(self._shape)

    def _gather(self, idx: np.ndarray) -> "PaillierTensor":
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim == len(self._shape) and idx.shape == tuple(self._shape) and np.array_equal(idx.ravel(), np.arange(idx.size)):
            return self
        if self.packed:
            raise TypeError("indexing, broadcasting or reducing along a dim is not possible on a packed "
                            "PaillierTensor (values cannot move between slots)" + _PACKED_HINT)
        return PaillierTensor(self._data.take(np.ascontiguousarray(idx).reshape(-1)), idx.shape)

    def reshape(self, *shape) -> "PaillierTensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        new = self._index_grid().reshape(tuple(int(s) for s in shape)).shape
        return PaillierTensor(self._data, new)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "PaillierTensor":
        if not self._shape:
            return self.reshape(1)
        nd = len(self._shape)
        s, e = start_dim % nd, end_dim % nd
        new = self._shape[:s] + (int(np.prod(self._shape[s:e + 1], dtype=np.int64)),) + self._shape[e + 1:]
        return PaillierTensor(self._data, new)

    def __getitem__(self, item) -> "PaillierTensor":
        if torch.is_tensor(item):
            item = item.cpu().numpy()
        return self._gather(self._index_grid()[item])

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def item(self) -> PaillierCipherText:
        if self.packed:
            raise TypeError("a packed PaillierTensor has no per-value ciphertext" + _PACKED_HINT)
        if len(self._data) != 1:
            raise ValueError("only one-element PaillierTensors can be converted to a ciphertext")
        return self._data[0]

    def detach(self) -> "PaillierTensor":
        return self

    def clone(self) -> "PaillierTensor":
        return self

    def cpu(self) -> "PaillierTensor":
        return self

    # -- arithmetic ----------------------------------------------------------------------------------
    def _broadcast_to(self, shape: Tuple[int, ...]) -> "PaillierTensor":
        if tuple(shape) == self._shape:
            return self
        return self._gather(np.broadcast_to(self._index_grid(), shape))

    def _binary(self, other, op: str, precision: int = DEFAULT_PRECISION) -> "PaillierTensor":
        if isinstance(other, PaillierCipherText):
            other = PaillierTensor(other)
        if isinstance(other, PaillierTensor):
            if op != "add":
                raise TypeError("Paillier ciphertexts cannot be multiplied together (only by plaintexts)")
            if self.packed != other.packed:
                raise TypeError("cannot mix packed and unpacked PaillierTensors")
            shape = np.broadcast_shapes(self._shape, other._shape)
            a, b = self._broadcast_to(shape), other._broadcast_to(shape)
            return PaillierTensor(a._data.add(b._data), shape)
        if _is_scalar(other) and not isinstance(other, np.ndarray):
            if op == "add":
                return PaillierTensor(self._data.add_scalar(other, precision), self._shape)
            return PaillierTensor(self._data.mul_scalar(other, precision), self._shape)
        if not (torch.is_tensor(other) or isinstance(other, (np.ndarray, list, tuple))):
            return NotImplemented
        plain = _as_plain(other)
        if plain.ndim == 0:
            return self._binary(plain.item(), op, precision)
        if self.packed and op != "add":
            raise TypeError("elementwise multiplication by a tensor is not possible on a packed PaillierTensor "
                            "(all slots of a ciphertext share one factor)" + _PACKED_HINT)
        shape = np.broadcast_shapes(self._shape, plain.shape)
        a = self._broadcast_to(shape)
        flat = np.ascontiguousarray(np.broadcast_to(plain, shape)).reshape(-1)
        if op == "add":
            return PaillierTensor(a._data.add_plain(flat, precision), shape)
        return PaillierTensor(a._data.mul_plain(flat, precision), shape)

    def add(self, other, alpha=1, precision: int = DEFAULT_PRECISION) -> "PaillierTensor":
        if alpha != 1:
            other = other * alpha
        return self._binary(other, "add", precision)

    def sub(self, other, alpha=1, precision: int = DEFAULT_PRECISION) -> "PaillierTensor":
        return self.add(-other if isinstance(other, (PaillierTensor, PaillierCipherText)) else _negate_plain(other),
                        alpha, precision)

    def mul(self, other, precision: int = DEFAULT_PRECISION) -> "PaillierTensor":
        return self._binary(other, "mul", precision)

    def div(self, other, precision: int = DEFAULT_PRECISION) -> "PaillierTensor":
        if isinstance(other, (PaillierTensor, PaillierCipherText)):
            raise TypeError("cannot divide by a Paillier ciphertext")
        if _is_scalar(other):
            if other == 0:
                raise ValueError("division of a PaillierTensor by zero")
            return self.mul(1.0 / float(other), precision)
        plain = _as_plain(other).astype(np.float64)
        if np.any(plain == 0):
            raise ValueError("division of a PaillierTensor by zero")
        return self.mul(1.0 / plain, precision)

    def neg(self) -> "PaillierTensor":
        return PaillierTensor(self._data.negate(), self._shape)

    def __add__(self, other):
        return self._binary(other, "add")

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, (PaillierTensor, PaillierCipherText)):
            return self._binary(-other, "add")
        neg = _negate_plain(other)
        return NotImplemented if neg is NotImplemented else self._binary(neg, "add")

    def __rsub__(self, other):
        return self.neg()._binary(other, "add")

    def __mul__(self, other):
        return self._binary(other, "mul")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self.div(other)

    def __neg__(self):
        return self.neg()

    def __pos__(self):
        return self

    def sum(self, dim=None, keepdim: bool = False) -> "PaillierTensor":
        """Sum of all entries (a 0-d PaillierTensor), or along ``dim``."""
        if self.packed:
            raise TypeError("sum is not possible on a packed PaillierTensor (values cannot move between "
                            "slots); add packed tensors together, or decrypt and sum" + _PACKED_HINT)
        if dim is None:
            out = PaillierTensor(PaillierCipherArray.from_ciphertexts([self._data.sum()]), ())
            return out.reshape((1,) * len(self._shape)) if keepdim else out
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        nd = len(self._shape)
        dims = sorted({d % nd for d in dims})
        grid = np.moveaxis(self._index_grid(), dims, list(range(nd - len(dims), nd)))
        rest = grid.shape[: nd - len(dims)]
        grid = grid.reshape(rest + (-1,))
        acc = self._gather(grid[..., 0])
        for j in range(1, grid.shape[-1]):
            acc = acc + self._gather(grid[..., j])
        if keepdim:
            shape = list(self._shape)
            for d in dims:
                shape[d] = 1
            acc = acc.reshape(shape)
        return acc

    # -- torch interoperability ----------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = _HANDLED.get(func)
        if handler is None:
            return NotImplemented
        return handler(*args, **kwargs)


def _negate_plain(x):
    if _is_scalar(x):
        return -x
    if torch.is_tensor(x) or isinstance(x, (np.ndarray, list, tuple)):
        arr = _as_plain(x)
        return -arr if arr.dtype != object else np.array([-v for v in arr.ravel()], dtype=object).reshape(arr.shape)
    return NotImplemented


def _pt_first(a, b):
    """Put the PaillierTensor operand first (for commutative ops)."""
    return (a, b) if isinstance(a, PaillierTensor) else (b, a)


def _add(a, b, *, alpha=1, out=None):
    if out is not None:
        raise TypeError("out= is not supported for PaillierTensor")
    if not isinstance(a, PaillierTensor):  # tensor + alpha * ptensor
        return b.mul(alpha).add(a) if alpha != 1 else b.add(a)
    return a.add(b, alpha=alpha)


def _sub(a, b, *, alpha=1, out=None):
    if out is not None:
        raise TypeError("out= is not supported for PaillierTensor")
    if isinstance(a, PaillierTensor):
        return a.sub(b, alpha=alpha)
    return (b.mul(-alpha) if alpha != 1 else b.neg()).add(a)


def _rsub(a, b, *, alpha=1):  # Tensor.__rsub__(self, other) = other - self
    return _sub(b, a, alpha=alpha)


def _mul(a, b, *, out=None):
    if out is not None:
        raise TypeError("out= is not supported for PaillierTensor")
    p, other = _pt_first(a, b)
    return p.mul(other)


def _div(a, b, *, rounding_mode=None, out=None):
    if out is not None or rounding_mode is not None:
        raise TypeError("out= and rounding_mode= are not supported for PaillierTensor")
    if not isinstance(a, PaillierTensor):
        raise TypeError("cannot divide by a Paillier ciphertext")
    return a.div(b)


def _sum(a, dim=None, keepdim=False, *, dtype=None):
    return a.sum(dim=dim, keepdim=keepdim)


def _reshape(a, *shape):
    return a.reshape(*shape)


_HANDLED = {
    torch.add: _add,
    torch.Tensor.add: _add,
    torch.Tensor.__add__: _add,
    torch.Tensor.__radd__: lambda a, b: _add(b, a),
    torch.sub: _sub,
    torch.subtract: _sub,
    torch.Tensor.sub: _sub,
    torch.Tensor.__sub__: _sub,
    torch.Tensor.__rsub__: _rsub,
    torch.mul: _mul,
    torch.multiply: _mul,
    torch.Tensor.mul: _mul,
    torch.Tensor.__mul__: _mul,
    torch.Tensor.__rmul__: _mul,
    torch.div: _div,
    torch.true_divide: _div,
    torch.Tensor.div: _div,
    torch.Tensor.__truediv__: _div,
    torch.neg: lambda a, *, out=None: a.neg(),
    torch.Tensor.neg: lambda a: a.neg(),
    torch.Tensor.__neg__: lambda a: a.neg(),
    torch.sum: _sum,
    torch.Tensor.sum: _sum,
    torch.reshape: lambda a, shape: a.reshape(shape),
    torch.Tensor.reshape: _reshape,
    torch.Tensor.view: _reshape,
    torch.flatten: lambda a, start_dim=0, end_dim=-1: a.flatten(start_dim, end_dim),
    torch.Tensor.flatten: lambda a, start_dim=0, end_dim=-1: a.flatten(start_dim, end_dim),
}
