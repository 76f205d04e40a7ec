#include "lmx/generate/prompt_cache.h"

#include <algorithm>
#include <charconv>

#include "lmx/base/error.h"
#include "lmx/generate/chunked_kv_cache.h"
#include "lmx/generate/quantized_kv_cache.h"
#include "lmx/generate/rotating_kv_cache.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_tensor.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/nn/state_cache.h"

namespace lmx::generate {
namespace {

constexpr const char* kStateOffsetKey = "lmx_state_offset";

std::vector<int64_t> parse_path(const std::string& s) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t dot = s.find('.', start);
    const std::string part =
        s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || part.empty()) return {};
    out.push_back(v);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

int64_t to_int(const std::string& s, const std::string& what, const std::string& file) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    throw FormatError(file + ": " + what + " '" + s + "' is not an integer");
  }
  return v;
}

}  // namespace

void save_prompt_cache(const std::filesystem::path& path,
                       const nn::KVCacheList& cache,
                       const std::map<std::string, std::string>& metadata) {
  io::SafetensorsWriter w;
  std::vector<Tensor> keep_alive;
  for (size_t i = 0; i < cache.size(); ++i) {
    const nn::KVCache& c = *cache[i];
    const std::vector<Tensor> st = c.state();  // a split model's: its heads joined (the whole model's)
    const bool nested = c.is_quantized() && st.size() == 6;
    for (size_t j = 0; j < st.size(); ++j) {
      Tensor t = st[j].contiguous();
      keep_alive.push_back(t);
      const std::string name =
          nested ? std::to_string(i) + "." + std::to_string(j / 3) + "." + std::to_string(j % 3)
                 : std::to_string(i) + "." + std::to_string(j);
      w.add(name, t.dtype(), t.shape(), t.raw_data(), t.nbytes());
    }
    const std::vector<std::string> meta = c.meta_state();
    if (meta.size() == 1) {
      w.set_metadata("0." + std::to_string(i), meta[0]);
    } else {
      for (size_t j = 0; j < meta.size(); ++j)
        w.set_metadata("0." + std::to_string(i) + "." + std::to_string(j), meta[j]);
    }
    w.set_metadata("2." + std::to_string(i), c.class_name());
  }
  for (const auto& [k, v] : metadata) w.set_metadata("1." + k, v);
  // mlx-lm's ArraysCache has no meta state to hold the tokens a state has seen; they go
  // in the user metadata (mlx-lm reads it as such and ignores it).
  for (const auto& c : cache) {
    if (dynamic_cast<const nn::StateCache*>(c.get())) {
      w.set_metadata("1." + std::string(kStateOffsetKey), std::to_string(c->offset()));
      break;
    }
  }
  w.write(path);
}

