#include "lmx/io/llama2c_import.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <unordered_map>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/detail.h"
#include "lmx/io/mapped_file.h"
#include "lmx/io/safetensors_writer.h"

namespace lmx::io {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

int32_t load_i32(const std::byte* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Number of f32 values the weights occupy after the header (overflow-checked by the
// header validation, which caps every field).
uint64_t weight_count(const Llama2cConfig& c) {
  const uint64_t dim = c.dim, hidden = c.hidden_dim, layers = c.n_layers;
  const uint64_t head = dim / c.n_heads;
  const uint64_t kv_dim = head * c.n_kv_heads;
  uint64_t n = uint64_t(c.vocab_size) * dim;  // token embedding
  n += layers * dim;                          // rms_att
  n += layers * dim * dim;                    // wq
  n += 2 * layers * dim * kv_dim;             // wk, wv
  n += layers * dim * dim;                    // wo
  n += layers * dim;                          // rms_ffn
  n += 3 * layers * dim * hidden;             // w1, w2, w3
  n += dim;                                   // rms_final
  n += uint64_t(c.seq_len) * head;            // freq_cis_real + freq_cis_imag (unused)
  if (!c.shared_classifier) n += uint64_t(c.vocab_size) * dim;
  return n;
}

Llama2cConfig parse_config(const MappedFile& file) {
  const std::string name = file.path().string();
  auto fail = [&](const std::string& what) -> void {
    throw FormatError("llama2.c model '" + name + "': " + what);
  };
  if (file.size() < kHeaderBytes) {
    fail("file of " + std::to_string(file.size()) + " bytes is too small for the header");
  }
  const std::byte* p = file.data();
  // llama2.c's later export.py versions start with the magic "ak42" and a version number;
  // run.c (and this importer) read only the legacy layout.
  if (load_i32(p) == 0x616b3432) {
    fail("export format version " + std::to_string(load_i32(p + 4)) +
         " (magic \"ak42\") is not supported; export with --version 0 (legacy)");
  }
  Llama2cConfig c;
  c.dim = load_i32(p);
  c.hidden_dim = load_i32(p + 4);
  c.n_layers = load_i32(p + 8);
  c.n_heads = load_i32(p + 12);
  c.n_kv_heads = load_i32(p + 16);
  const int32_t vocab = load_i32(p + 20);
  c.seq_len = load_i32(p + 24);
  // Caps far above any llama2.c model keep every size computation below 2^64.
  struct Field {
    const char* name;
    int64_t value;
    int64_t max;
  };
  const Field fields[] = {
      {"dim", c.dim, 1 << 16},
      {"hidden_dim", c.hidden_dim, 1 << 18},
      {"n_layers", c.n_layers, 1 << 10},
      {"n_heads", c.n_heads, 1 << 10},
      {"n_kv_heads", c.n_kv_heads, 1 << 10},
      {"vocab_size",
       vocab == std::numeric_limits<int32_t>::min() ? int64_t{1} << 40 : std::abs(int64_t{vocab}),
       1 << 22},
      {"seq_len", c.seq_len, 1 << 22}};
  for (const Field& f : fields) {
    if (f.value <= 0 || f.value > f.max) {
      fail(std::string("header field ") + f.name + " = " + std::to_string(f.value) +
           " is out of range");
    }
  }
  c.shared_classifier = vocab > 0;
  c.vocab_size = std::abs(vocab);
  if (c.dim % c.n_heads != 0) fail("dim is not a multiple of n_heads");
  if (c.n_heads % c.n_kv_heads != 0) fail("n_heads is not a multiple of n_kv_heads");
  if ((c.dim / c.n_heads) % 2 != 0) fail("head size is odd (RoPE needs pairs)");
  const uint64_t expected = kHeaderBytes + 4 * weight_count(c);
  if (file.size() != expected) {
    fail("file has " + std::to_string(file.size()) + " bytes but its header describes " +
         std::to_string(expected) + " (" + (c.shared_classifier ? "shared" : "unshared") +
         " classifier)");
  }
  return c;
}

bool is_byte_piece(const std::string& s) {
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(s[3])) &&
         std::isxdigit(static_cast<unsigned char>(s[4]));
}

// The piece as HF's tokenizer.json spells it: SentencePiece's U+2581 for spaces, plain
// special tokens.
std::string hf_piece(const std::string& piece) {
  if (piece == "\n<s>\n") return "<s>";
  if (piece == "\n</s>\n") return "</s>";
  std::string out;
  for (char c : piece) {
    if (c == ' ') {
      out += "\xe2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

ojson build_tokenizer_json(const std::vector<Llama2cToken>& tokens, const std::string& tok_name) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  std::vector<std::string> pieces(tokens.size());
  std::unordered_map<std::string, int64_t> ids;
  std::vector<bool> mergeable(tokens.size(), false);
  for (int64_t i = 0; i < n; ++i) {
    const std::string& raw = tokens[static_cast<size_t>(i)].piece;
    pieces[size_t(i)] = hf_piece(raw);
    if (!ids.emplace(pieces[size_t(i)], i).second) {
      throw FormatError("llama2.c tokenizer '" + tok_name + "': token " + std::to_string(i) +
                        " repeats piece '" + detail::printable(raw) + "'");
    }
    // Control tokens and byte-fallback tokens never take part in merges.
    mergeable[size_t(i)] = i > 2 && !is_byte_piece(raw) && !raw.empty();
  }
  if (n < 3 || pieces[0] != "<unk>" || pieces[1] != "<s>" || pieces[2] != "</s>") {
    throw FormatError("llama2.c tokenizer '" + tok_name +
                      "': ids 0, 1, 2 are not <unk>, <s>, </s>");
  }

  // llama2.c merges, at each step, the adjacent pair whose concatenation is the vocab
  // token with the highest score. As BPE merges: every split of each token into two
  // vocab tokens, ranked by the merged token's score (highest first).
  std::vector<int64_t> order(tokens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return tokens[size_t(a)].score > tokens[size_t(b)].score;
  });
  ojson merges = ojson::array();
  for (int64_t id : order) {
    if (!mergeable[size_t(id)]) continue;
    const std::string& s = pieces[size_t(id)];
    std::vector<std::pair<int64_t, int64_t>> splits;
    for (size_t k = 1; k < s.size(); ++k) {
      if (is_utf8_continuation(s[k])) continue;
      auto l = ids.find(s.substr(0, k));
      auto r = ids.find(s.substr(k));
      if (l == ids.end() || r == ids.end()) continue;
      if (!mergeable[size_t(l->second)] || !mergeable[size_t(r->second)]) continue;
      splits.emplace_back(l->second, r->second);
    }
    std::sort(splits.begin(), splits.end());
    for (auto [l, r] : splits) merges.push_back(pieces[size_t(l)] + " " + pieces[size_t(r)]);
  }

  ojson vocab = ojson::object();
  for (int64_t i = 0; i < n; ++i) vocab[pieces[size_t(i)]] = i;

  auto special = [](int64_t id, const char* content) {
    return ojson{{"id", id},        {"content", content}, {"single_word", false},
                 {"lstrip", false}, {"rstrip", false},    {"normalized", false},
                 {"special", true}};
  };
  const std::string space = "\xe2\x96\x81";
  ojson tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")};
  tj["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", space}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}};
  tj["pre_tokenizer"] = nullptr;
  tj["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  tj["decoder"] = {{"type", "Sequence"},
                   {"decoders",
                    {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
                     {{"type", "ByteFallback"}},
                     {{"type", "Fuse"}},
                     {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  tj["model"] = {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", "<unk>"},
                 {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr},
                 {"fuse_unk", true},
                 {"byte_fallback", true},
                 {"ignore_merges", false},
                 {"vocab", std::move(vocab)},
                 {"merges", std::move(merges)}};
  return tj;
}

std::string dump(const ojson& j, const std::string& what) {
  try {
    return j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    // Pieces that are not UTF-8 cannot be written to JSON.
    throw FormatError(what + ": " + e.what());
  }
}

}  // namespace

std::vector<int64_t> llama2c_rope_row_permutation(int64_t head_dim) {
  std::vector<int64_t> perm(static_cast<size_t>(head_dim));
  const int64_t half = head_dim / 2;
  for (int64_t j = 0; j < 2; ++j) {
    for (int64_t p = 0; p < half; ++p) perm[static_cast<size_t>(j * half + p)] = 2 * p + j;
  }
  return perm;
}

Llama2cConfig read_llama2c_config(const fs::path& model_bin) {
  return parse_config(*MappedFile::open(model_bin));
}

std::vector<Llama2cToken> read_llama2c_tokenizer(const fs::path& tokenizer_bin,
                                                 int32_t vocab_size) {
  auto file = MappedFile::open(tokenizer_bin);
  const std::string name = tokenizer_bin.string();
  auto fail = [&](const std::string& what) {
    throw FormatError("llama2.c tokenizer '" + name + "': " + what);
  };
  const std::byte* p = file->data();
  const size_t size = file->size();
  if (size < 4) fail("file is too small for max_token_length");
  size_t pos = 4;
  std::vector<Llama2cToken> tokens;
  tokens.reserve(static_cast<size_t>(std::max(vocab_size, 0)));
  for (int32_t i = 0; i < vocab_size; ++i) {
    if (size - pos < 8) {
      fail("ends after " + std::to_string(i) + " tokens; the model's vocab_size is " +
           std::to_string(vocab_size));
    }
    Llama2cToken t;
    std::memcpy(&t.score, p + pos, 4);
    const int32_t len = load_i32(p + pos + 4);
    pos += 8;
    if (len < 0 || static_cast<size_t>(len) > size - pos) {
      fail("token " + std::to_string(i) + " has length " + std::to_string(len) +
           " past the end of the file");
    }
    t.piece.assign(reinterpret_cast<const char*>(p + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    tokens.push_back(std::move(t));
  }
  if (pos != size) {
    fail("has " + std::to_string(size - pos) + " bytes after the " + std::to_string(vocab_size) +
         " tokens of the model's vocab (tokenizer and model do not match)");
  }
  return tokens;
}

void import_llama2c(const fs::path& model_bin,
                    const fs::path& tokenizer_bin,
                    const fs::path& out_dir) {
  auto file = MappedFile::open(model_bin);
  const Llama2cConfig c = parse_config(*file);
  const auto tokens = read_llama2c_tokenizer(tokenizer_bin, c.vocab_size);
  const ojson tokenizer_json = build_tokenizer_json(tokens, tokenizer_bin.string());

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError("cannot create '" + out_dir.string() + "': " + ec.message());

  const int64_t dim = c.dim, hidden = c.hidden_dim, vocab = c.vocab_size;
  const int64_t head = dim / c.n_heads;
  const int64_t kv_dim = head * c.n_kv_heads;
  // Header is 28 bytes and the mapping page-aligned: the floats are 4-aligned.
  const auto* w = reinterpret_cast<const float*>(file->data() + kHeaderBytes);
  auto take = [&](int64_t count) {
    const float* out = w;
    w += count;
    return out;
  };
  const float* embed = take(vocab * dim);
  const float* rms_att = take(c.n_layers * dim);
  const float* wq = take(c.n_layers * dim * dim);
  const float* wk = take(c.n_layers * kv_dim * dim);
  const float* wv = take(c.n_layers * kv_dim * dim);
  const float* wo = take(c.n_layers * dim * dim);
  const float* rms_ffn = take(c.n_layers * dim);
  const float* w1 = take(c.n_layers * hidden * dim);
  const float* w2 = take(c.n_layers * dim * hidden);
  const float* w3 = take(c.n_layers * hidden * dim);
  const float* rms_final = take(dim);
  take(int64_t{c.seq_len} * head);  // freq_cis_real, freq_cis_imag: HF recomputes RoPE
  const float* wcls = c.shared_classifier ? nullptr : take(vocab * dim);

  const auto perm = llama2c_rope_row_permutation(head);
  // [heads * head, dim] rows reordered within each head (see llama2c_rope_row_permutation).
  auto permute_rows = [&](const float* src, int64_t heads) {
    std::vector<std::byte> out(static_cast<size_t>(heads * head * dim) * sizeof(float));
    auto* dst = reinterpret_cast<float*>(out.data());
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t r = 0; r < head; ++r) {
        std::memcpy(dst + (h * head + r) * dim, src + (h * head + perm[size_t(r)]) * dim,
                    static_cast<size_t>(dim) * sizeof(float));
      }
    }
    return out;
  };

  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  auto add = [&](std::string name, std::vector<int64_t> shape, const float* data) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    writer.add(std::move(name), Dtype::f32, std::move(shape), data,
               static_cast<size_t>(n) * sizeof(float));
  };
  add("model.embed_tokens.weight", {vocab, dim}, embed);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {dim}, rms_att + l * dim);
    writer.add(p + "self_attn.q_proj.weight", Dtype::f32, {dim, dim},
               permute_rows(wq + l * dim * dim, c.n_heads));
    writer.add(p + "self_attn.k_proj.weight", Dtype::f32, {kv_dim, dim},
               permute_rows(wk + l * kv_dim * dim, c.n_kv_heads));
    add(p + "self_attn.v_proj.weight", {kv_dim, dim}, wv + l * kv_dim * dim);
    add(p + "self_attn.o_proj.weight", {dim, dim}, wo + l * dim * dim);
    add(p + "post_attention_layernorm.weight", {dim}, rms_ffn + l * dim);
    add(p + "mlp.gate_proj.weight", {hidden, dim}, w1 + l * hidden * dim);
    add(p + "mlp.down_proj.weight", {dim, hidden}, w2 + l * dim * hidden);
    add(p + "mlp.up_proj.weight", {hidden, dim}, w3 + l * hidden * dim);
  }
  add("model.norm.weight", {dim}, rms_final);
  if (wcls != nullptr) add("lm_head.weight", {vocab, dim}, wcls);

  ojson config;
  config["architectures"] = {"LlamaForCausalLM"};
  config["model_type"] = "llama";
  config["hidden_size"] = c.dim;
  config["intermediate_size"] = c.hidden_dim;
  config["num_hidden_layers"] = c.n_layers;
  config["num_attention_heads"] = c.n_heads;
  config["num_key_value_heads"] = c.n_kv_heads;
  config["head_dim"] = head;
  config["vocab_size"] = c.vocab_size;
  config["max_position_embeddings"] = c.seq_len;
  config["hidden_act"] = "silu";
  config["rms_norm_eps"] = 1e-5;
  config["rope_theta"] = 10000.0;
  config["rope_scaling"] = nullptr;
  config["attention_bias"] = false;
  config["mlp_bias"] = false;
  config["tie_word_embeddings"] = c.shared_classifier;
  config["bos_token_id"] = 1;
  config["eos_token_id"] = 2;
  config["torch_dtype"] = "float32";

  const ojson generation = {{"bos_token_id", 1}, {"eos_token_id", 2}};

  auto added = [](const char* content) {
    return ojson{{"content", content}, {"lstrip", false},      {"normalized", false},
                 {"rstrip", false},    {"single_word", false}, {"special", true}};
  };
  ojson tok_config;
  tok_config["add_bos_token"] = true;
  tok_config["add_eos_token"] = false;
  tok_config["added_tokens_decoder"] = {
      {"0", added("<unk>")}, {"1", added("<s>")}, {"2", added("</s>")}};
  tok_config["bos_token"] = "<s>";
  tok_config["eos_token"] = "</s>";
  tok_config["unk_token"] = "<unk>";
  tok_config["pad_token"] = nullptr;
  tok_config["clean_up_tokenization_spaces"] = false;
  tok_config["model_max_length"] = c.seq_len;
  tok_config["tokenizer_class"] = "LlamaTokenizer";

  const ojson special_map = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}};

  const std::string tok_name = "tokenizer from '" + tokenizer_bin.string() + "'";
  writer.write(out_dir / "model.safetensors");
  write_file_atomic(out_dir / "config.json", dump(config, "config.json"));
  write_file_atomic(out_dir / "generation_config.json", dump(generation, "generation"));
  write_file_atomic(out_dir / "tokenizer.json", dump(tokenizer_json, tok_name));
  write_file_atomic(out_dir / "tokenizer_config.json", dump(tok_config, tok_name));
  write_file_atomic(out_dir / "special_tokens_map.json", dump(special_map, tok_name));
}

}  // namespace lmx::io
