"""Paillier: aijack_lab's C++ core vs python-paillier (``phe`` with gmpy2), measured in one run.

For n of 1024 and 2048 bits: key generation, then encrypting, decrypting, adding two encrypted
vectors, multiplying an encrypted vector by a float scalar and by a float vector, on a
``--size``-element float vector (default 10,000). phe is a per-value Python loop, so its rate is
measured on the first ``--phe-sample`` values (default 300) and stated per value; aijack_lab runs
the whole vector in batch calls on ``--threads`` worker threads (default 1). Encryption is timed
twice for aijack_lab: with a fresh key (including the one-off fixed-base table) and again.

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


def bench_bits(bits, size, phe_sample, keygen_repeats, rng):
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

    # decryption
    t, dec_phe = timed(lambda: [psk.decrypt(c) for c in cx_phe])
    phe_rate = len(xs) / t
    t, dec = timed(lambda: sk.decrypt_array(cx))
    assert np.abs(dec - x).max() < 1e-6 and np.abs(np.array(dec_phe) - x[:phe_sample]).max() < 1e-6
    rows.append(("decrypt", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # ciphertext + ciphertext
    t, s_phe = timed(lambda: [a + b for a, b in zip(cx_phe, cy_phe)])
    phe_rate = len(xs) / t
    t, s = timed(lambda: cx.add(cy), repeat=3)
    assert np.abs(sk.decrypt_array(s)[:50] - (x + y)[:50]).max() < 1e-6
    assert abs(psk.decrypt(s_phe[0]) - (xs[0] + ys[0])) < 1e-6
    rows.append(("add ct + ct", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # ciphertext * float scalar
    t, m_phe = timed(lambda: [a * scalar for a in cx_phe])
    phe_rate = len(xs) / t
    t, mm = timed(lambda: cx.mul_scalar(scalar))
    assert np.abs(sk.decrypt_array(mm)[:50] - scalar * x[:50]).max() < 1e-6
    assert abs(psk.decrypt(m_phe[0]) - scalar * xs[0]) < 1e-6
    rows.append(("multiply ct * float scalar", phe_rate, size / t, (size / t) / phe_rate, "/s"))

    # ciphertext * float vector (elementwise)
    t, mv_phe = timed(lambda: [a * b for a, b in zip(cx_phe, ys)])
    phe_rate = len(xs) / t
    t, mv = timed(lambda: cx.mul_plain(y))
    assert np.abs(sk.decrypt_array(mv)[:50] - (x * y)[:50]).max() < 1e-6
    rows.append(("multiply ct * float vector", phe_rate, size / t, (size / t) / phe_rate, "/s"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="worker threads of aijack_lab's core (default 1)")
    parser.add_argument("--size", type=int, default=10_000, help="vector length for aijack_lab (default 10000)")
    parser.add_argument("--phe-sample", type=int, default=300, help="values phe is timed on (default 300)")
    parser.add_argument("--bits", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--keygen-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
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
                                                  args.keygen_repeats, rng):
            fmt = (lambda v: f"{v:.3f} s") if unit == "s" else (lambda v: f"{v:,.0f}/s")
            print(f"| {bits} | {name} | {fmt(p)} | {fmt(o)} | {ratio:.1f} |", flush=True)


if __name__ == "__main__":
    main()
