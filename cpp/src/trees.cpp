// Histogram gradient-boosted trees, SecureBoost and cost-aware robust splits: see
// cpp/include/aijack/trees.hpp for the conventions.
#include "aijack/trees.hpp"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>

#include "aijack/module.hpp"

namespace aijack {
namespace trees {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void require(bool ok, const std::string &msg) {
  if (!ok) throw std::invalid_argument(msg);
}

}  // namespace

Party::Party(const double *x, std::size_t n_rows_, std::size_t n_cols, std::vector<int> feature_ids_, int party_id_,
             int min_leaf_, double subsample_cols_, int num_percentile_bin_, bool use_missing_value_,
             std::uint64_t seed_)
    : party_id(party_id_),
      feature_ids(std::move(feature_ids_)),
      min_leaf(min_leaf_),
      subsample_cols(subsample_cols_),
      num_percentile_bin(num_percentile_bin_),
      use_missing_value(use_missing_value_),
      seed(seed_),
      n_rows(n_rows_) {
  require(n_rows > 0, "x: a party needs at least one row");
  require(n_cols > 0, "x: a party needs at least one column (empty party)");
  require(feature_ids.size() == n_cols, "feature_ids: needs one global column id per column of x (got " +
                                            std::to_string(feature_ids.size()) + " ids for " +
                                            std::to_string(n_cols) + " columns)");
  for (int f : feature_ids) require(f >= 0, "feature_ids: ids must be >= 0");
  {
    std::vector<int> s = feature_ids;
    std::sort(s.begin(), s.end());
    require(std::adjacent_find(s.begin(), s.end()) == s.end(), "feature_ids: ids must be distinct");
  }
  require(party_id >= 0, "party_id: must be >= 0");
  require(min_leaf >= 1, "min_leaf: must be >= 1");
  require(subsample_cols > 0.0 && subsample_cols <= 1.0, "subsample_cols: must be in (0, 1]");
  require(num_percentile_bin >= 2 && num_percentile_bin <= 65000, "num_percentile_bin: must be in [2, 65000]");
  cuts.resize(n_cols);
  bins.resize(n_cols);
  std::vector<double> col;
  for (std::size_t f = 0; f < n_cols; ++f) {
    col.clear();
    for (std::size_t i = 0; i < n_rows; ++i) {
      double v = x[i * n_cols + f];
      if (std::isnan(v)) {
        require(use_missing_value, "x: contains NaN; pass use_missing_value=True to learn a direction for missing values");
        continue;
      }
      require(std::isfinite(v), "x: contains an infinite value");
      col.push_back(v);
    }
    std::sort(col.begin(), col.end());
    std::vector<double> &c = cuts[f];
    const std::size_t m = col.size();
    for (int k = 1; k < num_percentile_bin && m > 0; ++k) {
      std::size_t idx = static_cast<std::size_t>(std::ceil(static_cast<double>(k) * m / num_percentile_bin));
      if (idx > 0) --idx;
      double v = col[std::min(idx, m - 1)];
      if (v >= col.back()) break;  // a cut at the maximum would leave the right side empty
      if (c.empty() || v > c.back()) c.push_back(v);
    }
    std::vector<std::uint16_t> &b = bins[f];
    b.resize(n_rows);
    for (std::size_t i = 0; i < n_rows; ++i) {
      double v = x[i * n_cols + f];
      b[i] = std::isnan(v) ? kMissingBin
                           : static_cast<std::uint16_t>(std::lower_bound(c.begin(), c.end(), v) - c.begin());
    }
  }
}

namespace {

constexpr std::size_t kMinParallelWork = 200000;  // (row, column) pairs before threads are used

struct Sums {
  std::vector<std::int64_t> g, h;  // bins x K
  std::vector<std::int64_t> cnt;   // bins
};

struct Split {
  double gain = -std::numeric_limits<double>::infinity();
  int task = -1;
  int bin = -1;
  bool missing_left = true;
};

struct Task {
  int party;  // index into parties
  int feature;
};

class Builder {
 public:
  Builder(const Params &P, const std::vector<std::shared_ptr<Party>> &parties, int active, const std::vector<std::int64_t> &gi,
          const std::vector<std::int64_t> &hi, const std::vector<std::vector<int>> &features,
          std::shared_ptr<const paillier::PublicKey> pk, std::shared_ptr<const paillier::SecretKey> sk,
          const std::vector<mpz_class> *enc_rows, int slot_bits, Timings &t)
      : P_(P), K_(P.num_classes == 2 ? 1 : P.num_classes), parties_(parties), active_(active), gi_(gi), hi_(hi),
        features_(features), pk_(std::move(pk)), sk_(std::move(sk)), enc_rows_(enc_rows), B_(slot_bits), t_(t) {
    for (std::size_t p = 0; p < parties_.size(); ++p)
      for (int f : features_[p]) tasks_.push_back({static_cast<int>(p), f});
  }

