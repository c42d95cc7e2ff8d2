// Paillier homomorphic encryption (Paillier, EUROCRYPT 1999) on GMP: the reusable C++ API.
//
// This header is the stable C++ interface of aijack_lab's Paillier core; other C++ features
// (e.g. SecureBoost's encrypted histograms) include it and link against cpp/src/paillier.cpp,
// which is compiled into the same extension module.
//
// Conventions
// -----------
// * A key of `bits` bits means the modulus n = p*q has exactly `bits` bits (p, q: probable primes
//   of bits/2 bits each, top two bits set). g = n + 1.
// * Plaintexts are signed integers m with |m| <= max_int = floor(n/3) - 1, stored as m mod n.
//   A decrypted residue in (max_int, n - max_int) is reported as an overflow (std::overflow_error).
// * Fixed-point reals: a value x is the integer round(x * 2^s) with s = `scale_bits` fractional
//   bits (default kDefaultPrecision = 32, i.e. an absolute resolution of 2^-33 ~ 1.2e-10 per
//   encoding). Adding aligns scales by multiplying the lower one's plaintext by a power of two;
//   multiplying by a real scalar adds that scalar's fractional bits to the scale.
// * Randomness for encryption is Damgard-Jurik-Nielsen's (PKC 2010) short-exponent form:
//   r^n mod n^2 is replaced by hs^a, hs = h^n mod n^2 for h = -x^2 mod n, with a drawn from the
//   OS CSPRNG (getrandom) with ceil(bits/2) bits. hs is part of the public key. Exponentiation
//   with the fixed base hs uses a windowed precomputed table (built on first bulk use).
// * Decryption uses the CRT (two half-size exponentiations mod p^2 and q^2).
// * Batch functions run on std::thread workers (num_threads() by default) and never touch Python:
//   callers may release the GIL around them.
// * Errors: std::invalid_argument for malformed input (foreign or out-of-group ciphertexts,
//   corrupt bytes, bad key sizes), std::range_error for plaintexts out of range (and NaN/inf),
//   std::overflow_error for a decryption that falls outside the plaintext range.
//
// Thread safety: PublicKey/SecretKey are immutable after construction (the lazily built table
// is guarded by std::call_once) and may be shared by any number of threads.
//
// Example (e.g. encrypted gradient histograms):
//   using namespace aijack::paillier;
//   KeyPair kp = generate_keypair(2048);
//   std::vector<double> g = ...;                                  // per-sample gradients
//   CiphertextVector eg = encrypt_reals(kp.public_key, g.data(), g.size());  // threaded, scale 2^-32
//   // a passive party sums the ciphertexts of the samples in one bin, without the secret key:
//   mpz_class acc = 1;                                            // Enc(0)
//   for (std::size_t i : bin) acc = eg.pk->add(acc, eg.values[i]);
//   Ciphertext bin_sum{eg.pk, acc, eg.scale_bits};
//   double s = decode_real(kp.secret_key->decrypt(bin_sum.value), bin_sum.scale_bits);
#pragma once

#include <gmpxx.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace aijack {
namespace paillier {

constexpr int kDefaultPrecision = 32;   // fractional bits of encoded reals
constexpr unsigned kMinKeyBits = 512;   // teaching only; 2048 is the default everywhere
constexpr unsigned kMaxKeyBits = 8192;
constexpr int kMaxScaleBits = 1 << 16;  // guard against runaway fixed-point scales

// ---- randomness and threads ---------------------------------------------------------------
// `len` bytes from the OS CSPRNG (getrandom(2), retried on EINTR and short reads).
void os_random_bytes(unsigned char *out, std::size_t len);
// A uniform integer in [0, 2^bits) from the OS CSPRNG.
mpz_class os_random_bits(unsigned bits);
// Worker threads used by batch functions when they are given threads <= 0.
int num_threads();
void set_num_threads(int n);  // n <= 0 restores the default (hardware threads)

// Runs f(begin, end) over [0, n) split across `threads` workers (<= 0: num_threads()); an
// exception thrown by a worker is rethrown in the caller after all workers have joined.
template <class F>
void parallel_for(std::size_t n, int threads, F &&f, std::size_t min_chunk = 1);

// ---- keys -------------------------------------------------------------------------------------
// A fixed-base windowed table for base^a mod `modulus`, a of at most `exp_bits` bits (defined in
// paillier.cpp): the public key's hs^a mod n^2, and the secret key's mod p^2 and q^2 (CRT encryption).
struct FixedBaseTable;

class PublicKey {
 public:
  // n: the modulus (odd, kMinKeyBits..kMaxKeyBits bits). hs: DJN base h^n mod n^2; 0 draws one.
  explicit PublicKey(const mpz_class &n, const mpz_class &hs = 0);

