// Paillier homomorphic encryption on GMP (see cpp/include/aijack/paillier.hpp for the API and
// its conventions) and its Python bindings, aijack_lab._core.paillier.
#include "aijack/paillier.hpp"

#include <errno.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/random.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "aijack/module.hpp"

namespace aijack {
namespace paillier {

// ---- randomness, threads -------------------------------------------------------------------
void os_random_bytes(unsigned char *out, std::size_t len) {
  std::size_t done = 0;
  while (done < len) {
    ssize_t r = getrandom(out + done, len - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom() failed: the OS random source is unavailable");
    }
    done += static_cast<std::size_t>(r);
  }
}

static mpz_class bits_from_bytes(const unsigned char *buf, unsigned bits) {
  mpz_class x;
  std::size_t nbytes = (bits + 7) / 8;
  mpz_import(x.get_mpz_t(), nbytes, -1, 1, 0, 0, buf);  // little-endian bytes
  mpz_fdiv_r_2exp(x.get_mpz_t(), x.get_mpz_t(), bits);
  return x;
}

mpz_class os_random_bits(unsigned bits) {
  std::vector<unsigned char> buf((bits + 7) / 8 + 1);
  os_random_bytes(buf.data(), buf.size());
  return bits_from_bytes(buf.data(), bits);
}

static std::atomic<int> g_threads{0};

int num_threads() {
  int t = g_threads.load();
  if (t > 0) return t;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0); }

// ---- small helpers --------------------------------------------------------------------------
static std::uint64_t fnv1a(const unsigned char *data, std::size_t len, std::uint64_t h = 1469598103934665603ULL) {
  for (std::size_t i = 0; i < len; ++i) {
    h ^= data[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static std::string mpz_to_be(const mpz_class &x) {
  std::size_t count = (mpz_sizeinbase(x.get_mpz_t(), 2) + 7) / 8;
  std::string out(count, '\0');
  std::size_t written = 0;
  if (sgn(x) != 0) mpz_export(&out[0], &written, 1, 1, 1, 0, x.get_mpz_t());
  out.resize(written);
  return out;
}

static mpz_class be_to_mpz(const unsigned char *data, std::size_t len) {
  mpz_class x;
  if (len) mpz_import(x.get_mpz_t(), len, 1, 1, 1, 0, data);
  return x;
}

namespace {
struct Writer {
  std::string buf;
  void raw(const void *p, std::size_t n) { buf.append(static_cast<const char *>(p), n); }
  void u8(std::uint8_t v) { buf.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  void blob(const std::string &s) {
    u32(static_cast<std::uint32_t>(s.size()));
    buf += s;
  }
  void fixed(const mpz_class &x, std::size_t width) {  // big-endian, left-padded
    std::string b = mpz_to_be(x);
    buf.append(width - b.size(), '\0');
    buf += b;
  }
  std::string finish() {
    u64(fnv1a(reinterpret_cast<const unsigned char *>(buf.data()), buf.size()));
    return buf;
  }
};

struct Reader {
  const unsigned char *p;
  std::size_t n, pos = 0;
  const char *what;
  Reader(const std::string &data, const char *magic, const char *what_) : what(what_) {
    if (data.size() < 13) fail("too short");
    p = reinterpret_cast<const unsigned char *>(data.data());
    n = data.size() - 8;
    std::uint64_t stored = 0;
    for (int i = 0; i < 8; ++i) stored |= static_cast<std::uint64_t>(p[n + i]) << (8 * i);
    if (std::memcmp(p, magic, 4) != 0) fail("wrong magic bytes (not this kind of object)");
    if (fnv1a(p, n) != stored) fail("checksum mismatch (corrupted or tampered bytes)");
    pos = 4;
    if (u8() != 1) fail("unsupported format version");
  }
  [[noreturn]] void fail(const std::string &why) const {
    throw std::invalid_argument(std::string("cannot parse ") + what + ": " + why);
  }
  void need(std::size_t k) const {
    if (pos + k > n) fail("truncated data");
  }
  std::uint8_t u8() {
    need(1);
    return p[pos++];
  }
  std::uint32_t u32() {
    need(4);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[pos++]) << (8 * i);
    return v;
  }
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[pos++]) << (8 * i);
    return v;
  }
  std::string blob() {
    std::uint32_t len = u32();
    need(len);
    std::string s(reinterpret_cast<const char *>(p + pos), len);
    pos += len;
    return s;
  }
  mpz_class fixed(std::size_t width) {
    need(width);
    mpz_class x = be_to_mpz(p + pos, width);
    pos += width;
    return x;
  }
  void done() const {
    if (pos != n) fail("trailing bytes");
  }
};
}  // namespace

// ---- batch inversion ------------------------------------------------------------------------
// Montgomery's trick: inverts every *v[i] mod m with one mpz_invert and 3 multiplications per
// element (an mpz_invert mod n^2 costs far more than a multiplication).
static void batch_invert(std::vector<mpz_class *> &v, const mpz_class &m) {
  if (v.empty()) return;
  std::vector<mpz_class> prefix(v.size());
  mpz_class t;
  prefix[0] = *v[0];
  for (std::size_t i = 1; i < v.size(); ++i) {
    mpz_mul(t.get_mpz_t(), prefix[i - 1].get_mpz_t(), v[i]->get_mpz_t());
    mpz_tdiv_r(prefix[i].get_mpz_t(), t.get_mpz_t(), m.get_mpz_t());
  }
  mpz_class inv;
  if (mpz_invert(inv.get_mpz_t(), prefix.back().get_mpz_t(), m.get_mpz_t()) == 0)
    throw std::invalid_argument("ciphertext is not invertible mod n^2 (malformed ciphertext)");
  for (std::size_t i = v.size() - 1; i > 0; --i) {
    mpz_class vi_inv;
    mpz_mul(t.get_mpz_t(), inv.get_mpz_t(), prefix[i - 1].get_mpz_t());
    mpz_tdiv_r(vi_inv.get_mpz_t(), t.get_mpz_t(), m.get_mpz_t());
    mpz_mul(t.get_mpz_t(), inv.get_mpz_t(), v[i]->get_mpz_t());
    mpz_tdiv_r(inv.get_mpz_t(), t.get_mpz_t(), m.get_mpz_t());
    mpz_swap(v[i]->get_mpz_t(), vi_inv.get_mpz_t());
  }
  mpz_swap(v[0]->get_mpz_t(), inv.get_mpz_t());
}

// c[i]^k(i) mod n^2 for signed factors: k and k mod n act alike on plaintexts; a factor above n/2
// is a negative one, done as c^|k| and then inverted, all inversions of a worker batched.
template <class K>
static std::vector<mpz_class> powm_signed_batch(const PublicKey &pk, const std::vector<mpz_class> &c, K k_of,
                                                int threads) {
  std::vector<mpz_class> out(c.size());
  const mpz_class &n = pk.n(), &n2 = pk.n_squared();
  const mpz_class half = n / 2;
  parallel_for(
      c.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        std::vector<mpz_class *> neg;
        mpz_class e;
        for (std::size_t i = begin; i < end; ++i) {
          mpz_fdiv_r(e.get_mpz_t(), k_of(i).get_mpz_t(), n.get_mpz_t());
          bool negative = e > half;
          if (negative) e = n - e;
          mpz_powm(out[i].get_mpz_t(), c[i].get_mpz_t(), e.get_mpz_t(), n2.get_mpz_t());
          if (negative) neg.push_back(&out[i]);
        }
        batch_invert(neg, n2);
      },
      4);
  return out;
}

static std::vector<mpz_class> negate_batch(const PublicKey &pk, const std::vector<mpz_class> &c, int threads) {
  std::vector<mpz_class> out(c);
  parallel_for(
      out.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        std::vector<mpz_class *> ptrs;
        for (std::size_t i = begin; i < end; ++i) ptrs.push_back(&out[i]);
        batch_invert(ptrs, pk.n_squared());
      },
      16);
  return out;
}

// ---- fixed-base table (CRT encryption) -------------------------------------------------------
struct FixedBaseTable {
  mpz_class modulus;
  unsigned exp_bits = 0, window = 7;
  std::vector<mpz_class> table;  // table[i * (2^w - 1) + (j - 1)] = base^(j * 2^(w i))

  FixedBaseTable(const mpz_class &base, const mpz_class &mod, unsigned bits, unsigned w)
      : modulus(mod), exp_bits(bits), window(w) {
    const std::size_t rows = (exp_bits + w - 1) / w, per = (std::size_t{1} << w) - 1;
    std::vector<mpz_class> bases(rows);
    bases[0] = base % modulus;
    for (std::size_t i = 1; i < rows; ++i) {
      mpz_class b = bases[i - 1];
      for (unsigned s = 0; s < w; ++s) {
        b = b * b;
        mpz_tdiv_r(b.get_mpz_t(), b.get_mpz_t(), modulus.get_mpz_t());
      }
      bases[i] = b;
    }
    table.resize(rows * per);
    parallel_for(rows, 0, [&](std::size_t begin, std::size_t end) {
      mpz_class t;
      for (std::size_t i = begin; i < end; ++i) {
        table[i * per] = bases[i];
        for (std::size_t j = 1; j < per; ++j) {
          mpz_mul(t.get_mpz_t(), table[i * per + j - 1].get_mpz_t(), bases[i].get_mpz_t());
          mpz_tdiv_r(table[i * per + j].get_mpz_t(), t.get_mpz_t(), modulus.get_mpz_t());
        }
      }
    });
  }

  // base^a for a = the first exp_bits bits of `random` (little-endian bytes).
  void pow(mpz_t out, const unsigned char *random, mpz_t tmp) const {
    const std::size_t rows = (exp_bits + window - 1) / window, per = (std::size_t{1} << window) - 1;
    bool first = true;
    for (std::size_t i = 0; i < rows; ++i) {
      unsigned digit = 0;
      for (unsigned b = 0; b < window; ++b) {
        std::size_t bit = i * window + b;
        if (bit >= exp_bits) break;
        digit |= static_cast<unsigned>((random[bit >> 3] >> (bit & 7)) & 1u) << b;
      }
      if (digit == 0) continue;
      const mpz_class &entry = table[i * per + digit - 1];
      if (first) {
        mpz_set(out, entry.get_mpz_t());
        first = false;
      } else {
        mpz_mul(tmp, out, entry.get_mpz_t());
        mpz_tdiv_r(out, tmp, modulus.get_mpz_t());
      }
    }
    if (first) mpz_set_ui(out, 1);
  }
};

// ---- public key -----------------------------------------------------------------------------
PublicKey::PublicKey(const mpz_class &n, const mpz_class &hs) : n_(n) {
  if (sgn(n_) <= 0 || mpz_even_p(n_.get_mpz_t()))
    throw std::invalid_argument("Paillier modulus n must be a positive odd integer");
  bits_ = static_cast<unsigned>(mpz_sizeinbase(n_.get_mpz_t(), 2));
  if (bits_ < kMinKeyBits || bits_ > kMaxKeyBits)
    throw std::invalid_argument("Paillier modulus n must have " + std::to_string(kMinKeyBits) + " to " +
                                std::to_string(kMaxKeyBits) + " bits, got " + std::to_string(bits_));
  n2_ = n_ * n_;
  max_int_ = n_ / 3 - 1;
  rand_bits_ = (bits_ + 1) / 2;
  ct_bytes_ = (mpz_sizeinbase(n2_.get_mpz_t(), 2) + 7) / 8;
  std::string nb = mpz_to_be(n_);
  fingerprint_ = fnv1a(reinterpret_cast<const unsigned char *>(nb.data()), nb.size());
  window_ = bits_ <= 2048 ? 7 : 5;
  if (sgn(hs) == 0) {
    mpz_class x, g;
    do {
      x = os_random_bits(bits_ + 64) % n_;
      g = gcd(x, n_);
    } while (sgn(x) == 0 || g != 1);
    mpz_class h = n_ - (x * x) % n_;
    mpz_powm(hs_.get_mpz_t(), h.get_mpz_t(), n_.get_mpz_t(), n2_.get_mpz_t());
  } else {
    hs_ = hs;
    if (sgn(hs_) <= 0 || hs_ >= n2_ || gcd(hs_, n_) != 1)
      throw std::invalid_argument("Paillier public key: the randomness base hs is not a unit mod n^2");
  }
}

bool PublicKey::same_key(const PublicKey &other) const { return this == &other || n_ == other.n_; }

void check_same_key(const PublicKey &a, const PublicKey &b) {
  if (!a.same_key(b))
    throw std::invalid_argument("the ciphertexts/keys belong to different Paillier public keys");
}

