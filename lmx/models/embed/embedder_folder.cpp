#include "lmx/models/embed/embedder_folder.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/io/model_folder.h"
#include "lmx/models/load.h"
#include "lmx/models/registry.h"

namespace lmx::models::embed {
namespace fs = std::filesystem;
namespace {

// The Transformer module's own weight files (replaced by what save_model writes).
bool is_weight_file(const std::string& name) {
  return name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") || name.ends_with(".bin") ||
         name.ends_with(".pt") || name.ends_with(".h5") || name.ends_with(".msgpack") || name.ends_with(".onnx");
}

void copy_or_throw(const fs::path& from, const fs::path& to, bool recursive) {
  std::error_code ec;
  if (recursive) {
    fs::create_directories(to, ec);
    if (!ec) fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  } else {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  }
  if (ec) throw IoError("convert: cannot copy '" + from.string() + "' to '" + to.string() + "': " + ec.message());
}

}  // namespace

LoadedEncoder load_encoder(const fs::path& dir, Device device) {
  LoadedEncoder out;
  out.modules = read_sentence_transformer_modules(dir);
  const fs::path& tdir = out.modules.transformer_dir;
  io::ModelFolder folder = io::ModelFolder::open(tdir);
  ConfigReader config(folder.text_config(), (tdir / "config.json").string());
  out.encoder = create_encoder(config);
  Encoder& enc = *out.encoder;
  WeightDict weights = read_weights(folder);
  enc.sanitize(weights);
  load_module_weights(enc, std::move(weights), folder.raw_config(), tdir.string(), enc.model_type());
  if (!device.is_cpu()) enc.to(device);
  return out;
}

std::vector<std::unique_ptr<DenseLayer>> load_dense_layers(const SentenceTransformerModules& m, int64_t hidden,
                                                           int64_t pooling_modes) {
  if (m.pooling_dimension != 0 && m.pooling_dimension != hidden) {
    throw FormatError("'" + (m.transformer_dir / "1_Pooling" / "config.json").string() +
                      "': word_embedding_dimension " + std::to_string(m.pooling_dimension) +
                      " does not match the model's hidden size " + std::to_string(hidden));
  }
  std::vector<std::unique_ptr<DenseLayer>> out;
  int64_t dim = hidden * pooling_modes;
  for (const DenseConfig& d : m.dense) {
    if (d.in != dim) {
      throw FormatError("'" + (d.dir / "config.json").string() + "': in_features " + std::to_string(d.in) +
                        " does not match the " + std::to_string(dim) + " values that reach this Dense layer");
    }
    out.push_back(load_dense_layer(d));
    dim = d.out;
  }
  return out;
}

bool is_embedder_folder(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "modules.json", ec)) return true;
  const fs::path file = dir / "config.json";
  std::ifstream in(file);
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object()) return false;
  const std::string type = j.value("model_type", "");
  const auto encoders = encoder_model_types(), llms = supported_model_types();
  const bool encoder_only = std::find(encoders.begin(), encoders.end(), type) != encoders.end() &&
                            std::find(llms.begin(), llms.end(), type) == llms.end();
  if (!encoder_only) return false;
  for (const auto& a : j.value("architectures", nlohmann::json::array())) {
    if (a.is_string() && a.get<std::string>().ends_with("ForSequenceClassification")) {
      throw Unsupported("'" + file.string() + "': " + a.get<std::string>() +
                        " (a cross-encoder) cannot be converted yet: lmx convert writes embedders");
    }
  }
  return true;
}

void save_embedder(LoadedEncoder& loaded, const fs::path& src, const fs::path& out, const SaveOptions& options) {
  const fs::path& tdir = loaded.modules.transformer_dir;
  // A folder that would not load is not copied on: the modules are checked as Embedder::load does.
  load_dense_layers(loaded.modules, loaded.encoder->hidden_size(),
                    std::max<int64_t>(1, static_cast<int64_t>(loaded.modules.pooling.size())));
  const fs::path rel = fs::relative(tdir, src);
  const fs::path tout = rel.empty() || rel == "." ? out : out / rel;
  save_model(*loaded.encoder, tdir, tout, options);
  std::error_code ec;
  // The Transformer folder's other files (tokenizer, sentence-transformers configs, ...).
  for (const auto& entry : fs::directory_iterator(tdir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(ec) && name != "config.json" && !is_weight_file(name)) {
      copy_or_throw(entry.path(), tout / name, false);
    }
  }
  // The root's files when the Transformer lives in a subfolder (modules.json and co.).
  if (tout != out) {
    for (const auto& entry : fs::directory_iterator(src)) {
      if (entry.is_regular_file(ec)) copy_or_throw(entry.path(), out / entry.path().filename(), false);
    }
  }
  for (const fs::path& m : loaded.modules.module_dirs) copy_or_throw(src / m, out / m, true);
}

}  // namespace lmx::models::embed