  const mpz_class &n() const { return n_; }
  const mpz_class &n_squared() const { return n2_; }
  const mpz_class &max_int() const { return max_int_; }
  const mpz_class &hs() const { return hs_; }
  unsigned bits() const { return bits_; }
  unsigned randomness_bits() const { return rand_bits_; }
  std::size_t ciphertext_bytes() const { return ct_bytes_; }  // bytes of one ciphertext (size of n^2)
  std::uint64_t fingerprint() const { return fingerprint_; }  // FNV-1a 64 of n (not cryptographic)
  bool same_key(const PublicKey &other) const;

  // Signed integer -> residue in [0, n); std::range_error when |m| > max_int.
  mpz_class encode(const mpz_class &m) const;
  // Residue in [0, n) -> signed integer; std::overflow_error in the overflow band.
  mpz_class decode(const mpz_class &residue) const;

  // Encryption of a residue m in [0, n) (raw) or of a signed integer m (encrypt).
  mpz_class raw_encrypt(const mpz_class &m) const;
  mpz_class encrypt(const mpz_class &m) const { return raw_encrypt(encode(m)); }
  // Batch encryption of signed integers.
  std::vector<mpz_class> encrypt_batch(const std::vector<mpz_class> &m, int threads = 0) const;
  // A fresh random n-th residue hs^a mod n^2 (multiply a ciphertext by it to re-randomise it).
  mpz_class random_mask() const;

  // Homomorphic operations on raw ciphertexts (no key/range checks; see check_ciphertext).
  mpz_class add(const mpz_class &c1, const mpz_class &c2) const;        // m1 + m2
  mpz_class add_plain(const mpz_class &c, const mpz_class &m) const;    // m + m2 (m2 signed)
  mpz_class mul_plain(const mpz_class &c, const mpz_class &k) const;    // m * k (k signed)
  mpz_class negate(const mpz_class &c) const;                           // -m
  mpz_class shift_plain(const mpz_class &c, unsigned bits) const;       // m * 2^bits
  std::vector<mpz_class> add_batch(const std::vector<mpz_class> &a, const std::vector<mpz_class> &b,
                                   int threads = 0) const;
  // Sum of all ciphertexts (encryption of the sum of plaintexts; Enc(0) = 1 when empty).
  mpz_class sum(const std::vector<mpz_class> &c, int threads = 0) const;
  // Throws std::invalid_argument unless 0 < c < n^2 and gcd(c, n) = 1.
  void check_ciphertext(const mpz_class &c) const;

  // Builds the fixed-base table now (otherwise built on first bulk encryption).
  void precompute() const;
  bool precomputed() const { return table_ready_.load(); }

  // Serialization: "AJPK" v1 | bits | n | hs | FNV-1a 64 checksum. from_bytes validates everything.
  std::string to_bytes() const;
  static std::shared_ptr<PublicKey> from_bytes(const std::string &data);

 private:
  void mask_into(mpz_t out, const unsigned char *random, mpz_t tmp) const;  // hs^a from random bytes
  void build_table() const;

