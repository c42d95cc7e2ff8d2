// RDP (moments) accountant: Rényi-DP of subsampled Gaussian / Laplace mechanisms in log space,
// composition over steps, conversion to (ε, δ) and the search over orders.
// Mirrors aijack_lab/defense/dp/rdp.py term by term (the pure-Python backend).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "aijack/module.hpp"

namespace py = pybind11;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr long kMaxSeriesTerms = 100000;

enum class Noise { Gaussian, Laplace };
enum class Bound { Tight, ClosedForm };

struct Step {
  double scale;
  double q;
  double steps;
};

double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == kNegInf) return a;
  return a + std::log1p(std::exp(b - a));
}

double log_sub(double a, double b) {
  if (b == kNegInf) return a;
  if (a <= b) return kNegInf;
  double d = a - b;
  if (d > 700) return a;
  return b + std::log(std::expm1(d));
}

double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  double r = 1.0 / (2.0 * x * x);
  double series = 1.0 - r + 3.0 * r * r - 15.0 * r * r * r + 105.0 * r * r * r * r;
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log(series);
}

double log_binom_int(long n, long k) {
  return std::lgamma(double(n) + 1) - std::lgamma(double(k) + 1) - std::lgamma(double(n - k) + 1);
}

bool is_int(double a) { return std::floor(a) == a; }

double rdp_gaussian(double alpha, double sigma) { return alpha / (2.0 * sigma * sigma); }

double rdp_laplace(double alpha, double b) {
  if (std::isinf(alpha)) return 1.0 / b;
  double a = log_add(std::log(alpha / (2 * alpha - 1)) + (alpha - 1) / b,
                     std::log((alpha - 1) / (2 * alpha - 1)) - alpha / b);
  return a / (alpha - 1);
}

double base_rdp(Noise n, double alpha, double scale) {
  return n == Noise::Gaussian ? rdp_gaussian(alpha, scale) : rdp_laplace(alpha, scale);
}

double log_expm1(double z) { return z > 700 ? z : std::log(std::expm1(z)); }

// A - 1 = sum_{i>=2} C(a,i) q^i (1-q)^(a-i) (e^{(i^2-i)/2s^2} - 1): positive terms, no cancellation.
double log_a_int(double q, double sigma, long alpha) {
  double log_q = std::log(q), log_1q = std::log1p(-q);
  double log_am1 = kNegInf;
  for (long i = 2; i <= alpha; ++i) {
    double di = double(i);
    double s = log_binom_int(alpha, i) + di * log_q + double(alpha - i) * log_1q +
               log_expm1((di * di - di) / (2.0 * sigma * sigma));
    log_am1 = log_add(log_am1, s);
  }
  return log_add(0.0, log_am1);
}

double log_a_frac(double q, double sigma, double alpha) {
  double log_a0 = kNegInf, log_a1 = kNegInf;
  double z0 = sigma * sigma * std::log(1.0 / q - 1.0) + 0.5;
  double log_q = std::log(q), log_1q = std::log1p(-q);
  double sqrt2s = std::sqrt(2.0) * sigma;
  double log_abs_coef = 0.0, sign = 1.0;
  long i = 0;
  while (true) {
    double di = double(i);
    double j = alpha - di;
    double log_t0 = log_abs_coef + di * log_q + j * log_1q;
    double log_t1 = log_abs_coef + j * log_q + di * log_1q;
    double log_e0 = std::log(0.5) + log_erfc((di - z0) / sqrt2s);
    double log_e1 = std::log(0.5) + log_erfc((z0 - j) / sqrt2s);
    double log_s0 = log_t0 + (di * di - di) / (2.0 * sigma * sigma) + log_e0;
    double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
    if (sign > 0) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    ++i;
    if (std::max(log_s0, log_s1) < -30 || i > kMaxSeriesTerms) break;
    double ratio = (alpha - double(i - 1)) / double(i);
    if (ratio == 0) break;
    log_abs_coef += std::log(std::fabs(ratio));
    if (ratio < 0) sign = -sign;
  }
  return log_add(log_a0, log_a1);
}

double rdp_sampled_gaussian_exact(double q, double sigma, double alpha) {
  if (q == 0) return 0.0;
  if (q == 1.0) return rdp_gaussian(alpha, sigma);
  if (std::isinf(alpha)) return kInf;
  double log_a = is_int(alpha) ? log_a_int(q, sigma, long(alpha)) : log_a_frac(q, sigma, alpha);
  return log_a / (alpha - 1);
}