  std::vector<Node> build(std::size_t n) {
    std::vector<std::size_t> rows(n);
    std::iota(rows.begin(), rows.end(), 0);
    nodes_.clear();
    grow(rows, 0);
    return std::move(nodes_);
  }

 private:
  double score(const std::int64_t *G, const std::int64_t *H) const {
    const double s = std::ldexp(1.0, -kFixedBits);
    double r = 0;
    for (int k = 0; k < K_; ++k) {
      double g = G[k] * s, h = H[k] * s;
      r += g * g / (h + P_.lam);
    }
    return r;
  }
  double hsum(const std::int64_t *H) const {
    double r = 0;
    for (int k = 0; k < K_; ++k) r += H[k];
    return r * std::ldexp(1.0, -kFixedBits);
  }

  bool encrypted(int p) const { return pk_ && p != active_; }

  // Histogram of one task over `rows` (plaintext path).
  void plain_hist(const Task &t, const std::vector<std::size_t> &rows, Sums &s) const {
    const Party &pa = *parties_[t.party];
    const std::size_t nb = pa.cuts[t.feature].size() + 2;
    s.g.assign(nb * K_, 0);
    s.h.assign(nb * K_, 0);
    s.cnt.assign(nb, 0);
    const auto &b = pa.bins[t.feature];
    for (std::size_t i : rows) {
      std::size_t bin = b[i] == kMissingBin ? nb - 1 : b[i];
      s.cnt[bin] += 1;
      for (int k = 0; k < K_; ++k) {
        s.g[bin * K_ + k] += gi_[i * K_ + k];
        s.h[bin * K_ + k] += hi_[i * K_ + k];
      }
    }
  }

  // Passive party: encrypted sums per bin (no key), counts in the clear.
  void enc_hist(const Task &t, const std::vector<std::size_t> &rows, std::vector<mpz_class> &c,
                std::vector<std::int64_t> &cnt) const {
    const Party &pa = *parties_[t.party];
    const std::size_t nb = pa.cuts[t.feature].size() + 2;
    c.assign(nb, mpz_class(1));
    cnt.assign(nb, 0);
    const auto &b = pa.bins[t.feature];
    for (std::size_t i : rows) {
      std::size_t bin = b[i] == kMissingBin ? nb - 1 : b[i];
      if (cnt[bin]++ == 0)
        c[bin] = (*enc_rows_)[i];
      else
        c[bin] = pk_->add(c[bin], (*enc_rows_)[i]);
    }
  }

