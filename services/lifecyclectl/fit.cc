#include "services/lifecyclectl/fit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "projections/config.h"
#include "services/lifecycled/domain_config.h"

namespace lifecycle::ctl {
namespace {

namespace model = projections::model;

constexpr int kOk = 0, kUsage = 1, kFailed = 2;

std::string Today() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

// The text of a section: its header line through the line before the next header.
struct Section {
  size_t begin = std::string::npos, end = std::string::npos;
};
Section Find(const std::vector<std::string>& lines, const std::string& name) {
  Section s;
  for (size_t i = 0; i < lines.size(); ++i) {
    const absl::string_view l = absl::StripAsciiWhitespace(lines[i]);
    if (!l.empty() && l.front() == '[') {
      if (s.begin != std::string::npos) {
        s.end = i;
        return s;
      }
      if (l == absl::StrCat("[", name, "]")) s.begin = i;
    }
  }
  if (s.begin != std::string::npos) s.end = lines.size();
  return s;
}

void Replace(std::vector<std::string>* lines, const std::string& name,
             const std::vector<std::string>& body) {
  Section s = Find(*lines, name);
  if (s.begin == std::string::npos) {
    lines->push_back("");
    lines->insert(lines->end(), body.begin(), body.end());
    return;
  }
  // Keep the blank lines that separate it from the next section.
  while (s.end > s.begin + 1 && absl::StripAsciiWhitespace((*lines)[s.end - 1]).empty()) --s.end;
  lines->erase(lines->begin() + s.begin, lines->begin() + s.end);
  lines->insert(lines->begin() + s.begin, body.begin(), body.end());
}

}  // namespace

absl::StatusOr<FitData> ReadFitCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  FitData data;
  data.source = path;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(l, ',');
    model::Rfm c;
    model::Spend s;
    const bool numbers = f.size() >= 4 && absl::SimpleAtod(f[1], &c.x) &&
                         absl::SimpleAtod(f[2], &c.t_x) && absl::SimpleAtod(f[3], &c.T) &&
                         (f.size() < 5 || absl::SimpleAtod(f[4], &s.m));
    if (!numbers) {
      if (n == 1 && data.rfm.empty()) continue;  // a header
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", n, ": expected customer,x,t_x,T[,mean_spend] with numbers, got: ", l));
    }
    if (f.size() > 5 || c.x < 0 || c.t_x < 0 || c.T < c.t_x || (c.x == 0 && c.t_x != 0) ||
        s.m < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", n, ": x >= 0, 0 <= t_x <= T (t_x = 0 when x = 0) and mean_spend >= 0 "
          "are required, got: ", l));
    }
    s.x = f.size() == 5 ? c.x : 0;
    data.rfm.push_back(c);
    data.spend.push_back(s);
  }
  if (data.rfm.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no customers"));
  return data;
}

absl::StatusOr<FitData> ReadActivitiesCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  // Per customer: spend by day.
  std::map<std::string, std::map<int64_t, double>> by;
  double end = -std::numeric_limits<double>::infinity();
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(l, ',');
    double t = 0, spend = 0;
    if (f.size() < 2 || f.size() > 3 || f[0].empty() || !absl::SimpleAtod(f[1], &t) ||
        (f.size() == 3 && !absl::SimpleAtod(f[2], &spend)) || !std::isfinite(t)) {
      if (n == 1 && by.empty()) continue;  // a header
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": expected customer,time[,spend] with numbers, got: ", l));
    }
    by[std::string(f[0])][static_cast<int64_t>(std::floor(t))] += spend;
    end = std::max(end, t);
  }
  if (by.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no activities"));
  FitData data;
  data.source = path;
  for (const auto& [customer, days] : by) {
    History h;
    h.first = static_cast<double>(days.begin()->first);
    h.end = std::floor(end);
    h.total = static_cast<int64_t>(days.size());
    double repeat_spend = 0;
    for (const auto& [d, amount] : days) {
      h.days.push_back(static_cast<double>(d));
      if (d != days.begin()->first) repeat_spend += amount;
    }
    const double x = static_cast<double>(h.total - 1);
    data.rfm.push_back({.x = x, .t_x = h.days.back() - h.first, .T = h.end - h.first});
    data.spend.push_back({.x = x > 0 && repeat_spend > 0 ? x : 0,
                          .m = x > 0 ? repeat_spend / x : 0});
    data.histories.push_back(std::move(h));
  }
  return data;
}

