"""Paillier panels: the homomorphic operations on your numbers, and FedAVG with and without encryption."""
import time
import warnings

import numpy as np
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense.paillier import PaillierGradientClientManager, PaillierKeyGenerator, PaillierKeySizeWarning
from aijack_lab.models import make_digits_model

from .base import Panel
from .common import digits
from .params import BoolParam, ChoiceParam, FloatParam, IntParam
from .registry import register


def _keypair(bits, seed):
    with warnings.catch_warnings():  # the panels say it themselves: small keys are for teaching
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        return PaillierKeyGenerator(bits, seed=seed).generate_keypair()


@register("Defense", "Homomorphic Encryption", "Paillier")
class PaillierPanel(Panel):
    title = "Paillier — additively homomorphic encryption"
    description = (
        "Paillier ciphertexts can be added together and multiplied by plaintext numbers without the "
        "secret key; decrypting the result gives the sum or product of the plaintexts. Floats are "
        "encoded in fixed point (2<sup>-32</sup> resolution). The right plot is what a server holding "
        "the ciphertexts sees: random-looking bytes, each ciphertext as wide as n². With packing on, "
        "the vector is packed several values per ciphertext (128-bit slots, BatchCrypt-style): fewer "
        "ciphertexts, the same decryptions. Keys below 2048 bits are for teaching only."
    )
    reference = "Paillier. Public-Key Cryptosystems Based on Composite Degree Residuosity Classes. EUROCRYPT 1999."
    params = (
        ChoiceParam("bits", 1024, options=(512, 1024, 2048), label="key size (bits of n)"),
        FloatParam("a", 13.0, min=-100.0, max=100.0, step=0.1, label="value a"),
        FloatParam("b", 5.6, min=-100.0, max=100.0, step=0.1, label="value b"),
        FloatParam("k", 2.0, min=-10.0, max=10.0, step=0.1, label="plaintext scalar k"),
        IntParam("vector_length", 16, min=1, max=256, label="vector length"),
        BoolParam("packing", False, label="pack the vector (slots)"),
        IntParam("seed", 0, min=0, max=100, label="key seed"),
    )
    reproducible = ("n_bits", "ciphertext_bytes", "dec_a", "dec_a_plus_b", "dec_a_minus_b", "dec_a_times_k",
                    "dec_neg_a", "vector_sum", "vector_ciphertexts")

    def compute(self, values, progress):
        t0 = time.perf_counter()
        pk, sk = _keypair(values["bits"], values["seed"])
        keygen_seconds = time.perf_counter() - t0
        progress(1, 4)
        a, b, k = values["a"], values["b"], values["k"]
        t0 = time.perf_counter()
        ct_a = pk.encrypt(a)
        encrypt_seconds = time.perf_counter() - t0
        ct_b = pk.encrypt(b)
        t0 = time.perf_counter()
        dec_a = sk.decrypt2float(ct_a)
        decrypt_seconds = time.perf_counter() - t0
        ops = {
            "a": (ct_a, a),
            "a + b": (ct_a + ct_b, a + b),
            "a - b": (ct_a - b, a - b),
            "a * k": (ct_a * k, a * k),
            "-a": (-ct_a, -a),
        }
        decrypted = {name: sk.decrypt2float(ct) for name, (ct, _) in ops.items()}
        progress(2, 4)
        x = np.round(np.linspace(-1.0, 1.0, values["vector_length"]) * a, 6)
        t0 = time.perf_counter()
        cx = pk.encrypt_array(x, pack=values["packing"])
        vector_encrypt_seconds = time.perf_counter() - t0
        if values["packing"]:  # slots cannot be summed homomorphically: decrypt, then sum
            vector_sum = float(sk.decrypt_array(cx).sum())
            scaled = sk.decrypt_array(cx * k + x)
        else:
            vector_sum = sk.decrypt2float(cx.sum())
            scaled = sk.decrypt_array(cx.mul_scalar(k).add_plain(x))
        view_values = cx.values()
        vector_ciphertexts = len(view_values)
        progress(3, 4)
        result = {
            "n_bits": pk.n.bit_length(),
            "ciphertext_bytes": pk.ciphertext_bytes,
            "expansion_vs_float64": pk.ciphertext_bytes / 8,
            "keygen_seconds": keygen_seconds,
            "encrypt_seconds": encrypt_seconds,
            "decrypt_seconds": decrypt_seconds,
            "vector_encrypt_seconds_per_value": vector_encrypt_seconds / len(x),
            "dec_a": decrypted["a"],
            "dec_a_plus_b": decrypted["a + b"],
            "dec_a_minus_b": decrypted["a - b"],
            "dec_a_times_k": decrypted["a * k"],
            "dec_neg_a": decrypted["-a"],
            "max_abs_error": max(abs(decrypted[n] - v) for n, (_, v) in ops.items()),
            "vector_sum": vector_sum,
            "vector_ciphertexts": vector_ciphertexts,
            "values_per_ciphertext": len(x) / vector_ciphertexts,
            "vector_max_abs_error": float(max(abs(vector_sum - x.sum()), np.abs(scaled - (k * x + x)).max())),
        }
        rows = min(vector_ciphertexts, 16)
        view = np.array([[int(v) >> (8 * j) & 0xFF for j in range(64)] for v in view_values[:rows]], dtype=np.uint8)
        data = {
            "names": list(ops),
            "expected": [v for _, v in ops.values()],
            "decrypted": [decrypted[n] for n in ops],
            "x": x[:min(len(x), 16)],
            "cipher_bytes": view,
            "ct_a_hex": hex(ct_a.value)[:42] + "…",
        }
        progress(4, 4)
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2.2, 0.5, 2.2]})
        idx = np.arange(len(data["names"]))
        ax1.bar(idx - 0.2, data["expected"], width=0.4, label="plaintext arithmetic")
        ax1.bar(idx + 0.2, data["decrypted"], width=0.4, label="decrypted ciphertext arithmetic")
        ax1.set_xticks(idx, data["names"], fontsize=8)
        ax1.axhline(0, color="k", lw=0.5)
        ax1.legend(fontsize=7)
        ax1.set_title(f"homomorphic ops, max error {result['max_abs_error']:.1e}", fontsize=9)
        ax2.imshow(data["x"][:, None], cmap="coolwarm", aspect="auto")
        ax2.set_xticks([])
        ax2.set_title("plaintext", fontsize=9)
        ax2.set_ylabel("vector entry")
        ax3.imshow(data["cipher_bytes"], cmap="gray", aspect="auto", vmin=0, vmax=255)
        ax3.set_xlabel("ciphertext byte (first 64 of %d)" % result["ciphertext_bytes"])
        ax3.set_yticks([])
        ax3.set_title(f"what the server sees ({result['vector_ciphertexts']} ciphertexts)", fontsize=9)
        fig.tight_layout()

    def code(self, v):
        return f"""\
import numpy as np
from aijack_lab.defense import PaillierKeyGenerator

keygenerator = PaillierKeyGenerator({v['bits']}, seed={v['seed']})  # seed: reproducible teaching keys only
pk, sk = keygenerator.generate_keypair()

ct_a = pk.encrypt({v['a']!r})
ct_b = pk.encrypt({v['b']!r})
n_bits = pk.n.bit_length()
ciphertext_bytes = pk.ciphertext_bytes
dec_a = sk.decrypt2float(ct_a)
dec_a_plus_b = sk.decrypt2float(ct_a + ct_b)
dec_a_minus_b = sk.decrypt2float(ct_a - {v['b']!r})
dec_a_times_k = sk.decrypt2float(ct_a * {v['k']!r})
dec_neg_a = sk.decrypt2float(-ct_a)

x = np.round(np.linspace(-1.0, 1.0, {v['vector_length']}) * {v['a']!r}, 6)
""" + (f"""\
cx = pk.encrypt_array(x, pack=True)           # several values per ciphertext (128-bit slots)
vector_ciphertexts = len(cx.values())
vector_sum = float(sk.decrypt_array(cx).sum())  # slots cannot be summed homomorphically
""" if v["packing"] else """\
cx = pk.encrypt_array(x)                      # one threaded batch call
vector_ciphertexts = len(cx.values())
vector_sum = sk.decrypt2float(cx.sum())
""") + """\
print(dec_a_plus_b, dec_a_times_k, vector_sum, vector_ciphertexts)
"""