  void gains_for(int ti, const Sums &s, const std::int64_t *G, const std::int64_t *H, std::int64_t N,
                 Split &best) const {
    const Task &t = tasks_[ti];
    const Party &pa = *parties_[t.party];
    const auto &cuts = pa.cuts[t.feature];
    const int nc = static_cast<int>(cuts.size());
    const std::size_t nb = nc + 2;
    const double eps = pa.cost_eps.empty() ? 0.0 : pa.cost_eps[t.feature];
    const std::int64_t *Mg = &s.g[(nb - 1) * K_], *Mh = &s.h[(nb - 1) * K_];
    const std::int64_t Mc = s.cnt[nb - 1];
    const double parent = score(G, H);
    std::vector<std::int64_t> Lg(K_, 0), Lh(K_, 0);
    std::int64_t Lc = 0;
    // prefix sums over value bins, for the robust ranges
    std::vector<std::int64_t> pg, ph, pc;
    if (eps > 0) {
      pg.assign((nc + 2) * K_, 0);
      ph.assign((nc + 2) * K_, 0);
      pc.assign(nc + 2, 0);
      for (int b = 0; b <= nc; ++b) {
        for (int k = 0; k < K_; ++k) {
          pg[(b + 1) * K_ + k] = pg[b * K_ + k] + s.g[b * K_ + k];
          ph[(b + 1) * K_ + k] = ph[b * K_ + k] + s.h[b * K_ + k];
        }
        pc[b + 1] = pc[b] + s.cnt[b];
      }
    }
    auto gain_of = [&](const std::int64_t *lg, const std::int64_t *lh, const std::int64_t *rg,
                       const std::int64_t *rh) { return 0.5 * (score(lg, lh) + score(rg, rh) - parent) - P_.gamma; };
    std::vector<std::int64_t> Rg(K_), Rh(K_), lg2(K_), lh2(K_), rg2(K_), rh2(K_);
    for (int sb = 0; sb < nc; ++sb) {
      for (int k = 0; k < K_; ++k) {
        Lg[k] += s.g[sb * K_ + k];
        Lh[k] += s.h[sb * K_ + k];
      }
      Lc += s.cnt[sb];
      for (int opt = 0; opt < 2; ++opt) {
        const bool ml = opt == 0;
        if (!ml && Mc == 0) break;
        std::int64_t lc = Lc + (ml ? Mc : 0), rc = N - lc;
        if (lc < pa.min_leaf || rc < pa.min_leaf) continue;
        for (int k = 0; k < K_; ++k) {
          lg2[k] = Lg[k] + (ml ? Mg[k] : 0);
          lh2[k] = Lh[k] + (ml ? Mh[k] : 0);
          rg2[k] = G[k] - lg2[k];
          rh2[k] = H[k] - lh2[k];
        }
        if (hsum(lh2.data()) < P_.min_child_weight || hsum(rh2.data()) < P_.min_child_weight) continue;
        double gain = gain_of(lg2.data(), lh2.data(), rg2.data(), rh2.data());
        if (eps > 0) {
          const double thr = cuts[sb];
          // bins [0, a) surely stay left (upper edge <= thr - eps); bins [c, nc] surely stay right
          // (lower edge >= thr + eps); bins [a, c) can be moved across the threshold.
          int a0 = static_cast<int>(std::upper_bound(cuts.begin(), cuts.end(), thr - eps) - cuts.begin());
          int c0 = 1 + static_cast<int>(std::lower_bound(cuts.begin(), cuts.end(), thr + eps) - cuts.begin());
          a0 = std::min(a0, sb + 1);
          c0 = std::max(c0, sb + 1);
          // Worst case of the split as it will be used: leaf weights from the clean partition, and
          // the attacker moves each ambiguous bin [a0, c0) to whichever side costs more loss.
          const double sc = std::ldexp(1.0, -kFixedBits);
          double worst = 0, parent_loss = 0;
          std::vector<double> wl(K_), wr(K_);
          for (int k = 0; k < K_; ++k) {
            wl[k] = -(lg2[k] * sc) / (lh2[k] * sc + P_.lam);
            wr[k] = -(rg2[k] * sc) / (rh2[k] * sc + P_.lam);
            parent_loss += -0.5 * (G[k] * sc) * (G[k] * sc) / (H[k] * sc + P_.lam);
            worst += 0.5 * P_.lam * (wl[k] * wl[k] + wr[k] * wr[k]);
            // the rows that stay: bins [0, a0) (+ missing if it goes left) and [c0, nc] (+ missing if right)
            double gl = (pg[a0 * K_ + k]) * sc + (ml ? Mg[k] * sc : 0), hl = (ph[a0 * K_ + k]) * sc + (ml ? Mh[k] * sc : 0);
            double gr = (pg[(nc + 1) * K_ + k] - pg[c0 * K_ + k]) * sc + (ml ? 0 : Mg[k] * sc);
            double hr = (ph[(nc + 1) * K_ + k] - ph[c0 * K_ + k]) * sc + (ml ? 0 : Mh[k] * sc);
            worst += gl * wl[k] + 0.5 * hl * wl[k] * wl[k] + gr * wr[k] + 0.5 * hr * wr[k] * wr[k];
          }
          for (int b = a0; b < c0; ++b) {
            double on_left = 0, on_right = 0;
            for (int k = 0; k < K_; ++k) {
              double g = s.g[b * K_ + k] * sc, h = s.h[b * K_ + k] * sc;
              on_left += g * wl[k] + 0.5 * h * wl[k] * wl[k];
              on_right += g * wr[k] + 0.5 * h * wr[k] * wr[k];
            }
            worst += std::max(on_left, on_right);
          }
          gain = std::min(gain, parent_loss - worst - P_.gamma);
        }
        if (gain > best.gain) {
          best.gain = gain;
          best.task = ti;
          best.bin = sb;
          best.missing_left = ml;
        }
      }
    }
  }

  // Every task's histogram over `rows`: plaintext for the active party's columns (or all columns
  // without encryption), through encrypted sums for passive parties' columns.
  std::vector<Sums> compute_hists(const std::vector<std::size_t> &rows) {
    const std::size_t T = tasks_.size();
    std::vector<Sums> hist(T);
    const auto tb = Clock::now();
    // plaintext histograms (the active party's own columns, or every column without encryption);
    // threads only pay off on enough work (starting them costs ~50 us each)
    const int hist_threads = rows.size() * T * K_ >= kMinParallelWork ? P_.n_job : 1;
    paillier::parallel_for(T, hist_threads, [&](std::size_t b, std::size_t e) {
      for (std::size_t ti = b; ti < e; ++ti)
        if (!encrypted(tasks_[ti].party)) plain_hist(tasks_[ti], rows, hist[ti]);
    });
    t_.building += seconds_since(tb);
    if (pk_) encrypted_hists(rows, hist);
    return hist;
  }