Calibration Calibrate(const std::vector<History>& histories, double holdout) {
  Calibration c;
  struct Cut {
    model::Rfm rfm;
    double actual;
  };
  std::vector<Cut> cuts;
  for (const History& h : histories) {
    const double cut = h.end - holdout;
    if (h.first > cut) continue;  // a customer of the holdout period: not in the check
    const auto after = std::upper_bound(h.days.begin(), h.days.end(), cut);
    const double actual = static_cast<double>(h.days.end() - after);
    const double x = static_cast<double>(h.total) - actual - 1;
    // The last activity day before the cut-off, when the known days say it: all days
    // are known (a CSV), or it is one of the known suffix (from the server: the
    // trailing 24 months; the first day is known too, but not the days after it).
    // Otherwise its x repeat days lie between the first and known_from: leaving such
    // customers out would leave out the lapsed ones, so the expected place of the
    // latest of them stands in.
    const auto k = after - h.days.begin();
    double last;
    if (x == 0) {
      last = h.first;
    } else if (k >= 2 || static_cast<double>(k) == x + 1) {
      last = *(after - 1);
    } else if (std::isfinite(h.known_from) && h.known_from > h.first) {
      const double upper = std::min(h.known_from - 1, cut);
      last = h.first + std::floor((upper - h.first) * x / (x + 1));
      ++c.approximated;
    } else {
      ++c.skipped;
      continue;
    }
    cuts.push_back({{.x = x, .t_x = last - h.first, .T = cut - h.first}, actual});
  }
  std::vector<model::Rfm> rfm;
  for (const Cut& k : cuts) rfm.push_back(k.rfm);
  if (rfm.empty()) return c;
  c.fit = model::FitMbgNbd(rfm);
  constexpr int kBuckets = 8;  // 0 .. 6 repeat activities, then 7 or more
  c.rows.resize(kBuckets + 1);
  for (int b = 0; b < kBuckets; ++b) c.rows[b].bucket = b + 1 < kBuckets ? absl::StrCat(b) : absl::StrCat(b, "+");
  c.rows[kBuckets].bucket = "all";
  for (const Cut& k : cuts) {
    const double predicted = model::MbgNbdExpectedActivities(c.fit.params, k.rfm, holdout);
    for (Calibration::Row* row : {&c.rows[std::min<int>(static_cast<int>(k.rfm.x), kBuckets - 1)],
                                  &c.rows[kBuckets]}) {
      ++row->customers;
      row->actual += k.actual;
      row->predicted += predicted;
    }
  }
  return c;
}

