// lmx embed: texts (or token-id lists) -> one vector each, written as JSON lines or as
// safetensors `embeddings` [N, D] f32. lmx rerank: a cross-encoder's scores of documents
// for a query, printed best first.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/models/embed/cross_encoder.h"
#include "lmx/models/embed/embedder.h"

namespace lmx::cli {
namespace {

namespace fs = std::filesystem;
namespace embed = models::embed;

// One input per line: a .jsonl line is a JSON string or an object with a "text" string;
// any other file is plain text (an empty line is an error: an empty text is written as
// "" in a .jsonl file, so nothing is dropped or invented silently).
std::vector<std::string> read_inputs(const std::string& file, const char* option) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw IoError(std::string(option) + ": cannot read '" + file + "'");
  const bool jsonl = fs::path(file).extension() == ".jsonl";
  std::vector<std::string> out;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = "'" + file + "' line " + std::to_string(n);
    if (!jsonl) {
      if (line.empty()) throw InvalidArgument(where + " is empty (write an empty text as \"\" in a .jsonl file)");
      out.push_back(line);
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) throw InvalidArgument(where + " is empty");
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) throw InvalidArgument(where + " is not valid JSON");
    if (j.is_object() && j.contains("text")) j = j["text"];
    if (!j.is_string()) throw InvalidArgument(where + ": expected a JSON string or an object with a \"text\" string");
    out.push_back(j.get<std::string>());
  }
  if (out.empty()) throw InvalidArgument(std::string(option) + ": '" + file + "' holds no inputs");
  return out;
}

// "1,2,3;4,5" -> {{1, 2, 3}, {4, 5}}.
std::vector<std::vector<int32_t>> parse_token_lists(const std::string& text) {
  std::vector<std::vector<int32_t>> out;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(';', start);
    const std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::vector<int32_t> ids = parse_id_list(part);
    if (ids.empty()) throw InvalidArgument("--tokens: input " + std::to_string(out.size()) + " has no ids");
    out.push_back(std::move(ids));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// Progress on stderr for long runs, at most about once a second.
std::function<void(size_t, size_t)> progress_printer(size_t inputs) {
  if (inputs < 512) return {};
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  return [last](size_t done, size_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::seconds(1)) return;
    *last = now;
    std::fprintf(stderr, "lmx: embedded %zu / %zu\n", done, total);
  };
}

struct EmbedArgs {
  std::string model;
  std::vector<std::string> texts;
  std::string input;
  std::string tokens;
  std::string out;
  std::string prompt_name;
  std::string pooling;
  std::string tokenizer;
  bool no_normalize = false;
  int64_t dimensions = 0;
  int64_t batch_tokens = embed::EmbedOptions{}.max_batch_tokens;
  int threads = 0;
  std::string device = "cpu";
};

void write_jsonl(const Tensor& values, std::FILE* f) {
  const int64_t N = values.dim(0), D = values.dim(1);
  const float* p = values.data<float>();
  std::string line;
  char num[32];
  for (int64_t i = 0; i < N; ++i) {
    line = "{\"index\":" + std::to_string(i) + ",\"embedding\":[";
    for (int64_t d = 0; d < D; ++d) {
      std::snprintf(num, sizeof num, d ? ",%.9g" : "%.9g", static_cast<double>(p[i * D + d]));
      line += num;
    }
    line += "]}\n";
    if (f == stdout) write_stdout(line);
    else if (std::fwrite(line.data(), 1, line.size(), f) != line.size()) throw IoError("cannot write the embeddings");
  }
}

void run_embed(const EmbedArgs& a) {
  apply_threads(a.threads);
  const int sources = (a.texts.empty() ? 0 : 1) + (a.input.empty() ? 0 : 1) + (a.tokens.empty() ? 0 : 1);
  if (sources != 1) throw InvalidArgument("give exactly one of --text, --input, --tokens");
  embed::EmbedderOptions lo;
  lo.device = device_arg(a.device);
  if (!a.pooling.empty()) lo.pooling = {embed::parse_pooling_mode(a.pooling)};
  lo.load_tokenizer = a.tokens.empty();
  lo.tokenizer_dir = a.tokenizer;
  if (!a.tokens.empty() && !a.prompt_name.empty()) throw InvalidArgument("--prompt-name applies to texts, not --tokens");
  const embed::Embedder e = embed::Embedder::load(resolve_model_arg(a.model), lo);
  embed::EmbedOptions o;
  o.prompt_name = a.prompt_name;
  if (a.no_normalize) o.normalize = false;
  o.dimensions = a.dimensions;
  o.max_batch_tokens = a.batch_tokens;
  embed::Embeddings result;
  if (!a.tokens.empty()) {
    result = e.embed_tokens(parse_token_lists(a.tokens), o);
  } else {
    const std::vector<std::string> texts = a.input.empty() ? a.texts : read_inputs(a.input, "--input");
    o.progress = progress_printer(texts.size());
    result = e.embed(texts, o);
  }
  const int64_t N = result.values.dim(0);
  if (result.truncated > 0) {
    std::fprintf(stderr, "lmx: warning: %zu of %lld inputs were longer than %lld tokens and were cut to that length\n",
                 result.truncated, static_cast<long long>(N), static_cast<long long>(e.max_length()));
  }
  if (a.out.empty()) {
    write_jsonl(result.values, stdout);
    return;
  }
  if (fs::path(a.out).extension() == ".safetensors") {
    io::SafetensorsWriter w;
    w.add("embeddings", Dtype::f32, result.values.shape(), result.values.raw_data(), result.values.nbytes());
    w.write(a.out);
  } else {
    std::FILE* f = std::fopen(a.out.c_str(), "wb");
    if (!f) throw IoError("--out: cannot write '" + a.out + "'");
    try {
      write_jsonl(result.values, f);
    } catch (...) {
      std::fclose(f);
      throw;
    }
    if (std::fclose(f) != 0) throw IoError("--out: cannot write '" + a.out + "'");
  }
  std::fprintf(stderr, "lmx: wrote %lld embeddings of %lld values to %s\n", static_cast<long long>(N),
               static_cast<long long>(result.values.dim(1)), a.out.c_str());
}