  Split find_split(const std::vector<Sums> &hist, std::size_t n_rows, const std::int64_t *G, const std::int64_t *H) {
    const std::size_t T = tasks_.size();
    const auto tb2 = Clock::now();
    std::vector<Split> per(T);
    std::size_t scan_work = 0;
    for (const Sums &h : hist) scan_work += h.cnt.size() * K_;
    paillier::parallel_for(T, scan_work >= kMinParallelWork / 4 ? P_.n_job : 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t ti = b; ti < e; ++ti) gains_for(static_cast<int>(ti), hist[ti], G, H, static_cast<std::int64_t>(n_rows), per[ti]);
    });
    Split best;
    for (const Split &s : per)
      if (s.gain > best.gain) best = s;  // strict: the first (party, feature, bin) wins ties
    t_.building += seconds_since(tb2);
    return best;
  }

  void encrypted_hists(const std::vector<std::size_t> &rows, std::vector<Sums> &hist) {
    const std::size_t T = tasks_.size();
    std::vector<std::vector<mpz_class>> c(T);
    std::vector<std::vector<std::int64_t>> cnt(T);
    std::vector<std::size_t> enc_tasks;
    for (std::size_t ti = 0; ti < T; ++ti)
      if (encrypted(tasks_[ti].party)) enc_tasks.push_back(ti);
    if (enc_tasks.empty()) return;
    auto t0 = Clock::now();
    paillier::parallel_for(enc_tasks.size(), P_.n_job, [&](std::size_t b, std::size_t e) {
      for (std::size_t j = b; j < e; ++j) enc_hist(tasks_[enc_tasks[j]], rows, c[enc_tasks[j]], cnt[enc_tasks[j]]);
    });
    // pack the non-empty bins' sums, several per plaintext (passive side, Horner in the exponent)
    struct Slot {
      std::size_t task, bin;
    };
    std::vector<Slot> slots;
    for (std::size_t ti : enc_tasks)
      for (std::size_t b = 0; b < cnt[ti].size(); ++b)
        if (cnt[ti][b] > 0) slots.push_back({ti, b});
    const unsigned width = static_cast<unsigned>(B_ * 2 * K_);
    const std::size_t per_ct = std::max<std::size_t>(1, (pk_->bits() - 2) / width);
    const std::size_t n_ct = (slots.size() + per_ct - 1) / per_ct;
    std::vector<mpz_class> packed(n_ct);
    // shifting a plaintext by `width` bits = raising the ciphertext to 2^width (GMP's powm reduces
    // in Montgomery form, cheaper than `width` squarings with divisions)
    mpz_class shift_exp;
    mpz_ui_pow_ui(shift_exp.get_mpz_t(), 2, width);
    const mpz_class &n2 = pk_->n_squared();
    paillier::parallel_for(n_ct, P_.n_job, [&](std::size_t b, std::size_t e) {
      for (std::size_t j = b; j < e; ++j) {
        std::size_t lo = j * per_ct, hi = std::min(slots.size(), lo + per_ct);
        mpz_class acc = c[slots[hi - 1].task][slots[hi - 1].bin];
        for (std::size_t q = hi - 1; q-- > lo;) {
          mpz_powm(acc.get_mpz_t(), acc.get_mpz_t(), shift_exp.get_mpz_t(), n2.get_mpz_t());
          acc = pk_->add(acc, c[slots[q].task][slots[q].bin]);
        }
        packed[j] = acc;
      }
    });
    t_.aggregation += seconds_since(t0);
    t_.encrypted_sums += slots.size();
    auto t1 = Clock::now();
    std::vector<mpz_class> plain = sk_->decrypt_batch(packed, P_.n_job);
    t_.decryption += seconds_since(t1);
    t_.decryptions += packed.size();
    auto t2 = Clock::now();
    for (std::size_t ti : enc_tasks) {
      const std::size_t nb = cnt[ti].size();
      hist[ti].g.assign(nb * K_, 0);
      hist[ti].h.assign(nb * K_, 0);
      hist[ti].cnt = cnt[ti];
    }
    const std::int64_t off = std::int64_t{1} << kFixedBits;
    mpz_class v, r;
    for (std::size_t j = 0; j < n_ct; ++j) {
      std::size_t lo = j * per_ct, hi = std::min(slots.size(), lo + per_ct);
      v = plain[j];
      for (std::size_t q = lo; q < hi; ++q) {
        Sums &s = hist[slots[q].task];
        const std::size_t b = slots[q].bin;
        const std::int64_t n_in = s.cnt[b];
        for (int k = 0; k < 2 * K_; ++k) {
          mpz_fdiv_r_2exp(r.get_mpz_t(), v.get_mpz_t(), B_);
          mpz_fdiv_q_2exp(v.get_mpz_t(), v.get_mpz_t(), B_);
          std::int64_t val = static_cast<std::int64_t>(mpz_get_ui(r.get_mpz_t())) - n_in * off;
          (k % 2 == 0 ? s.g : s.h)[b * K_ + k / 2] = val;
        }
      }
    }
    t_.building += seconds_since(t2);
  }

  bool searchable(std::size_t n, int depth) const { return depth < P_.depth && n >= 2; }