mpz_class PublicKey::encode(const mpz_class &m) const {
  if (abs(m) > max_int_)
    throw std::range_error("plaintext out of range: |m| must be <= max_int = floor(n/3) - 1 (about 2^" +
                           std::to_string(mpz_sizeinbase(max_int_.get_mpz_t(), 2)) + ")");
  if (sgn(m) >= 0) return m;
  return n_ + m;
}

mpz_class PublicKey::decode(const mpz_class &r) const {
  if (r <= max_int_) return r;
  if (r >= n_ - max_int_) return r - n_;
  throw std::overflow_error(
      "decrypted value is outside the plaintext range (overflow, a ciphertext of another key, or a "
      "tampered ciphertext)");
}

void PublicKey::build_table() const {
  table_ = std::make_shared<const FixedBaseTable>(hs_, n2_, rand_bits_, static_cast<unsigned>(window_));
  table_ready_.store(true);
}

void PublicKey::precompute() const {
  std::call_once(table_once_, [this]() { build_table(); });
}

// hs^a mod n^2 for a = the first rand_bits_ bits of `random` (little-endian).
void PublicKey::mask_into(mpz_t out, const unsigned char *random, mpz_t tmp) const {
  if (!table_ready_.load()) {
    mpz_class a = bits_from_bytes(random, rand_bits_);
    mpz_powm(out, hs_.get_mpz_t(), a.get_mpz_t(), n2_.get_mpz_t());
    return;
  }
  table_->pow(out, random, tmp);
}

mpz_class PublicKey::random_mask() const {
  std::vector<unsigned char> buf((rand_bits_ + 7) / 8);
  os_random_bytes(buf.data(), buf.size());
  mpz_class out, tmp;
  mask_into(out.get_mpz_t(), buf.data(), tmp.get_mpz_t());
  return out;
}

mpz_class PublicKey::raw_encrypt(const mpz_class &m) const {
  if (sgn(m) < 0 || m >= n_) throw std::range_error("raw plaintext must be in [0, n)");
  if (encryptions_.fetch_add(1) + 1 >= 64) precompute();
  mpz_class c = m * n_ + 1;
  mpz_class mask = random_mask();
  mpz_mul(c.get_mpz_t(), c.get_mpz_t(), mask.get_mpz_t());
  mpz_tdiv_r(c.get_mpz_t(), c.get_mpz_t(), n2_.get_mpz_t());
  return c;
}

std::vector<mpz_class> PublicKey::encrypt_batch(const std::vector<mpz_class> &m, int threads) const {
  std::vector<mpz_class> residues(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) residues[i] = encode(m[i]);  // range checks first
  if (m.size() >= 16 || encryptions_.fetch_add(m.size()) + m.size() >= 64) precompute();
  std::vector<mpz_class> out(m.size());
  const std::size_t rb = (rand_bits_ + 7) / 8;
  parallel_for(
      m.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        std::vector<unsigned char> random((end - begin) * rb);
        os_random_bytes(random.data(), random.size());
        mpz_class mask, tmp;
        for (std::size_t i = begin; i < end; ++i) {
          mask_into(mask.get_mpz_t(), random.data() + (i - begin) * rb, tmp.get_mpz_t());
          mpz_class &c = out[i];
          c = residues[i] * n_ + 1;
          mpz_mul(tmp.get_mpz_t(), c.get_mpz_t(), mask.get_mpz_t());
          mpz_tdiv_r(c.get_mpz_t(), tmp.get_mpz_t(), n2_.get_mpz_t());
        }
      },
      8);
  return out;
}

mpz_class PublicKey::add(const mpz_class &c1, const mpz_class &c2) const {
  mpz_class r = c1 * c2;
  mpz_tdiv_r(r.get_mpz_t(), r.get_mpz_t(), n2_.get_mpz_t());
  return r;
}

mpz_class PublicKey::add_plain(const mpz_class &c, const mpz_class &m) const {
  mpz_class t = encode(m) * n_ + 1;
  return add(c, t);
}

mpz_class PublicKey::negate(const mpz_class &c) const {
  mpz_class r;
  if (mpz_invert(r.get_mpz_t(), c.get_mpz_t(), n2_.get_mpz_t()) == 0)
    throw std::invalid_argument("ciphertext is not invertible mod n^2 (malformed ciphertext)");
  return r;
}

mpz_class PublicKey::mul_plain(const mpz_class &c, const mpz_class &k) const {
  mpz_class e = k % n_;  // k and k mod n act alike on plaintexts mod n
  if (sgn(e) < 0) e += n_;
  bool negative = false;
  if (e > n_ / 2) {  // a negative scalar: invert and use the small exponent
    e = n_ - e;
    negative = true;
  }
  mpz_class r;
  mpz_powm(r.get_mpz_t(), c.get_mpz_t(), e.get_mpz_t(), n2_.get_mpz_t());
  return negative ? negate(r) : r;
}

mpz_class PublicKey::shift_plain(const mpz_class &c, unsigned bits) const {
  mpz_class r = c, t;
  for (unsigned i = 0; i < bits; ++i) {
    mpz_mul(t.get_mpz_t(), r.get_mpz_t(), r.get_mpz_t());
    mpz_tdiv_r(r.get_mpz_t(), t.get_mpz_t(), n2_.get_mpz_t());
  }
  return r;
}

std::vector<mpz_class> PublicKey::add_batch(const std::vector<mpz_class> &a, const std::vector<mpz_class> &b,
                                            int threads) const {
  if (a.size() != b.size()) throw std::invalid_argument("add_batch: the two batches differ in length");
  std::vector<mpz_class> out(a.size());
  parallel_for(
      a.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        mpz_class t;
        for (std::size_t i = begin; i < end; ++i) {
          mpz_mul(t.get_mpz_t(), a[i].get_mpz_t(), b[i].get_mpz_t());
          mpz_tdiv_r(out[i].get_mpz_t(), t.get_mpz_t(), n2_.get_mpz_t());
        }
      },
      256);
  return out;
}

mpz_class PublicKey::sum(const std::vector<mpz_class> &c, int threads) const {
  int t = threads > 0 ? threads : num_threads();
  std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(t, c.size() / 256));
  std::vector<mpz_class> partial(parts, mpz_class(1));
  std::size_t chunk = (c.size() + parts - 1) / std::max<std::size_t>(1, parts);
  parallel_for(parts, static_cast<int>(parts), [&](std::size_t begin, std::size_t end) {
    mpz_class tmp;
    for (std::size_t p = begin; p < end; ++p) {
      std::size_t lo = p * chunk, hi = std::min(c.size(), lo + chunk);
      for (std::size_t i = lo; i < hi; ++i) {
        mpz_mul(tmp.get_mpz_t(), partial[p].get_mpz_t(), c[i].get_mpz_t());
        mpz_tdiv_r(partial[p].get_mpz_t(), tmp.get_mpz_t(), n2_.get_mpz_t());
      }
    }
  });
  mpz_class acc = 1;
  for (auto &p : partial) acc = add(acc, p);
  return acc;
}

void PublicKey::check_ciphertext(const mpz_class &c) const {
  if (sgn(c) <= 0 || c >= n2_) throw std::invalid_argument("malformed ciphertext: value outside (0, n^2)");
  if (gcd(c, n_) != 1) throw std::invalid_argument("malformed ciphertext: not a unit mod n^2");
}

std::string PublicKey::to_bytes() const {
  Writer w;
  w.raw("AJPK", 4);
  w.u8(1);
  w.u32(bits_);
  w.blob(mpz_to_be(n_));
  w.blob(mpz_to_be(hs_));
  return w.finish();
}

std::shared_ptr<PublicKey> PublicKey::from_bytes(const std::string &data) {
  Reader r(data, "AJPK", "a Paillier public key");
  std::uint32_t bits = r.u32();
  std::string nb = r.blob(), hb = r.blob();
  r.done();
  mpz_class n = be_to_mpz(reinterpret_cast<const unsigned char *>(nb.data()), nb.size());
  mpz_class hs = be_to_mpz(reinterpret_cast<const unsigned char *>(hb.data()), hb.size());
  if (sgn(hs) == 0) r.fail("missing randomness base");
  auto pk = std::make_shared<PublicKey>(n, hs);
  if (pk->bits() != bits) r.fail("modulus size does not match the header");
  return pk;
}

// ---- secret key -----------------------------------------------------------------------------
static mpz_class L(const mpz_class &x, const mpz_class &d) { return (x - 1) / d; }

SecretKey::SecretKey(std::shared_ptr<const PublicKey> pk, const mpz_class &p, const mpz_class &q)
    : pk_(std::move(pk)), p_(p), q_(q) {
  if (!pk_) throw std::invalid_argument("secret key needs a public key");
  if (p_ <= 2 || q_ <= 2 || p_ == q_ || p_ * q_ != pk_->n())
    throw std::invalid_argument("Paillier secret key: p and q must be distinct primes with p * q == n");
  p2_ = p_ * p_;
  q2_ = q_ * q_;
  pm1_ = p_ - 1;
  qm1_ = q_ - 1;
  mpz_class g = pk_->n() + 1, t;
  mpz_powm(t.get_mpz_t(), g.get_mpz_t(), pm1_.get_mpz_t(), p2_.get_mpz_t());
  t = L(t, p_);
  if (mpz_invert(hp_.get_mpz_t(), t.get_mpz_t(), p_.get_mpz_t()) == 0)
    throw std::invalid_argument("Paillier secret key: p is not a valid factor");
  mpz_powm(t.get_mpz_t(), g.get_mpz_t(), qm1_.get_mpz_t(), q2_.get_mpz_t());
  t = L(t, q_);
  if (mpz_invert(hq_.get_mpz_t(), t.get_mpz_t(), q_.get_mpz_t()) == 0)
    throw std::invalid_argument("Paillier secret key: q is not a valid factor");
  if (mpz_invert(q_inv_p_.get_mpz_t(), q_.get_mpz_t(), p_.get_mpz_t()) == 0)
    throw std::invalid_argument("Paillier secret key: p and q are not coprime");
  if (mpz_invert(q2_inv_p2_.get_mpz_t(), q2_.get_mpz_t(), p2_.get_mpz_t()) == 0)
    throw std::invalid_argument("Paillier secret key: p and q are not coprime");
}

void SecretKey::precompute() const {
  std::call_once(crt_once_, [this]() {
    const unsigned w = pk_->bits() <= 2048 ? 7 : 5;
    tp_ = std::make_shared<const FixedBaseTable>(pk_->hs(), p2_, pk_->randomness_bits(), w);
    tq_ = std::make_shared<const FixedBaseTable>(pk_->hs(), q2_, pk_->randomness_bits(), w);
  });
}

// hs^a mod n^2 from hs^a mod p^2 and mod q^2 (Garner: x = xq + q^2 ((xp - xq) q^-2 mod p^2)).
void SecretKey::crt_mask_into(mpz_t out, const unsigned char *random, mpz_t xp, mpz_t xq, mpz_t tmp) const {
  tp_->pow(xp, random, tmp);
  tq_->pow(xq, random, tmp);
  mpz_sub(tmp, xp, xq);
  mpz_mul(xp, tmp, q2_inv_p2_.get_mpz_t());
  mpz_fdiv_r(tmp, xp, p2_.get_mpz_t());
  mpz_mul(out, tmp, q2_.get_mpz_t());
  mpz_add(out, out, xq);
}

std::vector<mpz_class> SecretKey::encrypt_batch(const std::vector<mpz_class> &m, int threads) const {
  std::vector<mpz_class> residues(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) residues[i] = pk_->encode(m[i]);  // range checks first
  precompute();
  std::vector<mpz_class> out(m.size());
  const std::size_t rb = (pk_->randomness_bits() + 7) / 8;
  const mpz_class &n = pk_->n(), &n2 = pk_->n_squared();
  parallel_for(
      m.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        std::vector<unsigned char> random((end - begin) * rb);
        os_random_bytes(random.data(), random.size());
        mpz_class mask, xp, xq, tmp;
        for (std::size_t i = begin; i < end; ++i) {
          crt_mask_into(mask.get_mpz_t(), random.data() + (i - begin) * rb, xp.get_mpz_t(), xq.get_mpz_t(),
                        tmp.get_mpz_t());
          mpz_class &c = out[i];
          c = residues[i] * n + 1;
          mpz_mul(tmp.get_mpz_t(), c.get_mpz_t(), mask.get_mpz_t());
          mpz_tdiv_r(c.get_mpz_t(), tmp.get_mpz_t(), n2.get_mpz_t());
        }
      },
      8);
  return out;
}

