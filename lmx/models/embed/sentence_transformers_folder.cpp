#include "lmx/models/embed/sentence_transformers_folder.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/io/model_folder.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/embed/encoder_layer.h"
#include "lmx/models/load.h"

namespace lmx::models::embed {
namespace fs = std::filesystem;
namespace {

// nullopt when the file does not exist; FormatError naming it when it is not a JSON object
// (or, with `array`, not a JSON array).
std::optional<nlohmann::json> read_json(const fs::path& file, bool array = false) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError("cannot read '" + file.string() + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_json_nesting(text, "'" + file.string() + "'");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw FormatError("'" + file.string() + "' is not valid JSON");
  if (array ? !j.is_array() : !j.is_object()) {
    throw FormatError("'" + file.string() + "' is not a JSON " + (array ? "array" : "object"));
  }
  return j;
}

// "sentence_transformers.models.Pooling" -> "Pooling".
std::string short_type(const std::string& type) {
  const size_t dot = type.rfind('.');
  return dot == std::string::npos ? type : type.substr(dot + 1);
}

void read_pooling(const fs::path& dir, SentenceTransformerModules& m) {
  const fs::path file = dir / "config.json";
  auto j = read_json(file);
  if (!j) throw FormatError("'" + file.string() + "' is missing (the Pooling module's config)");
  ConfigReader r(*j, file.string());
  // sentence-transformers' order of concatenation.
  const std::pair<const char*, PoolingMode> keys[] = {
      {"pooling_mode_cls_token", PoolingMode::cls},
      {"pooling_mode_mean_tokens", PoolingMode::mean},
      {"pooling_mode_max_tokens", PoolingMode::max},
      {"pooling_mode_mean_sqrt_len_tokens", PoolingMode::mean_sqrt_len},
      {"pooling_mode_weightedmean_tokens", PoolingMode::weighted_mean},
      {"pooling_mode_lasttoken", PoolingMode::last_token}};
  // sentence-transformers >= 6 writes "pooling_mode": a name or a list of names (pooled
  // in the list's order); older versions one boolean per mode.
  if (auto it = j->find("pooling_mode"); it != j->end()) {
    const auto parse = [&](const nlohmann::json& v) {
      if (!v.is_string()) r.fail("pooling_mode", "must be a mode name or a list of mode names");
      try {
        m.pooling.push_back(parse_pooling_mode(v.get<std::string>()));
      } catch (const InvalidArgument& e) {
        r.fail("pooling_mode", e.what());
      }
    };
    if (it->is_array()) {
      for (const auto& v : *it) parse(v);
    } else {
      parse(*it);
    }
  } else {
    for (const auto& [key, mode] : keys) {
      if (r.get_bool(key, false)) m.pooling.push_back(mode);
    }
  }
  if (m.pooling.empty()) r.fail("pooling_mode", "no pooling mode is enabled");
  m.include_prompt = r.get_bool("include_prompt", true);
  m.pooling_dimension = r.get_int("embedding_dimension", r.get_int("word_embedding_dimension", 0));
}

DenseConfig read_dense(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  auto j = read_json(file);
  if (!j) throw FormatError("'" + file.string() + "' is missing (the Dense module's config)");
  ConfigReader r(*j, file.string());
  DenseConfig c;
  c.dir = dir;
  c.in = r.require_int("in_features");
  c.out = r.require_int("out_features");
  if (c.in <= 0 || c.out <= 0) r.fail("in_features", "Dense sizes must be positive");
  c.bias = r.get_bool("bias", true);
  const std::string act = r.get_string("activation_function", "torch.nn.modules.activation.Tanh");
  if (short_type(act) == "Tanh") c.act = DenseActivation::tanh;
  else if (short_type(act) == "Identity") c.act = DenseActivation::identity;
  else r.fail("activation_function", "'" + act + "' is not supported (Tanh or Identity)");
  return c;
}

}  // namespace

DenseLayer::DenseLayer(const DenseConfig& c) : c_(c) {
  linear_ = std::make_unique<nn::Linear>(c.in, c.out, c.bias);
  register_module("linear", *linear_);
}

Tensor DenseLayer::forward(const Tensor& x) const {
  Tensor y = forward_row_by_row(*linear_, x);
  return c_.act == DenseActivation::tanh ? ops::tanh(y) : y;
}

std::unique_ptr<DenseLayer> load_dense_layer(const DenseConfig& c) {
  auto layer = std::make_unique<DenseLayer>(c);
  io::ModelFolder folder = io::ModelFolder::open(c.dir);
  load_module_weights(*layer, read_weights(folder), folder.raw_config(), c.dir.string(), "Dense");
  return layer;
}

SentenceTransformerModules read_sentence_transformer_modules(const fs::path& dir) {
  SentenceTransformerModules m;
  m.transformer_dir = dir;
  if (auto j = read_json(dir / "sentence_bert_config.json")) {
    ConfigReader r(*j, (dir / "sentence_bert_config.json").string());
    if (r.has("max_seq_length")) {
      const int64_t n = r.require_int("max_seq_length");
      if (n < 1) r.fail("max_seq_length", "must be at least 1");
      m.max_seq_length = n;
    }
  }
  if (auto j = read_json(dir / "config_sentence_transformers.json")) {
    const std::string file = (dir / "config_sentence_transformers.json").string();
    if (j->contains("prompts") && !(*j)["prompts"].is_null()) {
      if (!(*j)["prompts"].is_object()) throw FormatError("'" + file + "': \"prompts\" is not an object");
      for (const auto& [name, text] : (*j)["prompts"].items()) {
        if (!text.is_string()) throw FormatError("'" + file + "': prompt '" + name + "' is not a string");
        m.prompts[name] = text.get<std::string>();
      }
    }
    ConfigReader r(*j, file);
    m.default_prompt_name = r.get_string("default_prompt_name", "");
    if (!m.default_prompt_name.empty() && !m.prompts.count(m.default_prompt_name)) {
      r.fail("default_prompt_name", "'" + m.default_prompt_name + "' is not one of the prompts");
    }
  }
  const fs::path modules_file = dir / "modules.json";
  auto modules = read_json(modules_file, true);
  if (!modules) return m;
  m.has_modules_json = true;
  // The stage each module type belongs to: they must come in this order.
  enum Stage { transformer, pooling, dense, normalize };
  int last = -1;
  for (size_t i = 0; i < modules->size(); ++i) {
    const nlohmann::json& e = (*modules)[i];
    std::string where = "'";
    where += modules_file.string();
    where += "' entry ";
    where += std::to_string(i);
    if (!e.is_object() || !e.contains("type") || !e["type"].is_string()) {
      throw FormatError(where + " has no \"type\" string");
    }
    const std::string type = e["type"].get<std::string>();
    const std::string path = e.contains("path") && e["path"].is_string() ? e["path"].get<std::string>() : "";
    const fs::path sub = path.empty() ? dir : dir / path;
    const std::string kind = short_type(type);
    std::error_code ec;
    if (kind != "Normalize" && !fs::is_directory(sub, ec)) {
      throw FormatError(where + " (" + type + ") points at '" + path + "', which is not a folder in '" +
                        dir.string() + "'");
    }
    if (kind != "Transformer" && !path.empty() && fs::is_directory(sub, ec)) m.module_dirs.emplace_back(path);
    int stage = 0;
    if (kind == "Transformer") {
      stage = transformer;
      m.transformer_dir = sub;
    } else if (kind == "Pooling") {
      stage = pooling;
      read_pooling(sub, m);
    } else if (kind == "Dense") {
      stage = dense;
      m.dense.push_back(read_dense(sub));
    } else if (kind == "Normalize") {
      stage = normalize;
      m.normalize = true;
    } else {
      throw Unsupported(where + ": module type '" + type +
                        "' is not supported (Transformer, Pooling, Dense, Normalize)");
    }
    if (stage < last || (stage == last && stage != dense)) {
      throw FormatError(where + " (" + type + ") is out of order: lmx runs Transformer, Pooling, Dense..., Normalize");
    }
    last = stage;
  }
  if (last < transformer) throw FormatError("'" + modules_file.string() + "' lists no modules");
  if ((*modules)[0].value("type", "").find("Transformer") == std::string::npos) {
    throw FormatError("'" + modules_file.string() + "': the first module must be the Transformer");
  }
  if (!m.dense.empty() && m.pooling.empty()) {
    throw FormatError("'" + modules_file.string() + "': a Dense module without a Pooling module before it");
  }
  return m;
}

}  // namespace lmx::models::embed