  // parent - child, bin by bin (the histogram-subtraction trick: the sibling's sums for free)
  static std::vector<Sums> subtract(std::vector<Sums> parent, const std::vector<Sums> &child) {
    for (std::size_t t = 0; t < parent.size(); ++t) {
      for (std::size_t j = 0; j < parent[t].g.size(); ++j) {
        parent[t].g[j] -= child[t].g[j];
        parent[t].h[j] -= child[t].h[j];
      }
      for (std::size_t j = 0; j < parent[t].cnt.size(); ++j) parent[t].cnt[j] -= child[t].cnt[j];
    }
    return parent;
  }

  int grow(const std::vector<std::size_t> &rows, int depth, std::vector<Sums> *given = nullptr) {
    std::vector<std::int64_t> G(K_, 0), H(K_, 0);
    for (std::size_t i : rows)
      for (int k = 0; k < K_; ++k) {
        G[k] += gi_[i * K_ + k];
        H[k] += hi_[i * K_ + k];
      }
    const int id = static_cast<int>(nodes_.size());
    nodes_.emplace_back();
    nodes_[id].depth = depth;
    nodes_[id].n = rows.size();
    Split best;
    std::vector<Sums> hist;
    if (searchable(rows.size(), depth)) {
      hist = given ? std::move(*given) : compute_hists(rows);
      best = find_split(hist, rows.size(), G.data(), H.data());
    }
    if (best.task < 0 || !(best.gain > 0)) {
      std::vector<double> w(K_);
      const double s = std::ldexp(1.0, -kFixedBits);
      for (int k = 0; k < K_; ++k) w[k] = -(G[k] * s) / (H[k] * s + P_.lam);
      nodes_[id].weight = std::move(w);
      return id;
    }
    const Task &t = tasks_[best.task];
    Party &pa = *parties_[t.party];
    // the owner records the threshold in its own lookup table and partitions the rows
    Record rec{t.feature, pa.cuts[t.feature][best.bin], best.missing_left};
    pa.lookup_table.push_back(rec);
    const int record_id = static_cast<int>(pa.lookup_table.size()) - 1;
    std::vector<std::size_t> L, R;
    const auto &b = pa.bins[t.feature];
    for (std::size_t i : rows) {
      bool left = b[i] == kMissingBin ? best.missing_left : b[i] <= best.bin;
      (left ? L : R).push_back(i);
    }
    nodes_[id].leaf = false;
    nodes_[id].party_id = pa.party_id;
    nodes_[id].record_id = record_id;
    nodes_[id].gain = best.gain;
    std::vector<Sums> hl, hr;
    bool have = false;
    if (searchable(L.size(), depth + 1) && searchable(R.size(), depth + 1)) {
      // only the smaller child's histograms are computed (and, in SecureBoost, encrypted/decrypted)
      if (L.size() <= R.size()) {
        hl = compute_hists(L);
        hr = subtract(std::move(hist), hl);
      } else {
        hr = compute_hists(R);
        hl = subtract(std::move(hist), hr);
      }
      have = true;
    }
    hist.clear();
    int l = grow(L, depth + 1, have ? &hl : nullptr);
    nodes_[id].left = l;
    int r = grow(R, depth + 1, have ? &hr : nullptr);
    nodes_[id].right = r;
    return id;
  }

  const Params &P_;
  const int K_;
  const std::vector<std::shared_ptr<Party>> &parties_;
  const int active_;
  const std::vector<std::int64_t> &gi_, &hi_;
  const std::vector<std::vector<int>> &features_;
  std::shared_ptr<const paillier::PublicKey> pk_;
  std::shared_ptr<const paillier::SecretKey> sk_;
  const std::vector<mpz_class> *enc_rows_;
  const int B_;
  Timings &t_;
  std::vector<Task> tasks_;
  std::vector<Node> nodes_;
};

}  // namespace

Booster::Booster(Params p) : params_(p) {
  require(p.num_classes >= 2, "num_classes: must be >= 2");
  require(p.boosting_rounds >= 1, "boosting_rounds: must be >= 1");
  require(p.depth >= 1, "depth: must be >= 1");
  require(std::isfinite(p.lam) && p.lam >= 0, "lam: must be a finite number >= 0");
  require(std::isfinite(p.gamma), "gamma: must be finite");
  require(!std::isnan(p.min_child_weight), "min_child_weight: must not be NaN");
  require(std::isfinite(p.learning_rate) && p.learning_rate > 0, "learning_rate: must be > 0");
  require(p.completely_secure_round >= 0, "completelly_secure_round: must be >= 0");
  require(std::isfinite(p.init_value), "init_value: must be finite");
  require(p.n_job >= 1, "n_job: must be >= 1");
}

