// Strict multidimensional Mondrian k-anonymity (LeFevre, DeWitt, Ramakrishnan, ICDE 2006).
//
// The quasi-identifiers arrive as one (n, d) float64 array: continuous columns hold their values,
// categorical columns hold integer category codes 0..m-1 (ordered, e.g. the sorted categories).
// A partition is cut on the dimension with the widest normalized range at its median, into
// x < v / x >= v or x <= v / x > v (whichever is more balanced and leaves >= k rows on both
// sides); when no dimension allows a cut the partition is final. Everything runs without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "aijack/module.hpp"

namespace py = pybind11;

namespace {

struct MondrianResult {
  std::vector<int64_t> partition_id;  // per input row
  std::vector<int64_t> sizes;         // per partition
  std::vector<double> lows, highs;    // (P, d) row-major
  // for each categorical dimension (in column order): CSR of the distinct codes per partition
  std::vector<std::vector<int64_t>> cat_offsets, cat_codes;
};

class Mondrian {
 public:
  Mondrian(std::vector<double> x, size_t n, size_t d, std::vector<bool> is_continuous,
           std::vector<int64_t> n_categories, int64_t k)
      : x_(std::move(x)), n_(n), d_(d), cont_(std::move(is_continuous)),
        ncat_(std::move(n_categories)), k_(static_cast<size_t>(k)), idx_(n), tmp_(n) {
    std::iota(idx_.begin(), idx_.end(), int64_t{0});
    stamp_.resize(d_);
    for (size_t j = 0; j < d_; ++j)
      if (!cont_[j]) stamp_[j].assign(static_cast<size_t>(ncat_[j]), 0);
    global_width_.assign(d_, 0.0);
    std::vector<double> lo, hi;
    std::vector<size_t> distinct;
    extent(0, n_, lo, hi, distinct);
    for (size_t j = 0; j < d_; ++j)
      global_width_[j] = cont_[j] ? half_width(lo[j], hi[j]) : cat_width(distinct[j]);
  }

