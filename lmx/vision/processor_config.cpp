#include "lmx/vision/processor_config.h"

#include <fstream>
#include <sstream>

#include <cmath>
#include <cstdint>

#include "lmx/base/error.h"

namespace lmx::vision::detail {

void ConfigReader::fail(const std::string& key, const std::string& why) const {
  throw FormatError(label_ + ": field '" + key + "' " + why);
}

const nlohmann::json* ConfigReader::find(const char* key) const {
  auto it = config_.find(key);
  if (it == config_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool ConfigReader::has(const char* key) const { return find(key) != nullptr; }

bool ConfigReader::flag(const char* key, bool fallback) const {
  const auto* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(key, "must be true or false");
  return v->get<bool>();
}

int64_t ConfigReader::integer64(const char* key, int64_t fallback) const {
  const auto* v = find(key);
  if (!v) return fallback;
  // int64's range: 2^63 is exact in a double, so every whole double below it converts.
  constexpr double kInt64End = 9223372036854775808.0;
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail(key, "is out of range: " + v->dump());
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()) {
    const double d = v->get<double>();
    if (d >= kInt64End || d < -kInt64End) fail(key, "is out of range: " + v->dump());
    return static_cast<int64_t>(d);
  }
  fail(key, "must be an integer");
}

int ConfigReader::integer(const char* key, int fallback) const {
  int64_t v = integer64(key, fallback);
  if (v < 0 || v > (1 << 30)) fail(key, "is out of range: " + std::to_string(v));
  return static_cast<int>(v);
}

double ConfigReader::number(const char* key, double fallback) const {
  const auto* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) fail(key, "must be a number");
  return v->get<double>();
}

Resample ConfigReader::resample(Resample fallback) const {
  if (!has("resample")) return fallback;
  return resample_from_pil(integer("resample", 0), label_ + ": field 'resample'");
}

std::array<double, 3> ConfigReader::triple(const char* key, std::array<double, 3> fallback) const {
  const auto* v = find(key);
  if (!v) return fallback;
  if (v->is_number()) {
    double x = v->get<double>();
    return {x, x, x};
  }
  if (!v->is_array() || v->size() != 3) fail(key, "must be a number or a list of 3 numbers");
  std::array<double, 3> out;
  for (int i = 0; i < 3; ++i) {
    if (!(*v)[i].is_number()) fail(key, "must hold numbers");
    out[i] = (*v)[i].get<double>();
  }
  return out;
}

Normalization ConfigReader::normalization(std::array<double, 3> mean, std::array<double, 3> std) const {
  Normalization n;
  n.do_rescale = flag("do_rescale", true);
  n.rescale_factor = number("rescale_factor", 1.0 / 255.0);
  n.do_normalize = flag("do_normalize", true);
  n.mean = triple("image_mean", mean);
  n.std = triple("image_std", std);
  for (double s : n.std) {
    if (n.do_normalize && s == 0.0) fail("image_std", "has a zero");
  }
  return n;
}

SizeDict ConfigReader::size(const char* key, SizeDict fallback, bool int_is_square) const {
  const auto* v = find(key);
  if (!v) return fallback;
  SizeDict s;
  if (v->is_number_integer()) {
    int x = integer(key, 0);
    if (int_is_square) {
      s.height = s.width = x;
    } else {
      s.shortest_edge = x;
    }
    return s;
  }
  if (!v->is_object()) fail(key, "must be an integer or an object");
  ConfigReader sub(*v, label_ + ": " + key);
  s.height = sub.integer("height", 0);
  s.width = sub.integer("width", 0);
  s.shortest_edge = sub.integer("shortest_edge", 0);
  s.longest_edge = sub.integer("longest_edge", 0);
  return s;
}

namespace {

// A computed side of a resize target, refused when it passes int (a side that long is past
// any resize's pixel limit anyway).
int side(double v, const std::string& label) {
  if (!(v < 2147483648.0)) {
    throw InvalidArgument(label + ": size asks for a side of " + std::to_string(v) + " pixels, past the resize limit");
  }
  return static_cast<int>(v);
}

}  // namespace

std::pair<int, int> resize_target(int height, int width, const SizeDict& size,
                                  const std::string& label) {
  if (size.shortest_edge && size.longest_edge) {
    // transformers' get_size_with_aspect_ratio.
    int target = size.shortest_edge;
    const int max_size = size.longest_edge;
    double raw = 0.0;
    bool use_raw = false;
    const double lo = std::min(height, width), hi = std::max(height, width);
    if (hi / lo * target > max_size) {
      raw = max_size * lo / hi;
      target = static_cast<int>(std::nearbyint(raw));
      use_raw = true;
    }
    if ((height <= width && height == target) || (width <= height && width == target)) {
      return {height, width};
    }
    const double base = use_raw ? raw : target;
    if (width < height) return {side(base * height / width, label), target};
    return {target, side(base * width / height, label)};
  }
  if (size.shortest_edge) {
    // get_resize_output_image_size(default_to_square=False): the short side to the size,
    // the long side scaled and truncated.
    const int s = size.shortest_edge;
    const int short_side = std::min(height, width), long_side = std::max(height, width);
    const int new_long = side(static_cast<double>(s) * long_side / short_side, label);
    return width <= height ? std::pair{new_long, s} : std::pair{s, new_long};
  }
  if (size.height && size.width) return {size.height, size.width};
  throw FormatError(label + ": size must have 'height' and 'width', or 'shortest_edge'");
}

std::string read_config_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw IoError(file.string() + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace lmx::vision::detail