void Booster::fit(const std::vector<std::shared_ptr<Party>> &parties, const std::vector<int> &y,
                  std::shared_ptr<const paillier::PublicKey> pk, std::shared_ptr<const paillier::SecretKey> sk,
                  const std::function<void(int, int)> &progress) {
  require(!parties.empty(), "parties: needs at least one party");
  const std::size_t n = parties[0]->n_rows;
  int active = -1;
  for (std::size_t p = 0; p < parties.size(); ++p) {
    require(parties[p] != nullptr, "parties: None in the list");
    require(parties[p]->n_rows == n, "parties: all parties need the same number of rows (" + std::to_string(n) +
                                         " vs " + std::to_string(parties[p]->n_rows) + ")");
    for (std::size_t q = 0; q < p; ++q)
      require(parties[q]->party_id != parties[p]->party_id && parties[q].get() != parties[p].get(),
              "parties: party_id values must be distinct");
    if (parties[p]->party_id == params_.active_party_id) active = static_cast<int>(p);
  }
  require(active >= 0, "active_party_id: no party has party_id " + std::to_string(params_.active_party_id));
  require(y.size() == n, "y: needs one label per row (" + std::to_string(n) + "), got " + std::to_string(y.size()));
  const int C = params_.num_classes, K = outputs();
  for (int v : y) require(v >= 0 && v < C, "y: labels must be in {0..num_classes-1}, got " + std::to_string(v));
  require((pk == nullptr) == (sk == nullptr), "secret key and public key must both be set");
  int B = 0;
  if (pk) {
    require(sk->public_key()->same_key(*pk), "the secret key does not belong to the public key");
    unsigned nbits = 1;
    while ((std::size_t{1} << nbits) <= n) ++nbits;
    B = kFixedBits + 1 + static_cast<int>(nbits) + 1;
    require(static_cast<unsigned>(2 * K * B) + 2 <= pk->bits(),
            "public key too short to pack " + std::to_string(2 * K) + " gradient/hessian slots");
  }
  parties_ = parties;
  for (auto &p : parties_) p->lookup_table.clear();
  trees_.clear();
  loss_.clear();
  timings_ = Timings{};

  std::vector<double> F(n * K, params_.init_value), prob(n * K);
  std::vector<std::int64_t> gi(n * K), hi(n * K);
  std::vector<std::mt19937_64> rngs;
  for (auto &p : parties_) rngs.emplace_back(p->seed);
  const double scale = std::ldexp(1.0, kFixedBits);
  for (int round = 0; round < params_.boosting_rounds; ++round) {
    auto t0 = Clock::now();
    double loss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (K == 1) {
        double p = 1.0 / (1.0 + std::exp(-F[i]));
        double yv = y[i];
        gi[i] = std::llround((p - yv) * scale);
        hi[i] = std::llround(p * (1 - p) * scale);
        loss -= yv * std::log(std::max(p, 1e-15)) + (1 - yv) * std::log(std::max(1 - p, 1e-15));
      } else {
        double mx = *std::max_element(&F[i * K], &F[i * K] + K), z = 0;
        for (int k = 0; k < K; ++k) z += (prob[i * K + k] = std::exp(F[i * K + k] - mx));
        for (int k = 0; k < K; ++k) {
          double p = prob[i * K + k] / z, t = (y[i] == k) ? 1.0 : 0.0;
          gi[i * K + k] = std::llround((p - t) * scale);
          hi[i * K + k] = std::llround(p * (1 - p) * scale);
          if (y[i] == k) loss -= std::log(std::max(p, 1e-15));
        }
      }
    }
    if (params_.save_loss) loss_.push_back(loss / n);
    // columns each party offers to this tree
    std::vector<std::vector<int>> feats(parties_.size());
    for (std::size_t p = 0; p < parties_.size(); ++p) {
      if (round < params_.completely_secure_round && static_cast<int>(p) != active) continue;
      const int m = static_cast<int>(parties_[p]->feature_ids.size());
      std::vector<int> all(m);
      std::iota(all.begin(), all.end(), 0);
      if (parties_[p]->subsample_cols < 1.0) {
        int k = std::max(1, static_cast<int>(std::lround(parties_[p]->subsample_cols * m)));
        std::shuffle(all.begin(), all.end(), rngs[p]);
        all.resize(k);
        std::sort(all.begin(), all.end());
      }
      feats[p] = std::move(all);
    }
    timings_.building += seconds_since(t0);
    std::vector<mpz_class> enc_rows;
    if (pk) {
      auto te = Clock::now();
      std::vector<mpz_class> m(n);
      const std::int64_t off = std::int64_t{1} << kFixedBits;
      for (std::size_t i = 0; i < n; ++i) {
        mpz_class v = 0, s;
        for (int k = K - 1; k >= 0; --k) {
          v <<= B;
          v += static_cast<unsigned long>(hi[i * K + k] + off);
          v <<= B;
          v += static_cast<unsigned long>(gi[i * K + k] + off);
        }
        m[i] = v;
      }
      enc_rows = pk->encrypt_batch(m, params_.n_job);
      timings_.encryption += seconds_since(te);
      timings_.encryptions += n;
    }
    Builder builder(params_, parties_, active, gi, hi, feats, pk, sk, pk ? &enc_rows : nullptr, B, timings_);
    trees_.push_back(builder.build(n));
    auto tu = Clock::now();
    // update margins with the new tree (training rows: follow the owners' bins)
    const auto &nodes = trees_.back();
    for (std::size_t i = 0; i < n; ++i) {
      int v = 0;
      while (!nodes[v].leaf) {
        const Party *owner = nullptr;
        for (auto &p : parties_)
          if (p->party_id == nodes[v].party_id) owner = p.get();
        const Record &r = owner->lookup_table[nodes[v].record_id];
        std::uint16_t b = owner->bins[r.local_feature][i];
        // bin b holds (cuts[b-1], cuts[b]]: it goes left iff its upper edge is <= the threshold
        const auto &cuts = owner->cuts[r.local_feature];
        bool left = b == kMissingBin ? r.missing_left : (b < cuts.size() && cuts[b] <= r.threshold);
        v = left ? nodes[v].left : nodes[v].right;
      }
      for (int k = 0; k < K; ++k) F[i * K + k] += params_.learning_rate * nodes[v].weight[k];
    }
    timings_.building += seconds_since(tu);
    if (progress) progress(round + 1, params_.boosting_rounds);
  }
}

