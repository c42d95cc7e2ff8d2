"""Paillier: aijack_lab's C++ core vs python-paillier (``phe`` with gmpy2), measured in one run.

For n of 1024 and 2048 bits: key generation, then encrypting, decrypting, adding two encrypted
vectors, multiplying an encrypted vector by a float scalar and by a float vector, on a
``--size``-element float vector (default 5,000; rates are per value, so 10,000 gives the same
ratios, only slower). phe is a per-value Python loop, so its rate is measured on the first
``--phe-sample`` values (default 200) and stated per value; aijack_lab runs
the whole vector in batch calls on ``--threads`` worker threads (default 1). Encryption is timed
twice for aijack_lab: with a fresh key (including the one-off fixed-base table) and again.

Rows marked "unpacked" hold one value per ciphertext, like phe. Rows marked "packed" use
aijack_lab's slot packing (``pk.encrypt_array(x, pack=True)``, ``--slot-bits`` 128 by default:
``(bits - 3) // 128`` values per ciphertext, 15 at 2048 bits) and are stated per VALUE, so they
compare with phe's per-value rates. "CRT" rows encrypt with the secret key
(``sk.encrypt_array``). With ``--fedavg`` (default on) one round of encrypted FedAVG (3 clients, the
1,210-parameter digits MLP) is timed unpacked vs packed, both equal to plaintext FedAVG.

Targets at n = 2048 (issue 3): encryption >= 10x phe, decryption >= 2x, additions and scalar
products >= 10x. Both libraries decrypt correctly (checked here, to 1e-6).

    .venv/bin/python benchmarks/bench_paillier.py [--threads 1] [--size 10000] [--bits 1024 2048]
"""
import argparse
import statistics
import time
import warnings