class PaillierFedAVGPanel(Panel):
    """Not a separate gallery entry (Table 1 has one Paillier row): import it from
    ``aijack_lab.widgets.defense_paillier``; the notebook shows both."""

    title = "FedAVG with Paillier-encrypted gradients"
    description = (
        "The same FedAVG run twice with the same seed: once in plaintext, once with every client "
        "uploading Paillier-encrypted gradients (PaillierGradientClientManager). The server aggregates "
        "ciphertexts without any key; clients decrypt the aggregate. Accuracy is the same; the price "
        "is time and bytes (packing several gradient values per ciphertext cuts both). The right "
        "plot is the server's view: ciphertexts carry no visible trace of the gradient."
    )
    reference = "Paillier, EUROCRYPT 1999; McMahan et al., AISTATS 2017 (paper Code 8)."
    params = (
        ChoiceParam("bits", 512, options=(512, 1024, 2048), label="key size (bits of n)"),
        IntParam("num_clients", 2, min=2, max=4, label="clients"),
        IntParam("num_communication", 3, min=1, max=10, label="rounds"),
        IntParam("hidden", 16, min=4, max=32, label="MLP hidden units"),
        FloatParam("lr", 0.1, min=0.01, max=0.5, step=0.01, label="client SGD lr"),
        BoolParam("packing", False, label="pack gradients (slots)"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("accuracy_plain", "accuracy_encrypted", "max_parameter_difference")

    def _run(self, values, encrypted, progress, offset, total, keys=None):
        x_train, y_train, x_test, y_test = digits()
        n, seed = values["num_clients"], values["seed"]
        parts = partition_iid(len(x_train), n, seed=seed)
        loaders = make_client_dataloaders(x_train, y_train, parts, batch_size=32, seed=seed)
        make = lambda: make_digits_model("mlp", seed=seed, hidden=values["hidden"])  # noqa: E731
        client_cls = FedAVGClient
        if encrypted:
            client_cls = PaillierGradientClientManager(*keys, packing=values["packing"]).attach(FedAVGClient)
        clients = [client_cls(make(), user_id=i) for i in range(n)]
        server = FedAVGServer(clients, make())
        optimizers = [torch.optim.SGD(c.parameters(), lr=values["lr"], momentum=0.9) for c in clients]
        first = {}

        def keep_first_upload(api, info):
            if not first:
                first["update"] = info["client_updates"][0][0]

        api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders,
                        num_communication=values["num_communication"], validation_dataloader=(x_test, y_test),
                        on_round=keep_first_upload, progress=lambda s, t: progress(offset + s, total))
        history = api.run()
        params = [p.detach().clone() for p in server.server_model.parameters()]
        plain_grad = clients[0].last_plain_gradients[0] if encrypted else first["update"]
        return history, params, first["update"], plain_grad

    def compute(self, values, progress):
        rounds = values["num_communication"]
        total = 2 * rounds + 1
        keys = _keypair(values["bits"], values["seed"])
        progress(1, total)
        hist_p, params_p, _, _ = self._run(values, False, progress, 1, total)
        hist_e, params_e, enc_update, plain_grad = self._run(values, True, progress, 1 + rounds, total, keys)
        diff = max((a - b).abs().max().item() for a, b in zip(params_p, params_e))
        k = min(64, plain_grad.numel())
        # packed: value i sits in ciphertext i // slots
        cts = enc_update.ciphertexts().ravel()
        cipher = np.array([int(cts[i // enc_update.slots]) for i in range(k)], dtype=object)
        n2 = keys[0].n ** 2
        result = {
            "accuracy_plain": [h["global_accuracy"] for h in hist_p],
            "accuracy_encrypted": [h["global_accuracy"] for h in hist_e],
            "max_parameter_difference": diff,
            "seconds_per_round_plain": [h["seconds"] for h in hist_p],
            "seconds_per_round_encrypted": [h["seconds"] for h in hist_e],
            "bytes_per_round_plain": hist_p[0]["bytes_uploaded"],
            "bytes_per_round_encrypted": hist_e[0]["bytes_uploaded"],
            "slowdown": sum(h["seconds"] for h in hist_e) / max(1e-9, sum(h["seconds"] for h in hist_p)),
        }
        data = {
            "plain_grad": plain_grad.flatten()[:k].numpy(),
            "cipher_fraction": np.array([float(c) / float(n2) for c in cipher]),
        }
        return result, data

    def draw(self, fig, result, data):
        ax1, ax2, ax3, ax4 = fig.subplots(1, 4)
        rounds = np.arange(1, len(result["accuracy_plain"]) + 1)
        ax1.plot(rounds, result["accuracy_plain"], marker="o", label="plaintext")
        ax1.plot(rounds, result["accuracy_encrypted"], marker="x", ls="--", label="Paillier")
        ax1.set_ylim(0, 1)
        ax1.set_xlabel("round")
        ax1.set_title("global accuracy", fontsize=9)
        ax1.legend(fontsize=7)
        ax2.bar(rounds - 0.2, result["seconds_per_round_plain"], width=0.4, label="plaintext")
        ax2.bar(rounds + 0.2, result["seconds_per_round_encrypted"], width=0.4, label="Paillier")
        ax2.set_yscale("log")
        ax2.set_xlabel("round")
        ax2.set_title("seconds per round", fontsize=9)
        ax3.bar([0, 1], [result["bytes_per_round_plain"], result["bytes_per_round_encrypted"]], color=["C0", "C1"])
        ax3.set_xticks([0, 1], ["plain", "Paillier"])
        ax3.set_yscale("log")
        ax3.set_title("bytes uploaded / round", fontsize=9)
        ax4.scatter(data["plain_grad"], data["cipher_fraction"], s=8, color="C1")
        ax4.set_xlabel("client gradient entry")
        ax4.set_ylabel("ciphertext / n²")
        ax4.set_title("server's view", fontsize=9)
        fig.tight_layout()

    def code(self, v):
        return f"""\
import torch
from torch import nn
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.defense import PaillierGradientClientManager, PaillierKeyGenerator
from aijack_lab.models import make_digits_model

X_train, y_train, X_test, y_test = load_digits()
parts = partition_iid(len(X_train), {v['num_clients']}, seed={v['seed']})
NN = lambda: make_digits_model("mlp", seed={v['seed']}, hidden={v['hidden']})
pk, sk = PaillierKeyGenerator({v['bits']}, seed={v['seed']}).generate_keypair()

def run(Client):
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed={v['seed']})
    clients = [Client(NN(), user_id=i) for i in range({v['num_clients']})]
    server = FedAVGServer(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr={v['lr']!r}, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                    num_communication={v['num_communication']}, validation_dataloader=(X_test, y_test))
    history = api.run()
    return [h["global_accuracy"] for h in history], list(server.server_model.parameters())

accuracy_plain, params_plain = run(FedAVGClient)
PaillierClient = PaillierGradientClientManager(pk, sk{", packing=True" if v["packing"] else ""}).attach(FedAVGClient)
accuracy_encrypted, params_encrypted = run(PaillierClient)
max_parameter_difference = max((a - b).abs().max().item() for a, b in zip(params_plain, params_encrypted))
print(accuracy_plain[-1], accuracy_encrypted[-1], max_parameter_difference)
"""