std::vector<double> Booster::predict_raw(const double *x, std::size_t n, std::size_t d) const {
  require(!trees_.empty(), "the model is not fitted: call fit(parties, y) first");
  std::vector<const Party *> by_id;
  for (auto &p : parties_) {
    for (int f : p->feature_ids)
      require(static_cast<std::size_t>(f) < d, "x: needs at least " + std::to_string(f + 1) +
                                                   " columns (the parties' feature_ids), got " + std::to_string(d));
    if (static_cast<std::size_t>(p->party_id) >= by_id.size()) by_id.resize(p->party_id + 1, nullptr);
    by_id[p->party_id] = p.get();
  }
  const int K = outputs();
  std::vector<double> F(n * K, params_.init_value);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto &nodes : trees_) {
      int v = 0;
      while (!nodes[v].leaf) {
        const Party *owner = by_id[nodes[v].party_id];
        const Record &r = owner->lookup_table[nodes[v].record_id];
        double val = x[i * d + owner->feature_ids[r.local_feature]];
        bool left = std::isnan(val) ? r.missing_left : val <= r.threshold;
        v = left ? nodes[v].left : nodes[v].right;
      }
      for (int k = 0; k < K; ++k) F[i * K + k] += params_.learning_rate * nodes[v].weight[k];
    }
  }
  return F;
}

std::vector<double> Booster::predict_proba(const double *x, std::size_t n, std::size_t d) const {
  std::vector<double> F = predict_raw(x, n, d);
  const int K = outputs(), C = params_.num_classes;
  std::vector<double> out(n * C);
  for (std::size_t i = 0; i < n; ++i) {
    if (K == 1) {
      double p = 1.0 / (1.0 + std::exp(-F[i]));
      out[i * 2] = 1 - p;
      out[i * 2 + 1] = p;
    } else {
      double mx = *std::max_element(&F[i * K], &F[i * K] + K), z = 0;
      for (int k = 0; k < K; ++k) z += (out[i * C + k] = std::exp(F[i * K + k] - mx));
      for (int k = 0; k < K; ++k) out[i * C + k] /= z;
    }
  }
  return out;
}

}  // namespace trees
}  // namespace aijack

namespace py = pybind11;
using aijack::trees::Booster;
using aijack::trees::Params;
using aijack::trees::Party;

namespace {

py::array_t<double, py::array::c_style | py::array::forcecast> as_matrix(py::handle obj, const char *name) {
  auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) throw py::type_error(std::string(name) + ": expected a 2-D array of numbers");
  if (a.ndim() != 2) throw py::value_error(std::string(name) + ": expected a 2-D array, got " + std::to_string(a.ndim()) + "-D");
  return a;
}

