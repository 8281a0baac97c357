#pragma once
// Small helpers shared by the benchmark programs.

#include <algorithm>
#include <vector>

namespace lifecycle::bench {

// The p-quantile (0..1) of `v` by the nearest-rank rule; 0 for an empty sample.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace lifecycle::bench
