#pragma once
// lifecyclectl fit: maximum-likelihood fits of the churn model (MBG/NBD) and the spend
// model (Gamma-Gamma) on a population, a report of the fit, and a domain config with
// the fitted parameters under a new version.

#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "projections/churn_model.h"

namespace lifecycle::ctl {

// A population: each customer's (x, t_x, T) and, where known, the mean spend of the
// repeat activities (spend[i].x == 0 when there is none).
// One customer's activity days, for the holdout check: `first` and the days known
// (ascending, in the data's time unit; every day after some point, at least all those
// of the holdout period), `total` activity days in all, observed up to `end`.
struct History {
  double first = 0;
  std::vector<double> days;
  int64_t total = 0;
  double end = 0;
  // Every activity day from here on is in `days` (besides the first); days between the
  // first and this are not known. -infinity: all days are known.
  double known_from = -std::numeric_limits<double>::infinity();
};

struct FitData {
  std::vector<projections::model::Rfm> rfm;
  std::vector<projections::model::Spend> spend;
  std::vector<History> histories;  // empty: no holdout check possible
  std::string source;  // for the report: "file.csv", "lifecycled at host:port"
};

// Reads `customer,x,t_x,T[,mean_spend]` lines (a header line is skipped; any one time
// unit). A line that does not parse is an error naming its number.
absl::StatusOr<FitData> ReadFitCsv(const std::string& path);

// Reads `customer,time[,spend]` lines, one per activity (a header line is skipped;
// any one time unit): activities of the same customer in the same unit (day) are one
// activity day, their spends summed. Every customer is observed up to the latest time
// in the file. Gives the summaries, the repeat days' mean spend and the histories.
absl::StatusOr<FitData> ReadActivitiesCsv(const std::string& path);

// The holdout check: for each history, the summary at end − holdout and the activity
// days after it; the model fitted on those summaries predicts the holdout's activity
// days. Returns the table, by repeat activities before the cut-off, as printed lines.
struct Calibration {
  struct Row {
    std::string bucket;
    int64_t customers = 0;
    double actual = 0, predicted = 0;  // totals over the bucket's customers
  };
  std::vector<Row> rows;
  // Histories whose last day before the cut-off lies among the unknown days (between
  // the first and known_from): it is taken where the latest of x uniform days falls on
  // average, first + (known_from - first) * x / (x + 1).
  int64_t approximated = 0;
  int64_t skipped = 0;  // histories that do not say where they stood at the cut-off
  projections::model::Fit<projections::model::MbgNbdParams> fit;
};
Calibration Calibrate(const std::vector<History>& histories, double holdout);

struct FitArgs {
  std::string csv;
  std::string activities;
  double holdout = 0;        // in the data's time unit; 0: no holdout check
  double unit_days = 1;      // days in one time unit of the data
  std::string config;        // the domain config the fit starts from (--write)
  std::string write;         // where to write the fitted config; empty: report only
  std::string version;       // the new config's version; empty: "<today>.fit"
};

// Fits, prints the report and writes the config. Returns the process exit code.
int RunFit(const FitData& data, const FitArgs& args);

// `toml` (a domain config) with [churn_model] and [spend_model] replaced by the fitted
// parameters and `version` set; `note` goes into the sections' comment.
std::string WithFittedModels(const std::string& toml, const std::string& version,
                             const projections::model::MbgNbdParams& churn,
                             const projections::model::GammaGammaParams* spend,
                             const std::string& note);

}  // namespace lifecycle::ctl