py::array_t<double> to_array(std::vector<double> v, py::ssize_t rows, py::ssize_t cols) {
  py::array_t<double> out({rows, cols});
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

AIJACK_SUBMODULE(trees, m) {
  m.doc() = "Histogram gradient-boosted trees over vertically split data; SecureBoost on the Paillier core.";
  m.attr("FIXED_BITS") = aijack::trees::kFixedBits;
  py::class_<Party, std::shared_ptr<Party>>(m, "Party", "One party's columns, binned by quantiles, and its lookup table.")
      .def(py::init([](py::object x, std::vector<int> feature_ids, int party_id, int min_leaf, double subsample_cols,
                       int num_percentile_bin, bool use_missing_value, std::uint64_t seed) {
             auto a = as_matrix(x, "x");
             return std::make_shared<Party>(a.data(), a.shape(0), a.shape(1), std::move(feature_ids), party_id, min_leaf,
                                            subsample_cols, num_percentile_bin, use_missing_value, seed);
           }),
           py::arg("x"), py::arg("feature_ids"), py::arg("party_id"), py::arg("min_leaf"), py::arg("subsample_cols"),
           py::arg("num_percentile_bin"), py::arg("use_missing_value"), py::arg("seed"))
      .def_readonly("party_id", &Party::party_id)
      .def_readonly("feature_ids", &Party::feature_ids)
      .def_readonly("n_rows", &Party::n_rows)
      .def_readonly("cuts", &Party::cuts)
      .def_property_readonly("lookup_table",
                             [](const Party &p) {
                               py::list out;
                               for (const auto &r : p.lookup_table)
                                 out.append(py::make_tuple(r.local_feature, r.threshold, r.missing_left));
                               return out;
                             })
      .def_property(
          "cost_eps", [](const Party &p) { return p.cost_eps; },
          [](Party &p, std::vector<double> eps) {
            if (!eps.empty() && eps.size() != p.feature_ids.size())
              throw py::value_error("constraints: needs one budget per column of the party");
            for (double e : eps)
              if (!(std::isfinite(e) && e >= 0)) throw py::value_error("constraints: budgets must be finite and >= 0");
            p.cost_eps = std::move(eps);
          });

  py::class_<Booster>(m, "Booster", "Gradient-boosted trees (XGBoost / SecureBoost) over parties' columns.")
      .def(py::init([](int num_classes, int boosting_rounds, double lam, double gamma, double min_child_weight,
                       double learning_rate, int depth, int active_party_id, int completely_secure_round,
                       double init_value, int n_job, bool save_loss) {
             Params p{num_classes, boosting_rounds, lam, gamma, min_child_weight, learning_rate, depth,
                      active_party_id, completely_secure_round, init_value, n_job, save_loss};
             return Booster(p);
           }),
           py::arg("num_classes"), py::arg("boosting_rounds"), py::arg("lam"), py::arg("gamma"),
           py::arg("min_child_weight"), py::arg("learning_rate"), py::arg("depth"), py::arg("active_party_id"),
           py::arg("completely_secure_round"), py::arg("init_value"), py::arg("n_job"), py::arg("save_loss"))
      .def(
          "fit",
          [](Booster &b, std::vector<std::shared_ptr<Party>> parties, std::vector<int> y,
             std::shared_ptr<aijack::paillier::PublicKey> pk, std::shared_ptr<aijack::paillier::SecretKey> sk,
             py::object progress) {
            std::function<void(int, int)> cb;
            if (!progress.is_none())
              cb = [progress](int s, int t) {
                py::gil_scoped_acquire g;
                progress(s, t);
              };
            py::gil_scoped_release r;
            b.fit(parties, y, pk, sk, cb);
          },
          py::arg("parties"), py::arg("y"), py::arg("public_key") = nullptr, py::arg("secret_key") = nullptr,
          py::arg("progress") = py::none())
      .def("predict_raw",
           [](const Booster &b, py::object x) {
             auto a = as_matrix(x, "x");
             std::vector<double> r;
             {
               py::gil_scoped_release g;
               r = b.predict_raw(a.data(), a.shape(0), a.shape(1));
             }
             return to_array(std::move(r), a.shape(0), b.outputs());
           },
           py::arg("x"))
      .def("predict_proba",
           [](const Booster &b, py::object x) {
             auto a = as_matrix(x, "x");
             std::vector<double> r;
             {
               py::gil_scoped_release g;
               r = b.predict_proba(a.data(), a.shape(0), a.shape(1));
             }
             return to_array(std::move(r), a.shape(0), b.params().num_classes);
           },
           py::arg("x"))
      .def_property_readonly("loss", &Booster::loss)
      .def_property_readonly("parties", &Booster::parties)
      .def_property_readonly("timings",
                             [](const Booster &b) {
                               const auto &t = b.timings();
                               py::dict d;
                               d["encryption"] = t.encryption;
                               d["aggregation"] = t.aggregation;
                               d["decryption"] = t.decryption;
                               d["building"] = t.building;
                               d["encryptions"] = t.encryptions;
                               d["decryptions"] = t.decryptions;
                               d["encrypted_sums"] = t.encrypted_sums;
                               return d;
                             })
      .def_property_readonly("trees", [](const Booster &b) {
        py::list out;
        for (const auto &tree : b.trees()) {
          py::list nodes;
          for (const auto &nd : tree) {
            py::dict d;
            d["leaf"] = nd.leaf;
            d["party_id"] = nd.party_id;
            d["record_id"] = nd.record_id;
            d["left"] = nd.left;
            d["right"] = nd.right;
            d["depth"] = nd.depth;
            d["n"] = nd.n;
            d["gain"] = nd.gain;
            d["weight"] = nd.weight;
            nodes.append(d);
          }
          out.append(nodes);
        }
        return out;
      });
}
