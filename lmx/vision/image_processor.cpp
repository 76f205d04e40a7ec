#include "lmx/vision/image_processor.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision {

const ProcessorTensor& ProcessorOutput::at(std::string_view name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return t;
  }
  throw InvalidArgument("processor output has no tensor '" + std::string(name) + "'");
}

namespace {

using Factory = std::unique_ptr<ImageProcessor> (*)(const detail::ConfigReader&);

struct Family {
  const char* type;
  Factory make;
};

const Family kFamilies[] = {
    {"Qwen2VLImageProcessor", detail::make_qwen2_vl_processor},
    {"SiglipImageProcessor", detail::make_siglip_processor},
    {"CLIPImageProcessor", detail::make_clip_processor},
    {"LlavaImageProcessor", detail::make_llava_processor},
    {"Gemma3ImageProcessor", detail::make_gemma3_processor},
    {"Idefics3ImageProcessor", [](const detail::ConfigReader& c) { return detail::make_idefics3_processor(c, false); }},
    {"SmolVLMImageProcessor", [](const detail::ConfigReader& c) { return detail::make_idefics3_processor(c, true); }},
    {"PixtralImageProcessor", detail::make_pixtral_processor},
};

// A family's processor whose errors name the config they came from: the limits below the
// processors (resize's pixel limit) do not know it.
class Labeled final : public ImageProcessor {
 public:
  Labeled(std::unique_ptr<ImageProcessor> inner, std::string label) : inner_(std::move(inner)), label_(std::move(label)) {}
  std::string_view type() const override { return inner_->type(); }
  ProcessorOutput process(const std::vector<Image>& images) const override {
    try {
      return inner_->process(images);
    } catch (const InvalidArgument& e) {
      if (std::string_view(e.what()).starts_with(label_)) throw;
      throw InvalidArgument(label_ + ": " + e.what());
    }
  }

 private:
  std::unique_ptr<ImageProcessor> inner_;
  std::string label_;
};

std::string strip_suffix(std::string type) {
  for (const char* suffix : {"Fast", "Pil"}) {
    const std::string s = suffix;
    if (type.size() > s.size() && type.compare(type.size() - s.size(), s.size(), s) == 0) {
      type.resize(type.size() - s.size());
    }
  }
  return type;
}

}  // namespace

std::vector<std::string> supported_image_processor_types() {
  std::vector<std::string> out;
  for (const auto& f : kFamilies) out.emplace_back(f.type);
  return out;
}

std::unique_ptr<ImageProcessor> make_image_processor(std::string_view json_text,
                                                     const std::string& label) {
  check_json_nesting(json_text, label);
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) throw FormatError(label + ": not a JSON object");
  // processor_config.json nests the image processor's keys.
  const nlohmann::json& config =
      doc.contains("image_processor") && doc["image_processor"].is_object() ? doc["image_processor"] : doc;
  auto it = config.find("image_processor_type");
  if (it == config.end() || !it->is_string()) {
    throw FormatError(label + ": field 'image_processor_type' is missing");
  }
  const std::string type = strip_suffix(it->get<std::string>());
  for (const auto& f : kFamilies) {
    if (type == f.type) return std::make_unique<Labeled>(f.make(detail::ConfigReader(config, label)), label);
  }
  std::string known;
  for (const auto& f : kFamilies) known += std::string(known.empty() ? "" : ", ") + f.type;
  throw Unsupported(label + ": image_processor_type '" + it->get<std::string>() +
                    "' is not supported (supported: " + known + ")");
}


std::unique_ptr<ImageProcessor> load_image_processor(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "preprocessor_config.json";
    if (!std::filesystem::exists(file)) file = path / "processor_config.json";
    if (!std::filesystem::exists(file)) {
      throw IoError(path.string() + ": no preprocessor_config.json or processor_config.json");
    }
  }
  std::string text = detail::read_config_text(file);
  // The multimodal processor's spatial_merge_size (processor_config.json beside a
  // preprocessor_config.json) changes the patches the image processor is asked for.
  const std::filesystem::path outer = file.parent_path() / "processor_config.json";
  if (file.filename() == "preprocessor_config.json" && std::filesystem::exists(outer)) {
    nlohmann::json inner = nlohmann::json::parse(text, nullptr, false);
    const nlohmann::json proc = nlohmann::json::parse(detail::read_config_text(outer), nullptr, false);
    if (inner.is_object() && proc.is_object() && proc.contains("spatial_merge_size") &&
        !inner.contains("spatial_merge_size")) {
      inner["spatial_merge_size"] = proc["spatial_merge_size"];
      text = inner.dump();
    }
  }
  return make_image_processor(text, file.string());
}

}  // namespace lmx::vision
