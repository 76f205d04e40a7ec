// The loss-curve SVG: points mapped to the plot area, non-finite losses left out, and
// the axis ranges labelled.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <sstream>

#include "lmx/train/loss_plot.h"

namespace lmx {
namespace {

// The (x, y) pairs of the polyline of class `name`.
std::vector<std::pair<double, double>> points(const std::string& svg, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(svg, m, std::regex("<polyline class=\"" + name + "\"[^>]*points=\"([^\"]*)\""))) return {};
  std::vector<std::pair<double, double>> out;
  std::istringstream in(m[1].str());
  std::string pair;
  while (in >> pair) {
    const size_t comma = pair.find(',');
    out.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return out;
}

TEST(LossPlot, MapsPointsToThePlotAreaAndLabelsTheRanges) {
  train::LossCurve c;
  c.train = {{10, 2.5}, {20, std::numeric_limits<double>::quiet_NaN()}, {30, 1.0}, {40, 0.5}};
  c.validation = {{0, 3.0}, {40, 0.75}};
  const std::string svg = train::loss_curve_svg(c);
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  const auto t = points(svg, "train"), v = points(svg, "validation");
  ASSERT_EQ(t.size(), 3u);  // the NaN is left out
  ASSERT_EQ(v.size(), 2u);
  // x spans iterations 0..40 over [70, 620], y spans losses 3.0..0.5 over [30, 350].
  EXPECT_NEAR(v[0].first, 70, 1e-9);
  EXPECT_NEAR(v[0].second, 30, 1e-9);
  EXPECT_NEAR(t[2].first, 620, 1e-9);
  EXPECT_NEAR(t[2].second, 350, 1e-9);
  EXPECT_NEAR(t[0].first, 70 + 550 * 10.0 / 40, 0.01);
  EXPECT_NEAR(t[0].second, 30 + 320 * (3.0 - 2.5) / 2.5, 0.01);
  EXPECT_NE(svg.find(">3.000<"), std::string::npos);
  EXPECT_NE(svg.find(">0.500<"), std::string::npos);
  EXPECT_NE(svg.find(">40<"), std::string::npos);
}

TEST(LossPlot, NothingFiniteGivesEmptyAxes) {
  train::LossCurve c;
  c.train = {{1, std::numeric_limits<double>::infinity()}};
  const std::string svg = train::loss_curve_svg(c);
  EXPECT_EQ(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace lmx
