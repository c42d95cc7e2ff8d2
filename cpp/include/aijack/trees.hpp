// Histogram gradient-boosted trees over vertically partitioned data (XGBoost, Chen & Guestrin 2016;
// SecureBoost, Cheng et al. 2021; cost-aware robust splits, Chen et al. 2021).
//
// * Each Party holds some columns (feature_ids: their global column numbers). Its columns are
//   binned once by quantiles (num_percentile_bin bins); a split "x <= cut" is a (party, local
//   feature, bin) triple and is stored only in that party's lookup table; tree nodes keep
//   (party_id, record_id).
// * Gradients/hessians of the logistic (2 classes) or softmax (C > 2 classes, one weight vector per
//   leaf) loss are rounded to int64 fixed point with kFixedBits fractional bits, and every
//   histogram sum is exact: the plaintext trees and SecureBoost's encrypted trees are built from
//   the same integers and are identical.
// * Gain: 0.5 * (GL^2/(HL+lam) + GR^2/(HR+lam) - G^2/(H+lam)) - gamma (summed over classes);
//   leaf weight -G/(H+lam), added with learning_rate. min_leaf (rows) and min_child_weight
//   (sum of hessians) bound the children; depth bounds the tree.
// * Split finding is multi-threaded over (party, feature) with n_job threads.
// * SecureBoost: the active party encrypts, per row, all of its (g_k + off, h_k + off) in one
//   Paillier plaintext (slots of B bits); passive parties multiply ciphertexts per bin (encrypted
//   sums, no key), then pack several bins' sums into one plaintext (Horner: c^(2^(B*s)) * c');
//   the active party decrypts the packed sums in threaded batches and chooses the split.
// * Robust (cost-aware) splits (Chen et al. 2019/2021): a party may set eps[f] >= 0 per local
//   feature, the amount an attacker can move that feature. Bins within eps of a threshold are
//   ambiguous; a split is scored by its worst case: the leaf weights it would get from the clean
//   partition, with each ambiguous bin placed on whichever side gives the larger loss (the
//   second-order loss, so the score never exceeds the clean gain).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aijack/paillier.hpp"

namespace aijack {
namespace trees {

constexpr int kFixedBits = 30;
constexpr std::uint16_t kMissingBin = 0xFFFF;

struct Record {
  int local_feature = 0;
  double threshold = 0.0;
  bool missing_left = true;
};

struct Party {
  // x: n_rows x n_cols, row-major. Throws std::invalid_argument for bad arguments or NaN without
  // use_missing_value.
  Party(const double *x, std::size_t n_rows, std::size_t n_cols, std::vector<int> feature_ids, int party_id,
        int min_leaf, double subsample_cols, int num_percentile_bin, bool use_missing_value, std::uint64_t seed);

  int party_id;
  std::vector<int> feature_ids;
  int min_leaf;
  double subsample_cols;
  int num_percentile_bin;
  bool use_missing_value;
  std::uint64_t seed;
  std::size_t n_rows;
  std::vector<std::vector<double>> cuts;           // per local feature, sorted
  std::vector<std::vector<std::uint16_t>> bins;    // per local feature, per row (kMissingBin = NaN)
  std::vector<double> cost_eps;                    // per local feature (empty: not robust)
  std::vector<Record> lookup_table;                // this party's split thresholds
};

struct Node {
  bool leaf = true;
  int party_id = -1;   // owner of the split
  int record_id = -1;  // index in the owner's lookup table
  int left = -1, right = -1;
  int depth = 0;
  std::size_t n = 0;
  double gain = 0.0;
  std::vector<double> weight;  // leaf weights (one per output)
};

struct Params {
  int num_classes = 2;
  int boosting_rounds = 5;
  double lam = 1.0;
  double gamma = 0.0;
  double min_child_weight = -1e300;
  double learning_rate = 0.4;
  int depth = 5;
  int active_party_id = 0;
  int completely_secure_round = 0;
  double init_value = 1.0;
  int n_job = 1;
  bool save_loss = true;
};

struct Timings {
  double encryption = 0, aggregation = 0, decryption = 0, building = 0;
  std::size_t encryptions = 0, decryptions = 0, encrypted_sums = 0;
};

class Booster {
 public:
  explicit Booster(Params p);
  // parties: distinct party_ids, equal row counts; y in {0..C-1}. pk/sk set: SecureBoost.
  void fit(const std::vector<std::shared_ptr<Party>> &parties, const std::vector<int> &y,
           std::shared_ptr<const paillier::PublicKey> pk = nullptr,
           std::shared_ptr<const paillier::SecretKey> sk = nullptr,
           const std::function<void(int, int)> &progress = nullptr);
  // x: n x d row-major with d > every party's largest feature id; returns n x outputs margins.
  std::vector<double> predict_raw(const double *x, std::size_t n, std::size_t d) const;
  std::vector<double> predict_proba(const double *x, std::size_t n, std::size_t d) const;  // n x C

  int outputs() const { return params_.num_classes == 2 ? 1 : params_.num_classes; }
  const Params &params() const { return params_; }
  const std::vector<std::vector<Node>> &trees() const { return trees_; }
  const std::vector<std::shared_ptr<Party>> &parties() const { return parties_; }
  const std::vector<double> &loss() const { return loss_; }
  const Timings &timings() const { return timings_; }

 private:
  Params params_;
  std::vector<std::vector<Node>> trees_;
  std::vector<std::shared_ptr<Party>> parties_;
  std::vector<double> loss_;
  Timings timings_;
};

}  // namespace trees
}  // namespace aijack
