// Reading the keys of an image processor config, with the class defaults of
// transformers; shared by the processors (detail, not installed API).
#pragma once

#include <array>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "lmx/vision/image_ops.h"
#include "lmx/vision/resample.h"

namespace lmx::vision::detail {

// A transformers size dict; absent keys are 0.
struct SizeDict {
  int height = 0, width = 0, shortest_edge = 0, longest_edge = 0;
};

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& config, std::string label)
      : config_(config), label_(std::move(label)) {}

  bool flag(const char* key, bool fallback) const;
  int integer(const char* key, int fallback) const;
  int64_t integer64(const char* key, int64_t fallback) const;
  double number(const char* key, double fallback) const;
  bool has(const char* key) const;
  Resample resample(Resample fallback) const;
  // An int means a square when `int_is_square`, else a shortest edge (get_size_dict).
  SizeDict size(const char* key, SizeDict fallback, bool int_is_square) const;
  // do_rescale, rescale_factor, do_normalize, image_mean, image_std.
  Normalization normalization(std::array<double, 3> mean, std::array<double, 3> std) const;
  // The sub-object `key` (e.g. max_image_size) as a size dict.
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  const std::string& label() const { return label_; }

 private:
  const nlohmann::json* find(const char* key) const;
  std::array<double, 3> triple(const char* key, std::array<double, 3> fallback) const;
  const nlohmann::json& config_;
  std::string label_;
};

inline constexpr std::array<double, 3> kClipMean{0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kClipStd{0.26862954, 0.26130258, 0.27577711};
inline constexpr std::array<double, 3> kHalf{0.5, 0.5, 0.5};

// The output size of transformers' resize for a size dict (PilBackend.resize):
// shortest + longest edge, shortest edge alone, else height x width.
// A config file's text (lmx::IoError naming it when it cannot be read).
std::string read_config_text(const std::filesystem::path& file);

std::pair<int, int> resize_target(int height, int width, const SizeDict& size, const std::string& label);

}  // namespace lmx::vision::detail
