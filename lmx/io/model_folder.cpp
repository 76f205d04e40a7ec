#include "lmx/io/model_folder.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "lmx/base/error.h"
#include "lmx/io/detail.h"

namespace lmx::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Reads the shard index: file name -> tensor names it should hold.
std::map<std::string, std::vector<std::string>> read_index(const fs::path& dir) {
  const std::string shown = (dir / kIndexName).string();
  json index = detail::read_json_file(dir / kIndexName, shown);
  if (!index.is_object()) throw FormatError("'" + shown + "' is not a JSON object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) {
    throw FormatError("'" + shown + "' has no \"weight_map\" object");
  }
  std::map<std::string, std::vector<std::string>> files;
  for (const auto& [tensor, file] : wm->items()) {
    if (!file.is_string()) {
      throw FormatError("'" + shown + "': weight_map entry '" + detail::printable(tensor) +
                        "' is not a file name");
    }
    const auto& name = file.get_ref<const std::string&>();
    if (!detail::is_safe_relative_path(name)) {
      throw FormatError("'" + shown + "': weight_map entry '" + detail::printable(tensor) +
                        "' names a file outside the folder: '" + detail::printable(name) + "'");
    }
    files[name].push_back(tensor);
  }
  if (files.empty()) throw FormatError("'" + shown + "' has an empty weight_map");
  return files;
}

}  // namespace

std::vector<fs::path> find_weight_files(const fs::path& dir) {
  std::vector<fs::path> out;
  if (fs::exists(dir / kIndexName)) {
    auto files = read_index(dir);
    std::vector<std::string> missing;
    for (const auto& [name, tensors] : files) {
      if (!fs::is_regular_file(dir / name)) missing.push_back(name);
      out.emplace_back(name);
    }
    if (!missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 10; ++i) list += (i ? ", " : "") + missing[i];
      if (missing.size() > 10) list += ", ... (" + std::to_string(missing.size()) + " in all)";
      throw FormatError("'" + (dir / kIndexName).string() +
                        "' names missing weight files: " + list);
    }
    return out;
  }
  if (fs::is_regular_file(dir / "model.safetensors")) return {fs::path("model.safetensors")};
  std::vector<std::string> model_star, other;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (!ends_with(name, ".safetensors") || starts_with(name, ".")) continue;
    if (starts_with(name, "model")) {
      model_star.push_back(name);
    } else if (name.find("adapter") == std::string::npos && !starts_with(name, "consolidated")) {
      other.push_back(name);
    }
  }
  auto& chosen = model_star.empty() ? other : model_star;
  std::sort(chosen.begin(), chosen.end());
  for (auto& n : chosen) out.emplace_back(n);
  return out;
}

ModelFolder::ModelFolder() = default;
ModelFolder::ModelFolder(ModelFolder&&) noexcept = default;
ModelFolder& ModelFolder::operator=(ModelFolder&&) noexcept = default;
ModelFolder::~ModelFolder() = default;

const json& ModelFolder::raw_config() const { return *raw_config_; }
const json& ModelFolder::text_config() const { return *text_config_; }
const json* ModelFolder::generation_config() const { return generation_config_.get(); }

std::string ModelFolder::model_type() const {
  auto it = text_config_->find("model_type");
  return it != text_config_->end() && it->is_string() ? it->get<std::string>() : std::string();
}

ModelFolder ModelFolder::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IoError("model folder '" + dir.string() + "' not found");
  ModelFolder m;
  m.path_ = dir;
  if (!fs::is_regular_file(dir / "config.json")) {
    throw IoError("'" + dir.string() + "' is not a model folder: it has no config.json");
  }
  const std::string config_name = (dir / "config.json").string();
  m.raw_config_ = std::make_unique<json>(detail::read_json_file(dir / "config.json", config_name));
  if (!m.raw_config_->is_object()) throw FormatError("'" + config_name + "' is not a JSON object");

  json text = *m.raw_config_;
  auto tc = m.raw_config_->find("text_config");
  if (tc != m.raw_config_->end() && !tc->is_null()) {
    if (!tc->is_object()) throw FormatError("'" + config_name + "': text_config is not an object");
    for (const char* k : {"text_config", "vision_config", "audio_config", "speech_config"}) {
      text.erase(k);
    }
    for (const auto& [k, v] : tc->items()) text[k] = v;
  }
  m.text_config_ = std::make_unique<json>(std::move(text));

  if (fs::is_regular_file(dir / "generation_config.json")) {
    const std::string name = (dir / "generation_config.json").string();
    m.generation_config_ =
        std::make_unique<json>(detail::read_json_file(dir / "generation_config.json", name));
    if (!m.generation_config_->is_object()) {
      throw FormatError("'" + name + "' is not a JSON object");
    }
  }

  m.weight_files_ = find_weight_files(dir);
  if (m.weight_files_.empty()) {
    throw FormatError("model folder '" + dir.string() + "' has no *.safetensors weights");
  }
  for (const fs::path& rel : m.weight_files_) {
    m.weights_.add_file(std::make_shared<const SafetensorsFile>(SafetensorsFile::open(dir / rel)));
  }
  // A complete index must also agree with the files about where each tensor is.
  if (fs::exists(dir / kIndexName)) {
    for (const auto& [file, tensors] : read_index(dir)) {
      const std::string full = (dir / file).string();
      for (const std::string& t : tensors) {
        const WeightRef* r = m.weights_.find(t);
        if (r == nullptr || r->file->name() != full) {
          throw FormatError("'" + (dir / kIndexName).string() + "' places tensor '" +
                            detail::printable(t) + "' in '" + file + "', which does not hold it");
        }
      }
    }
  }
  return m;
}

}  // namespace lmx::io