  mpz_class n_, n2_, max_int_, hs_;
  unsigned bits_ = 0, rand_bits_ = 0;
  std::size_t ct_bytes_ = 0;
  std::uint64_t fingerprint_ = 0;
  int window_ = 6;
  mutable std::once_flag table_once_;
  mutable std::shared_ptr<const FixedBaseTable> table_;  // hs^a mod n^2, built on first use
  mutable std::atomic<bool> table_ready_{false};
  mutable std::atomic<std::uint64_t> encryptions_{0};
};

class SecretKey {
 public:
  // p, q: the primes with p * q == pk->n() (checked).
  SecretKey(std::shared_ptr<const PublicKey> pk, const mpz_class &p, const mpz_class &q);

  const std::shared_ptr<const PublicKey> &public_key() const { return pk_; }
  const mpz_class &p() const { return p_; }
  const mpz_class &q() const { return q_; }

  mpz_class raw_decrypt(const mpz_class &c) const;                 // residue in [0, n)
  mpz_class decrypt(const mpz_class &c) const { return pk_->decode(raw_decrypt(c)); }  // signed
  std::vector<mpz_class> decrypt_batch(const std::vector<mpz_class> &c, int threads = 0) const;  // signed

  // CRT encryption for a holder of the secret key: the same ciphertext distribution as
  // PublicKey::encrypt (hs^a with a of randomness_bits() bits), but hs^a is computed mod p^2 and
  // mod q^2 from two half-size fixed-base tables (built on first use) and recombined. The result
  // decrypts with any path, and PublicKey ciphertexts decrypt here alike.
  mpz_class encrypt(const mpz_class &m) const;                                             // signed m
  std::vector<mpz_class> encrypt_batch(const std::vector<mpz_class> &m, int threads = 0) const;  // signed
  void precompute() const;  // builds the CRT tables now

  // Serialization: "AJSK" v1 | public key bytes | p | q | checksum.
  std::string to_bytes() const;
  static std::shared_ptr<SecretKey> from_bytes(const std::string &data);

 private:
  void crt_mask_into(mpz_t out, const unsigned char *random, mpz_t xp, mpz_t xq, mpz_t tmp) const;

