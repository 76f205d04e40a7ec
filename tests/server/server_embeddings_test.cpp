// POST /v1/embeddings: a random tiny BERT with the real all-MiniLM-L6-v2 tokenizer served
// beside stories260K. The endpoint computes nothing itself: its vectors must be exactly the
// Embedder's (whose own parity with sentence-transformers is tests/models/embed), decoded
// from JSON floats or base64, with OpenAI's shape, token usage and errors naming fields.
#include <cstring>

#include "../models/embed/embed_test_util.h"
#include "lmx/base/base64.h"
#include "test_server.h"

namespace lmx::testing {
namespace {

const fs::path kMiniLm = "../shared/data/tokenizers/all-MiniLM-L6-v2-tokenizer-and-config";

// The base64 text's bytes as f32 (lmx/base/base64's decoder: RFC 4648 vectors in base_test).
std::vector<float> base64_floats(const std::string& s) {
  const std::string bytes = decode_base64(s).value_or("");
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::vector<float> row(const Tensor& t, int64_t i) {
  const std::vector<float> all = t.to_float_vector();
  const int64_t dim = t.shape()[1];
  return {all.begin() + i * dim, all.begin() + (i + 1) * dim};
}

class ServerEmbeddings : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_stories() || !fs::exists(kMiniLm / "tokenizer.json")) return;
    dir_ = new test::TempDir();
    test::write_random_encoder(dir_->path(), test::tiny_bert_config({{"vocab_size", 30522},
                                                                       {"max_position_embeddings", 24}}),
                               21);
    test::write_st_modules(dir_->path(), 16, {"mean_tokens"}, {}, true, 22);
    models::embed::EmbedderOptions o;
    o.tokenizer_dir = kMiniLm;
    embedder_ = std::make_shared<const models::embed::Embedder>(models::embed::Embedder::load(dir_->path(), o));
    server::ServerOptions so;
    so.embedding_model_id = "tiny-bert";
    server_ = new TestServer(load_stories(), so, embedder_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    embedder_.reset();
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "needs ../shared/data (stories260K and the MiniLM tokenizer)";
  }
  static json post_ok(const json& body) {
    auto res = server_->post("/v1/embeddings", body);
    EXPECT_TRUE(res);
    if (!res) return json();
    EXPECT_EQ(res->status, 200) << res->body;
    return json::parse(res->body);
  }
  static inline test::TempDir* dir_ = nullptr;
  static inline std::shared_ptr<const models::embed::Embedder> embedder_;
  static inline TestServer* server_ = nullptr;
};

TEST_F(ServerEmbeddings, TextsGiveTheEmbeddersVectorsInOrderWithUsage) {
  const std::vector<std::string> texts = {"The cat sat on the mat.", "", "Ünïcödé and emoji 🙂 too"};
  const json r = post_ok({{"model", "tiny-bert"}, {"input", texts}});
  const Tensor want = embedder_->embed(texts).values;
  ASSERT_EQ(r["object"], "list");
  ASSERT_EQ(r["data"].size(), texts.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(r["data"][i]["object"], "embedding");
    EXPECT_EQ(r["data"][i]["index"], i);
    EXPECT_EQ(r["data"][i]["embedding"].get<std::vector<float>>(), row(want, static_cast<int64_t>(i)));
    tokens += static_cast<int64_t>(embedder_->tokenizer().encode_full(texts[i]).ids.size());
  }
  EXPECT_EQ(r["model"], "tiny-bert");
  EXPECT_EQ(r["usage"]["prompt_tokens"], tokens);
  EXPECT_EQ(r["usage"]["total_tokens"], tokens);
  // One string is one input.
  const json one = post_ok({{"input", texts[0]}});
  EXPECT_EQ(one["data"][0]["embedding"].get<std::vector<float>>(), row(want, 0));
}

TEST_F(ServerEmbeddings, TokenIdsBase64AndDimensions) {
  const std::vector<std::vector<int32_t>> ids = {{101, 7592, 2088, 102}, {101, 2000, 102}};
  const Tensor want = embedder_->embed_tokens(ids).values;
  const json r = post_ok({{"input", ids}, {"encoding_format", "base64"}});
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(base64_floats(r["data"][i]["embedding"]), row(want, static_cast<int64_t>(i)));
  EXPECT_EQ(r["usage"]["prompt_tokens"], 7);
  // A flat id list is one input.
  const json flat = post_ok({{"input", ids[1]}});
  EXPECT_EQ(flat["data"][0]["embedding"].get<std::vector<float>>(), row(want, 1));
  models::embed::EmbedOptions four;
  four.dimensions = 4;
  const json cut = post_ok({{"input", ids}, {"dimensions", 4}});
  EXPECT_EQ(cut["data"][0]["embedding"].get<std::vector<float>>(), row(embedder_->embed_tokens(ids, four).values, 0));
}

TEST_F(ServerEmbeddings, BadRequestsNameTheField) {
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"model", "tiny-bert"}}), 400)["param"], "input");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"input", json::array()}}), 400)["param"],
            "input");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"input", {"text", 5}}}), 400)["param"],
            "input");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"input", {1, 99999999}}}), 400)["param"],
            "input");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"input", "x"}, {"encoding_format", "hex"}}),
                                400)["param"],
            "encoding_format");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"input", "x"}, {"dimensions", 17}}), 400)["param"],
            "dimensions");
  // Longer than max_position_embeddings (24): refused, never cut silently.
  const json long_err = expect_openai_error(
      server_->post("/v1/embeddings", json{{"input", {"short", std::string(200, 'a') + " b c d e f g h i j k l m n o p q r s t u v w x y z"}}}),
      400);
  EXPECT_NE(long_err["message"].get<std::string>().find("input[1]"), std::string::npos) << long_err;
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", json{{"model", "other"}, {"input", "x"}}), 404)["code"],
            "model_not_found");
  EXPECT_EQ(expect_openai_error(server_->post("/v1/embeddings", std::string("{\"input\": [")), 400)["type"],
            "invalid_request_error");
}

TEST(ServerWithoutEmbedder, EmbeddingsIs404) {
  if (!have_stories()) GTEST_SKIP() << "needs ../shared/data/models/stories260K";
  TestServer s(load_stories(), {});
  const json err = expect_openai_error(s.post("/v1/embeddings", json{{"input", "x"}}), 404);
  EXPECT_NE(err["message"].get<std::string>().find("--embedding-model"), std::string::npos) << err;
}

}  // namespace
}  // namespace lmx::testing
