#pragma once
// lifecyclectl fit: maximum-likelihood fits of the churn model (MBG/NBD) and the spend
// model (Gamma-Gamma) on a population, a report of the fit, and a domain config with
// the fitted parameters under a new version.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "projections/churn_model.h"

namespace lifecycle::ctl {

// A population: each customer's (x, t_x, T) and, where known, the mean spend of the
// repeat activities (spend[i].x == 0 when there is none).
struct FitData {
  std::vector<projections::model::Rfm> rfm;
  std::vector<projections::model::Spend> spend;
  std::string source;  // for the report: "file.csv", "lifecycled at host:port"
};

// Reads `customer,x,t_x,T[,mean_spend]` lines (a header line is skipped; any one time
// unit). A line that does not parse is an error naming its number.
absl::StatusOr<FitData> ReadFitCsv(const std::string& path);

struct FitArgs {
  std::string csv;
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