double zhu_wang_thm6(Noise n, double scale, double q, long alpha) {
  double log_q = std::log(q), log_1q = std::log1p(-q);
  double terms = log_binom_int(alpha, 2) + 2 * log_q + double(alpha - 2) * log_1q + log_expm1(base_rdp(n, 2, scale));
  for (long l = 3; l <= alpha; ++l) {
    double dl = double(l);
    double log_w = std::log(3.0) + (dl - 1) * base_rdp(n, dl, scale);
    terms = log_add(terms, log_binom_int(alpha, l) + double(alpha - l) * log_1q + dl * log_q + log_w +
                               std::log1p(-std::exp(-log_w)));
  }
  return log_add(0.0, terms);
}

double wang_thm9(Noise n, double scale, double q, long alpha) {
  double eps_inf = n == Noise::Gaussian ? kInf : 1.0 / scale;
  double log_q = std::log(q);
  double log_em1_inf = std::isinf(eps_inf) ? kInf : (eps_inf > 700 ? eps_inf : std::log(std::expm1(eps_inf)));
  double e2 = base_rdp(n, 2, scale);
  double log_4em1 = std::log(4.0) + (e2 > 700 ? e2 : std::log(std::expm1(e2)));
  double log_second = std::min(log_4em1, e2 + std::min(std::log(2.0), 2 * log_em1_inf));
  double terms = log_add(0.0, 2 * log_q + log_binom_int(alpha, 2) + log_second);
  for (long j = 3; j <= alpha; ++j) {
    double dj = double(j);
    terms = log_add(terms, dj * log_q + log_binom_int(alpha, j) + (dj - 1) * base_rdp(n, dj, scale) +
                               std::min(std::log(2.0), dj * log_em1_inf));
  }
  return terms;
}

template <class F>
double interp_int(double alpha, F log_moment_int) {
  if (is_int(alpha)) return log_moment_int(long(alpha));
  long lo = long(std::floor(alpha)), hi = long(std::ceil(alpha));
  double t = alpha - double(lo);
  double k_lo = lo <= 1 ? 0.0 : log_moment_int(lo);
  return (1 - t) * k_lo + t * log_moment_int(hi);
}

double rdp_one_step(Noise n, Bound b, double scale, double q, double alpha) {
  if (q == 0) return 0.0;
  if (q == 1.0) return base_rdp(n, alpha, scale);
  if (std::isinf(alpha)) return kInf;
  if (n == Noise::Gaussian && b == Bound::Tight) return rdp_sampled_gaussian_exact(q, scale, alpha);
  double k;
  if (b == Bound::Tight)
    k = interp_int(alpha, [&](long a) { return zhu_wang_thm6(n, scale, q, a); });
  else
    k = interp_int(alpha, [&](long a) { return wang_thm9(n, scale, q, a); });
  return k / (alpha - 1);
}

double total_rdp(Noise n, Bound b, const std::vector<Step> &steps, double alpha) {
  double total = 0.0;
  for (const auto &s : steps)
    if (s.steps != 0) total += s.steps * rdp_one_step(n, b, s.scale, s.q, alpha);
  return total;
}

double eps_from_rdp(double rdp, double alpha, double delta) {
  if (std::isinf(rdp)) return kInf;
  return rdp + std::log1p(-1.0 / alpha) - (std::log(delta) + std::log(alpha)) / (alpha - 1);
}

Noise parse_noise(const std::string &s) {
  if (s == "Gaussian") return Noise::Gaussian;
  if (s == "Laplace") return Noise::Laplace;
  throw py::value_error("noise_type must be 'Gaussian' or 'Laplace', got '" + s + "'");
}

Bound parse_bound(const std::string &s) {
  if (s == "rdp_tight_upperbound") return Bound::Tight;
  if (s == "rdp_upperbound_closedformula") return Bound::ClosedForm;
  throw py::value_error(
      "bound_type must be 'rdp_tight_upperbound' or 'rdp_upperbound_closedformula', got '" + s + "'");
}

