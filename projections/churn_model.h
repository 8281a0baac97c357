#pragma once
// The population models behind churn risk and expected value (DOMAIN.md, "Churn risk"),
// and their maximum-likelihood fits:
// - MBG/NBD (modified BG/NBD): each customer buys at a Poisson rate λ ~ Gamma(r, α) and,
//   at the first activity and after each later one, leaves for good with probability
//   p ~ Beta(a, b). A customer is summarised by (x, t_x, T): repeat activities, the
//   time of the last one and the age, both since the first activity, in one time unit.
// - Gamma-Gamma: each activity's spend ~ Gamma(p, ν), ν ~ Gamma(q, v) per customer,
//   fitted on customers with repeat activities from (x, mean spend of the repeats).
//
// Fits maximise the log-likelihood over the logarithms of the parameters (so they stay
// positive) with Nelder–Mead, restarted from the best point until a restart no longer
// improves it: a real population's likelihood can be very flat, and one simplex run
// can stop short of the optimum. Customers with the same summary are folded into one
// weighted term, so a population of activity *days* costs little however large.
// Pure: no I/O.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lifecycle::projections::model {

struct MbgNbdParams {
  double r = 0, alpha = 0, a = 0, b = 0;
};

// One customer: x repeat activities, the last at t_x, observed for T (t_x <= T).
struct Rfm {
  double x = 0, t_x = 0, T = 0;
};

// The log-likelihood of one customer's summary.
double MbgNbdLogLikelihood(const MbgNbdParams& p, const Rfm& c);
// The probability that the customer is still active at T.
double MbgNbdPAlive(const MbgNbdParams& p, const Rfm& c);
// Expected activities in (T, T + t] for that customer (the conditional expectation).
double MbgNbdExpectedActivities(const MbgNbdParams& p, const Rfm& c, double t);

struct GammaGammaParams {
  double p = 0, q = 0, v = 0;
};
// One repeat customer: x repeat activities with mean spend m (> 0).
struct Spend {
  double x = 0, m = 0;
};
double GammaGammaLogLikelihood(const GammaGammaParams& g, const Spend& s);
// The expected spend of the customer's next activities.
double GammaGammaExpectedSpend(const GammaGammaParams& g, const Spend& s);

struct FitOptions {
  int max_evaluations = 200000;  // over all restarts
  int max_restarts = 20;
  // A simplex run stops when its values differ by less than this (relative to the
  // log-likelihood) and its points by less than x_tolerance (in log-parameters).
  double f_tolerance = 1e-12;
  double x_tolerance = 1e-9;
};

template <typename Params>
struct Fit {
  Params params;
  double log_likelihood = 0;  // summed over the customers
  int64_t customers = 0;
  int64_t distinct = 0;       // distinct summaries the likelihood was computed over
  int iterations = 0;         // simplex iterations, all restarts
  int evaluations = 0;
  int restarts = 0;
  // The largest partial derivative of the mean log-likelihood per customer with respect
  // to a log-parameter at the optimum (central differences): near 0 when converged.
  double gradient = 0;
  bool converged = false;
  std::string message;
};

// `start` of zero values: a start derived from the data.
Fit<MbgNbdParams> FitMbgNbd(const std::vector<Rfm>& customers, const FitOptions& options = {},
                            MbgNbdParams start = {});
Fit<GammaGammaParams> FitGammaGamma(const std::vector<Spend>& customers,
                                    const FitOptions& options = {}, GammaGammaParams start = {});

// Nelder–Mead over R^n with restarts (the engine of the fits above); minimises f.
struct Minimum {
  std::vector<double> x;
  double f = 0;
  int iterations = 0, evaluations = 0, restarts = 0;
  bool converged = false;
};
Minimum NelderMead(const std::function<double(const std::vector<double>&)>& f,
                   std::vector<double> x0, const FitOptions& options);

}  // namespace lifecycle::projections::model