  std::shared_ptr<const PublicKey> pk_;
  mpz_class p_, q_, p2_, q2_, pm1_, qm1_, hp_, hq_, q_inv_p_, q2_inv_p2_;
  mutable std::once_flag crt_once_;
  mutable std::shared_ptr<const FixedBaseTable> tp_, tq_;  // hs mod p^2, hs mod q^2
};

struct KeyPair {
  std::shared_ptr<const PublicKey> public_key;
  std::shared_ptr<const SecretKey> secret_key;
};

// New key pair with an n of exactly `bits` bits (even, kMinKeyBits..kMaxKeyBits). Primes come from
// the OS CSPRNG; `seed` makes generation deterministic (teaching demos only, never for real use).
// Each prime passes GMP's Baillie-PSW test plus 40 Miller-Rabin rounds with random bases.
KeyPair generate_keypair(unsigned bits, std::optional<std::uint64_t> seed = std::nullopt);

// ---- fixed-point encoding -------------------------------------------------------------------
// round(x * 2^scale_bits) (ties away from zero); std::range_error for NaN/inf.
mpz_class encode_real(double x, int scale_bits);
// m / 2^scale_bits as the nearest double (inf beyond the double range).
double decode_real(const mpz_class &m, int scale_bits);
// A real scalar as k * 2^-scale with k an integer of at most `precision` fractional bits and
// trailing zero bits removed (integral doubles below 2^53 give scale 0).
std::pair<mpz_class, int> encode_scalar(double x, int precision = kDefaultPrecision);

// ---- ciphertexts with their key and scale -----------------------------------------------------
struct Ciphertext {
  std::shared_ptr<const PublicKey> pk;
  mpz_class value;     // in (0, n^2)
  int scale_bits = 0;  // plaintext = m / 2^scale_bits
};

struct CiphertextVector {
  std::shared_ptr<const PublicKey> pk;
  std::vector<mpz_class> values;
  int scale_bits = 0;
};

// Throws std::invalid_argument unless both are under the same public key.
void check_same_key(const PublicKey &a, const PublicKey &b);
// The ciphertext re-encoded at a larger scale (plaintext multiplied by 2^(to - from)).
Ciphertext rescale(const Ciphertext &c, int to_scale_bits);
CiphertextVector rescale(const CiphertextVector &c, int to_scale_bits, int threads = 0);

Ciphertext operator+(const Ciphertext &a, const Ciphertext &b);
Ciphertext add_plain_int(const Ciphertext &a, const mpz_class &m);
Ciphertext add_plain_real(const Ciphertext &a, double x, int precision = kDefaultPrecision);
Ciphertext mul_plain_int(const Ciphertext &a, const mpz_class &k);
Ciphertext mul_plain_real(const Ciphertext &a, double x, int precision = kDefaultPrecision);
Ciphertext operator-(const Ciphertext &a);

CiphertextVector encrypt_reals(std::shared_ptr<const PublicKey> pk, const double *x, std::size_t n,
                               int precision = kDefaultPrecision, int threads = 0);
CiphertextVector encrypt_ints(std::shared_ptr<const PublicKey> pk, const std::vector<mpz_class> &m,
                              int threads = 0);
std::vector<double> decrypt_reals(const SecretKey &sk, const CiphertextVector &c, int threads = 0);
std::vector<mpz_class> decrypt_ints(const SecretKey &sk, const CiphertextVector &c, int threads = 0);  // rounded
CiphertextVector add(const CiphertextVector &a, const CiphertextVector &b, int threads = 0);
CiphertextVector add_plain_reals(const CiphertextVector &a, const double *x, std::size_t n,
                                 int precision = kDefaultPrecision, int threads = 0);
CiphertextVector add_plain_ints(const CiphertextVector &a, const std::vector<mpz_class> &m, int threads = 0);
CiphertextVector mul_plain_reals(const CiphertextVector &a, const double *x, std::size_t n,
                                 int precision = kDefaultPrecision, int threads = 0);
CiphertextVector mul_plain_ints(const CiphertextVector &a, const std::vector<mpz_class> &k, int threads = 0);
CiphertextVector mul_scalar_real(const CiphertextVector &a, double x, int precision = kDefaultPrecision,
                                 int threads = 0);
CiphertextVector mul_scalar_int(const CiphertextVector &a, const mpz_class &k, int threads = 0);
CiphertextVector negate(const CiphertextVector &a, int threads = 0);
Ciphertext sum(const CiphertextVector &a, int threads = 0);

// ---- packed (slot) encoding -----------------------------------------------------------------
// Several signed integers per ciphertext, as BatchCrypt (Zhang et al., USENIX ATC 2020) and FATE
// do: value i goes to ciphertext i / slots, slot i % slots, and a ciphertext's plaintext is the
// signed integer M = sum_j v_j 2^(slot_bits * j) (negative slots borrow from the next one; decoding
// takes centred residues mod 2^slot_bits from the bottom up, which undoes the borrows). Every op is
// linear, so it acts slot-wise: ct+ct, ct+plain vector, ct*scalar (one scalar for all), negation.
// `bound` is a proven bound on |v_j| of every slot, tracked through each op; an op whose bound
// could exceed slot_limit = 2^(slot_bits-1) - 1 throws std::overflow_error before doing anything,
// so a slot never silently wraps into its neighbour. slots = floor((bits(n) - 3) / slot_bits) keeps
// |M| below max_int. Elementwise ct*vector is impossible on packed data (it would need a different
// factor per slot) and is not offered.
constexpr unsigned kDefaultSlotBits = 128;
constexpr unsigned kMinSlotBits = 8;

struct PackedVector {
  std::shared_ptr<const PublicKey> pk;
  std::vector<mpz_class> values;  // ceil(length / slots) ciphertexts
  std::size_t length = 0;         // packed values (the last ciphertext's spare slots hold 0)
  unsigned slot_bits = 0, slots = 0;
  int scale_bits = 0;             // value = slot integer / 2^scale_bits
  mpz_class bound;                // |slot integer| <= bound for every slot
};

// Slots per ciphertext for this key; std::invalid_argument when slot_bits is out of
// [kMinSlotBits, bits(n) - 3].
unsigned packed_slots(const PublicKey &pk, unsigned slot_bits);
// 2^(slot_bits-1) - 1: the largest slot magnitude.
mpz_class packed_slot_limit(unsigned slot_bits);
// Encrypt signed integers already at `scale_bits` (sk: CRT encryption, else public-key encryption).
PackedVector encrypt_packed_ints(std::shared_ptr<const PublicKey> pk, const std::vector<mpz_class> &m,
                                 unsigned slot_bits, int scale_bits = 0, int threads = 0,
                                 const SecretKey *sk = nullptr);
PackedVector encrypt_packed_reals(std::shared_ptr<const PublicKey> pk, const double *x, std::size_t n,
                                  unsigned slot_bits, int precision = kDefaultPrecision, int threads = 0,
                                  const SecretKey *sk = nullptr);
// The exact slot integers (at the vector's scale); std::overflow_error if a slot is outside its
// bound or the spare bits are not zero (tampered data, another key).
std::vector<mpz_class> decrypt_packed_slots(const SecretKey &sk, const PackedVector &c, int threads = 0);
std::vector<double> decrypt_packed_reals(const SecretKey &sk, const PackedVector &c, int threads = 0);
std::vector<mpz_class> decrypt_packed_ints(const SecretKey &sk, const PackedVector &c, int threads = 0);  // rounded
PackedVector rescale(const PackedVector &c, int to_scale_bits, int threads = 0);
PackedVector add(const PackedVector &a, const PackedVector &b, int threads = 0);
PackedVector add_plain_ints(const PackedVector &a, const std::vector<mpz_class> &m, int threads = 0);
PackedVector add_plain_reals(const PackedVector &a, const double *x, std::size_t n, int precision = kDefaultPrecision,
                             int threads = 0);
PackedVector mul_scalar_int(const PackedVector &a, const mpz_class &k, int threads = 0);
PackedVector mul_scalar_real(const PackedVector &a, double x, int precision = kDefaultPrecision, int threads = 0);
PackedVector negate(const PackedVector &a, int threads = 0);
// "AJPV" v1 | fingerprint | length | slot_bits | scale | bound | ciphertexts | checksum.
std::string to_bytes(const PackedVector &c);
PackedVector packed_vector_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data);

