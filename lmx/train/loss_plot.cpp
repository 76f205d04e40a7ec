#include "lmx/train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace lmx::train {
namespace {

constexpr double kWidth = 640, kHeight = 400, kLeft = 70, kRight = 20, kTop = 30, kBottom = 50;

std::string num(double v, const char* fmt = "%.2f") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

std::string loss_curve_svg(const LossCurve& curve) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto* series : {&curve.train, &curve.validation}) {
    for (const auto& [it, loss] : *series) {
      if (!std::isfinite(loss)) continue;
      x0 = std::min(x0, static_cast<double>(it));
      x1 = std::max(x1, static_cast<double>(it));
      y0 = std::min(y0, loss);
      y1 = std::max(y1, loss);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to plot: empty axes
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double it) { return kLeft + (it - x0) / (x1 - x0) * pw; };
  auto py = [&](double loss) { return kTop + (y1 - loss) / (y1 - y0) * ph; };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth, "%.0f") + "\" height=\"" +
                  num(kHeight, "%.0f") + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<path d=\"M" + num(kLeft) + " " + num(kTop) + " V" + num(kTop + ph) + " H" + num(kLeft + pw) +
       "\" stroke=\"black\" fill=\"none\"/>\n";
  auto text = [&](double x, double y, const std::string& anchor, const std::string& t) {
    s += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\">" + t + "</text>\n";
  };
  text(kLeft - 6, kTop + 4, "end", num(y1, "%.3f"));
  text(kLeft - 6, kTop + ph + 4, "end", num(y0, "%.3f"));
  text(kLeft, kTop + ph + 18, "middle", num(x0, "%.0f"));
  text(kLeft + pw, kTop + ph + 18, "middle", num(x1, "%.0f"));
  text(kLeft + pw / 2, kHeight - 10, "middle", "iteration");
  text(kLeft, kTop - 12, "start", "loss");
  int legend = 0;
  auto series = [&](const std::vector<std::pair<int64_t, double>>& pts, const char* color, const char* name) {
    std::string points;
    for (const auto& [it, loss] : pts) {
      if (!std::isfinite(loss)) continue;
      if (!points.empty()) points += ' ';
      points += num(px(static_cast<double>(it)));
      points += ',';
      points += num(py(loss));
    }
    if (points.empty()) return;
    s += std::string("<polyline class=\"") + name + "\" fill=\"none\" stroke=\"" + color +
         "\" stroke-width=\"2\" points=\"" + points + "\"/>\n";
    const double ly = kTop - 12;
    const double lx = kLeft + pw - 170 + 90 * legend++;
    s += "<rect x=\"" + num(lx) + "\" y=\"" + num(ly - 9) + "\" width=\"12\" height=\"3\" fill=\"" + color + "\"/>\n";
    text(lx + 16, ly - 4, "start", name);
  };
  series(curve.train, "#1f77b4", "train");
  series(curve.validation, "#ff7f0e", "validation");
  s += "</svg>\n";
  return s;
}

}  // namespace lmx::train