std::string WithFittedModels(const std::string& toml, const std::string& version,
                             const model::MbgNbdParams& churn, const model::GammaGammaParams* spend,
                             const std::string& note) {
  std::vector<std::string> lines = absl::StrSplit(toml, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  const std::string version_line = absl::StrCat("version = \"", version, "\"");
  bool versioned = false;
  for (auto& l : lines) {
    const absl::string_view t = absl::StripAsciiWhitespace(l);
    if (!t.empty() && t.front() == '[') break;  // top-level keys only
    if (absl::StartsWith(t, "version") &&
        absl::StartsWith(absl::StripLeadingAsciiWhitespace(t.substr(7)), "=")) {
      l = version_line;
      versioned = true;
    }
  }
  if (!versioned) lines.insert(lines.begin(), version_line);
  Replace(&lines, "churn_model",
          {"[churn_model]",
           "# MBG/NBD population parameters (time in days),", absl::StrCat("# ", note),
           absl::StrFormat("r = %.6g", churn.r), absl::StrFormat("alpha = %.6g", churn.alpha),
           absl::StrFormat("a = %.6g", churn.a), absl::StrFormat("b = %.6g", churn.b)});
  if (spend != nullptr) {
    Replace(&lines, "spend_model",
            {"[spend_model]",
             "# Gamma-Gamma spend per activity (minor units),", absl::StrCat("# ", note),
             absl::StrFormat("p = %.6g", spend->p), absl::StrFormat("q = %.6g", spend->q),
             absl::StrFormat("v = %.6g", spend->v)});
  }
  return absl::StrCat(absl::StrJoin(lines, "\n"), "\n");
}

int RunFit(const FitData& data, const FitArgs& a) {
  projections::DomainConfig rules;  // churn_days, churn_cadence: --config's, or the built-in
  if (!a.write.empty() && a.config.empty()) {
    std::fprintf(stderr, "lifecyclectl: fit: --write needs --config, the domain config to start "
                         "from\n");
    return kUsage;
  }
  std::string base;
  if (!a.config.empty()) {
    std::ifstream in(a.config);
    if (!in) {
      std::fprintf(stderr, "lifecyclectl: fit: %s cannot be read\n", a.config.c_str());
      return kUsage;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    base = ss.str();
    auto parsed = daemon::ParseDomainConfig(base, a.config);
    if (!parsed.ok()) {
      std::fprintf(stderr, "lifecyclectl: fit: %s\n", parsed.status().ToString().c_str());
      return kUsage;
    }
    rules = *parsed;
  }
  std::printf("fitting %zu customers from %s (time unit: %g days)\n", data.rfm.size(),
              data.source.c_str(), a.unit_days);
  const auto churn = model::FitMbgNbd(data.rfm);
  std::printf("MBG/NBD: r %.6g  alpha %.6g (%.6g days)  a %.6g  b %.6g\n", churn.params.r,
              churn.params.alpha, churn.params.alpha * a.unit_days, churn.params.a,
              churn.params.b);
  std::printf("  log-likelihood %.6f over %lld customers (%lld distinct summaries); %s after %d "
              "iterations, %d evaluations, %d restarts; largest gradient %.2g\n",
              churn.log_likelihood, static_cast<long long>(churn.customers),
              static_cast<long long>(churn.distinct), churn.message.c_str(), churn.iterations,
              churn.evaluations, churn.restarts, churn.gradient);
  const double dropout = churn.params.a / (churn.params.a + churn.params.b);
  std::printf("  mean probability of leaving after an activity a/(a+b): %.4g%s\n", dropout,
              dropout < 1e-3 ? " (the population hardly leaves: nothing for P(alive) to find)"
                             : "");
  const auto spend = model::FitGammaGamma(data.spend);
  const bool has_spend = spend.customers > 0;
  if (has_spend) {
    std::printf("Gamma-Gamma: p %.6g  q %.6g  v %.6g\n", spend.params.p, spend.params.q,
                spend.params.v);
    std::printf("  log-likelihood %.6f over %lld repeat customers; %s after %d iterations, %d "
                "restarts; largest gradient %.2g\n",
                spend.log_likelihood, static_cast<long long>(spend.customers),
                spend.message.c_str(), spend.iterations, spend.restarts, spend.gradient);
    if (spend.params.q <= 1) {
      std::printf("  q <= 1: the population's mean spend per activity is not finite under this "
                  "fit\n");
    } else {
      std::printf("  mean spend per activity: %.2f\n",
                  spend.params.p * spend.params.v / (spend.params.q - 1));
    }
  } else {
    std::printf("Gamma-Gamma: not fitted (%s)\n",
                data.spend.empty() ? "no spend per customer in the input" : spend.message.c_str());
  }
  // The grade-A threshold the fit suggests: the expected 12-month value that the top
  // 20% of customers reach.
  if (has_spend && spend.params.q > 1) {
    std::vector<double> values;
    const double year = 365 / a.unit_days;
    for (size_t i = 0; i < data.rfm.size(); ++i) {
      const model::Spend s = i < data.spend.size() ? data.spend[i] : model::Spend{};
      values.push_back(model::MbgNbdExpectedActivities(churn.params, data.rfm[i], year) *
                       model::GammaGammaExpectedSpend(spend.params, s.x > 0 ? s : model::Spend{}));
    }
    std::sort(values.begin(), values.end());
    const double top20 = values[static_cast<size_t>(0.8 * static_cast<double>(values.size() - 1))];
    std::printf("expected 12-month value: median %.0f, top 20%% from %.0f (minor units): suggested "
                "[grade] a_spend_minor = %.0f\n",
                values[values.size() / 2], top20, top20);
  }
  if (a.holdout > 0) {
    if (data.histories.empty()) {
      std::printf("holdout check: not possible without activity days (--activities, or the "
                  "server)\n");
    } else {
      const Calibration cal = Calibrate(data.histories, a.holdout);
      std::printf("holdout check: fitted on each customer's history up to %g units before its "
                  "end (r %.4g alpha %.4g a %.4g b %.4g, %s), then activity days in those %g "
                  "units, predicted and actual, by repeat activities before the cut-off%s:\n",
                  a.holdout, cal.fit.params.r, cal.fit.params.alpha, cal.fit.params.a,
                  cal.fit.params.b, cal.fit.converged ? "converged" : "did not converge",
                  a.holdout,
                  absl::StrFormat("%s%s",
                                  cal.approximated
                                      ? absl::StrFormat("; for %lld customers the last day before "
                                                        "the cut-off is older than the days the "
                                                        "server keeps and is estimated",
                                                        static_cast<long long>(cal.approximated))
                                      : "",
                                  cal.skipped ? absl::StrFormat("; %lld customers left out: their "
                                                                "history before the cut-off is "
                                                                "not known",
                                                                static_cast<long long>(cal.skipped))
                                              : "")
                      .c_str());
      std::printf("  %-8s %10s %16s %16s %8s\n", "repeats", "customers", "actual (mean)",
                  "predicted (mean)", "ratio");
      for (const auto& row : cal.rows) {
        if (row.customers == 0) continue;
        const double n = static_cast<double>(row.customers);
        std::printf("  %-8s %10lld %16.3f %16.3f %8.3f\n", row.bucket.c_str(),
                    static_cast<long long>(row.customers), row.actual / n, row.predicted / n,
                    row.actual > 0 ? row.predicted / row.actual : 0.0);
      }
    }
  }
  // The at-risk line the fit suggests: the P(alive) that 95% of customers are below
  // when their silence reaches the churn rule's (max(churn_days, churn_cadence × their
  // mean gap)), rounded up to 0.05, so CHURN_RISK comes before a CHURNED by silence.
  {
    std::vector<double> at_deadline;
    const double churn_days = rules.churn_days / a.unit_days;
    for (const auto& c : data.rfm) {
      const double cadence = c.x > 0 ? rules.churn_cadence * c.t_x / c.x : 0;
      const double silence = std::max(churn_days, cadence);
      at_deadline.push_back(model::MbgNbdPAlive(churn.params, {.x = c.x, .t_x = c.t_x, .T = c.t_x + silence}));
    }
    std::sort(at_deadline.begin(), at_deadline.end());
    const auto pct = [&](double q) {
      return at_deadline[static_cast<size_t>(q * static_cast<double>(at_deadline.size() - 1))];
    };
    const double suggested = std::min(0.95, std::ceil(pct(0.95) * 20 - 1e-9) / 20);
    std::printf("P(alive) when silence reaches the churn rule (churn_days %d, churn_cadence %g): "
                "median %.3f, 95th percentile %.3f: suggested [stages] at_risk_p = %.2f (now "
                "%.2f)\n",
                rules.churn_days, rules.churn_cadence, pct(0.5), pct(0.95), suggested,
                rules.at_risk_p);
  }
  // Where the population stands: the share of customers under each P(alive).
  int under[3] = {};
  for (const auto& c : data.rfm) {
    const double p = model::MbgNbdPAlive(churn.params, c);
    under[0] += p < 0.15, under[1] += p < 0.5, under[2] += p < 0.8;
  }
  const double n = static_cast<double>(data.rfm.size());
  std::printf("P(alive) at T under the fit: < 0.15 %.1f%%, < 0.5 %.1f%%, < 0.8 %.1f%%\n",
              100 * under[0] / n, 100 * under[1] / n, 100 * under[2] / n);
  if (!churn.converged || (has_spend && !spend.converged)) {
    std::fprintf(stderr, "lifecyclectl: fit: did not converge; nothing written\n");
    return kFailed;
  }
  if (a.write.empty()) return kOk;
  model::MbgNbdParams days = churn.params;
  days.alpha *= a.unit_days;
  const std::string version = a.version.empty() ? absl::StrCat(Today(), ".fit") : a.version;
  const std::string note = absl::StrFormat(
      "fitted by maximum likelihood (lifecyclectl fit) on %lld customers from %s on %s",
      static_cast<long long>(churn.customers), data.source, Today());
  const std::string out =
      WithFittedModels(base, version, days, has_spend ? &spend.params : nullptr, note);
  if (auto parsed = daemon::ParseDomainConfig(out, a.write); !parsed.ok()) {
    std::fprintf(stderr, "lifecyclectl: fit: the fitted config does not load: %s\n",
                 parsed.status().ToString().c_str());
    return kFailed;
  }
  std::ofstream f(a.write);
  f << out;
  f.close();
  if (!f) {
    std::fprintf(stderr, "lifecyclectl: fit: %s cannot be written\n", a.write.c_str());
    return kFailed;
  }
  std::printf("wrote %s (version %s)\n", a.write.c_str(), version.c_str());
  return kOk;
}

}  // namespace lifecycle::ctl
