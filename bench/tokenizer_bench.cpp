// Tokenizer benchmarks: load time of real tokenizer.json files (target < 100 ms for
// Qwen3 and Llama-3) and single-thread encode / decode throughput on a few MB of
// mixed text (English, code, CJK, Cyrillic, Arabic, emoji, digits; half the words
// random so the word cache does not flatter the numbers).
//
//   build-*/bench/tokenizer_bench [--benchmark_filter=Encode]
// Needs tools/fetch_npm_tokenizers.sh to have run (tokenizers under .cache/).
//
//   tokenizer_bench --compare TOKENIZER_JSON CHUNKS [--min-seconds S] [--ids FILE]
//                   [--decoded FILE]
// is the lmx half of tools/bench/tokenizer_vs_hf.sh: CHUNKS holds texts separated by
// NUL bytes; it prints one JSON line (load_ms, encode_s, decode_s: best pass) and can
// write the ids (per chunk: uint32 count, int32 ids) and the decodes (NUL-separated).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lmx/tokenizer/tokenizer.h"

namespace {

using lmx::tokenizer::Tokenizer;

std::filesystem::path root() { return std::filesystem::path(LMX_SOURCE_DIR); }

std::filesystem::path tokenizer_dir(const std::string& name) {
  if (name == "llama2_spm") {
    return root() / "../shared/data/tokenizers/llama2-sentencepiece-llama2.c/tokenizer.model";
  }
  if (name == "t5") return root() / "../shared/data/tokenizers/ortx-testdata/tokenizer/t5-small";
  if (name == "minilm")
    return root() / "../shared/data/tokenizers/all-MiniLM-L6-v2-tokenizer-and-config";
  return root() / ".cache/npm-tokenizers" / name;
}

Tokenizer load(const std::string& name) {
  auto p = tokenizer_dir(name);
  if (p.extension() == ".model") return Tokenizer::from_sentencepiece(p);
  return Tokenizer::from_folder(p);
}

// ~4 MB of mixed text, deterministic.
const std::string& mixed_text() {
  static const std::string text = [] {
    const std::vector<std::string> words = {"the",
                                            "of",
                                            "and",
                                            "tokenizer",
                                            "model",
                                            "language",
                                            "Hello",
                                            "world",
                                            "running",
                                            "quickly",
                                            "données",
                                            "über",
                                            "naïve",
                                            "日本語",
                                            "東京",
                                            "生活",
                                            "的",
                                            "北京",
                                            "Привет",
                                            "мир",
                                            "мягких",
                                            "مرحبا",
                                            "بالعالم",
                                            "नमस्ते",
                                            "🦙",
                                            "😀",
                                            "👍🏽",
                                            "2024",
                                            "3.14159",
                                            "1,000,000",
                                            "std::vector<int>",
                                            "return",
                                            "x += 1;",
                                            "def",
                                            "main():",
                                            "{\"key\":",
                                            "https://example.com/a?b=c",
                                            "can't",
                                            "we'll",
                                            "I'm",
                                            "\n",
                                            "\n\n",
                                            "\t",
                                            "    "};
    const std::u32string letters =
        U"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéàüßøжзиклмнαβγδ中国人大小";
    std::mt19937 rng(1234);
    std::string out;
    out.reserve(4 << 20);
    auto append_utf8 = [&](char32_t c) {
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
      }
    };
    while (out.size() < (4u << 20)) {
      if (rng() % 2 == 0) {
        out += words[rng() % words.size()];
      } else {
        size_t len = 2 + rng() % 9;
        for (size_t k = 0; k < len; ++k) append_utf8(letters[rng() % letters.size()]);
      }
      out += (rng() % 10 == 0) ? ", " : " ";
    }
    return out;
  }();
  return text;
}

void BM_Load(benchmark::State& state, const std::string& name) {
  if (!std::filesystem::exists(tokenizer_dir(name))) {
    state.SkipWithError(("missing " + tokenizer_dir(name).string()).c_str());
    return;
  }
  for (auto _ : state) {
    Tokenizer tok = load(name);
    benchmark::DoNotOptimize(tok.vocab_size());
  }
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  if (!std::filesystem::exists(tokenizer_dir(name))) {
    state.SkipWithError(("missing " + tokenizer_dir(name).string()).c_str());
    return;
  }
  Tokenizer tok = load(name);
  const std::string& text = mixed_text();
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                               benchmark::Counter::kIsRate);
}

void BM_Decode(benchmark::State& state, const std::string& name) {
  if (!std::filesystem::exists(tokenizer_dir(name))) {
    state.SkipWithError(("missing " + tokenizer_dir(name).string()).c_str());
    return;
  }
  Tokenizer tok = load(name);
  auto ids = tok.encode(mixed_text(), false);
  size_t bytes = 0;
  for (auto _ : state) {
    auto text = tok.decode(ids);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(ids.size() * state.iterations()),
                                               benchmark::Counter::kIsRate);
}