mpz_class SecretKey::encrypt(const mpz_class &m) const { return encrypt_batch({m}, 1)[0]; }

mpz_class SecretKey::raw_decrypt(const mpz_class &c) const {
  if (sgn(c) <= 0 || c >= pk_->n_squared())
    throw std::invalid_argument("malformed ciphertext: value outside (0, n^2)");
  mpz_class cp = c % p2_, cq = c % q2_, xp, xq;
  mpz_powm(xp.get_mpz_t(), cp.get_mpz_t(), pm1_.get_mpz_t(), p2_.get_mpz_t());
  mpz_powm(xq.get_mpz_t(), cq.get_mpz_t(), qm1_.get_mpz_t(), q2_.get_mpz_t());
  mpz_class mp = (L(xp, p_) * hp_) % p_;
  mpz_class mq = (L(xq, q_) * hq_) % q_;
  mpz_class u = ((mp - mq) * q_inv_p_) % p_;
  if (sgn(u) < 0) u += p_;
  return mq + u * q_;
}

std::vector<mpz_class> SecretKey::decrypt_batch(const std::vector<mpz_class> &c, int threads) const {
  std::vector<mpz_class> out(c.size());
  parallel_for(
      c.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) out[i] = decrypt(c[i]);
      },
      4);
  return out;
}

std::string SecretKey::to_bytes() const {
  Writer w;
  w.raw("AJSK", 4);
  w.u8(1);
  w.blob(pk_->to_bytes());
  w.blob(mpz_to_be(p_));
  w.blob(mpz_to_be(q_));
  return w.finish();
}

std::shared_ptr<SecretKey> SecretKey::from_bytes(const std::string &data) {
  Reader r(data, "AJSK", "a Paillier secret key");
  auto pk = PublicKey::from_bytes(r.blob());
  std::string pb = r.blob(), qb = r.blob();
  r.done();
  mpz_class p = be_to_mpz(reinterpret_cast<const unsigned char *>(pb.data()), pb.size());
  mpz_class q = be_to_mpz(reinterpret_cast<const unsigned char *>(qb.data()), qb.size());
  return std::make_shared<SecretKey>(pk, p, q);
}

// ---- key generation -------------------------------------------------------------------------
namespace {
struct RandomSource {
  std::optional<gmp_randclass> seeded;
  explicit RandomSource(std::optional<std::uint64_t> seed) {
    if (seed) {
      seeded.emplace(gmp_randinit_mt);
      seeded->seed(mpz_class(std::to_string(*seed)));
    }
  }
  mpz_class bits(unsigned b) { return seeded ? seeded->get_z_bits(b) : os_random_bits(b); }
};

mpz_class random_prime(unsigned bits, RandomSource &rnd) {
  for (;;) {
    mpz_class x = rnd.bits(bits), p;
    mpz_setbit(x.get_mpz_t(), bits - 1);
    mpz_setbit(x.get_mpz_t(), bits - 2);  // top two bits: p * q has exactly 2 * bits bits
    mpz_setbit(x.get_mpz_t(), 0);
    mpz_nextprime(p.get_mpz_t(), x.get_mpz_t());
    if (mpz_sizeinbase(p.get_mpz_t(), 2) != bits) continue;
    if (mpz_probab_prime_p(p.get_mpz_t(), 64) == 0) continue;  // Baillie-PSW + 40 Miller-Rabin rounds
    return p;
  }
}
}  // namespace

KeyPair generate_keypair(unsigned bits, std::optional<std::uint64_t> seed) {
  if (bits < kMinKeyBits || bits > kMaxKeyBits || bits % 2 != 0)
    throw std::invalid_argument("Paillier key size must be an even number of bits in [" + std::to_string(kMinKeyBits) +
                                ", " + std::to_string(kMaxKeyBits) + "], got " + std::to_string(bits));
  const unsigned half = bits / 2;
  for (;;) {
    std::optional<std::uint64_t> sp, sq;
    if (seed) {
      sp = *seed * 2 + 1;
      sq = *seed * 2 + 2;
    }
    RandomSource rp(sp), rq(sq);
    mpz_class p, q;
    std::thread tq([&]() { q = random_prime(half, rq); });
    try {
      p = random_prime(half, rp);
    } catch (...) {
      tq.join();
      throw;
    }
    tq.join();
    if (p == q) {
      if (seed) seed = *seed + 0x9E3779B97F4A7C15ULL;
      continue;
    }
    mpz_class n = p * q;
    if (mpz_sizeinbase(n.get_mpz_t(), 2) != bits || gcd(n, (p - 1) * (q - 1)) != 1) {
      if (seed) seed = *seed + 0x9E3779B97F4A7C15ULL;
      continue;
    }
    // DJN randomness base hs = (-x^2)^n mod n^2
    RandomSource rh(seed ? std::optional<std::uint64_t>(*seed * 2 + 3) : std::nullopt);
    mpz_class x;
    do {
      x = rh.bits(bits + 64) % n;
    } while (sgn(x) == 0 || gcd(x, n) != 1);
    mpz_class h = n - (x * x) % n, hs, n2 = n * n;
    mpz_powm(hs.get_mpz_t(), h.get_mpz_t(), n.get_mpz_t(), n2.get_mpz_t());
    auto pk = std::make_shared<const PublicKey>(n, hs);
    if (p > q) std::swap(p, q);
    auto sk = std::make_shared<const SecretKey>(pk, p, q);
    return {pk, sk};
  }
}

// ---- fixed point ----------------------------------------------------------------------------
static void check_scale(int s) {
  if (s < 0 || s > kMaxScaleBits)
    throw std::range_error("fixed-point scale out of range (0.." + std::to_string(kMaxScaleBits) + " bits)");
}

mpz_class encode_real(double x, int scale_bits) {
  check_scale(scale_bits);
  if (!std::isfinite(x)) throw std::range_error("cannot encrypt NaN or infinity");
  double v = std::ldexp(x, scale_bits);
  mpz_class m;
  if (std::isfinite(v)) {
    mpz_set_d(m.get_mpz_t(), std::round(v));
  } else {  // beyond the double range after scaling: exact integer shift
    mpz_set_d(m.get_mpz_t(), x);
    mpz_mul_2exp(m.get_mpz_t(), m.get_mpz_t(), static_cast<mp_bitcnt_t>(scale_bits));
  }
  return m;
}

double decode_real(const mpz_class &m, int scale_bits) {
  if (sgn(m) == 0) return 0.0;
  long e = 0;
  double d = mpz_get_d_2exp(&e, m.get_mpz_t());
  long total = e - static_cast<long>(scale_bits);
  if (total > 4096) return d > 0 ? HUGE_VAL : -HUGE_VAL;
  if (total < -4096) return 0.0;
  return std::ldexp(d, static_cast<int>(total));
}

std::pair<mpz_class, int> encode_scalar(double x, int precision) {
  check_scale(precision);
  if (!std::isfinite(x)) throw std::range_error("cannot use NaN or infinity as a scalar");
  if (x == std::trunc(x) && std::fabs(x) < 9007199254740992.0) return {mpz_class(x), 0};
  mpz_class k = encode_real(x, precision);
  if (sgn(k) == 0) return {k, 0};
  mpz_class a = abs(k);
  int tz = static_cast<int>(mpz_scan1(a.get_mpz_t(), 0));
  int strip = std::min(tz, precision);
  mpz_tdiv_q_2exp(k.get_mpz_t(), k.get_mpz_t(), static_cast<mp_bitcnt_t>(strip));
  return {k, precision - strip};
}

// ---- ciphertexts ----------------------------------------------------------------------------
static void need_key(const std::shared_ptr<const PublicKey> &pk) {
  if (!pk) throw std::invalid_argument("ciphertext has no public key");
}

Ciphertext rescale(const Ciphertext &c, int to) {
  need_key(c.pk);
  check_scale(to);
  if (to < c.scale_bits) throw std::invalid_argument("rescale can only increase the fixed-point scale");
  if (to == c.scale_bits) return c;
  return {c.pk, c.pk->shift_plain(c.value, static_cast<unsigned>(to - c.scale_bits)), to};
}

Ciphertext operator+(const Ciphertext &a, const Ciphertext &b) {
  need_key(a.pk);
  need_key(b.pk);
  check_same_key(*a.pk, *b.pk);
  int s = std::max(a.scale_bits, b.scale_bits);
  Ciphertext x = rescale(a, s), y = rescale(b, s);
  return {a.pk, a.pk->add(x.value, y.value), s};
}

Ciphertext add_plain_int(const Ciphertext &a, const mpz_class &m) {
  need_key(a.pk);
  mpz_class v = m;
  mpz_mul_2exp(v.get_mpz_t(), v.get_mpz_t(), static_cast<mp_bitcnt_t>(a.scale_bits));
  return {a.pk, a.pk->add_plain(a.value, v), a.scale_bits};
}

Ciphertext add_plain_real(const Ciphertext &a, double x, int precision) {
  need_key(a.pk);
  if (!std::isfinite(x)) throw std::range_error("cannot add NaN or infinity");
  if (x == std::trunc(x) && std::fabs(x) < 9007199254740992.0) return add_plain_int(a, mpz_class(x));
  Ciphertext b = a.scale_bits < precision ? rescale(a, precision) : a;
  return {b.pk, b.pk->add_plain(b.value, encode_real(x, b.scale_bits)), b.scale_bits};
}

Ciphertext mul_plain_int(const Ciphertext &a, const mpz_class &k) {
  need_key(a.pk);
  return {a.pk, a.pk->mul_plain(a.value, k), a.scale_bits};
}

Ciphertext mul_plain_real(const Ciphertext &a, double x, int precision) {
  need_key(a.pk);
  auto [k, s] = encode_scalar(x, precision);
  check_scale(a.scale_bits + s);
  return {a.pk, a.pk->mul_plain(a.value, k), a.scale_bits + s};
}

Ciphertext operator-(const Ciphertext &a) {
  need_key(a.pk);
  return {a.pk, a.pk->negate(a.value), a.scale_bits};
}

// ---- vectors --------------------------------------------------------------------------------
static void check_len(std::size_t a, std::size_t b, const char *what) {
  if (a != b)
    throw std::invalid_argument(std::string(what) + ": length mismatch (" + std::to_string(a) + " vs " +
                                std::to_string(b) + ")");
}

template <class F>
static CiphertextVector map_vector(const CiphertextVector &a, int scale, int threads, std::size_t min_chunk, F f) {
  need_key(a.pk);
  CiphertextVector out{a.pk, std::vector<mpz_class>(a.values.size()), scale};
  parallel_for(
      a.values.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) out.values[i] = f(i);
      },
      min_chunk);
  return out;
}

CiphertextVector rescale(const CiphertextVector &c, int to, int threads) {
  need_key(c.pk);
  check_scale(to);
  if (to < c.scale_bits) throw std::invalid_argument("rescale can only increase the fixed-point scale");
  if (to == c.scale_bits) return c;
  unsigned d = static_cast<unsigned>(to - c.scale_bits);
  return map_vector(c, to, threads, 16, [&](std::size_t i) { return c.pk->shift_plain(c.values[i], d); });
}

CiphertextVector encrypt_ints(std::shared_ptr<const PublicKey> pk, const std::vector<mpz_class> &m, int threads) {
  need_key(pk);
  return {pk, pk->encrypt_batch(m, threads), 0};
}

CiphertextVector encrypt_reals(std::shared_ptr<const PublicKey> pk, const double *x, std::size_t n, int precision,
                               int threads) {
  need_key(pk);
  std::vector<mpz_class> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = encode_real(x[i], precision);
  return {pk, pk->encrypt_batch(m, threads), precision};
}

std::vector<mpz_class> decrypt_ints(const SecretKey &sk, const CiphertextVector &c, int threads) {
  need_key(c.pk);
  check_same_key(*sk.public_key(), *c.pk);
  std::vector<mpz_class> m = sk.decrypt_batch(c.values, threads);
  if (c.scale_bits > 0) {
    mpz_class half = 1;
    mpz_mul_2exp(half.get_mpz_t(), half.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits - 1));
    for (auto &v : m) {
      v += half;
      mpz_fdiv_q_2exp(v.get_mpz_t(), v.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits));
    }
  }
  return m;
}

