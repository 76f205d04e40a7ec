// Images in /v1/chat/completions (vision-language models): the VLM fixtures of
// tests/data/vision/models with a word-level tokenizer and chat template
// (tests/vision/vlm_chat_folder.h) served over HTTP. Greedy replies to OpenAI-style
// image_url parts (base64 data URLs) equal the library's own generation (ChatSession with
// add_image, whose VLM path the parity tests hold to transformers), whole and streamed;
// image and text requests batched together each equal their own reply (Qwen2-VL's
// per-row M-RoPE shifts); the prefix cache never matches one image's placeholders to
// another's; every bad image input is a 400 naming its field and the server goes on.
#include <fstream>
#include <future>

#include "lmx/base/base64.h"
#include "lmx/generate/chat_session.h"
#include "lmx/vision/image_decode.h"
#include "tests/vision/vlm_chat_folder.h"
#include "test_server.h"

namespace lmx::testing {
namespace {

fs::path vision_data(const std::string& rel) { return fs::path(LMX_SOURCE_DIR) / "tests/data/vision" / rel; }
// Two PNGs of different sizes and content, and a JPEG.
fs::path image_a() { return vision_data("models/qwen2_vl/image0.png"); }
fs::path image_b() { return vision_data("models/qwen2_vl/image1.png"); }
fs::path image_c() { return vision_data("decode/rgb.jpg"); }

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string data_url(const fs::path& p) {
  const std::string bytes = file_bytes(p);
  const std::string mime = p.extension() == ".jpg" ? "image/jpeg" : "image/png";
  return "data:" + mime + ";base64," + encode_base64(bytes.data(), bytes.size());
}

json image_part(const std::string& url) { return {{"type", "image_url"}, {"image_url", {{"url", url}}}}; }

// One user message: the images, then the text.
json user_message(const std::vector<std::string>& urls, const std::string& text) {
  json content = json::array();
  for (const auto& u : urls) content.push_back(image_part(u));
  content.push_back({{"type", "text"}, {"text", text}});
  return {{"role", "user"}, {"content", content}};
}

json chat_body(const json& messages, int max_tokens, bool stream = false) {
  json b = {{"messages", messages}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

struct Answer {
  std::string text;
  json usage;
};

Answer chat(const TestServer& server, const json& body) {
  const auto res = server.post("/v1/chat/completions", body);
  Answer a;
  if (!res || res->status != 200) {
    ADD_FAILURE() << (res ? res->body : "no answer");
    return a;
  }
  if (!body.value("stream", false)) {
    const json j = json::parse(res->body);
    a.text = j["choices"][0]["message"]["content"];
    a.usage = j["usage"];
    return a;
  }
  for (const auto& p : sse_payloads(res->body)) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    EXPECT_FALSE(c.contains("error")) << p;
    if (c.contains("usage") && !c["usage"].is_null()) a.usage = c["usage"];
    if (!c["choices"].empty() && c["choices"][0]["delta"].contains("content"))
      a.text += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  return a;
}

// The library's reply: a ChatSession with the same system text, images and user text.
std::string reference(const std::shared_ptr<generate::ModelContainer>& model, const std::string& system,
                      const std::vector<fs::path>& images, const std::string& text, int max_tokens) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  generate::ChatSession session(model, system, p);
  for (const auto& im : images) session.add_image(vision::load_image(im.string()));
  return session.respond(text);
}

class VlmServer : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmx-server-images-" + GetParam() + "-" + std::to_string(::getpid()));
    write_vlm_chat_folder(vision_data("models/" + GetParam()), dir_);
    model_ = generate::ModelContainer::load(dir_.string());
    server::ServerOptions o;
    o.model_id = "vlm";
    o.max_concurrent = 4;
    server_ = std::make_unique<TestServer>(model_, o);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  std::string ref(const std::vector<fs::path>& images, const std::string& text, int max_tokens,
                  const std::string& system = "") {
    return reference(model_, system, images, text, max_tokens);
  }

  fs::path dir_;
  std::shared_ptr<generate::ModelContainer> model_;
  std::unique_ptr<TestServer> server_;
};

TEST_P(VlmServer, ReplyEqualsTheLibrarysWholeAndStreamed) {
  for (const auto& [images, text] : std::vector<std::pair<std::vector<fs::path>, std::string>>{
           {{image_a()}, "t17 t33"}, {{image_b()}, "t17 t33"}, {{image_c()}, "t5"}, {{image_a(), image_b()}, "t40"}}) {
    const std::string want = ref(images, text, 8);
    std::vector<std::string> urls;
    for (const auto& im : images) urls.push_back(data_url(im));
    const json messages = json::array({user_message(urls, text)});
    const Answer whole = chat(*server_, chat_body(messages, 8));
    const Answer streamed = chat(*server_, chat_body(messages, 8, true));
    EXPECT_EQ(whole.text, want) << images.size() << " images, " << text;
    EXPECT_EQ(streamed.text, want) << images.size() << " images, " << text;
    EXPECT_EQ(whole.usage["completion_tokens"], streamed.usage["completion_tokens"]);
    EXPECT_EQ(whole.usage["prompt_tokens"], streamed.usage["prompt_tokens"]);
  }
  // The images make a difference to the replies (else this test could not fail); the
  // random paligemma fixture writes "t9" whatever it sees, so only its equalities count.
  if (GetParam() != "paligemma") {
    EXPECT_NE(ref({image_a()}, "t17 t33", 8) + ref({image_c()}, "t5", 8),
              ref({image_b()}, "t17 t33", 8) + ref({image_a()}, "t5", 8));
  }
}

TEST_P(VlmServer, ImageAndTextRequestsBatchedTogetherEachEqualTheirOwn) {
  struct Case {
    std::vector<fs::path> images;
    std::string text;
    std::string want;
  };
  std::vector<Case> cases = {{{image_a()}, "t17 t33", ""}, {{}, "t20 t21 t22", ""},
                             {{image_b()}, "t8", ""},      {{image_c()}, "t17 t33", ""}};
  for (auto& c : cases) c.want = ref(c.images, c.text, 12);
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<Answer>> answers;
    for (size_t i = 0; i < cases.size(); ++i) {
      std::vector<std::string> urls;
      for (const auto& im : cases[i].images) urls.push_back(data_url(im));
      const json body = chat_body(json::array({user_message(urls, cases[i].text)}), 12, (i + round) % 2 == 1);
      answers.push_back(std::async(std::launch::async, [this, body] { return chat(*server_, body); }));
    }
    for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(answers[i].get().text, cases[i].want) << "case " << i;
  }
}

TEST_P(VlmServer, PrefixCacheNeverMatchesOneImageToAnother) {
  std::string system;
  for (int i = 0; i < 40; ++i) system += (i ? " t" : "t") + std::to_string(100 + i);
  auto ask = [&](const fs::path& image) {
    const json messages = json::array({{{"role", "system"}, {"content", system}}, user_message({data_url(image)}, "t8")});
    return chat(*server_, chat_body(messages, 8));
  };
  const Answer a = ask(image_a());
  const Answer b = ask(image_b());
  const Answer a2 = ask(image_a());
  EXPECT_EQ(a.text, ref({image_a()}, "t8", 8, system));
  EXPECT_EQ(b.text, ref({image_b()}, "t8", 8, system));
  EXPECT_EQ(a2.text, a.text);
  // t1, 40 system words, then the image: the 41 text tokens before it come from the
  // cache (2 whole blocks and a partial tail), never the image's placeholders (none
  // where image calls must hold the whole prompt).
  const int64_t want = GetParam() == "paligemma" ? 0 : 41;
  EXPECT_EQ(b.usage["prompt_tokens_details"]["cached_tokens"], want) << b.usage.dump();
  EXPECT_EQ(a2.usage["prompt_tokens_details"]["cached_tokens"], want) << a2.usage.dump();
}

INSTANTIATE_TEST_SUITE_P(Families, VlmServer, ::testing::Values("llava", "qwen2_vl", "qwen3_vl", "paligemma"),
                         [](const auto& info) { return info.param; });

// Bad image input on the llava fixture: each a 400 naming the field; the server goes on.
class VlmServerErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmx-server-image-errors-" + std::to_string(::getpid()));
    write_vlm_chat_folder(vision_data("models/llava"), dir_ / "model");
    fs::create_directories(dir_ / "images");
    fs::copy_file(image_a(), dir_ / "images/a.png");
    fs::create_symlink(image_b(), dir_ / "images/outside.png");  // resolves outside the directory
    model_ = generate::ModelContainer::load((dir_ / "model").string());
    server::ServerOptions o;
    o.model_id = "vlm";
    o.max_images = 2;
    o.max_image_pixels = 100000;
    o.image_dir = (dir_ / "images").string();
    server_ = std::make_unique<TestServer>(model_, o);
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  // The error of a request with these user content parts.
  json error_for(const json& content, int status = 400) {
    const json body = chat_body(json::array({{{"role", "user"}, {"content", content}}}), 4);
    return expect_openai_error(server_->post("/v1/chat/completions", body), status);
  }