import numpy as np


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_bits(bits, size, phe_sample, keygen_repeats, rng, slot_bits):
    from phe import paillier as phe

    from aijack_lab.defense.paillier import PaillierKeyGenerator, PaillierKeySizeWarning

    x = rng.normal(size=size)
    y = rng.normal(size=size)
    scalar = 0.3741
    xs, ys = x[:phe_sample].tolist(), y[:phe_sample].tolist()
    rows = []

    # key generation (median of a few: prime search time varies)
    t_phe = statistics.median(timed(lambda: phe.generate_paillier_keypair(n_length=bits))[0]
                              for _ in range(keygen_repeats))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        gen = PaillierKeyGenerator(bits)
    t_ours = statistics.median(timed(gen.generate_keypair)[0] for _ in range(keygen_repeats))
    rows.append(("key generation (s per key)", t_phe, t_ours, t_phe / t_ours, "s"))

    ppk, psk = phe.generate_paillier_keypair(n_length=bits)
    pk, sk = gen.generate_keypair()

    # encryption
    t, cx_phe = timed(lambda: [ppk.encrypt(v) for v in xs])
    phe_rate = len(xs) / t
    t_fresh, cx = timed(lambda: pk.encrypt_array(x))
    t_again, cx = timed(lambda: pk.encrypt_array(x))
    cy = pk.encrypt_array(y)
    cy_phe = [ppk.encrypt(v) for v in ys]
    rows.append(("encrypt, fresh key incl. table", phe_rate, size / t_fresh, (size / t_fresh) / phe_rate, "/s"))
    rows.append(("encrypt", phe_rate, size / t_again, (size / t_again) / phe_rate, "/s"))
    enc_phe_rate = phe_rate
    sk.precompute()  # the CRT tables, once per key (like the public key's table above)
    t, cx_crt = timed(lambda: sk.encrypt_array(x))
    assert np.abs(sk.decrypt_array(cx_crt)[:50] - x[:50]).max() < 1e-6
    rows.append(("encrypt, CRT (secret key)", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # decryption
    t, dec_phe = timed(lambda: [psk.decrypt(c) for c in cx_phe])
    phe_rate = len(xs) / t
    t, dec = timed(lambda: sk.decrypt_array(cx))
    assert np.abs(dec - x).max() < 1e-6 and np.abs(np.array(dec_phe) - x[:phe_sample]).max() < 1e-6
    rows.append(("decrypt", phe_rate, size / t, (size / t) / phe_rate, "/s"))
    dec_phe_rate = phe_rate

    # ciphertext + ciphertext
    t, s_phe = timed(lambda: [a + b for a, b in zip(cx_phe, cy_phe)])
    phe_rate = len(xs) / t
    t, s = timed(lambda: cx.add(cy), repeat=3)
    assert np.abs(sk.decrypt_array(s)[:50] - (x + y)[:50]).max() < 1e-6
    assert abs(psk.decrypt(s_phe[0]) - (xs[0] + ys[0])) < 1e-6
    rows.append(("add ct + ct", phe_rate, size / t, (size / t) / phe_rate, "/s"))
    add_phe_rate = phe_rate

    # negation (phe: ct * -1, a modular inversion each; ours: one batched inversion per worker)
    t, n_phe = timed(lambda: [a * -1 for a in cx_phe])
    phe_rate = len(xs) / t
    t, neg = timed(lambda: cx.negate())
    assert np.abs(sk.decrypt_array(neg)[:50] + x[:50]).max() < 1e-6
    rows.append(("negate", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # ciphertext * float scalar
    t, m_phe = timed(lambda: [a * scalar for a in cx_phe])
    phe_rate = len(xs) / t
    t, mm = timed(lambda: cx.mul_scalar(scalar))
    assert np.abs(sk.decrypt_array(mm)[:50] - scalar * x[:50]).max() < 1e-6
    assert abs(psk.decrypt(m_phe[0]) - scalar * xs[0]) < 1e-6
    rows.append(("multiply ct * float scalar", phe_rate, size / t, (size / t) / phe_rate, "/s"))
    mul_phe_rate = phe_rate

    # ciphertext * float vector (elementwise)
    t, mv_phe = timed(lambda: [a * b for a, b in zip(cx_phe, ys)])
    phe_rate = len(xs) / t
    t, mv = timed(lambda: cx.mul_plain(y))
    assert np.abs(sk.decrypt_array(mv)[:50] - (x * y)[:50]).max() < 1e-6
    rows.append(("multiply ct * float vector", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # packed: per-value rates against phe's per-value rates measured above
    slots = pk.packed_slots(slot_bits)
    t, px = timed(lambda: pk.encrypt_array(x, pack=True, slot_bits=slot_bits))
    py_ = pk.encrypt_array(y, pack=True, slot_bits=slot_bits)
    tag = f"packed ({slots}/ct)"
    rows.append((f"encrypt, {tag}", enc_phe_rate, size / t, (size / t) / enc_phe_rate, "/s"))
    t, _ = timed(lambda: sk.encrypt_array(x, pack=True, slot_bits=slot_bits))
    rows.append((f"encrypt, {tag}, CRT", enc_phe_rate, size / t, (size / t) / enc_phe_rate, "/s"))
    t, dec = timed(lambda: sk.decrypt_array(px))
    assert np.abs(dec - x).max() < 1e-6
    rows.append((f"decrypt, {tag}", dec_phe_rate, size / t, (size / t) / dec_phe_rate, "/s"))
    t, ps = timed(lambda: px + py_, repeat=3)
    assert np.abs(sk.decrypt_array(ps) - (x + y)).max() < 1e-6
    rows.append((f"add ct + ct, {tag}", add_phe_rate, size / t, (size / t) / add_phe_rate, "/s"))
    t, pm = timed(lambda: px * scalar)
    assert np.abs(sk.decrypt_array(pm) - scalar * x).max() < 1e-6
    rows.append((f"multiply ct * float scalar, {tag}", mul_phe_rate, size / t, (size / t) / mul_phe_rate, "/s"))
    return rows


def bench_fedavg(bits, slot_bits):
    """One round of encrypted FedAVG, unpacked vs packed (seconds per round; both checked against plaintext)."""
    import torch
    from torch import nn

    from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
    from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
    from aijack_lab.defense.paillier import PaillierGradientClientManager, PaillierKeyGenerator, PaillierKeySizeWarning
    from aijack_lab.models import make_digits_model

    X_train, y_train, X_test, y_test = load_digits()
    parts = [p[:200] for p in partition_iid(len(X_train), 3, seed=0)]

    def run(client_cls):
        loaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
        NN = lambda: make_digits_model("mlp", seed=0, hidden=16)
        clients = [client_cls(NN(), user_id=i) for i in range(3)]
        server = FedAVGServer(clients, NN())
        opts = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
        api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=1)
        t0 = time.perf_counter()
        hist = api.run()
        return time.perf_counter() - t0, server, hist

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        pk, sk = PaillierKeyGenerator(bits).generate_keypair()
    t_plain, plain, _ = run(FedAVGClient)
    t_un, un, hist_un = run(PaillierGradientClientManager(pk, sk).attach(FedAVGClient))
    t_pk, pkd, hist_pk = run(PaillierGradientClientManager(pk, sk, packing=True, slot_bits=slot_bits).attach(FedAVGClient))
    for server in (un, pkd):
        diff = max((a - b).abs().max().item() for a, b in zip(plain.server_model.parameters(), server.server_model.parameters()))
        assert diff < 1e-4, diff
    n_params = sum(p.numel() for p in plain.server_model.parameters())
    return t_plain, t_un, t_pk, hist_un[0]["bytes_uploaded"], hist_pk[0]["bytes_uploaded"], n_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="worker threads of aijack_lab's core (default 1)")
    parser.add_argument("--size", type=int, default=5_000, help="vector length for aijack_lab (default 5000)")
    parser.add_argument("--phe-sample", type=int, default=200, help="values phe is timed on (default 200)")
    parser.add_argument("--bits", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--keygen-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slot-bits", type=int, default=128, help="slot width of the packed rows (default 128)")
    parser.add_argument("--fedavg", action=argparse.BooleanOptionalAction, default=True,
                        help="also time one encrypted FedAVG round, unpacked vs packed (default on)")
    args = parser.parse_args(argv)

    import torch

    from aijack_lab.defense.paillier import set_num_threads

    torch.set_num_threads(args.threads)
    set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    print(f"Paillier, aijack_lab core vs phe (gmpy2); {args.size} float values for aijack_lab, "
          f"{args.phe_sample} for phe; aijack_lab threads = {args.threads}\n")
    print("| n bits | operation | phe | aijack_lab | ratio (x phe) |")
    print("|---|---|---|---|---|")
    for bits in args.bits:
        for name, p, o, ratio, unit in bench_bits(bits, args.size, min(args.phe_sample, args.size),
                                                  args.keygen_repeats, rng, args.slot_bits):
            fmt = (lambda v: f"{v:.3f} s") if unit == "s" else (lambda v: f"{v:,.0f}/s")
            print(f"| {bits} | {name} | {fmt(p)} | {fmt(o)} | {ratio:.1f} |", flush=True)
    if args.fedavg:
        print("\n| n bits | FedAVG, 3 clients, 1 round | plaintext | Paillier unpacked | Paillier packed | packed speed-up |")
        print("|---|---|---|---|---|---|")
        for bits in args.bits:
            t_plain, t_un, t_pk, b_un, b_pk, n_params = bench_fedavg(bits, args.slot_bits)
            print(f"| {bits} | seconds per round ({n_params:,} parameters) | {t_plain:.2f} s | {t_un:.2f} s | "
                  f"{t_pk:.2f} s | {t_un / t_pk:.1f}x |")
            print(f"| {bits} | bytes uploaded per round | {n_params * 3 * 4:,} | {b_un:,} | {b_pk:,} | "
                  f"{b_un / b_pk:.1f}x less |", flush=True)


if __name__ == "__main__":
    main()