std::vector<double> decrypt_reals(const SecretKey &sk, const CiphertextVector &c, int threads) {
  need_key(c.pk);
  check_same_key(*sk.public_key(), *c.pk);
  std::vector<mpz_class> m = sk.decrypt_batch(c.values, threads);
  std::vector<double> out(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) out[i] = decode_real(m[i], c.scale_bits);
  return out;
}

CiphertextVector add(const CiphertextVector &a, const CiphertextVector &b, int threads) {
  need_key(a.pk);
  need_key(b.pk);
  check_same_key(*a.pk, *b.pk);
  check_len(a.values.size(), b.values.size(), "add");
  int s = std::max(a.scale_bits, b.scale_bits);
  if (a.scale_bits != s) return add(rescale(a, s, threads), b, threads);
  if (b.scale_bits != s) return add(a, rescale(b, s, threads), threads);
  return {a.pk, a.pk->add_batch(a.values, b.values, threads), s};
}

CiphertextVector add_plain_ints(const CiphertextVector &a, const std::vector<mpz_class> &m, int threads) {
  need_key(a.pk);
  check_len(a.values.size(), m.size(), "add_plain");
  std::vector<mpz_class> t(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    mpz_class v = m[i];
    mpz_mul_2exp(v.get_mpz_t(), v.get_mpz_t(), static_cast<mp_bitcnt_t>(a.scale_bits));
    t[i] = a.pk->encode(v) * a.pk->n() + 1;
  }
  return {a.pk, a.pk->add_batch(a.values, t, threads), a.scale_bits};
}

CiphertextVector add_plain_reals(const CiphertextVector &a, const double *x, std::size_t n, int precision,
                                 int threads) {
  need_key(a.pk);
  check_len(a.values.size(), n, "add_plain");
  if (a.scale_bits < precision) return add_plain_reals(rescale(a, precision, threads), x, n, precision, threads);
  std::vector<mpz_class> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = a.pk->encode(encode_real(x[i], a.scale_bits)) * a.pk->n() + 1;
  return {a.pk, a.pk->add_batch(a.values, t, threads), a.scale_bits};
}

CiphertextVector mul_plain_ints(const CiphertextVector &a, const std::vector<mpz_class> &k, int threads) {
  need_key(a.pk);
  check_len(a.values.size(), k.size(), "mul_plain");
  return {a.pk, powm_signed_batch(*a.pk, a.values, [&](std::size_t i) -> const mpz_class & { return k[i]; }, threads),
          a.scale_bits};
}

CiphertextVector mul_plain_reals(const CiphertextVector &a, const double *x, std::size_t n, int precision,
                                 int threads) {
  need_key(a.pk);
  check_len(a.values.size(), n, "mul_plain");
  check_scale(precision);
  bool integral = true;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) throw std::range_error("cannot multiply by NaN or infinity");
    if (x[i] != std::trunc(x[i]) || std::fabs(x[i]) >= 9007199254740992.0) integral = false;
  }
  std::vector<mpz_class> k(n);
  for (std::size_t i = 0; i < n; ++i) k[i] = integral ? mpz_class(x[i]) : encode_real(x[i], precision);
  int s = a.scale_bits + (integral ? 0 : precision);
  check_scale(s);
  return {a.pk, powm_signed_batch(*a.pk, a.values, [&](std::size_t i) -> const mpz_class & { return k[i]; }, threads),
          s};
}

CiphertextVector mul_scalar_int(const CiphertextVector &a, const mpz_class &k, int threads) {
  need_key(a.pk);
  return {a.pk, powm_signed_batch(*a.pk, a.values, [&](std::size_t) -> const mpz_class & { return k; }, threads),
          a.scale_bits};
}

CiphertextVector mul_scalar_real(const CiphertextVector &a, double x, int precision, int threads) {
  need_key(a.pk);
  auto [k, s] = encode_scalar(x, precision);
  check_scale(a.scale_bits + s);
  return mul_scalar_int(CiphertextVector{a.pk, a.values, a.scale_bits + s}, k, threads);
}

CiphertextVector negate(const CiphertextVector &a, int threads) {
  need_key(a.pk);
  return {a.pk, negate_batch(*a.pk, a.values, threads), a.scale_bits};
}

Ciphertext sum(const CiphertextVector &a, int threads) {
  need_key(a.pk);
  return {a.pk, a.pk->sum(a.values, threads), a.scale_bits};
}

// ---- packed (slot) encoding -----------------------------------------------------------------
unsigned packed_slots(const PublicKey &pk, unsigned slot_bits) {
  if (slot_bits < kMinSlotBits || slot_bits + 3 > pk.bits())
    throw std::invalid_argument("slot_bits must be in [" + std::to_string(kMinSlotBits) + ", " +
                                std::to_string(pk.bits() - 3) + "] for a " + std::to_string(pk.bits()) +
                                "-bit key, got " + std::to_string(slot_bits));
  // |M| <= limit * sum_j 2^(B j) < 2^(B K) <= 2^(bits - 3) < max_int
  return (pk.bits() - 3) / slot_bits;
}

mpz_class packed_slot_limit(unsigned slot_bits) {
  mpz_class l = 1;
  mpz_mul_2exp(l.get_mpz_t(), l.get_mpz_t(), slot_bits - 1);
  return l - 1;
}

static std::string bits_str(const mpz_class &v) {
  return std::to_string(sgn(v) == 0 ? 0 : mpz_sizeinbase(v.get_mpz_t(), 2));
}

// Throws unless `bound` fits a slot; called before an op does any work.
static void check_slot_bound(const mpz_class &bound, unsigned slot_bits, const char *op) {
  if (bound > packed_slot_limit(slot_bits))
    throw std::overflow_error(std::string("packed Paillier slot overflow in ") + op + ": slot values could reach " +
                              bits_str(bound) + " bits but a " + std::to_string(slot_bits) +
                              "-bit slot holds signed values of at most " + std::to_string(slot_bits - 1) +
                              " bits; use a larger slot_bits, a lower precision, or unpacked encryption");
}

static void need_packed(const PackedVector &a) {
  need_key(a.pk);
  if (a.slots == 0) throw std::invalid_argument("packed ciphertext array has no layout");
}

static void check_same_layout(const PackedVector &a, const PackedVector &b, const char *op) {
  need_packed(a);
  need_packed(b);
  check_same_key(*a.pk, *b.pk);
  if (a.slot_bits != b.slot_bits)
    throw std::invalid_argument(std::string(op) + ": packed layouts differ (slot_bits " + std::to_string(a.slot_bits) +
                                " vs " + std::to_string(b.slot_bits) + ")");
  check_len(a.length, b.length, op);
}

// M = sum_j v_j 2^(B j) for the values of ciphertext `ct` (missing trailing slots are 0).
static std::vector<mpz_class> pack_plaintexts(const std::vector<mpz_class> &v, unsigned B, unsigned K, int threads) {
  std::size_t nct = (v.size() + K - 1) / K;
  std::vector<mpz_class> out(nct);
  parallel_for(
      nct, threads,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t c = begin; c < end; ++c) {
          mpz_class M = 0;
          std::size_t lo = c * K, hi = std::min(v.size(), lo + K);
          for (std::size_t i = hi; i-- > lo;) {
            mpz_mul_2exp(M.get_mpz_t(), M.get_mpz_t(), B);
            M += v[i];
          }
          out[c] = std::move(M);
        }
      },
      64);
  return out;
}

static mpz_class max_abs(const std::vector<mpz_class> &v) {
  mpz_class b = 0;
  for (const auto &x : v)
    if (mpz_cmpabs(x.get_mpz_t(), b.get_mpz_t()) > 0) b = abs(x);
  return b;
}

PackedVector encrypt_packed_ints(std::shared_ptr<const PublicKey> pk, const std::vector<mpz_class> &m,
                                 unsigned slot_bits, int scale_bits, int threads, const SecretKey *sk) {
  need_key(pk);
  check_scale(scale_bits);
  if (sk) check_same_key(*sk->public_key(), *pk);
  unsigned K = packed_slots(*pk, slot_bits);
  mpz_class bound = max_abs(m);
  if (bound > packed_slot_limit(slot_bits))
    throw std::overflow_error("packed Paillier slot overflow at encryption: a value needs " + bits_str(bound) +
                              " bits plus a sign, a " + std::to_string(slot_bits) + "-bit slot holds " +
                              std::to_string(slot_bits - 1) + "; use a larger slot_bits or a lower precision");
  std::vector<mpz_class> M = pack_plaintexts(m, slot_bits, K, threads);
  PackedVector out;
  out.pk = pk;
  out.values = sk ? sk->encrypt_batch(M, threads) : pk->encrypt_batch(M, threads);
  out.length = m.size();
  out.slot_bits = slot_bits;
  out.slots = K;
  out.scale_bits = scale_bits;
  out.bound = bound;
  return out;
}

PackedVector encrypt_packed_reals(std::shared_ptr<const PublicKey> pk, const double *x, std::size_t n,
                                  unsigned slot_bits, int precision, int threads, const SecretKey *sk) {
  check_scale(precision);
  std::vector<mpz_class> m(n);
  for (std::size_t i = 0; i < n; ++i) m[i] = encode_real(x[i], precision);
  return encrypt_packed_ints(std::move(pk), m, slot_bits, precision, threads, sk);
}

std::vector<mpz_class> decrypt_packed_slots(const SecretKey &sk, const PackedVector &c, int threads) {
  need_packed(c);
  check_same_key(*sk.public_key(), *c.pk);
  const unsigned B = c.slot_bits, K = c.slots;
  if (c.values.size() != (c.length + K - 1) / K)
    throw std::invalid_argument("packed ciphertext array: ciphertext count does not match its length");
  std::vector<mpz_class> out(c.length);
  mpz_class half = 1, full = 1;
  mpz_mul_2exp(half.get_mpz_t(), half.get_mpz_t(), B - 1);
  mpz_mul_2exp(full.get_mpz_t(), full.get_mpz_t(), B);
  parallel_for(
      c.values.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        mpz_class M, r;
        for (std::size_t ct = begin; ct < end; ++ct) {
          M = sk.decrypt(c.values[ct]);
          for (unsigned j = 0; j < K; ++j) {
            // centred residue mod 2^B; subtracting it leaves the borrow/carry for the next slot
            mpz_fdiv_r_2exp(r.get_mpz_t(), M.get_mpz_t(), B);
            if (r >= half) r -= full;
            M -= r;
            mpz_fdiv_q_2exp(M.get_mpz_t(), M.get_mpz_t(), B);
            std::size_t i = ct * K + j;
            if (mpz_cmpabs(r.get_mpz_t(), c.bound.get_mpz_t()) > 0 || (i >= c.length && sgn(r) != 0))
              throw std::overflow_error(
                  "packed decryption: a slot is outside its tracked bound (tampered ciphertext, another key, or "
                  "a forged bound)");
            if (i < c.length) out[i] = r;
          }
          if (sgn(M) != 0)
            throw std::overflow_error("packed decryption: bits beyond the last slot (tampered ciphertext or another key)");
        }
      },
      4);
  return out;
}

std::vector<double> decrypt_packed_reals(const SecretKey &sk, const PackedVector &c, int threads) {
  std::vector<mpz_class> m = decrypt_packed_slots(sk, c, threads);
  std::vector<double> out(m.size());
  for (std::size_t i = 0; i < m.size(); ++i) out[i] = decode_real(m[i], c.scale_bits);
  return out;
}

std::vector<mpz_class> decrypt_packed_ints(const SecretKey &sk, const PackedVector &c, int threads) {
  std::vector<mpz_class> m = decrypt_packed_slots(sk, c, threads);
  if (c.scale_bits > 0) {
    mpz_class half = 1;
    mpz_mul_2exp(half.get_mpz_t(), half.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits - 1));
    for (auto &v : m) {
      v += half;
      mpz_fdiv_q_2exp(v.get_mpz_t(), v.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits));
    }
  }
  return m;
}

static PackedVector with_values(const PackedVector &a, std::vector<mpz_class> values, int scale, mpz_class bound) {
  PackedVector out;
  out.pk = a.pk;
  out.values = std::move(values);
  out.length = a.length;
  out.slot_bits = a.slot_bits;
  out.slots = a.slots;
  out.scale_bits = scale;
  out.bound = std::move(bound);
  return out;
}

