// The churn and spend models and their fits (projections/churn_model.h): populations
// drawn from known parameters give them back.
#include "projections/churn_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "projections/config.h"
#include "projections/rules.h"

namespace lifecycle::projections::model {
namespace {

struct Drawn {
  Rfm rfm;
  int future = 0;  // activities in (T, T + horizon]
};

// MBG/NBD customers: λ ~ Gamma(r, α), p ~ Beta(a, b); the first activity at 0, a
// dropout with probability p at it and after each later one; observed for T uniform in
// [180, 1095] days, then `horizon` more days.
std::vector<Drawn> DrawMbgNbd(const MbgNbdParams& p, int n, uint64_t seed, double horizon) {
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> lambda(p.r, 1 / p.alpha), ga(p.a, 1), gb(p.b, 1);
  std::uniform_real_distribution<double> age(180, 1095), u(0, 1);
  std::vector<Drawn> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    const double l = lambda(rng), xa = ga(rng), drop = xa / (xa + gb(rng));
    Drawn d;
    d.rfm.T = age(rng);
    std::exponential_distribution<double> gap(l);
    double t = 0;
    while (u(rng) >= drop) {  // still active after the activity at t
      t += gap(rng);
      if (t > d.rfm.T + horizon) break;
      if (t <= d.rfm.T) {
        d.rfm.x += 1;
        d.rfm.t_x = t;
      } else {
        ++d.future;
      }
    }
    out.push_back(d);
  }
  return out;
}

TEST(ChurnModelTest, TheMbgNbdFitRecoversTheParametersOfFiftyThousandCustomersWithinTenPercent) {
  const MbgNbdParams truth{0.8, 60.0, 0.6, 3.0};
  std::vector<Rfm> rfm;
  for (const Drawn& d : DrawMbgNbd(truth, 50000, 7, 0)) rfm.push_back(d.rfm);
  const auto fit = FitMbgNbd(rfm);
  std::printf("MBG/NBD fit: r %.4f alpha %.3f a %.4f b %.4f; log-likelihood %.3f, %d iterations, "
              "%d restarts, %lld distinct summaries, gradient %.2g\n",
              fit.params.r, fit.params.alpha, fit.params.a, fit.params.b, fit.log_likelihood,
              fit.iterations, fit.restarts, static_cast<long long>(fit.distinct), fit.gradient);
  ASSERT_TRUE(fit.converged) << fit.message;
  EXPECT_EQ(fit.customers, 50000);
  EXPECT_LT(fit.gradient, 1e-4);
  EXPECT_NEAR(fit.params.r, truth.r, 0.1 * truth.r);
  EXPECT_NEAR(fit.params.alpha, truth.alpha, 0.1 * truth.alpha);
  EXPECT_NEAR(fit.params.a, truth.a, 0.1 * truth.a);
  EXPECT_NEAR(fit.params.b, truth.b, 0.1 * truth.b);
  // The optimum is one: the true parameters explain the data less well.
  double at_truth = 0;
  for (const Rfm& c : rfm) at_truth += MbgNbdLogLikelihood(truth, c);
  EXPECT_GT(fit.log_likelihood, at_truth);
}

TEST(ChurnModelTest, TheMbgNbdLikelihoodIsTheModelsClosedForm) {
  // L = Γ(r+x) α^r / Γ(r) · B(a, b+x+1) / B(a, b) · [(α+T)^-(r+x) + a/(b+x) (α+t_x)^-(r+x)]
  const MbgNbdParams p{0.6, 45, 0.4, 2.5};
  auto beta = [](double a, double b) { return std::tgamma(a) * std::tgamma(b) / std::tgamma(a + b); };
  for (const Rfm& c : {Rfm{0, 0, 30}, Rfm{3, 200, 400}, Rfm{10, 700, 720}}) {
    const double rx = p.r + c.x;
    const double l = std::tgamma(rx) * std::pow(p.alpha, p.r) / std::tgamma(p.r) *
                     beta(p.a, p.b + c.x + 1) / beta(p.a, p.b) *
                     (std::pow(p.alpha + c.T, -rx) + p.a / (p.b + c.x) * std::pow(p.alpha + c.t_x, -rx));
    EXPECT_NEAR(MbgNbdLogLikelihood(p, c), std::log(l), 1e-9) << c.x;
  }
}

TEST(ChurnModelTest, PAliveIsTheOneTheStageRulesUse) {
  const DomainConfig config;
  const MbgNbdParams p{config.r, config.alpha, config.a, config.b};
  for (const Rfm& c : {Rfm{0, 0, 30}, Rfm{3, 200, 400}, Rfm{1, 10, 900}}) {
    EXPECT_NEAR(MbgNbdPAlive(p, c), rules::PAlive(config, static_cast<int64_t>(c.x), c.t_x, c.T), 1e-12);
  }
}

TEST(ChurnModelTest, ExpectedActivitiesMatchWhatTheSimulatedCustomersDoNext) {
  const MbgNbdParams truth{0.8, 60.0, 0.6, 3.0};
  const auto drawn = DrawMbgNbd(truth, 50000, 11, 365);
  // By frequency bucket: predicted and actual activities in the next 365 days.
  double predicted[4] = {}, actual[4] = {};
  for (const Drawn& d : drawn) {
    const int bucket = d.rfm.x == 0 ? 0 : d.rfm.x <= 2 ? 1 : d.rfm.x <= 6 ? 2 : 3;
    predicted[bucket] += MbgNbdExpectedActivities(truth, d.rfm, 365);
    actual[bucket] += d.future;
  }
  std::printf("next 365 days, predicted/actual by x bucket 0, 1-2, 3-6, 7+: %.0f/%.0f %.0f/%.0f "
              "%.0f/%.0f %.0f/%.0f\n", predicted[0], actual[0], predicted[1], actual[1],
              predicted[2], actual[2], predicted[3], actual[3]);
  for (int b = 0; b < 4; ++b) {
    EXPECT_NEAR(predicted[b], actual[b], 0.05 * actual[b]) << "bucket " << b;
  }
}

TEST(ChurnModelTest, TheGammaGammaFitRecoversTheParametersOfFiftyThousandCustomersWithinTenPercent) {
  const GammaGammaParams truth{6.0, 4.0, 15.0};
  std::mt19937_64 rng(5);
  std::gamma_distribution<double> nu(truth.q, 1 / truth.v);
  std::uniform_int_distribution<int> repeats(1, 12);
  std::vector<Spend> spend;
  for (int i = 0; i < 50000; ++i) {
    const double rate = nu(rng);
    std::gamma_distribution<double> z(truth.p, 1 / rate);
    Spend s;
    s.x = repeats(rng);
    for (int k = 0; k < s.x; ++k) s.m += z(rng);
    s.m /= s.x;
    spend.push_back(s);
  }
  spend.push_back({0, 0});  // no repeat activity: not part of the fit
  const auto fit = FitGammaGamma(spend);
  std::printf("Gamma-Gamma fit: p %.4f q %.4f v %.4f; log-likelihood %.3f, %d iterations\n",
              fit.params.p, fit.params.q, fit.params.v, fit.log_likelihood, fit.iterations);
  ASSERT_TRUE(fit.converged) << fit.message;
  EXPECT_EQ(fit.customers, 50000);
  EXPECT_NEAR(fit.params.p, truth.p, 0.1 * truth.p);
  EXPECT_NEAR(fit.params.q, truth.q, 0.1 * truth.q);
  EXPECT_NEAR(fit.params.v, truth.v, 0.1 * truth.v);
  // E[spend | x, m] shrinks the customer's own mean towards the population's.
  const double population = truth.p * truth.v / (truth.q - 1);
  const double own = 100;
  const double e = GammaGammaExpectedSpend(truth, {3, own});
  EXPECT_GT(e, std::min(own, population));
  EXPECT_LT(e, std::max(own, population));
}

TEST(ChurnModelTest, NelderMeadFindsTheMinimumOfACurvedValley) {
  // Rosenbrock's function: minimum 0 at (1, 1).
  const auto m = NelderMead(
      [](const std::vector<double>& v) {
        return 100 * std::pow(v[1] - v[0] * v[0], 2) + std::pow(1 - v[0], 2);
      },
      {-1.2, 1.0}, FitOptions{});
  EXPECT_TRUE(m.converged);
  EXPECT_NEAR(m.x[0], 1, 1e-6);
  EXPECT_NEAR(m.x[1], 1, 1e-6);
}

}  // namespace
}  // namespace lifecycle::projections::model
