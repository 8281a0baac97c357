#include "projections/churn_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <tuple>
#include <utility>

namespace lifecycle::projections::model {
namespace {

// log(1 + e^v) without overflow.
double Log1pExp(double v) { return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v)); }

// Gauss's hypergeometric 2F1(a, b; c; z) for 0 <= z < 1, by its series.
double Hyp2F1(double a, double b, double c, double z) {
  double term = 1, sum = 1;
  for (int n = 0; n < 1000000; ++n) {
    term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    sum += term;
    if (std::abs(term) < 1e-15 * std::abs(sum)) break;
  }
  return sum;
}

// Equal summaries folded into one weighted term.
template <typename T, typename Key>
std::vector<std::pair<T, double>> Weighted(const std::vector<T>& in, Key key) {
  std::map<decltype(key(in.front())), std::pair<T, double>> by;
  for (const T& c : in) {
    auto [it, fresh] = by.try_emplace(key(c), c, 0.0);
    it->second.second += 1;
  }
  std::vector<std::pair<T, double>> out;
  out.reserve(by.size());
  for (auto& [k, v] : by) out.push_back(v);
  return out;
}

// The largest partial derivative of `f` (a mean log-likelihood) at `x`.
double MaxGradient(const std::function<double(const std::vector<double>&)>& f,
                   const std::vector<double>& x) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double h = 1e-5;
    std::vector<double> up = x, down = x;
    up[i] += h;
    down[i] -= h;
    worst = std::max(worst, std::abs((f(up) - f(down)) / (2 * h)));
  }
  return worst;
}

// Minimises `mean_nll` (the mean negative log-likelihood of `n` customers over the
// log-parameters) from `start` and fills `fit` with the result.
template <typename Params, typename ToParams>
void Minimize(const std::function<double(const std::vector<double>&)>& mean_nll,
              std::vector<double> start, const FitOptions& options, double n, ToParams params,
              Fit<Params>* fit);

}  // namespace

double MbgNbdLogLikelihood(const MbgNbdParams& p, const Rfm& c) {
  const double rx = p.r + c.x;
  const double a1 = std::lgamma(rx) - std::lgamma(p.r) + p.r * std::log(p.alpha);
  const double a2 = std::lgamma(p.a + p.b) + std::lgamma(p.b + c.x + 1) - std::lgamma(p.b) -
                    std::lgamma(p.a + p.b + c.x + 1);
  const double a3 = -rx * std::log(p.alpha + c.T);
  const double a4 = std::log(p.a) - std::log(p.b + c.x) +
                    rx * (std::log(p.alpha + c.T) - std::log(p.alpha + c.t_x));
  return a1 + a2 + a3 + Log1pExp(a4);
}

double MbgNbdPAlive(const MbgNbdParams& p, const Rfm& c) {
  const double v = std::log(p.a) - std::log(p.b + c.x) +
                   (p.r + c.x) * (std::log(p.alpha + c.T) - std::log(p.alpha + c.t_x));
  return 1 / (1 + std::exp(v));
}

double MbgNbdExpectedActivities(const MbgNbdParams& p, const Rfm& c, double t) {
  if (t <= 0) return 0;
  const double rx = p.r + c.x;
  const double hyp = Hyp2F1(rx, p.b + c.x + 1, p.a + p.b + c.x, t / (p.alpha + c.T + t));
  const double first = (p.a + p.b + c.x) / (p.a - 1);
  const double second = 1 - hyp * std::pow((p.alpha + c.T) / (p.alpha + c.T + t), rx);
  return first * second * MbgNbdPAlive(p, c);
}

double GammaGammaLogLikelihood(const GammaGammaParams& g, const Spend& s) {
  const double px = g.p * s.x;
  return std::lgamma(px + g.q) - std::lgamma(px) - std::lgamma(g.q) + g.q * std::log(g.v) +
         (px - 1) * std::log(s.m) + px * std::log(s.x) - (px + g.q) * std::log(s.x * s.m + g.v);
}