  MondrianResult run() {
    MondrianResult res;
    res.partition_id.assign(n_, -1);
    size_t n_cat = 0;
    for (size_t j = 0; j < d_; ++j) n_cat += cont_[j] ? 0 : 1;
    res.cat_offsets.assign(n_cat, std::vector<int64_t>{0});
    res.cat_codes.assign(n_cat, {});

    std::vector<std::pair<size_t, size_t>> stack{{0, n_}};
    std::vector<double> lo, hi;
    std::vector<size_t> distinct;
    std::vector<size_t> order(d_);
    std::vector<double> span(d_);
    while (!stack.empty()) {
      auto [b, e] = stack.back();
      stack.pop_back();
      const size_t m = e - b;
      bool cut = false;
      if (m >= 2 * k_) {
        extent(b, e, lo, hi, distinct);
        for (size_t j = 0; j < d_; ++j) {
          const double w = cont_[j] ? half_width(lo[j], hi[j]) : cat_width(distinct[j]);
          span[j] = global_width_[j] > 0 ? w / global_width_[j] : 0.0;
        }
        std::iota(order.begin(), order.end(), size_t{0});
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t c) { return span[a] > span[c]; });
        for (size_t j : order) {
          if (!(span[j] > 0)) break;
          size_t left = 0;
          if (try_split(b, e, j, left)) {
            // right half pushed first so that partitions come out in row-block order
            stack.emplace_back(b + left, e);
            stack.emplace_back(b, b + left);
            cut = true;
            break;
          }
        }
      }
      if (!cut) finalize(b, e, res, lo, hi, distinct);
    }
    return res;
  }

 private:
  double at(size_t row, size_t j) const { return x_[row * d_ + j]; }
  // (hi - lo) / 2 without overflow for values near +-DBL_MAX; only ratios of widths are used
  static double half_width(double lo, double hi) { return hi / 2 - lo / 2; }
  // a set of s > 1 categories costs s / |domain| in the normalized certainty penalty; one costs nothing
  static double cat_width(size_t distinct) { return distinct > 1 ? static_cast<double>(distinct) : 0.0; }

  // Min/max per dimension and distinct-category counts over rows [b, e).
  void extent(size_t b, size_t e, std::vector<double> &lo, std::vector<double> &hi, std::vector<size_t> &distinct) {
    lo.assign(d_, INFINITY);
    hi.assign(d_, -INFINITY);
    distinct.assign(d_, 0);
    ++epoch_;
    for (size_t r = b; r < e; ++r) {
      const double *row = &x_[r * d_];
      for (size_t j = 0; j < d_; ++j) {
        const double v = row[j];
        if (v < lo[j]) lo[j] = v;
        if (v > hi[j]) hi[j] = v;
        if (!cont_[j]) {
          uint32_t &s = stamp_[j][static_cast<size_t>(v)];
          if (s != epoch_) {
            s = epoch_;
            ++distinct[j];
          }
        }
      }
    }
  }

  // Median cut of rows [b, e) on dimension j; on success the rows are reordered and `left` is
  // the size of the lower half.
  bool try_split(size_t b, size_t e, size_t j, size_t &left) {
    const size_t m = e - b;
    for (size_t r = b; r < e; ++r) tmp_[r - b] = at(r, j);
    const size_t mid = m / 2;
    std::nth_element(tmp_.begin(), tmp_.begin() + mid, tmp_.begin() + m);
    const double med = tmp_[mid];
    size_t lt = 0, le = 0;
    for (size_t r = b; r < e; ++r) {
      const double v = at(r, j);
      lt += v < med;
      le += v <= med;
    }
    auto ok = [&](size_t l) { return l >= k_ && m - l >= k_; };
    auto imbalance = [&](size_t l) { return l > m - l ? l - (m - l) : (m - l) - l; };
    bool use_le;
    if (ok(lt) && ok(le))
      use_le = imbalance(le) < imbalance(lt);
    else if (ok(lt))
      use_le = false;
    else if (ok(le))
      use_le = true;
    else
      return false;
    left = use_le ? le : lt;
    // in-place two-pointer partition of whole rows
    size_t i = b, jj = e;
    while (true) {
      while (i < jj && (use_le ? at(i, j) <= med : at(i, j) < med)) ++i;
      while (i < jj && !(use_le ? at(jj - 1, j) <= med : at(jj - 1, j) < med)) --jj;
      if (i >= jj) break;
      swap_rows(i, jj - 1);
      ++i;
      --jj;
    }
    return true;
  }

  void swap_rows(size_t a, size_t c) {
    std::swap(idx_[a], idx_[c]);
    double *ra = &x_[a * d_], *rc = &x_[c * d_];
    for (size_t j = 0; j < d_; ++j) std::swap(ra[j], rc[j]);
  }

  void finalize(size_t b, size_t e, MondrianResult &res, std::vector<double> &lo, std::vector<double> &hi,
                std::vector<size_t> &distinct) {
    const int64_t pid = static_cast<int64_t>(res.sizes.size());
    extent(b, e, lo, hi, distinct);
    res.sizes.push_back(static_cast<int64_t>(e - b));
    res.lows.insert(res.lows.end(), lo.begin(), lo.end());
    res.highs.insert(res.highs.end(), hi.begin(), hi.end());
    for (size_t r = b; r < e; ++r) res.partition_id[static_cast<size_t>(idx_[r])] = pid;
    size_t c = 0;
    for (size_t j = 0; j < d_; ++j) {
      if (cont_[j]) continue;
      auto &codes = res.cat_codes[c];
      const size_t start = codes.size();
      ++epoch_;
      for (size_t r = b; r < e; ++r) {
        const auto code = static_cast<size_t>(at(r, j));
        if (stamp_[j][code] != epoch_) {
          stamp_[j][code] = epoch_;
          codes.push_back(static_cast<int64_t>(code));
        }
      }
      std::sort(codes.begin() + static_cast<std::ptrdiff_t>(start), codes.end());
      res.cat_offsets[c].push_back(static_cast<int64_t>(codes.size()));
      ++c;
    }
  }

  std::vector<double> x_;
  size_t n_, d_;
  std::vector<bool> cont_;
  std::vector<int64_t> ncat_;
  size_t k_;
  std::vector<int64_t> idx_;
  std::vector<double> tmp_;
  std::vector<std::vector<uint32_t>> stamp_;
  uint32_t epoch_ = 0;
  std::vector<double> global_width_;
};

