// The loss curve `lmx lora` writes beside the adapters (loss_curve.svg): training loss at
// each report and validation loss at each evaluation against the iteration, as a
// self-contained SVG (no fonts or scripts beyond the SVG basics).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lmx::train {

struct LossCurve {
  std::vector<std::pair<int64_t, double>> train;       // (iteration, mean loss of the report window)
  std::vector<std::pair<int64_t, double>> validation;  // (iteration, validation loss)
};

// Plot area: x from the first to the last iteration of either series, y from the
// smallest to the largest finite loss (padded when they are equal); non-finite points
// are left out. Each series is one <polyline> (train blue, validation orange) with its
// points in order; the axes carry the iteration and loss ranges.
std::string loss_curve_svg(const LossCurve& curve);

}  // namespace lmx::train
