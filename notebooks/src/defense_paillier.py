# %% [markdown]
# # Homomorphic encryption: Paillier
#
# **What you will learn:** how Paillier encryption lets a party add encrypted numbers and
# multiply them by plaintext numbers without the secret key; how reals are encoded; what a
# `PaillierTensor` is; and how federated clients hide their gradients from the server with
# `PaillierGradientClientManager` (paper Code 8) while the model comes out the same as in
# plaintext FedAVG.
#
# Paillier (EUROCRYPT 1999): with n = p·q and g = n + 1, a plaintext m encrypts to
# c = g^m · r^n mod n². Multiplying two ciphertexts adds their plaintexts; raising a ciphertext
# to the power k multiplies its plaintext by k. The arithmetic runs in aijack_lab's C++ core
# (GMP, all cores). **Key size convention:** `PaillierKeyGenerator(bits)` makes a modulus n of
# `bits` bits. We use 512 bits here because it is fast; that is for teaching only (you will see
# a warning) — use 2048 bits or more to protect data.

# %%
import warnings

import numpy as np
import torch

from aijack_lab.defense import PaillierKeyGenerator

keygenerator = PaillierKeyGenerator(512)
pk, sk = keygenerator.generate_keypair()
print(pk, "n has", pk.n.bit_length(), "bits; a ciphertext takes", pk.ciphertext_bytes, "bytes")
assert pk.n.bit_length() == 512 and sk.p * sk.q == pk.n

# %% [markdown]
# ## Encrypt, compute on ciphertexts, decrypt
#
# The operations of the paper's Paillier example:

# %%
ct_1 = pk.encrypt(13)
ct_2 = ct_1 * 2
ct_3 = ct_1 + 5.6
ct_4 = pk.encrypt(18)
ct_5 = ct_1 + ct_4
print(sk.decrypt2int(ct_1), sk.decrypt2int(ct_2), sk.decrypt2float(ct_3), sk.decrypt2int(ct_5))
assert sk.decrypt2int(ct_1) == 13 and sk.decrypt2int(ct_2) == 26 and sk.decrypt2int(ct_5) == 31
assert abs(sk.decrypt2float(ct_3) - 18.6) < 1e-6

# %% [markdown]
# Encryption is randomised: the same number encrypts to a different ciphertext every time, so a
# server cannot even tell whether two clients sent the same value. Subtraction and negation work
# too, with negative numbers.

# %%
again = pk.encrypt(13)
print(hex(ct_1.value)[:40], "…")
print(hex(again.value)[:40], "…")
assert ct_1.value != again.value and sk.decrypt2int(again) == 13
assert sk.decrypt2int(ct_1 - ct_4) == -5
assert sk.decrypt2float(-ct_1 * 0.25) == -3.25

# %% [markdown]
# ## Fixed-point reals and the plaintext range
#
# A float x is encrypted as the integer round(x · 2³²), so each encoding is within 2⁻³³ of x.
# Multiplying by a float scalar adds its fractional bits to the scale; sums align scales
# exactly. Plaintexts must stay within ±n/3: beyond that, decryption reports an overflow
# instead of returning a wrong number. Ciphertexts of different keys never mix.

# %%
x = 3.14159265358979
err = abs(sk.decrypt2float(pk.encrypt(x)) - x)
print(f"encoding error {err:.2e}")
assert err <= 2**-33

big = pk.encrypt(pk.max_int)
try:
    sk.decrypt2int(big + big)
except OverflowError as exc:
    print("OverflowError:", exc)

other_pk, other_sk = PaillierKeyGenerator(512).generate_keypair()
try:
    other_sk.decrypt2int(ct_1)
except ValueError as exc:
    print("ValueError:", exc)

# %% [markdown]
# ## PaillierTensor
#
# A `PaillierTensor` holds a whole tensor of ciphertexts; every operation is one threaded batch
# call of the core. It mixes with torch tensors (`tensor + ptensor`, `torch.mul(ptensor, w)`,
# broadcasting) and `decrypt(sk)` returns a float tensor.

# %%
from aijack_lab.defense import PaillierTensor

gradient = torch.tensor([[0.5, -1.25, 2.0], [3.0, 0.125, -0.75]])
weights = torch.tensor([0.1, 0.2, 0.7])
enc = PaillierTensor.encrypt(pk, gradient)
aggregated = enc * weights + torch.ones(3)
print(enc)
print(aggregated.decrypt(sk))
assert torch.allclose(aggregated.decrypt(sk), gradient * weights + 1, atol=1e-6)
assert torch.allclose(torch.sum(enc, 0).decrypt(sk), gradient.sum(0), atol=1e-6)

# %% [markdown]
# ## Packing several values per ciphertext
#
# One value per ciphertext wastes almost all of a ciphertext's plaintext space (n has 512 bits
# here, a float needs far fewer). Packing, as BatchCrypt and FATE do for federated learning, puts
# several signed fixed-point values side by side in `slot_bits`-bit slots of one plaintext:
# (bits − 3) // slot_bits values per ciphertext (3 here with 128-bit slots, 15 at 2048 bits).
# Adding ciphertexts, adding a plaintext vector, multiplying by one scalar and negating act on
# every slot at once, so all of them get that many times cheaper per value. Each packed array
# tracks a proven bound on its slots: an operation that could overflow a slot into its neighbour
# raises `OverflowError` instead of returning wrong numbers. Multiplying by a *vector*
# elementwise is impossible on packed data (one exponent acts on all slots alike).