PackedVector rescale(const PackedVector &c, int to, int threads) {
  need_packed(c);
  check_scale(to);
  if (to < c.scale_bits) throw std::invalid_argument("rescale can only increase the fixed-point scale");
  if (to == c.scale_bits) return c;
  unsigned d = static_cast<unsigned>(to - c.scale_bits);
  mpz_class bound = c.bound;
  mpz_mul_2exp(bound.get_mpz_t(), bound.get_mpz_t(), d);
  check_slot_bound(bound, c.slot_bits, "rescale (aligning fixed-point scales)");
  std::vector<mpz_class> v(c.values.size());
  parallel_for(
      v.size(), threads,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) v[i] = c.pk->shift_plain(c.values[i], d);
      },
      16);
  return with_values(c, std::move(v), to, bound);
}

PackedVector add(const PackedVector &a, const PackedVector &b, int threads) {
  check_same_layout(a, b, "add");
  int s = std::max(a.scale_bits, b.scale_bits);
  // check the final bound first, so nothing is computed for an add that must fail
  mpz_class ba = a.bound, bb = b.bound;
  mpz_mul_2exp(ba.get_mpz_t(), ba.get_mpz_t(), static_cast<mp_bitcnt_t>(s - a.scale_bits));
  mpz_mul_2exp(bb.get_mpz_t(), bb.get_mpz_t(), static_cast<mp_bitcnt_t>(s - b.scale_bits));
  mpz_class bound = ba + bb;
  check_slot_bound(bound, a.slot_bits, "add");
  if (a.scale_bits != s) return add(rescale(a, s, threads), b, threads);
  if (b.scale_bits != s) return add(a, rescale(b, s, threads), threads);
  return with_values(a, a.pk->add_batch(a.values, b.values, threads), s, bound);
}

// m: integers already at a's scale.
static PackedVector add_plain_scaled(const PackedVector &a, const std::vector<mpz_class> &m, int threads) {
  mpz_class bound = a.bound + max_abs(m);
  check_slot_bound(bound, a.slot_bits, "add_plain");
  std::vector<mpz_class> M = pack_plaintexts(m, a.slot_bits, a.slots, threads);
  for (auto &x : M) x = a.pk->encode(x) * a.pk->n() + 1;
  return with_values(a, a.pk->add_batch(a.values, M, threads), a.scale_bits, bound);
}

PackedVector add_plain_ints(const PackedVector &a, const std::vector<mpz_class> &m, int threads) {
  need_packed(a);
  check_len(a.length, m.size(), "add_plain");
  std::vector<mpz_class> t(m);
  for (auto &v : t) mpz_mul_2exp(v.get_mpz_t(), v.get_mpz_t(), static_cast<mp_bitcnt_t>(a.scale_bits));
  return add_plain_scaled(a, t, threads);
}

PackedVector add_plain_reals(const PackedVector &a, const double *x, std::size_t n, int precision, int threads) {
  need_packed(a);
  check_len(a.length, n, "add_plain");
  check_scale(precision);
  std::vector<mpz_class> t(n);
  int s = std::max(a.scale_bits, precision);
  for (std::size_t i = 0; i < n; ++i) t[i] = encode_real(x[i], s);
  mpz_class ba = a.bound;
  mpz_mul_2exp(ba.get_mpz_t(), ba.get_mpz_t(), static_cast<mp_bitcnt_t>(s - a.scale_bits));
  check_slot_bound(ba + max_abs(t), a.slot_bits, "add_plain");
  return add_plain_scaled(a.scale_bits < s ? rescale(a, s, threads) : a, t, threads);
}

static PackedVector mul_scalar_scaled(const PackedVector &a, const mpz_class &k, int scale, int threads) {
  mpz_class bound = a.bound * abs(k);
  check_slot_bound(bound, a.slot_bits, "multiply by a scalar");
  check_scale(scale);
  return with_values(a, powm_signed_batch(*a.pk, a.values, [&](std::size_t) -> const mpz_class & { return k; }, threads),
                     scale, bound);
}

PackedVector mul_scalar_int(const PackedVector &a, const mpz_class &k, int threads) {
  need_packed(a);
  return mul_scalar_scaled(a, k, a.scale_bits, threads);
}

PackedVector mul_scalar_real(const PackedVector &a, double x, int precision, int threads) {
  need_packed(a);
  auto [k, s] = encode_scalar(x, precision);
  return mul_scalar_scaled(a, k, a.scale_bits + s, threads);
}

PackedVector negate(const PackedVector &a, int threads) {
  need_packed(a);
  return with_values(a, negate_batch(*a.pk, a.values, threads), a.scale_bits, a.bound);
}

std::string to_bytes(const PackedVector &c) {
  need_packed(c);
  Writer w;
  w.raw("AJPV", 4);
  w.u8(1);
  w.u64(c.pk->fingerprint());
  w.u64(c.length);
  w.u32(c.slot_bits);
  w.u32(static_cast<std::uint32_t>(c.scale_bits));
  w.blob(mpz_to_be(c.bound));
  w.u64(c.values.size());
  w.buf.reserve(w.buf.size() + c.values.size() * c.pk->ciphertext_bytes() + 8);
  for (const auto &v : c.values) w.fixed(v, c.pk->ciphertext_bytes());
  return w.finish();
}

PackedVector packed_vector_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data) {
  need_key(pk);
  Reader r(data, "AJPV", "a packed Paillier ciphertext array");
  if (r.u64() != pk->fingerprint()) r.fail("it was made under a different public key");
  std::uint64_t length = r.u64();
  std::uint32_t slot_bits = r.u32(), s = r.u32();
  if (slot_bits < kMinSlotBits || slot_bits + 3 > pk->bits()) r.fail("slot width out of range for this key");
  if (s > static_cast<std::uint32_t>(kMaxScaleBits)) r.fail("scale out of range");
  std::string bb = r.blob();
  mpz_class bound = be_to_mpz(reinterpret_cast<const unsigned char *>(bb.data()), bb.size());
  if (bound > packed_slot_limit(slot_bits)) r.fail("slot bound exceeds the slot width");
  unsigned K = packed_slots(*pk, slot_bits);
  std::uint64_t count = r.u64();
  const std::size_t width = pk->ciphertext_bytes();
  if (count != (length + K - 1) / K) r.fail("ciphertext count does not match the length");
  if (count > (r.n - r.pos) / width) r.fail("truncated data");
  PackedVector out;
  out.pk = pk;
  out.values.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) out.values[i] = r.fixed(width);
  r.done();
  parallel_for(
      count, 0,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) pk->check_ciphertext(out.values[i]);
      },
      64);
  out.length = length;
  out.slot_bits = slot_bits;
  out.slots = K;
  out.scale_bits = static_cast<int>(s);
  out.bound = bound;
  return out;
}

// ---- ciphertext serialization ---------------------------------------------------------------
std::string to_bytes(const Ciphertext &c) {
  need_key(c.pk);
  Writer w;
  w.raw("AJCT", 4);
  w.u8(1);
  w.u64(c.pk->fingerprint());
  w.u32(static_cast<std::uint32_t>(c.scale_bits));
  w.fixed(c.value, c.pk->ciphertext_bytes());
  return w.finish();
}

Ciphertext ciphertext_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data) {
  need_key(pk);
  Reader r(data, "AJCT", "a Paillier ciphertext");
  if (r.u64() != pk->fingerprint()) r.fail("it was made under a different public key");
  std::uint32_t s = r.u32();
  if (s > static_cast<std::uint32_t>(kMaxScaleBits)) r.fail("scale out of range");
  mpz_class v = r.fixed(pk->ciphertext_bytes());
  r.done();
  pk->check_ciphertext(v);
  return {pk, v, static_cast<int>(s)};
}

std::string to_bytes(const CiphertextVector &c) {
  need_key(c.pk);
  Writer w;
  w.raw("AJCV", 4);
  w.u8(1);
  w.u64(c.pk->fingerprint());
  w.u32(static_cast<std::uint32_t>(c.scale_bits));
  w.u64(c.values.size());
  w.buf.reserve(w.buf.size() + c.values.size() * c.pk->ciphertext_bytes() + 8);
  for (const auto &v : c.values) w.fixed(v, c.pk->ciphertext_bytes());
  return w.finish();
}

CiphertextVector ciphertext_vector_from_bytes(std::shared_ptr<const PublicKey> pk, const std::string &data) {
  need_key(pk);
  Reader r(data, "AJCV", "a Paillier ciphertext array");
  if (r.u64() != pk->fingerprint()) r.fail("it was made under a different public key");
  std::uint32_t s = r.u32();
  if (s > static_cast<std::uint32_t>(kMaxScaleBits)) r.fail("scale out of range");
  std::uint64_t count = r.u64();
  const std::size_t width = pk->ciphertext_bytes();
  if (count > (r.n - r.pos) / width) r.fail("truncated data");
  CiphertextVector out{pk, std::vector<mpz_class>(count), static_cast<int>(s)};
  for (std::uint64_t i = 0; i < count; ++i) out.values[i] = r.fixed(width);
  r.done();
  parallel_for(
      count, 0,
      [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) pk->check_ciphertext(out.values[i]);
      },
      64);
  return out;
}

}  // namespace paillier
}  // namespace aijack

// =============================================================================================
// Python bindings: aijack_lab._core.paillier
// =============================================================================================
namespace py = pybind11;
using namespace aijack::paillier;

namespace {

using PKPtr = std::shared_ptr<PublicKey>;
using SKPtr = std::shared_ptr<SecretKey>;

PKPtr mutable_pk(const std::shared_ptr<const PublicKey> &pk) { return std::const_pointer_cast<PublicKey>(pk); }

py::object not_implemented() { return py::reinterpret_borrow<py::object>(py::handle(Py_NotImplemented)); }

mpz_class pylong_to_mpz(py::handle o) {
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o.ptr(), &overflow);
  if (!overflow) {
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    mpz_class r;
    mpz_set_si(r.get_mpz_t(), static_cast<long>(v));
    return r;
  }
  PyObject *hex = PyNumber_ToBase(o.ptr(), 16);
  if (!hex) throw py::error_already_set();
  std::string s = py::reinterpret_steal<py::object>(hex).cast<std::string>();
  bool neg = !s.empty() && s[0] == '-';
  mpz_class r(s.substr(neg ? 3 : 2), 16);
  return neg ? mpz_class(-r) : r;
}

py::object mpz_to_py(const mpz_class &x) {
  if (mpz_fits_slong_p(x.get_mpz_t())) return py::reinterpret_steal<py::object>(PyLong_FromLong(mpz_get_si(x.get_mpz_t())));
  std::string s = x.get_str(16);
  PyObject *r = PyLong_FromString(s.c_str(), nullptr, 16);
  if (!r) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}

struct Scalar {
  bool is_int = false;
  mpz_class i;
  double d = 0.0;
};

// An int-like (int, numpy integer, bool) or real-like (float, numpy floating, 0-d tensor) value.
bool to_scalar(py::handle o, Scalar &out) {
  PyObject *p = o.ptr();
  if (PyUnicode_Check(p) || PyBytes_Check(p) || PyByteArray_Check(p) || PyComplex_Check(p)) return false;
  if (PyLong_Check(p)) {
    out.is_int = true;
    out.i = pylong_to_mpz(o);
    return true;
  }
  if (PyFloat_Check(p)) {
    out.is_int = false;
    out.d = PyFloat_AsDouble(p);
    return true;
  }
  if (PyIndex_Check(p)) {
    PyObject *idx = PyNumber_Index(p);
    if (idx) {
      py::object holder = py::reinterpret_steal<py::object>(idx);
      out.is_int = true;
      out.i = pylong_to_mpz(holder);
      return true;
    }
    PyErr_Clear();
  }
  if (Py_TYPE(p)->tp_as_number && Py_TYPE(p)->tp_as_number->nb_float) {
    PyObject *f = PyNumber_Float(p);
    if (f) {
      out.is_int = false;
      out.d = PyFloat_AsDouble(f);
      Py_DECREF(f);
      return true;
    }
    PyErr_Clear();
  }
  return false;
}

std::string type_name(py::handle o) { return py::str(py::type::handle_of(o).attr("__name__")); }

Scalar require_scalar(py::handle o, const char *what) {
  Scalar s;
  if (!to_scalar(o, s)) throw py::type_error(std::string(what) + " must be an int or a float, got " + type_name(o));
  return s;
}

int check_precision(int precision) {
  if (precision < 0 || precision > 1024)
    throw py::value_error("precision must be a number of fractional bits in [0, 1024], got " + std::to_string(precision));
  return precision;
}