PromptCache load_prompt_cache(const std::filesystem::path& path,
                              const std::map<std::string, std::string>& expected) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  const std::string file = path.string();
  PromptCache out;
  std::map<int64_t, std::string> classes;
  std::map<int64_t, std::map<int64_t, std::string>> meta;
  for (const auto& [key, value] : f.metadata()) {
    if (key.rfind("1.", 0) == 0) {
      out.metadata[key.substr(2)] = value;
      continue;
    }
    const std::vector<int64_t> p = parse_path(key);
    if (p.size() == 2 && p[0] == 2) classes[p[1]] = value;
    if (p.size() == 2 && p[0] == 0) meta[p[1]][0] = value;
    if (p.size() == 3 && p[0] == 0) meta[p[1]][p[2]] = value;
  }
  for (const auto& [k, want] : expected) {
    auto it = out.metadata.find(k);
    if (it == out.metadata.end()) {
      throw InvalidArgument(file + ": prompt cache has no '" + k + "' metadata; expected '" + want +
                            "'");
    }
    if (it->second != want) {
      throw InvalidArgument(file + ": prompt cache was made for " + k + " '" + it->second +
                            "', not '" + want + "'");
    }
  }
  if (classes.empty())
    throw FormatError(file + ": no cache classes (metadata \"2.i\"): not a prompt-cache file");
  // Tensors by cache, ordered by their (j[, k]) path.
  std::map<int64_t, std::map<std::vector<int64_t>, Tensor>> arrays;
  for (const auto& info : f.tensors()) {
    const std::vector<int64_t> p = parse_path(info.name);
    if (p.size() < 2 || p.size() > 3)
      throw FormatError(file + ": tensor '" + info.name + "' is not named i.j");
    Tensor t = io::tensor_of(info, f.owner());
    arrays[p[0]][std::vector<int64_t>(p.begin() + 1, p.end())] = t;
  }
  const int64_t n = static_cast<int64_t>(classes.size());
  for (int64_t i = 0; i < n; ++i) {
    auto cit = classes.find(i);
    if (cit == classes.end())
      throw FormatError(file + ": cache " + std::to_string(i) + " has no class name");
    const std::string& cls = cit->second;
    std::vector<Tensor> st;
    for (const auto& [k, t] : arrays[i]) st.push_back(t);
    std::vector<std::string> m;
    for (const auto& [k, v] : meta[i]) m.push_back(v);
    const std::string where = file + ": cache " + std::to_string(i) + " (" + cls + ")";
    auto kv = [&](size_t want) {
      if (st.size() != want) {
        throw FormatError(where + " has " + std::to_string(st.size()) + " arrays, expected " +
                          std::to_string(want));
      }
    };
    auto num = [&](size_t j, const char* what) {
      return to_int(m[j], std::string("cache ") + std::to_string(i) + " " + what, file);
    };
    try {
      if (cls == "KVCache" || cls == "KVCacheSimple") {
        if (st.empty()) {
          out.cache.push_back(std::make_unique<SimpleKVCache>());
        } else {
          kv(2);
          out.cache.push_back(std::make_unique<SimpleKVCache>(st[0], st[1]));
        }
      } else if (cls == "RotatingKVCache") {
        int64_t keep, max_size, offset, idx;
        if (m.size() == 4) {  // Python: keep, max_size, offset, idx
          keep = num(0, "keep"), max_size = num(1, "max_size"), offset = num(2, "offset"),
          idx = num(3, "idx");
        } else if (m.size() == 5) {  // Swift: keep, maxSize, step, offset, idx
          keep = num(0, "keep"), max_size = num(1, "maxSize"), offset = num(3, "offset"),
          idx = num(4, "idx");
        } else {
          throw FormatError(where + " meta state has " + std::to_string(m.size()) +
                            " fields, expected 4 or 5");
        }
        if (st.empty()) {
          out.cache.push_back(std::make_unique<RotatingKVCache>(max_size, keep));
        } else {
          kv(2);
          out.cache.push_back(
              std::make_unique<RotatingKVCache>(st[0], st[1], max_size, keep, offset, idx));
        }
      } else if (cls == "QuantizedKVCache") {
        int64_t offset, group, bits;
        if (m.size() == 3) {  // Python: offset, group_size, bits
          offset = num(0, "offset"), group = num(1, "group_size"), bits = num(2, "bits");
        } else if (m.size() == 4) {  // Swift: step, offset, groupSize, bits
          offset = num(1, "offset"), group = num(2, "groupSize"), bits = num(3, "bits");
        } else {
          throw FormatError(where + " meta state has " + std::to_string(m.size()) +
                            " fields, expected 3 or 4");
        }
        if (st.empty()) {
          out.cache.push_back(
              std::make_unique<QuantizedKVCache>(static_cast<int>(group), static_cast<int>(bits)));
        } else {
          kv(6);
          auto q = std::make_unique<QuantizedKVCache>(st, static_cast<int>(group));
          if (q->offset() != offset || q->bits() != bits) {
            throw FormatError(where + ": meta offset " + std::to_string(offset) + " / bits " +
                              std::to_string(bits) + " disagree with the arrays (offset " +
                              std::to_string(q->offset()) + ", bits " + std::to_string(q->bits()) +
                              ")");
          }
          out.cache.push_back(std::move(q));
        }
      } else if (cls == "ChunkedKVCache") {
        if (m.size() != 2)
          throw FormatError(where + " meta state must be chunk_size, start_position");
        const int64_t chunk = num(0, "chunk_size"), start = num(1, "start_position");
        if (st.empty()) {
          out.cache.push_back(std::make_unique<ChunkedKVCache>(chunk));
        } else {
          kv(2);
          out.cache.push_back(std::make_unique<ChunkedKVCache>(st[0], st[1], chunk, start));
        }
      } else if (cls == "ArraysCache" || cls == "MambaCache") {
        // Without arrays (nothing seen yet) the layer sizes the cache on first use.
        out.cache.push_back(st.empty() ? std::make_unique<nn::StateCache>(0)
                                       : std::make_unique<nn::StateCache>(st, 0));
      } else {
        throw Unsupported(where + ": unsupported cache class");
      }
    } catch (const ShapeError& e) {
      throw FormatError(where + ": " + e.what());
    } catch (const InvalidArgument& e) {
      throw FormatError(where + ": " + e.what());
    }
  }
  // A state has no length of its own: the tokens it has seen are those of the KV caches
  // beside it, else the count saved with it.
  int64_t seen = -1;
  for (const auto& c : out.cache)
    if (!dynamic_cast<const nn::StateCache*>(c.get())) {
      seen = c->offset();
      break;
    }
  if (auto it = out.metadata.find(kStateOffsetKey); it != out.metadata.end()) {
    if (seen < 0) seen = to_int(it->second, kStateOffsetKey, file);
    out.metadata.erase(it);
  }
  for (auto& c : out.cache)
    if (auto* st = dynamic_cast<nn::StateCache*>(c.get())) st->set_offset(std::max<int64_t>(seen, 0));
  return out;
}

}  // namespace lmx::generate