struct RerankArgs {
  std::string model;
  std::string query;
  std::string documents;
  std::string instruction;
  int top = 0;
  int threads = 0;
  std::string device = "cpu";
};

void run_rerank(const RerankArgs& a) {
  apply_threads(a.threads);
  const std::vector<std::string> docs = read_inputs(a.documents, "--documents");
  const embed::CrossEncoder c = embed::CrossEncoder::load(resolve_model_arg(a.model), device_arg(a.device));
  if (!a.instruction.empty() && !c.is_yes_no()) {
    throw InvalidArgument("--instruction: only yes/no rerankers (causal LMs such as Qwen3-Reranker) take an instruction");
  }
  embed::RerankOptions options;
  options.instruction = a.instruction;
  const embed::RerankScores s = c.score(a.query, docs, options);
  if (s.truncated > 0) {
    std::fprintf(stderr, "lmx: warning: %zu of %zu (query, document) pairs were longer than %lld tokens and were cut\n",
                 s.truncated, docs.size(), static_cast<long long>(c.max_length()));
  }
  std::vector<size_t> order(docs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return s.scores[x] > s.scores[y]; });
  const size_t shown = a.top > 0 ? std::min<size_t>(static_cast<size_t>(a.top), order.size()) : order.size();
  for (size_t r = 0; r < shown; ++r) {
    const size_t i = order[r];
    std::string doc = docs[i].size() > 80 ? docs[i].substr(0, 77) + "..." : docs[i];
    char head[64];
    std::snprintf(head, sizeof head, "%zu\t%.6f\t%zu\t", r + 1, static_cast<double>(s.scores[i]), i);
    write_stdout(head + doc + "\n");
  }
}

}  // namespace

void add_embed_commands(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  auto* cmd = app.add_subcommand("embed", "Embed texts or token ids with a sentence-transformers / BERT-family folder");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  cmd->add_option("--text", a->texts, "A text to embed (repeatable)");
  cmd->add_option("--input", a->input, "File of texts: .jsonl (strings or {\"text\": ...}) or one text per line");
  cmd->add_option("--tokens", a->tokens, "Token ids instead of texts: inputs separated by ';' (e.g. \"1,2,3;4,5\")");
  cmd->add_option("--out", a->out, "Write FILE.safetensors (embeddings [N, D] f32) or JSON lines (default: stdout)");
  cmd->add_option("--prompt-name", a->prompt_name, "A prompt of config_sentence_transformers.json (e.g. query)");
  cmd->add_option("--pooling", a->pooling, "Override pooling: cls|first|mean|max|mean_sqrt_len|weightedmean|last");
  cmd->add_flag("--no-normalize", a->no_normalize, "Do not L2-normalize the embeddings");
  cmd->add_option("--dimensions", a->dimensions, "Keep the first N values (Matryoshka), re-normalized");
  cmd->add_option("--batch-tokens", a->batch_tokens, "Padded tokens per forward pass (default 4096)");
  cmd->add_option("--tokenizer", a->tokenizer, "Folder with the tokenizer files (default: the model folder)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N (default cpu)");
  cmd->callback([a] { run_embed(*a); });

  auto r = std::make_shared<RerankArgs>();
  auto* rr = app.add_subcommand(
      "rerank", "Score documents for a query with a cross-encoder (BERT / XLM-RoBERTa) or a yes/no LM (Qwen3-Reranker)");
  rr->add_option("-m,--model", r->model, "Cross-encoder folder or Hugging Face repo id")->required();
  rr->add_option("--query", r->query, "The query")->required();
  rr->add_option("--documents", r->documents, "File of documents: .jsonl or one per line")->required();
  rr->add_option("--instruction", r->instruction, "Yes/no rerankers: the task in the prompt (default: web search)");
  rr->add_option("--top", r->top, "Print only the best N");
  rr->add_option("-t,--threads", r->threads, "CPU threads");
  rr->add_option("--device", r->device, "cpu, cuda or cuda:N (default cpu)");
  rr->callback([r] { run_rerank(*r); });
}

}  // namespace lmx::cli