// A numpy array (any shape) as flat doubles, or as flat ints; returns true for ints.
bool array_to_plain(py::handle obj, std::vector<double> &reals, std::vector<mpz_class> &ints, const char *what) {
  py::array arr = py::array::ensure(obj);
  if (!arr) throw py::type_error(std::string(what) + " must be array-like");
  char kind = arr.dtype().kind();
  if (kind == 'f') {
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
    reals.assign(a.data(), a.data() + a.size());
    return false;
  }
  if (kind == 'i' || kind == 'b' || (kind == 'u' && arr.itemsize() < 8)) {
    auto a = py::array_t<long long, py::array::c_style | py::array::forcecast>::ensure(arr);
    ints.resize(a.size());
    for (py::ssize_t i = 0; i < a.size(); ++i) mpz_set_si(ints[i].get_mpz_t(), static_cast<long>(a.data()[i]));
    return true;
  }
  if (kind == 'u' || kind == 'O') {
    py::list flat = arr.attr("ravel")().attr("tolist")();
    ints.resize(flat.size());
    for (std::size_t i = 0; i < flat.size(); ++i) {
      if (!PyLong_Check(flat[i].ptr()))
        throw py::type_error(std::string(what) + ": object arrays must hold Python ints, got " + type_name(flat[i]));
      ints[i] = pylong_to_mpz(flat[i]);
    }
    return true;
  }
  throw py::type_error(std::string(what) + " must hold ints or floats, got dtype " + std::string(py::str(arr.dtype())));
}

std::string repr_value(const mpz_class &v) {
  std::string h = v.get_str(16);
  if (h.size() > 16) h = h.substr(0, 16) + "...";
  return "0x" + h;
}

Ciphertext checked(const Ciphertext &c) {
  if (!c.pk) throw py::value_error("empty ciphertext");
  return c;
}

py::object encrypt_array_py(const PKPtr &pk, const SecretKey *sk, py::object x, int precision, bool pack,
                            unsigned slot_bits) {
  check_precision(precision);
  std::vector<double> reals;
  std::vector<mpz_class> ints;
  bool is_int = array_to_plain(x, reals, ints, "x");
  if (pack) {
    packed_slots(*pk, slot_bits);  // validates slot_bits with the GIL held
    PackedVector out;
    {
      py::gil_scoped_release release;
      out = is_int ? encrypt_packed_ints(pk, ints, slot_bits, 0, 0, sk)
                   : encrypt_packed_reals(pk, reals.data(), reals.size(), slot_bits, precision, 0, sk);
    }
    return py::cast(std::move(out));
  }
  CiphertextVector out;
  {
    py::gil_scoped_release release;
    if (is_int) {
      out = sk ? CiphertextVector{pk, sk->encrypt_batch(ints), 0} : encrypt_ints(pk, ints);
    } else if (sk) {
      std::vector<mpz_class> m(reals.size());
      for (std::size_t i = 0; i < m.size(); ++i) m[i] = encode_real(reals[i], precision);
      out = CiphertextVector{pk, sk->encrypt_batch(m), precision};
    } else {
      out = encrypt_reals(pk, reals.data(), reals.size(), precision);
    }
  }
  return py::cast(std::move(out));
}

py::array_t<double> to_numpy(const std::vector<double> &v) {
  py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::list to_pylist(const std::vector<mpz_class> &v) {
  py::list l(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) l[i] = mpz_to_py(v[i]);
  return l;
}

const char *kPackedMulPlain =
    "elementwise multiplication by a vector is not possible on packed Paillier ciphertexts (all slots of a "
    "ciphertext share one factor); encrypt without packing (pack=False / packed=False) for ct * vector";

}  // namespace