std::vector<Step> parse_steps(const std::vector<std::tuple<double, double, double>> &info) {
  std::vector<Step> out;
  for (const auto &[scale, q, steps] : info) {
    if (!(scale > 0) || !std::isfinite(scale)) throw py::value_error("noise scale must be finite and > 0");
    if (!(q >= 0 && q <= 1)) throw py::value_error("sampling_rate must be in [0, 1]");
    if (!(steps >= 0) || !std::isfinite(steps)) throw py::value_error("num_steps must be >= 0");
    out.push_back({scale, q, steps});
  }
  return out;
}

void check_order(double a) {
  if (!(a > 1)) throw py::value_error("orders must be > 1, got " + std::to_string(a));
}

}  // namespace

AIJACK_SUBMODULE(accountant, m) {
  m.doc() = "RDP moments accountant (log-space RDP of subsampled Gaussian/Laplace mechanisms)";
  m.def(
      "rdp_one_step",
      [](const std::string &noise, const std::string &bound, double scale, double q, double alpha) {
        auto n = parse_noise(noise);
        auto b = parse_bound(bound);
        parse_steps({{scale, q, 1.0}});
        check_order(alpha);
        return rdp_one_step(n, b, scale, q, alpha);
      },
      py::arg("noise_type"), py::arg("bound_type"), py::arg("scale"), py::arg("sampling_rate"), py::arg("alpha"),
      "RDP at order alpha of one step of the subsampled mechanism with noise scale (sigma or b).");
  m.def(
      "compute_rdp",
      [](const std::string &noise, const std::string &bound,
         const std::vector<std::tuple<double, double, double>> &info, const std::vector<double> &orders) {
        auto n = parse_noise(noise);
        auto b = parse_bound(bound);
        auto steps = parse_steps(info);
        for (double a : orders) check_order(a);
        py::gil_scoped_release release;
        std::vector<double> out;
        out.reserve(orders.size());
        for (double a : orders) out.push_back(total_rdp(n, b, steps, a));
        return out;
      },
      py::arg("noise_type"), py::arg("bound_type"), py::arg("steps_info"), py::arg("orders"),
      "Total RDP per order for steps_info = [(scale, q, num_steps), ...].");
  m.def(
      "get_epsilon",
      [](const std::string &noise, const std::string &bound,
         const std::vector<std::tuple<double, double, double>> &info, double delta, const std::string &search,
         const std::vector<double> &orders, double order_min, double order_max, double precision,
         long max_iterations) {
        auto n = parse_noise(noise);
        auto b = parse_bound(bound);
        auto steps = parse_steps(info);
        if (!(delta > 0 && delta < 1)) throw py::value_error("delta must be in (0, 1)");
        auto eps_at = [&](double a) { return eps_from_rdp(total_rdp(n, b, steps, a), a, delta); };
        double best_eps = kInf, best_order = 0;
        if (search == "greedy") {
          if (orders.empty()) throw py::value_error("orders must not be empty for search='greedy'");
          for (double a : orders) check_order(a);
          py::gil_scoped_release release;
          best_order = orders[0];
          for (double a : orders) {
            double e = eps_at(a);
            if (e < best_eps) {
              best_eps = e;
              best_order = a;
            }
          }
        } else if (search == "ternary") {
          check_order(order_min);
          if (!(order_max >= order_min)) throw py::value_error("order_max must be >= order_min");
          if (!(precision > 0)) throw py::value_error("precision must be > 0");
          py::gil_scoped_release release;
          double lo = order_min, hi = order_max;
          long it = 0;
          while (hi - lo > precision && it < max_iterations) {
            double m1 = lo + (hi - lo) / 3.0, m2 = hi - (hi - lo) / 3.0;
            if (eps_at(m1) < eps_at(m2))
              hi = m2;
            else
              lo = m1;
            ++it;
          }
          best_order = lo;
          for (double a : {lo, (lo + hi) / 2.0, hi}) {
            double e = eps_at(a);
            if (e < best_eps) {
              best_eps = e;
              best_order = a;
            }
          }
        } else {
          throw py::value_error("search must be 'greedy' or 'ternary', got '" + search + "'");
        }
        return std::make_pair(best_eps, best_order);
      },
      py::arg("noise_type"), py::arg("bound_type"), py::arg("steps_info"), py::arg("delta"), py::arg("search"),
      py::arg("orders"), py::arg("order_min"), py::arg("order_max"), py::arg("precision"),
      py::arg("max_iterations"),
      "(epsilon, order): the smallest epsilon over the orders (greedy) or [order_min, order_max] (ternary).");
}