  fs::path dir_;
  std::shared_ptr<generate::ModelContainer> model_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(VlmServerErrors, BadImagesAreA400NamingTheField) {
  const std::string url0 = "messages[0].content[0].image_url.url";
  const json text = {{"type", "text"}, {"text", "t5"}};
  struct Bad {
    std::string url, code, says;
  };
  for (const Bad& b : std::vector<Bad>{
           {"data:image/png;base64,@@@not base64@@@", "invalid_image", "base64"},
           {data_url(vision_data("decode/bad/truncated.png")), "invalid_image", ""},
           {data_url(vision_data("decode/bad/not_an_image.png")), "invalid_image", ""},
           {data_url(vision_data("decode/bad/bomb.jpg")), "invalid_image", ""},
           {data_url(vision_data("decode/wide_100000x4.png")), "invalid_image", "pixels"},
           {"data:text/plain,hello", "invalid_image", "base64"},
           {"https://example.com/cat.png", "image_source_refused", "offline"},
           {"http://127.0.0.1/cat.png", "image_source_refused", "offline"},
           {"/etc/hostname", "image_source_refused", "--image-dir"},
           {"file://" + (dir_ / "images/outside.png").string(), "image_source_refused", "--image-dir"},
           {"file://" + (dir_ / "images/../model/config.json").string(), "image_source_refused", "--image-dir"},
           {"cat.png", "invalid_image_url", "absolute"},
       }) {
    const json e = error_for(json::array({image_part(b.url), text}));
    EXPECT_EQ(e["param"], url0) << b.url.substr(0, 60);
    EXPECT_EQ(e["code"], b.code) << b.url.substr(0, 60) << ": " << e.dump();
    EXPECT_NE(e["message"].get<std::string>().find(b.says), std::string::npos) << e.dump();
  }
  // Too many images: the third is named.
  const std::string a = data_url(image_a());
  json e = error_for(json::array({image_part(a), image_part(a), image_part(a), text}));
  EXPECT_EQ(e["param"], "messages[0].content[2].image_url.url");
  EXPECT_EQ(e["code"], "too_many_images");
  // Unknown part types, malformed image_url, images outside user messages.
  e = error_for(json::array({text, {{"type", "input_audio"}, {"input_audio", {{"data", "AAAA"}}}}}));
  EXPECT_EQ(e["param"], "messages[0].content[1]");
  e = error_for(json::array({{{"type", "image_url"}, {"image_url", {{"detail", "low"}}}}}));
  EXPECT_EQ(e["param"], "messages[0].content[0].image_url.url");
  e = error_for(json::array({{{"type", "image_url"}}}));
  EXPECT_EQ(e["param"], "messages[0].content[0].image_url");
  e = expect_openai_error(
      server_->post("/v1/chat/completions",
                    chat_body(json::array({{{"role", "user"}, {"content", "t5"}},
                                           {{"role", "assistant"}, {"content", json::array({image_part(a)})}},
                                           {{"role", "user"}, {"content", "t6"}}}),
                              4)),
      400);
  EXPECT_EQ(e["param"], "messages[1].content[0].image_url.url");
  // The model's image token written as text (no image to put there).
  e = error_for(json::array({{{"type", "text"}, {"text", "<image> t5"}}}));
  EXPECT_EQ(e["param"], "messages");
  e = expect_openai_error(server_->post("/v1/completions", json{{"prompt", "t1 <image> t5"}, {"max_tokens", 2}}), 400);
  EXPECT_EQ(e["param"], "prompt");
  // A body over the limit.
  expect_openai_error(server_->post("/v1/chat/completions", std::string(9 << 20, ' ')), 413);

  // The server goes on: a file under --image-dir answers as its data URL does.
  const json by_file = chat_body(json::array({user_message({"file://" + (dir_ / "images/a.png").string()}, "t5")}), 6);
  const json by_url = chat_body(json::array({user_message({a}, "t5")}), 6);
  const Answer f = chat(*server_, by_file);
  EXPECT_EQ(f.text, chat(*server_, by_url).text);
  EXPECT_EQ(f.text, reference(model_, "", {image_a()}, "t5", 6));
}

TEST(TextModelServer, RefusesImages) {
  LMX_REQUIRE_STORIES();
  TestServer server(load_stories("chatml.jinja"), server::ServerOptions{});
  const json body = chat_body(json::array({user_message({data_url(image_a())}, "Hello")}), 4);
  const json e = expect_openai_error(server.post("/v1/chat/completions", body), 400);
  EXPECT_EQ(e["param"], "messages[0].content[0].image_url.url");
  EXPECT_EQ(e["code"], "images_not_supported");
  EXPECT_NE(e["message"].get<std::string>().find("not a vision-language model"), std::string::npos) << e.dump();
}

}  // namespace
}  // namespace lmx::testing