double GammaGammaExpectedSpend(const GammaGammaParams& g, const Spend& s) {
  return g.p * (g.v + s.x * s.m) / (g.p * s.x + g.q - 1);
}

Minimum NelderMead(const std::function<double(const std::vector<double>&)>& f,
                   std::vector<double> x0, const FitOptions& o) {
  const size_t n = x0.size();
  Minimum best;
  best.x = x0;
  best.f = f(x0);
  best.evaluations = 1;
  for (int restart = 0; restart <= o.max_restarts; ++restart) {
    // A fresh simplex around the best point so far.
    std::vector<std::vector<double>> pts(n + 1, best.x);
    std::vector<double> fs(n + 1, best.f);
    for (size_t i = 0; i < n; ++i) {
      pts[i + 1][i] += restart == 0 ? 0.5 : 0.1;
      fs[i + 1] = f(pts[i + 1]);
      ++best.evaluations;
    }
    bool converged = false;
    while (best.evaluations < o.max_evaluations) {
      std::vector<size_t> order(n + 1);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return fs[a] < fs[b]; });
      const size_t lo = order.front(), hi = order.back(), second = order[n - 1];
      double spread = 0;
      for (size_t i = 0; i <= n; ++i) {
        for (size_t k = 0; k < n; ++k) spread = std::max(spread, std::abs(pts[i][k] - pts[lo][k]));
      }
      if (std::abs(fs[hi] - fs[lo]) <= o.f_tolerance * (std::abs(fs[lo]) + 1e-300) &&
          spread <= o.x_tolerance) {
        converged = true;
        break;
      }
      ++best.iterations;
      std::vector<double> centroid(n, 0);
      for (size_t i = 0; i <= n; ++i) {
        if (i == hi) continue;
        for (size_t k = 0; k < n; ++k) centroid[k] += pts[i][k] / n;
      }
      auto along = [&](double t) {
        std::vector<double> x(n);
        for (size_t k = 0; k < n; ++k) x[k] = centroid[k] + t * (pts[hi][k] - centroid[k]);
        return x;
      };
      auto eval = [&](const std::vector<double>& x) {
        ++best.evaluations;
        const double v = f(x);
        return std::isnan(v) ? std::numeric_limits<double>::infinity() : v;
      };
      std::vector<double> xr = along(-1);
      const double fr = eval(xr);
      if (fr < fs[lo]) {
        std::vector<double> xe = along(-2);
        const double fe = eval(xe);
        if (fe < fr) {
          pts[hi] = std::move(xe), fs[hi] = fe;
        } else {
          pts[hi] = std::move(xr), fs[hi] = fr;
        }
      } else if (fr < fs[second]) {
        pts[hi] = std::move(xr), fs[hi] = fr;
      } else {
        const bool outside = fr < fs[hi];
        std::vector<double> xc = along(outside ? -0.5 : 0.5);
        const double fc = eval(xc);
        if (fc < (outside ? fr : fs[hi])) {
          pts[hi] = std::move(xc), fs[hi] = fc;
        } else {  // shrink towards the best point
          for (size_t i = 0; i <= n; ++i) {
            if (i == lo) continue;
            for (size_t k = 0; k < n; ++k) pts[i][k] = pts[lo][k] + 0.5 * (pts[i][k] - pts[lo][k]);
            fs[i] = eval(pts[i]);
          }
        }
      }
    }
    const size_t lo = std::min_element(fs.begin(), fs.end()) - fs.begin();
    const bool improved = fs[lo] < best.f - o.f_tolerance * std::abs(best.f);
    if (fs[lo] < best.f) {
      best.f = fs[lo];
      best.x = pts[lo];
    }
    best.restarts = restart;
    // Converged: a simplex that ended where the previous one did.
    if (converged && !improved && restart > 0) {
      best.converged = true;
      break;
    }
    if (best.evaluations >= o.max_evaluations) break;
  }
  return best;
}