// Serialization of ciphertexts: "AJCT"/"AJCV" v1 | key fingerprint | scale | fixed-width values |
// checksum. Parsing checks the fingerprint against `pk`, the checksum and each value's group
// membership, and throws std::invalid_argument on any mismatch.
std::string to_bytes(const Ciphertext &c);
Ciphertext ciphertext_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data);
std::string to_bytes(const CiphertextVector &c);
CiphertextVector ciphertext_vector_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data);

}  // namespace paillier
}  // namespace aijack

// ---- template implementation ----------------------------------------------------------------
#include <algorithm>
#include <exception>
#include <thread>

template <class F>
void aijack::paillier::parallel_for(std::size_t n, int threads, F &&f, std::size_t min_chunk) {
  if (n == 0) return;
  std::size_t t = threads > 0 ? static_cast<std::size_t>(threads) : static_cast<std::size_t>(num_threads());
  if (min_chunk == 0) min_chunk = 1;
  t = std::max<std::size_t>(1, std::min(t, (n + min_chunk - 1) / min_chunk));
  if (t == 1) {
    f(std::size_t{0}, n);
    return;
  }
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(t);
  std::size_t chunk = (n + t - 1) / t;
  for (std::size_t w = 0; w < t; ++w) {
    std::size_t begin = w * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    workers.emplace_back([&, w, begin, end]() {
      try {
        f(begin, end);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  for (auto &th : workers) th.join();
  for (auto &e : errors)
    if (e) std::rethrow_exception(e);
}