template <typename T>
py::array_t<T> to_array(std::vector<T> &&v, std::vector<py::ssize_t> shape) {
  auto *heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void *p) { delete static_cast<std::vector<T> *>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

py::dict mondrian_partition(py::object data_obj, std::vector<bool> is_continuous, std::vector<int64_t> n_categories,
                            int64_t k) {
  auto data = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(data_obj);
  if (!data) throw py::type_error("data must be a 2-D array of numbers");
  if (data.ndim() != 2) throw py::value_error("data must be 2-D (rows, quasi-identifiers), got " + std::to_string(data.ndim()) + "-D");
  const auto n = static_cast<size_t>(data.shape(0));
  const auto d = static_cast<size_t>(data.shape(1));
  if (n == 0) throw py::value_error("data has no rows");
  if (d == 0) throw py::value_error("data has no quasi-identifier columns");
  if (is_continuous.size() != d || n_categories.size() != d)
    throw py::value_error("is_continuous and n_categories must have one entry per column of data (" + std::to_string(d) + ")");
  if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
  if (static_cast<uint64_t>(k) > n)
    throw py::value_error("k (" + std::to_string(k) + ") is larger than the number of rows (" + std::to_string(n) + ")");
  for (size_t j = 0; j < d; ++j) {
    if (!is_continuous[j] && (n_categories[j] < 1 || n_categories[j] > static_cast<int64_t>(UINT32_MAX)))
      throw py::value_error("n_categories[" + std::to_string(j) + "] must be >= 1 for a categorical column");
  }
  const double *src = data.data();
  std::vector<double> x(src, src + n * d);
  for (size_t r = 0; r < n; ++r) {
    for (size_t j = 0; j < d; ++j) {
      const double v = x[r * d + j];
      if (!std::isfinite(v)) throw py::value_error("data has a NaN or infinite value in column " + std::to_string(j));
      if (!is_continuous[j] && (v < 0 || v >= static_cast<double>(n_categories[j]) || v != std::floor(v)))
        throw py::value_error("column " + std::to_string(j) + " is categorical but holds a value that is not a code in [0, n_categories)");
    }
  }
  MondrianResult res;
  {
    py::gil_scoped_release release;
    Mondrian algo(std::move(x), n, d, is_continuous, n_categories, k);
    res = algo.run();
  }
  const auto p = static_cast<py::ssize_t>(res.sizes.size());
  py::dict out;
  out["partition_id"] = to_array(std::move(res.partition_id), {static_cast<py::ssize_t>(n)});
  out["sizes"] = to_array(std::move(res.sizes), {p});
  out["lows"] = to_array(std::move(res.lows), {p, static_cast<py::ssize_t>(d)});
  out["highs"] = to_array(std::move(res.highs), {p, static_cast<py::ssize_t>(d)});
  py::list offsets, codes;
  for (size_t c = 0; c < res.cat_offsets.size(); ++c) {
    const auto no = static_cast<py::ssize_t>(res.cat_offsets[c].size());
    const auto nc = static_cast<py::ssize_t>(res.cat_codes[c].size());
    offsets.append(to_array(std::move(res.cat_offsets[c]), {no}));
    codes.append(to_array(std::move(res.cat_codes[c]), {nc}));
  }
  out["category_offsets"] = offsets;
  out["category_codes"] = codes;
  return out;
}

}  // namespace

AIJACK_SUBMODULE(mondrian, m) {
  m.doc() = "Strict multidimensional Mondrian k-anonymity (LeFevre et al., ICDE 2006)";
  m.def("partition", &mondrian_partition, py::arg("data"), py::arg("is_continuous"), py::arg("n_categories"),
        py::arg("k"),
        "Partition the rows of a (n, d) float64 array into equivalence classes of >= k rows.\n\n"
        "Categorical columns hold integer codes in [0, n_categories[j]). Returns a dict with\n"
        "partition_id (n,), sizes (P,), lows/highs (P, d) and, per categorical column in order,\n"
        "category_offsets (P+1,) and category_codes: the sorted distinct codes of each partition.");
}