namespace {
template <typename Params, typename ToParams>
void Minimize(const std::function<double(const std::vector<double>&)>& mean_nll,
              std::vector<double> start, const FitOptions& options, double n, ToParams params,
              Fit<Params>* fit) {
  const Minimum m = NelderMead(mean_nll, std::move(start), options);
  fit->params = params(m.x);
  fit->log_likelihood = -m.f * n;
  fit->iterations = m.iterations;
  fit->evaluations = m.evaluations;
  fit->restarts = m.restarts;
  fit->converged = m.converged;
  fit->gradient = MaxGradient(mean_nll, m.x);
  fit->message = m.converged ? "converged" : "stopped at the evaluation limit";
}
}  // namespace

Fit<MbgNbdParams> FitMbgNbd(const std::vector<Rfm>& customers, const FitOptions& options,
                            MbgNbdParams start) {
  Fit<MbgNbdParams> fit;
  fit.customers = static_cast<int64_t>(customers.size());
  if (customers.empty()) {
    fit.message = "no customers to fit";
    return fit;
  }
  const auto groups =
      Weighted(customers, [](const Rfm& c) { return std::make_tuple(c.x, c.t_x, c.T); });
  fit.distinct = static_cast<int64_t>(groups.size());
  if (start.r <= 0 || start.alpha <= 0 || start.a <= 0 || start.b <= 0) {
    // r/α is the mean rate: from the repeat activities per unit of age.
    double x = 0, T = 0;
    for (const Rfm& c : customers) x += c.x, T += c.T;
    start = {1.0, std::max(T / std::max(x, 1.0), 1e-3), 1.0, 1.0};
  }
  const double n = static_cast<double>(customers.size());
  auto params = [](const std::vector<double>& v) {
    return MbgNbdParams{std::exp(v[0]), std::exp(v[1]), std::exp(v[2]), std::exp(v[3])};
  };
  auto mean_nll = [&](const std::vector<double>& v) {
    const MbgNbdParams p = params(v);
    double ll = 0;
    for (const auto& [c, w] : groups) ll += w * MbgNbdLogLikelihood(p, c);
    return -ll / n;
  };
  Minimize(mean_nll,
           {std::log(start.r), std::log(start.alpha), std::log(start.a), std::log(start.b)},
           options, n, params, &fit);
  return fit;
}

Fit<GammaGammaParams> FitGammaGamma(const std::vector<Spend>& customers,
                                    const FitOptions& options, GammaGammaParams start) {
  Fit<GammaGammaParams> fit;
  std::vector<Spend> repeat;
  for (const Spend& s : customers) {
    if (s.x > 0 && s.m > 0) repeat.push_back(s);
  }
  fit.customers = static_cast<int64_t>(repeat.size());
  if (repeat.empty()) {
    fit.message = "no customer with repeat activities and spend";
    return fit;
  }
  const auto groups =
      Weighted(repeat, [](const Spend& s) { return std::make_pair(s.x, s.m); });
  fit.distinct = static_cast<int64_t>(groups.size());
  if (start.p <= 0 || start.q <= 0 || start.v <= 0) {
    double m = 0;
    for (const Spend& s : repeat) m += s.m;
    start = {1.0, 1.0, m / static_cast<double>(repeat.size())};
  }
  const double n = static_cast<double>(repeat.size());
  auto params = [](const std::vector<double>& v) {
    return GammaGammaParams{std::exp(v[0]), std::exp(v[1]), std::exp(v[2])};
  };
  auto mean_nll = [&](const std::vector<double>& v) {
    const GammaGammaParams g = params(v);
    double ll = 0;
    for (const auto& [s, w] : groups) ll += w * GammaGammaLogLikelihood(g, s);
    return -ll / n;
  };
  Minimize(mean_nll, {std::log(start.p), std::log(start.q), std::log(start.v)}, options, n,
           params, &fit);
  return fit;
}

}  // namespace lifecycle::projections::model
