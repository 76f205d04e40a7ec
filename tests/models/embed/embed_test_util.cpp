#include "embed_test_util.h"

#include <cstdlib>
#include <fstream>
#include <random>

#include "lmx/io/safetensors_writer.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/embed/encoder.h"

namespace lmx::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "lmx_embed_test_XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

nlohmann::json tiny_bert_config(const nlohmann::json& overrides) {
  nlohmann::json c = {{"model_type", "bert"},        {"vocab_size", 64},          {"hidden_size", 16},
                      {"num_hidden_layers", 2},      {"num_attention_heads", 4},  {"intermediate_size", 32},
                      {"max_position_embeddings", 40}, {"type_vocab_size", 2},    {"layer_norm_eps", 1e-12},
                      {"hidden_act", "gelu"},        {"pad_token_id", 0}};
  c.update(overrides);
  return c;
}

void write_json(const fs::path& file, const nlohmann::json& j) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << j.dump(2);
}

void write_random_tensors(const fs::path& file, const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                          unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  io::SafetensorsWriter w;
  for (const auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const bool norm_weight = name.find("LayerNorm.weight") != std::string::npos ||
                             name.find("layer_norm.weight") != std::string::npos;
    std::vector<std::byte> bytes(static_cast<size_t>(n) * sizeof(float));
    float* p = reinterpret_cast<float*>(bytes.data());
    for (int64_t i = 0; i < n; ++i) p[i] = normal(rng) + (norm_weight ? 1.0f : 0.0f);
    w.add(name, Dtype::f32, shape, std::move(bytes));
  }
  w.write(file);
}

void write_random_encoder(const fs::path& dir, const nlohmann::json& config, unsigned seed, bool with_pooler) {
  write_json(dir / "config.json", config);
  auto encoder = models::embed::create_encoder(models::ConfigReader(config, "test config"), with_pooler);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  for (const auto& p : encoder->parameters()) tensors.push_back({p.name, p.shape});
  write_random_tensors(dir / "model.safetensors", tensors, seed);
}

void write_st_modules(const fs::path& dir, int64_t hidden, const std::vector<std::string>& pooling,
                      const std::vector<nlohmann::json>& dense, bool normalize, unsigned seed) {
  nlohmann::json modules = nlohmann::json::array();
  modules.push_back({{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}});
  nlohmann::json pool = {{"word_embedding_dimension", hidden}};
  for (const char* key : {"pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                          "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                          "pooling_mode_lasttoken"}) {
    pool[key] = false;
  }
  for (const std::string& mode : pooling) pool["pooling_mode_" + mode] = true;
  write_json(dir / "1_Pooling" / "config.json", pool);
  modules.push_back({{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}});
  int idx = 2;
  for (const nlohmann::json& d : dense) {
    const std::string path = std::to_string(idx) + "_Dense";
    write_json(dir / path / "config.json", {{"in_features", d["in"]}, {"out_features", d["out"]}, {"bias", d["bias"]},
                                            {"activation_function", d["activation"]}});
    std::vector<std::pair<std::string, std::vector<int64_t>>> t = {
        {"linear.weight", {d["out"].get<int64_t>(), d["in"].get<int64_t>()}}};
    if (d["bias"].get<bool>()) t.push_back({"linear.bias", {d["out"].get<int64_t>()}});
    write_random_tensors(dir / path / "model.safetensors", t, seed + static_cast<unsigned>(idx));
    modules.push_back({{"idx", idx}, {"name", std::to_string(idx)}, {"path", path},
                       {"type", "sentence_transformers.models.Dense"}});
    ++idx;
  }
  if (normalize) {
    const std::string path = std::to_string(idx) + "_Normalize";
    fs::create_directories(dir / path);
    modules.push_back({{"idx", idx}, {"name", std::to_string(idx)}, {"path", path},
                       {"type", "sentence_transformers.models.Normalize"}});
  }
  write_json(dir / "modules.json", modules);
}

models::embed::EmbedderOptions ids_only(std::vector<models::embed::PoolingMode> pooling) {
  models::embed::EmbedderOptions o;
  o.pooling = std::move(pooling);
  o.load_tokenizer = false;
  return o;
}

}  // namespace lmx::test