# %%
v = np.array([1.5, -2.25, 0.0, 1e-6, -3.0, 42.0, -0.5])
packed = pk.encrypt_array(v, pack=True)  # or PaillierTensor.encrypt(pk, v, packed=True)
print(packed, "—", packed.slots, "values per ciphertext")
w = pk.encrypt_array(np.ones(7), pack=True)
result = (packed + w) * -0.5 - v
print(sk.decrypt_array(result))
assert packed.num_ciphertexts == 3 and packed.slots == 3
assert np.allclose(sk.decrypt_array(result), (v + 1) * -0.5 - v, atol=1e-8)
assert np.allclose(sk.decrypt_array(sum([packed, packed, packed])), 3 * v, atol=1e-8)  # sums over clients

caught = []
try:
    for _ in range(4):
        packed = packed * 1000.123  # every product adds ~42 bits to the slots' bound
except OverflowError as exc:
    caught.append("overflow")
    print("OverflowError:", str(exc)[:90], "…")
try:
    w * v
except TypeError as exc:
    caught.append("vector")
    print("TypeError:", str(exc)[:90], "…")
assert caught == ["overflow", "vector"]

# %% [markdown]
# A holder of the secret key can also encrypt with the CRT (`sk.encrypt`, `sk.encrypt_array`):
# the randomness power is computed modulo p² and q² (half-size numbers) and recombined. The
# ciphertexts are the same kind as the public-key ones and decrypt alike.

# %%
crt = sk.encrypt_array(v)
assert np.allclose(sk.decrypt_array(crt.add(pk.encrypt_array(v))), 2 * v, atol=1e-8)
assert sk.decrypt2int(sk.encrypt(-7)) == -7

# %% [markdown]
# ## Federated learning with encrypted gradients (paper Code 8)
#
# Each client encrypts its gradient before uploading; the server computes the weighted sum of
# ciphertexts without any key and sends it back; every client decrypts the aggregate and applies
# it. We run the same two-client FedAVG in plaintext and encrypted, with the same seed.

# %%
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense import PaillierGradientClientManager
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), 2, seed=0)
NN = lambda: make_digits_model("mlp", seed=0, hidden=16)
criterion = nn.CrossEntropyLoss()


def run(ClientClass):
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
    clients = [ClientClass(NN(), user_id=0), ClientClass(NN(), user_id=1)]
    server = FedAVGServer(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, criterion, optimizers, dataloaders,
                    num_communication=2, validation_dataloader=(X_test, y_test))
    return api.run(), server


plain_history, plain_server = run(FedAVGClient)

mg = PaillierGradientClientManager(pk, sk)
PaillierClient = mg.attach(FedAVGClient)
history, server = run(PaillierClient)

for p, e in zip(plain_history, history):
    print(f"round {p['round']}: accuracy plain {p['global_accuracy']:.3f} / encrypted {e['global_accuracy']:.3f}, "
          f"seconds {p['seconds']:.2f} / {e['seconds']:.2f}, bytes {p['bytes_uploaded']} / {e['bytes_uploaded']}")
diff = max((a - b).abs().max().item() for a, b in zip(plain_server.server_model.parameters(),
                                                       server.server_model.parameters()))
print("largest parameter difference:", diff)
assert diff < 1e-4
assert [h["global_accuracy"] for h in history] == [h["global_accuracy"] for h in plain_history]
assert isinstance(server.aggregated_gradients[0], PaillierTensor)  # all the server ever held

# %% [markdown]
# With `packing=True` the clients upload packed gradients: the same model, fewer ciphertexts.

# %%
packed_history, packed_server = run(PaillierGradientClientManager(pk, sk, packing=True).attach(FedAVGClient))
print(f"bytes per round: unpacked {history[0]['bytes_uploaded']}, packed {packed_history[0]['bytes_uploaded']}; "
      f"seconds {sum(h['seconds'] for h in history):.2f} / {sum(h['seconds'] for h in packed_history):.2f}")
assert max((a - b).abs().max().item() for a, b in zip(plain_server.server_model.parameters(),
                                                       packed_server.server_model.parameters())) < 1e-4
assert packed_history[0]["bytes_uploaded"] * 2.5 < history[0]["bytes_uploaded"]

# %% [markdown]
# ## The panels
#
# `PaillierPanel` encrypts your numbers and shows the homomorphic operations, the ciphertext
# size and what a server sees. `PaillierFedAVGPanel` runs FedAVG with and without encryption side
# by side: accuracy, time and bytes per round, and the server's view of a gradient.

# %%
from aijack_lab.widgets import PaillierPanel

paillier_panel = PaillierPanel(bits=512)
paillier_panel.run()
assert paillier_panel.result["max_abs_error"] < 1e-6
paillier_panel

# %%
from aijack_lab.widgets.defense_paillier import PaillierFedAVGPanel

fedavg_panel = PaillierFedAVGPanel(num_communication=2)
fedavg_panel.run()
assert fedavg_panel.result["max_parameter_difference"] < 1e-4
fedavg_panel

# %% [markdown]
# ## Exercises
#
# 1. Switch the `PaillierPanel` to 2048 bits. How much longer do key generation and one
#    encryption take, and how much larger is a ciphertext?
# 2. In the FedAVG panel, compare the bytes uploaded per round with and without encryption.
#    What is the ratio for a 1024-bit key, and why does it not depend on the model?
# 3. The server multiplies each client's encrypted gradient by its weight n_k/n. Why can it do
#    that without the key, and why could it not compute the squared norm of a gradient?
# 4. Encrypt `pk.max_int` and add it to itself. What happens on decryption, and why is that
#    better than returning a number?
# 5. With `pk.encrypt_array(v, pack=True, slot_bits=...)`, how many products by a float scalar
#    fit before an `OverflowError` for 64-bit and for 128-bit slots? Why does FedAVG's weighted
#    sum need about 32 + 32 + log2(clients) bits more than the gradient's magnitude?