AIJACK_SUBMODULE(paillier, m) {
  m.doc() =
      "Paillier homomorphic encryption on GMP (cpp/include/aijack/paillier.hpp). A key of `bits` bits has a "
      "modulus n of exactly `bits` bits. Batch methods release the GIL and use num_threads() std::threads.";
  m.attr("DEFAULT_PRECISION") = kDefaultPrecision;
  m.attr("MIN_KEY_BITS") = kMinKeyBits;
  m.attr("MAX_KEY_BITS") = kMaxKeyBits;
  m.def("num_threads", &num_threads, "Worker threads used by batch operations.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the worker threads (n <= 0: hardware threads).");

  py::class_<PublicKey, PKPtr> pk_cls(m, "PaillierPublicKey",
                                      "Paillier public key (n, g = n + 1, DJN randomness base hs).");
  py::class_<SecretKey, SKPtr> sk_cls(m, "PaillierSecretKey", "Paillier secret key (p, q); decrypts with the CRT.");
  py::class_<Ciphertext> ct_cls(m, "PaillierCipherText",
                                "One Paillier ciphertext with its public key and fixed-point scale.");
  py::class_<CiphertextVector> cv_cls(m, "PaillierCipherArray",
                                      "A flat array of ciphertexts under one key with one fixed-point scale.");
  py::class_<PackedVector> pv_cls(
      m, "PaillierPackedArray",
      "A flat array of values packed several per ciphertext in signed slot_bits-bit slots (BatchCrypt-style), "
      "with one key, one fixed-point scale and a tracked bound on every slot.");
  m.attr("DEFAULT_SLOT_BITS") = kDefaultSlotBits;

  m.def(
      "generate_keypair",
      [](unsigned bits, std::optional<std::uint64_t> seed) {
        KeyPair kp;
        {
          py::gil_scoped_release release;
          kp = generate_keypair(bits, seed);
        }
        return py::make_tuple(mutable_pk(kp.public_key), std::const_pointer_cast<SecretKey>(kp.secret_key));
      },
      py::arg("bits"), py::arg("seed") = py::none(),
      "(public_key, secret_key) with an n of exactly `bits` bits; `seed` only for reproducible teaching demos.");

  // ---- public key ----
  pk_cls
      .def(py::init([](py::object n, py::object hs) {
             mpz_class nn = pylong_to_mpz(n);
             mpz_class h = hs.is_none() ? mpz_class(0) : pylong_to_mpz(hs);
             return std::make_shared<PublicKey>(nn, h);
           }),
           py::arg("n"), py::arg("hs") = py::none())
      .def_property_readonly("n", [](const PublicKey &pk) { return mpz_to_py(pk.n()); })
      .def_property_readonly("n_squared", [](const PublicKey &pk) { return mpz_to_py(pk.n_squared()); })
      .def_property_readonly("g", [](const PublicKey &pk) { return mpz_to_py(pk.n() + 1); })
      .def_property_readonly("hs", [](const PublicKey &pk) { return mpz_to_py(pk.hs()); })
      .def_property_readonly("max_int", [](const PublicKey &pk) { return mpz_to_py(pk.max_int()); })
      .def_property_readonly("bits", &PublicKey::bits)
      .def_property_readonly("ciphertext_bytes", &PublicKey::ciphertext_bytes)
      .def_property_readonly("fingerprint", &PublicKey::fingerprint)
      .def_property_readonly("precomputed", &PublicKey::precomputed)
      .def("precompute", &PublicKey::precompute, py::call_guard<py::gil_scoped_release>(),
           "Build the fixed-base table for hs now (otherwise built on first bulk encryption).")
      .def(
          "encrypt",
          [](const PKPtr &pk, py::object x, int precision) {
            check_precision(precision);
            Scalar s = require_scalar(x, "the plaintext");
            mpz_class m = s.is_int ? s.i : encode_real(s.d, precision);
            int scale = s.is_int ? 0 : precision;
            mpz_class c;
            {
              py::gil_scoped_release release;
              c = pk->encrypt(m);
            }
            return Ciphertext{pk, c, scale};
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision,
          "Encrypt an int exactly, or a float as round(x * 2^precision).")
      .def(
          "encrypt_array",
          [](const PKPtr &pk, py::object x, int precision, bool pack, unsigned slot_bits) {
            return encrypt_array_py(pk, nullptr, x, precision, pack, slot_bits);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision, py::arg("pack") = false,
          py::arg("slot_bits") = kDefaultSlotBits,
          "Encrypt a numpy array (flattened, C order): integer dtypes exactly, floats with `precision` bits. "
          "pack=True packs floor((bits - 3) / slot_bits) values per ciphertext (a PaillierPackedArray).")
      .def("packed_slots", [](const PublicKey &pk, unsigned slot_bits) { return packed_slots(pk, slot_bits); },
           py::arg("slot_bits") = kDefaultSlotBits, "Values per ciphertext for packed encryption.")
      .def("to_bytes", [](const PublicKey &pk) { return py::bytes(pk.to_bytes()); })
      .def_static("from_bytes", [](py::bytes b) { return PublicKey::from_bytes(std::string(b)); }, py::arg("data"))
      .def("__eq__",
           [](const PublicKey &a, py::object b) -> py::object {
             if (!py::isinstance<PublicKey>(b)) return not_implemented();
             return py::bool_(a.same_key(b.cast<const PublicKey &>()));
           })
      .def("__hash__", [](const PublicKey &pk) { return static_cast<py::ssize_t>(pk.fingerprint() >> 2); })
      .def("__repr__",
           [](const PublicKey &pk) {
             std::ostringstream s;
             s << "<PaillierPublicKey " << pk.bits() << "-bit n=" << repr_value(pk.n()) << ">";
             return s.str();
           })
      .def("__reduce__",
           [](py::object self) {
             const PublicKey &pk = self.cast<const PublicKey &>();
             return py::make_tuple(py::type::of(self), py::make_tuple(mpz_to_py(pk.n()), mpz_to_py(pk.hs())));
           });

  // ---- secret key ----
  auto check_ct_key = [](const SecretKey &sk, const Ciphertext &c) {
    checked(c);
    if (!sk.public_key()->same_key(*c.pk))
      throw py::value_error("this ciphertext was encrypted under a different public key than this secret key's");
  };
  sk_cls
      .def(py::init([](const PKPtr &pk, py::object p, py::object q) {
             return std::make_shared<SecretKey>(pk, pylong_to_mpz(p), pylong_to_mpz(q));
           }),
           py::arg("public_key"), py::arg("p"), py::arg("q"))
      .def_property_readonly("public_key", [](const SecretKey &sk) { return mutable_pk(sk.public_key()); })
      .def_property_readonly("p", [](const SecretKey &sk) { return mpz_to_py(sk.p()); })
      .def_property_readonly("q", [](const SecretKey &sk) { return mpz_to_py(sk.q()); })
      .def(
          "decrypt2int",
          [check_ct_key](const SecretKey &sk, const Ciphertext &c) {
            check_ct_key(sk, c);
            mpz_class m;
            {
              py::gil_scoped_release release;
              m = sk.decrypt(c.value);
            }
            if (c.scale_bits > 0) {
              mpz_class half = 1;
              mpz_mul_2exp(half.get_mpz_t(), half.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits - 1));
              m += half;
              mpz_fdiv_q_2exp(m.get_mpz_t(), m.get_mpz_t(), static_cast<mp_bitcnt_t>(c.scale_bits));
            }
            return mpz_to_py(m);
          },
          py::arg("ciphertext"), "The plaintext as an int (exact for int plaintexts; rounded for fixed-point ones).")
      .def(
          "decrypt2float",
          [check_ct_key](const SecretKey &sk, const Ciphertext &c) {
            check_ct_key(sk, c);
            mpz_class m;
            {
              py::gil_scoped_release release;
              m = sk.decrypt(c.value);
            }
            return decode_real(m, c.scale_bits);
          },
          py::arg("ciphertext"), "The plaintext as a float (m / 2^scale_bits).")
      .def(
          "decrypt_raw",
          [check_ct_key](const SecretKey &sk, const Ciphertext &c) {
            check_ct_key(sk, c);
            return mpz_to_py(sk.raw_decrypt(c.value));
          },
          py::arg("ciphertext"), "The residue m mod n before sign decoding and scaling.")
      .def(
          "decrypt_array",
          [](const SecretKey &sk, const CiphertextVector &c) {
            std::vector<double> out;
            {
              py::gil_scoped_release release;
              out = decrypt_reals(sk, c);
            }
            py::array_t<double> a(static_cast<py::ssize_t>(out.size()));
            std::copy(out.begin(), out.end(), a.mutable_data());
            return a;
          },
          py::arg("ciphertexts"), "Decrypt a PaillierCipherArray to a flat float64 numpy array.")
      .def(
          "decrypt_array_int",
          [](const SecretKey &sk, const CiphertextVector &c) {
            std::vector<mpz_class> out;
            {
              py::gil_scoped_release release;
              out = decrypt_ints(sk, c);
            }
            py::list l(out.size());
            for (std::size_t i = 0; i < out.size(); ++i) l[i] = mpz_to_py(out[i]);
            return l;
          },
          py::arg("ciphertexts"), "Decrypt a PaillierCipherArray to a list of Python ints (rounded if fixed-point).")
      .def(
          "decrypt_array",
          [](const SecretKey &sk, const PackedVector &c) {
            std::vector<double> out;
            {
              py::gil_scoped_release release;
              out = decrypt_packed_reals(sk, c);
            }
            return to_numpy(out);
          },
          py::arg("ciphertexts"), "Decrypt a PaillierPackedArray to a flat float64 numpy array.")
      .def(
          "decrypt_array_int",
          [](const SecretKey &sk, const PackedVector &c) {
            std::vector<mpz_class> out;
            {
              py::gil_scoped_release release;
              out = decrypt_packed_ints(sk, c);
            }
            return to_pylist(out);
          },
          py::arg("ciphertexts"), "Decrypt a PaillierPackedArray to Python ints (rounded if fixed-point).")
      .def(
          "encrypt",
          [](const SKPtr &sk, py::object x, int precision) {
            check_precision(precision);
            Scalar s = require_scalar(x, "the plaintext");
            mpz_class m = s.is_int ? s.i : encode_real(s.d, precision);
            int scale = s.is_int ? 0 : precision;
            mpz_class c;
            {
              py::gil_scoped_release release;
              c = sk->encrypt(m);
            }
            return Ciphertext{sk->public_key(), c, scale};
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision,
          "CRT encryption (needs the secret key): same ciphertexts as public_key.encrypt, computed mod p^2 and q^2.")
      .def(
          "encrypt_array",
          [](const SKPtr &sk, py::object x, int precision, bool pack, unsigned slot_bits) {
            return encrypt_array_py(mutable_pk(sk->public_key()), sk.get(), x, precision, pack, slot_bits);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision, py::arg("pack") = false,
          py::arg("slot_bits") = kDefaultSlotBits,
          "CRT encryption of a numpy array (as public_key.encrypt_array, with half-size fixed-base tables).")
      .def("precompute", &SecretKey::precompute, py::call_guard<py::gil_scoped_release>(),
           "Build the CRT encryption tables now (otherwise built on the first CRT encryption).")
      .def("to_bytes", [](const SecretKey &sk) { return py::bytes(sk.to_bytes()); })
      .def_static("from_bytes", [](py::bytes b) { return SecretKey::from_bytes(std::string(b)); }, py::arg("data"))
      .def("__repr__",
           [](const SecretKey &sk) {
             return "<PaillierSecretKey for a " + std::to_string(sk.public_key()->bits()) + "-bit n>";
           })
      .def("__reduce__", [](py::object self) {
        const SecretKey &sk = self.cast<const SecretKey &>();
        return py::make_tuple(py::type::of(self),
                              py::make_tuple(mutable_pk(sk.public_key()), mpz_to_py(sk.p()), mpz_to_py(sk.q())));
      });

  // ---- one ciphertext ----
  ct_cls
      .def(py::init([](const PKPtr &pk, py::object value, int scale_bits) {
             if (!pk) throw py::value_error("public_key is required");
             if (scale_bits < 0 || scale_bits > kMaxScaleBits) throw py::value_error("scale_bits out of range");
             Scalar s = require_scalar(value, "value");
             if (!s.is_int) throw py::type_error("value must be an int (the raw ciphertext)");
             pk->check_ciphertext(s.i);
             return Ciphertext{pk, s.i, scale_bits};
           }),
           py::arg("public_key"), py::arg("value"), py::arg("scale_bits") = 0,
           "Wrap a raw ciphertext integer (checked: 0 < value < n^2 and coprime to n).")
      .def_property_readonly("public_key", [](const Ciphertext &c) { return mutable_pk(checked(c).pk); })
      .def_property_readonly("value", [](const Ciphertext &c) { return mpz_to_py(c.value); },
                             "The ciphertext as an integer in (0, n^2): what the server sees.")
      .def_property_readonly("scale_bits", [](const Ciphertext &c) { return c.scale_bits; })
      .def_property_readonly("nbytes", [](const Ciphertext &c) { return checked(c).pk->ciphertext_bytes(); })
      .def("rescale", [](const Ciphertext &c, int s) { return rescale(checked(c), s); }, py::arg("scale_bits"))
      .def(
          "add",
          [](const Ciphertext &a, py::object o, int precision) -> Ciphertext {
            check_precision(precision);
            if (py::isinstance<Ciphertext>(o)) return checked(a) + o.cast<const Ciphertext &>();
            Scalar s = require_scalar(o, "the summand");
            return s.is_int ? add_plain_int(checked(a), s.i) : add_plain_real(checked(a), s.d, precision);
          },
          py::arg("other"), py::arg("precision") = kDefaultPrecision)
      .def(
          "mul",
          [](const Ciphertext &a, py::object o, int precision) -> Ciphertext {
            check_precision(precision);
            if (py::isinstance<Ciphertext>(o))
              throw py::type_error("Paillier ciphertexts cannot be multiplied together (only by plaintext scalars)");
            Scalar s = require_scalar(o, "the factor");
            return s.is_int ? mul_plain_int(checked(a), s.i) : mul_plain_real(checked(a), s.d, precision);
          },
          py::arg("other"), py::arg("precision") = kDefaultPrecision)
      .def("__add__",
           [](const Ciphertext &a, py::object o) -> py::object {
             if (py::isinstance<Ciphertext>(o)) return py::cast(checked(a) + o.cast<const Ciphertext &>());
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             return py::cast(s.is_int ? add_plain_int(checked(a), s.i) : add_plain_real(checked(a), s.d));
           })
      .def("__radd__",
           [](const Ciphertext &a, py::object o) -> py::object {
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             return py::cast(s.is_int ? add_plain_int(checked(a), s.i) : add_plain_real(checked(a), s.d));
           })
      .def("__sub__",
           [](const Ciphertext &a, py::object o) -> py::object {
             if (py::isinstance<Ciphertext>(o)) return py::cast(checked(a) + (-o.cast<const Ciphertext &>()));
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             return py::cast(s.is_int ? add_plain_int(checked(a), -s.i) : add_plain_real(checked(a), -s.d));
           })
      .def("__rsub__",
           [](const Ciphertext &a, py::object o) -> py::object {
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             Ciphertext n = -checked(a);
             return py::cast(s.is_int ? add_plain_int(n, s.i) : add_plain_real(n, s.d));
           })
      .def("__mul__",
           [](const Ciphertext &a, py::object o) -> py::object {
             if (py::isinstance<Ciphertext>(o))
               throw py::type_error("Paillier ciphertexts cannot be multiplied together (only by plaintext scalars)");
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             return py::cast(s.is_int ? mul_plain_int(checked(a), s.i) : mul_plain_real(checked(a), s.d));
           })
      .def("__rmul__",
           [](const Ciphertext &a, py::object o) -> py::object {
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             return py::cast(s.is_int ? mul_plain_int(checked(a), s.i) : mul_plain_real(checked(a), s.d));
           })
      .def("__truediv__",
           [](const Ciphertext &a, py::object o) -> py::object {
             if (py::isinstance<Ciphertext>(o)) throw py::type_error("cannot divide by a Paillier ciphertext");
             Scalar s;
             if (!to_scalar(o, s)) return not_implemented();
             double d = s.is_int ? s.i.get_d() : s.d;
             if (d == 0.0) throw py::value_error("division of a ciphertext by zero");
             return py::cast(mul_plain_real(checked(a), 1.0 / d));
           })
      .def("__neg__", [](const Ciphertext &a) { return -checked(a); })
      .def("__pos__", [](const Ciphertext &a) { return checked(a); })
      .def("to_bytes", [](const Ciphertext &c) { return py::bytes(to_bytes(checked(c))); })
      .def_static(
          "from_bytes",
          [](const PKPtr &pk, py::bytes b) { return ciphertext_from_bytes(pk, std::string(b)); },
          py::arg("public_key"), py::arg("data"))
      .def("__repr__",
           [](const Ciphertext &c) {
             if (!c.pk) return std::string("<PaillierCipherText (empty)>");
             std::ostringstream s;
             s << "<PaillierCipherText " << c.pk->bits() << "-bit key, scale 2^-" << c.scale_bits
               << ", c=" << repr_value(c.value) << ">";
             return s.str();
           })
      .def("__reduce__", [](py::object self) {
        const Ciphertext &c = checked(self.cast<const Ciphertext &>());
        return py::make_tuple(py::type::of(self), py::make_tuple(mutable_pk(c.pk), mpz_to_py(c.value), c.scale_bits));
      });

  // ---- arrays of ciphertexts ----
  auto need = [](const CiphertextVector &c) -> const CiphertextVector & {
    if (!c.pk) throw py::value_error("empty ciphertext array");
    return c;
  };
  cv_cls
      .def(py::init([](const PKPtr &pk, py::bytes data) {
             if (!pk) throw py::value_error("public_key is required");
             std::string s(data);
             py::gil_scoped_release release;
             return ciphertext_vector_from_bytes(pk, s);
           }),
           py::arg("public_key"), py::arg("data"), "Parse an array serialized with to_bytes().")
      .def_static(
          "from_ciphertexts",
          [](py::iterable items) {
            CiphertextVector out;
            std::vector<Ciphertext> cs;
            for (auto h : items) {
              if (!py::isinstance<Ciphertext>(h))
                throw py::type_error("PaillierCipherArray.from_ciphertexts expects PaillierCipherText items, got " +
                                     type_name(h));
              cs.push_back(checked(h.cast<const Ciphertext &>()));
            }
            if (cs.empty()) throw py::value_error("from_ciphertexts needs at least one ciphertext");
            int s = 0;
            for (auto &c : cs) {
              check_same_key(*cs[0].pk, *c.pk);
              s = std::max(s, c.scale_bits);
            }
            out.pk = cs[0].pk;
            out.scale_bits = s;
            for (auto &c : cs) out.values.push_back(rescale(c, s).value);
            return out;
          },
          py::arg("ciphertexts"))
      .def_static(
          "concatenate",
          [](std::vector<CiphertextVector> parts) {
            if (parts.empty()) throw py::value_error("concatenate needs at least one array");
            int s = 0;
            for (auto &p : parts) {
              if (!p.pk) throw py::value_error("empty ciphertext array");
              check_same_key(*parts[0].pk, *p.pk);
              s = std::max(s, p.scale_bits);
            }
            py::gil_scoped_release release;
            CiphertextVector out{parts[0].pk, {}, s};
            for (auto &p : parts) {
              CiphertextVector r = rescale(p, s);
              out.values.insert(out.values.end(), r.values.begin(), r.values.end());
            }
            return out;
          },
          py::arg("arrays"))
      .def("__len__", [](const CiphertextVector &c) { return c.values.size(); })
      .def_property_readonly("size", [](const CiphertextVector &c) { return c.values.size(); })
      .def_property_readonly("scale_bits", [](const CiphertextVector &c) { return c.scale_bits; })
      .def_property_readonly("public_key", [need](const CiphertextVector &c) { return mutable_pk(need(c).pk); })
      .def_property_readonly("nbytes",
                             [need](const CiphertextVector &c) { return c.values.size() * need(c).pk->ciphertext_bytes(); })
      .def("__getitem__",
           [need](const CiphertextVector &c, py::ssize_t i) {
             py::ssize_t n = static_cast<py::ssize_t>(c.values.size());
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw py::index_error("ciphertext index out of range");
             return Ciphertext{need(c).pk, c.values[static_cast<std::size_t>(i)], c.scale_bits};
           })
      .def(
          "take",
          [need](const CiphertextVector &c, py::array_t<long long, py::array::c_style | py::array::forcecast> idx) {
            need(c);
            CiphertextVector out{c.pk, std::vector<mpz_class>(idx.size()), c.scale_bits};
            const long long n = static_cast<long long>(c.values.size());
            for (py::ssize_t i = 0; i < idx.size(); ++i) {
              long long j = idx.data()[i];
              if (j < 0) j += n;
              if (j < 0 || j >= n) throw py::index_error("ciphertext index out of range");
              out.values[i] = c.values[static_cast<std::size_t>(j)];
            }
            return out;
          },
          py::arg("indices"), "The ciphertexts at the given flat indices (a gather).")
      .def("values",
           [](const CiphertextVector &c) {
             py::list l(c.values.size());
             for (std::size_t i = 0; i < c.values.size(); ++i) l[i] = mpz_to_py(c.values[i]);
             return l;
           },
           "The raw ciphertexts as Python ints (what the server sees).")
      .def(
          "rescale",
          [need](const CiphertextVector &c, int s) {
            need(c);
            py::gil_scoped_release release;
            return rescale(c, s);
          },
          py::arg("scale_bits"))
      .def(
          "add",
          [need](const CiphertextVector &a, const CiphertextVector &b) {
            need(a);
            need(b);
            py::gil_scoped_release release;
            return add(a, b);
          },
          py::arg("other"), "Elementwise sum of two arrays of equal length under one key.")
      .def(
          "add_plain",
          [need](const CiphertextVector &a, py::object x, int precision) {
            need(a);
            check_precision(precision);
            std::vector<double> reals;
            std::vector<mpz_class> ints;
            bool is_int = array_to_plain(x, reals, ints, "the plaintext summand");
            py::gil_scoped_release release;
            if (is_int) return add_plain_ints(a, ints);
            return add_plain_reals(a, reals.data(), reals.size(), precision);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision, "Add a plaintext numpy array elementwise.")
      .def(
          "mul_plain",
          [need](const CiphertextVector &a, py::object x, int precision) {
            need(a);
            check_precision(precision);
            std::vector<double> reals;
            std::vector<mpz_class> ints;
            bool is_int = array_to_plain(x, reals, ints, "the plaintext factor");
            py::gil_scoped_release release;
            if (is_int) return mul_plain_ints(a, ints);
            return mul_plain_reals(a, reals.data(), reals.size(), precision);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision, "Multiply elementwise by a plaintext numpy array.")
      .def(
          "add_scalar",
          [need](const CiphertextVector &a, py::object x, int precision) {
            need(a);
            check_precision(precision);
            Scalar s = require_scalar(x, "the summand");
            if (s.is_int) {
              std::vector<mpz_class> ints(a.values.size(), s.i);
              py::gil_scoped_release release;
              return add_plain_ints(a, ints);
            }
            std::vector<double> reals(a.values.size(), s.d);
            py::gil_scoped_release release;
            return add_plain_reals(a, reals.data(), reals.size(), precision);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision)
      .def(
          "mul_scalar",
          [need](const CiphertextVector &a, py::object x, int precision) {
            need(a);
            check_precision(precision);
            Scalar s = require_scalar(x, "the factor");
            py::gil_scoped_release release;
            return s.is_int ? mul_scalar_int(a, s.i) : mul_scalar_real(a, s.d, precision);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision)
      .def("negate",
           [need](const CiphertextVector &a) {
             need(a);
             py::gil_scoped_release release;
             return negate(a);
           })
      .def("sum",
           [need](const CiphertextVector &a) {
             need(a);
             py::gil_scoped_release release;
             return sum(a);
           })
      .def("to_bytes", [need](const CiphertextVector &c) { return py::bytes(to_bytes(need(c))); })
      .def_static(
          "from_bytes",
          [](const PKPtr &pk, py::bytes b) {
            std::string s(b);
            py::gil_scoped_release release;
            return ciphertext_vector_from_bytes(pk, s);
          },
          py::arg("public_key"), py::arg("data"))
      .def("__repr__",
           [](const CiphertextVector &c) {
             std::ostringstream s;
             s << "<PaillierCipherArray of " << c.values.size() << " ciphertexts, scale 2^-" << c.scale_bits << ">";
             return s.str();
           })
      .def("__reduce__", [need](py::object self) {
        const CiphertextVector &c = need(self.cast<const CiphertextVector &>());
        return py::make_tuple(py::type::of(self), py::make_tuple(mutable_pk(c.pk), py::bytes(to_bytes(c))));
      });

  // ---- packed arrays ----
  auto needp = [](const PackedVector &c) -> const PackedVector & {
    if (!c.pk || c.slots == 0) throw py::value_error("empty packed ciphertext array");
    return c;
  };
  auto packed_add = [needp](const PackedVector &a, py::object o, int precision) -> py::object {
    needp(a);
    if (py::isinstance<PackedVector>(o)) {
      const PackedVector &b = needp(o.cast<const PackedVector &>());
      py::gil_scoped_release release;
      return py::cast(add(a, b));
    }
    if (py::isinstance<CiphertextVector>(o) || py::isinstance<Ciphertext>(o))
      throw py::type_error("cannot mix packed and unpacked Paillier ciphertexts");
    Scalar s;
    std::vector<double> reals;
    std::vector<mpz_class> ints;
    bool is_int;
    if (to_scalar(o, s)) {
      is_int = s.is_int;
      if (is_int) ints.assign(a.length, s.i);
      else reals.assign(a.length, s.d);
    } else {
      is_int = array_to_plain(o, reals, ints, "the plaintext summand");
    }
    py::gil_scoped_release release;
    return py::cast(is_int ? add_plain_ints(a, ints) : add_plain_reals(a, reals.data(), reals.size(), precision));
  };
  pv_cls
      .def(py::init([](const PKPtr &pk, py::bytes data) {
             if (!pk) throw py::value_error("public_key is required");
             std::string s(data);
             py::gil_scoped_release release;
             return packed_vector_from_bytes(pk, s);
           }),
           py::arg("public_key"), py::arg("data"), "Parse a packed array serialized with to_bytes().")
      .def("__len__", [](const PackedVector &c) { return c.length; })
      .def_property_readonly("size", [](const PackedVector &c) { return c.length; })
      .def_property_readonly("num_ciphertexts", [](const PackedVector &c) { return c.values.size(); })
      .def_property_readonly("slots", [](const PackedVector &c) { return c.slots; }, "Values per ciphertext.")
      .def_property_readonly("slot_bits", [](const PackedVector &c) { return c.slot_bits; })
      .def_property_readonly("scale_bits", [](const PackedVector &c) { return c.scale_bits; })
      .def_property_readonly("bound", [](const PackedVector &c) { return mpz_to_py(c.bound); },
                             "Proven bound on |slot integer| (value * 2^scale_bits) of every slot.")
      .def_property_readonly("slot_limit", [](const PackedVector &c) { return mpz_to_py(packed_slot_limit(c.slot_bits)); },
                             "Largest slot magnitude, 2^(slot_bits - 1) - 1.")
      .def_property_readonly("public_key", [needp](const PackedVector &c) { return mutable_pk(needp(c).pk); })
      .def_property_readonly("nbytes",
                             [needp](const PackedVector &c) { return c.values.size() * needp(c).pk->ciphertext_bytes(); })
      .def("values", [](const PackedVector &c) { return to_pylist(c.values); },
           "The raw ciphertexts as Python ints (what the server sees).")
      .def(
          "rescale",
          [needp](const PackedVector &c, int s) {
            needp(c);
            py::gil_scoped_release release;
            return rescale(c, s);
          },
          py::arg("scale_bits"))
      .def("add", packed_add, py::arg("other"), py::arg("precision") = kDefaultPrecision,
           "Slot-wise sum with a packed array of the same key and layout, a plaintext array or a scalar.")
      .def("add_plain", packed_add, py::arg("x"), py::arg("precision") = kDefaultPrecision)
      .def("add_scalar", packed_add, py::arg("x"), py::arg("precision") = kDefaultPrecision)
      .def(
          "mul_scalar",
          [needp](const PackedVector &a, py::object x, int precision) {
            needp(a);
            check_precision(precision);
            Scalar s = require_scalar(x, "the factor");
            py::gil_scoped_release release;
            return s.is_int ? mul_scalar_int(a, s.i) : mul_scalar_real(a, s.d, precision);
          },
          py::arg("x"), py::arg("precision") = kDefaultPrecision, "Multiply every slot by one int or float.")
      .def("mul_plain", [](const PackedVector &, py::object, int) -> PackedVector { throw py::type_error(kPackedMulPlain); },
           py::arg("x"), py::arg("precision") = kDefaultPrecision, "Not possible on packed data: raises TypeError.")
      .def("negate",
           [needp](const PackedVector &a) {
             needp(a);
             py::gil_scoped_release release;
             return negate(a);
           })
      .def("sum", [](const PackedVector &) -> PackedVector {
             throw py::type_error("summing the slots of one packed array is not possible homomorphically (slots "
                                  "cannot be moved); add packed arrays together, or decrypt and sum");
           })
      .def("__add__", [packed_add](const PackedVector &a, py::object o) { return packed_add(a, o, kDefaultPrecision); })
      .def("__radd__",
           [packed_add](const PackedVector &a, py::object o) -> py::object {
             if (PyLong_Check(o.ptr()) && pylong_to_mpz(o) == 0) return py::cast(a);  // sum() starts at 0
             return packed_add(a, o, kDefaultPrecision);
           })
      .def("__sub__",
           [packed_add, needp](const PackedVector &a, py::object o) -> py::object {
             needp(a);
             if (py::isinstance<PackedVector>(o)) {
               const PackedVector &b = needp(o.cast<const PackedVector &>());
               py::gil_scoped_release release;
               return py::cast(add(a, negate(b)));
             }
             Scalar sc;
             if (to_scalar(o, sc)) return packed_add(a, sc.is_int ? mpz_to_py(mpz_class(-sc.i)) : py::object(py::float_(-sc.d)),
                                                      kDefaultPrecision);
             if (py::isinstance<CiphertextVector>(o) || py::isinstance<Ciphertext>(o))
               throw py::type_error("cannot mix packed and unpacked Paillier ciphertexts");
             py::array arr = py::array::ensure(o);
             if (!arr) throw py::type_error("the plaintext subtrahend must be array-like");
             char kind = arr.dtype().kind();
             if (kind != 'O' && kind != 'i' && kind != 'u' && kind != 'f' && kind != 'b')
               throw py::type_error("the plaintext subtrahend must hold ints or floats, got dtype " +
                                    std::string(py::str(arr.dtype())));
             if (arr.dtype().kind() == 'O')
               return packed_add(a, py::module_::import("numpy").attr("array")(
                                        py::module_::import("builtins").attr("list")(
                                            py::module_::import("builtins").attr("map")(
                                                py::module_::import("operator").attr("neg"), arr.attr("ravel")())),
                                        "object"),
                                 kDefaultPrecision);
             py::object plain = kind == 'b' ? py::object(arr.attr("astype")("int64")) : py::object(arr);
             return packed_add(a, py::module_::import("numpy").attr("negative")(plain), kDefaultPrecision);
           })
      .def("__rsub__",
           [packed_add, needp](const PackedVector &a, py::object o) -> py::object {
             PackedVector n;
             {
               py::gil_scoped_release release;
               n = negate(needp(a));
             }
             return packed_add(n, o, kDefaultPrecision);
           })
      .def("__mul__",
           [needp](const PackedVector &a, py::object o) -> py::object {
             needp(a);
             if (py::isinstance<PackedVector>(o) || py::isinstance<CiphertextVector>(o) || py::isinstance<Ciphertext>(o))
               throw py::type_error("Paillier ciphertexts cannot be multiplied together (only by plaintext scalars)");
             Scalar s;
             if (!to_scalar(o, s)) throw py::type_error(kPackedMulPlain);
             py::gil_scoped_release release;
             return py::cast(s.is_int ? mul_scalar_int(a, s.i) : mul_scalar_real(a, s.d));
           })
      .def("__rmul__",
           [needp](const PackedVector &a, py::object o) -> py::object {
             needp(a);
             Scalar s;
             if (!to_scalar(o, s)) throw py::type_error(kPackedMulPlain);
             py::gil_scoped_release release;
             return py::cast(s.is_int ? mul_scalar_int(a, s.i) : mul_scalar_real(a, s.d));
           })
      .def("__neg__",
           [needp](const PackedVector &a) {
             needp(a);
             py::gil_scoped_release release;
             return negate(a);
           })
      .def("to_bytes", [needp](const PackedVector &c) { return py::bytes(to_bytes(needp(c))); })
      .def_static(
          "from_bytes",
          [](const PKPtr &pk, py::bytes b) {
            std::string s(b);
            py::gil_scoped_release release;
            return packed_vector_from_bytes(pk, s);
          },
          py::arg("public_key"), py::arg("data"))
      .def("__repr__",
           [](const PackedVector &c) {
             std::ostringstream s;
             s << "<PaillierPackedArray of " << c.length << " values in " << c.values.size() << " ciphertexts ("
               << c.slots << " slots of " << c.slot_bits << " bits), scale 2^-" << c.scale_bits << ", bound 2^"
               << bits_str(c.bound) << ">";
             return s.str();
           })
      .def("__reduce__", [needp](py::object self) {
        const PackedVector &c = needp(self.cast<const PackedVector &>());
        return py::make_tuple(py::type::of(self), py::make_tuple(mutable_pk(c.pk), py::bytes(to_bytes(c))));
      });
}