void BM_StreamingDecode(benchmark::State& state, const std::string& name) {
  if (!std::filesystem::exists(tokenizer_dir(name))) {
    state.SkipWithError(("missing " + tokenizer_dir(name).string()).c_str());
    return;
  }
  Tokenizer tok = load(name);
  auto ids = tok.encode(mixed_text().substr(0, 256 << 10), false);
  for (auto _ : state) {
    auto stream = tok.streaming_detokenizer();
    size_t n = 0;
    for (int32_t id : ids) n += stream.add(id).size();
    n += stream.finish().size();
    benchmark::DoNotOptimize(n);
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(ids.size() * state.iterations()),
                                               benchmark::Counter::kIsRate);
}

const char* const kNames[] = {"qwen3",  "llama3",     "gemma3", "deepseek_v3",
                              "gptoss", "llama2_spm", "t5",     "minilm"};

int register_all() {
  for (const char* name : kNames) {
    benchmark::RegisterBenchmark((std::string("Load/") + name).c_str(), BM_Load, name)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5);
  }
  for (const char* name : kNames) {
    benchmark::RegisterBenchmark((std::string("Encode/") + name).c_str(), BM_Encode, name)
        ->Unit(benchmark::kMillisecond);
  }
  for (const char* name : kNames) {
    benchmark::RegisterBenchmark((std::string("Decode/") + name).c_str(), BM_Decode, name)
        ->Unit(benchmark::kMillisecond);
  }
  for (const char* name : {"qwen3", "llama2_spm"}) {
    benchmark::RegisterBenchmark((std::string("StreamingDecode/") + name).c_str(),
                                 BM_StreamingDecode, name)
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}
const int registered = register_all();

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best wall time of `fn` over passes until min_seconds are spent (at least 2, at most 5),
// the same rule tools/bench/tokenizer_vs_hf.py applies to the reference.
template <typename Fn>
double best_pass(double min_seconds, Fn&& fn) {
  double best = 1e30, spent = 0;
  for (int pass = 0; pass < 5 && (pass < 2 || spent < min_seconds); ++pass) {
    double t0 = now_s();
    fn();
    double dt = now_s() - t0;
    best = std::min(best, dt);
    spent += dt;
  }
  return best;
}

std::vector<std::string> read_chunks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<std::string> chunks;
  std::string all = ss.str(), cur;
  std::istringstream parts(all);
  while (std::getline(parts, cur, '\0')) chunks.push_back(cur);
  return chunks;
}

int compare_main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s --compare TOKENIZER_JSON CHUNKS [--min-seconds S] "
                 "[--ids FILE] [--decoded FILE]\n",
                 argv[0]);
    return 2;
  }
  std::string tok_path = argv[2], ids_path, decoded_path;
  double min_seconds = 1.0;
  for (int k = 4; k + 1 < argc; k += 2) {
    if (!std::strcmp(argv[k], "--min-seconds")) min_seconds = std::atof(argv[k + 1]);
    if (!std::strcmp(argv[k], "--ids")) ids_path = argv[k + 1];
    if (!std::strcmp(argv[k], "--decoded")) decoded_path = argv[k + 1];
  }
  auto chunks = read_chunks(argv[3]);
  size_t bytes = 0;
  for (const auto& c : chunks) bytes += c.size();

  double load_s = 1e30;
  for (int k = 0; k < 3; ++k) {
    double t0 = now_s();
    Tokenizer t = Tokenizer::from_tokenizer_json(tok_path);
    benchmark::DoNotOptimize(t.vocab_size());
    load_s = std::min(load_s, now_s() - t0);
  }
  Tokenizer tok = Tokenizer::from_tokenizer_json(tok_path);
  std::vector<std::vector<int32_t>> ids(chunks.size());
  double encode_s = best_pass(min_seconds, [&] {
    for (size_t k = 0; k < chunks.size(); ++k) ids[k] = tok.encode(chunks[k], false);
  });
  std::vector<std::string> decoded(chunks.size());
  double decode_s = best_pass(min_seconds, [&] {
    for (size_t k = 0; k < chunks.size(); ++k) decoded[k] = tok.decode(ids[k], false, false);
  });
  size_t tokens = 0;
  for (const auto& v : ids) tokens += v.size();
  if (!ids_path.empty()) {
    std::ofstream out(ids_path, std::ios::binary);
    for (const auto& v : ids) {
      uint32_t n = static_cast<uint32_t>(v.size());
      out.write(reinterpret_cast<const char*>(&n), sizeof n);
      out.write(reinterpret_cast<const char*>(v.data()),
                static_cast<std::streamsize>(v.size() * sizeof(int32_t)));
    }
  }
  if (!decoded_path.empty()) {
    std::ofstream out(decoded_path, std::ios::binary);
    for (size_t k = 0; k < decoded.size(); ++k) {
      if (k) out.put('\0');
      out << decoded[k];
    }
  }
  std::printf(
      "{\"load_ms\": %.2f, \"chunks\": %zu, \"bytes\": %zu, \"tokens\": %zu, "
      "\"encode_s\": %.6f, \"decode_s\": %.6f}\n",
      load_s * 1e3, chunks.size(), bytes, tokens, encode_s, decode_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--compare") {
    try {
      return compare_main(argc, argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tokenizer_bench --compare: %s\n", e.what());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
