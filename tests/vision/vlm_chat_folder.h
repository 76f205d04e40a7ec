// A chat-capable copy of a VLM fixture (tests/data/vision/models/<family>) for tests: its
// config, weights and processor config, a word-level tokenizer over the fixture's 256 ids
// ("t0" ... "t249", "<image>" = 250, "<video>" = 251, decoded with spaces) and a chat
// template that writes "t1", each message (an image part as "<image>", a video part as
// "<video>", text as is), then "t9".
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace lmx::testing {

inline void write_vlm_chat_folder(const std::filesystem::path& fixture, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "preprocessor_config.json"}) {
    fs::copy_file(fixture / f, dir / f, fs::copy_options::overwrite_existing);
  }
  nlohmann::json vocab;
  // (string(1, c).append: GCC 12 -O3 flags "t" + to_string with a false -Wrestrict.)
  for (int i = 0; i < 250; ++i) vocab[std::string(1, 't').append(std::to_string(i))] = i;
  vocab["<image>"] = 250;
  vocab["<video>"] = 251;
  const nlohmann::json tok = {
      {"version", "1.0"},
      {"added_tokens", {{{"id", 250}, {"content", "<image>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}},
                        {{"id", 251}, {"content", "<video>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", false}}},
      {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "t0"}}}};
  std::ofstream(dir / "tokenizer.json") << tok.dump();
  const nlohmann::json config = {
      {"eos_token", "t2"},
      {"chat_template",
       "t1 {% for m in messages %}{% if m['content'] is string %}{{ m['content'] }} {% else %}"
       "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'video' %}<video> "
       "{% else %}{{ c['text'] }} {% endif %}"
       "{% endfor %}{% endif %}{% endfor %}t9"}};
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
}

}  // namespace lmx::testing
