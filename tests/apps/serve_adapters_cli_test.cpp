// lmx serve --adapter-path: LoRA and DoRA adapters trained by lmx lora on stories260K
// (mlx-lm's files and their PEFT export), served by the whole model and by one split over
// 2 ranks, give the greedy reply of `lmx generate --adapter-path`, which is not the base
// model's; adapters that are missing or do not fit end the start-up with an error naming
// the folder, file and tensors, before anything listens.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_run.h"

namespace lmx::testing {
namespace {

namespace fs = std::filesystem;
using Cli = Stories260KCli;
using Result = CliResult;

const char* const kPrompt = "Ben had a";

// The served chat reply to kPrompt (greedy, 40 tokens) of `lmx serve ARGS`, with a newline
// as `lmx generate` ends its output; "" when the server did not start or answer.
std::string served_reply(const std::vector<std::string>& args, const fs::path& log) {
  ServeProcess serve(args, log);
  if (serve.port() == 0) {
    ADD_FAILURE() << "lmx serve did not start:\n" << read_all(log);
    return "";
  }
  httplib::Client client("127.0.0.1", serve.port());
  client.set_read_timeout(60);
  const nlohmann::json body = {{"messages", {{{"role", "user"}, {"content", kPrompt}}}},
                               {"max_tokens", 40},
                               {"temperature", 0}};
  const auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
  if (!res || res->status != 200) {
    ADD_FAILURE() << (res ? res->body : "no answer");
    return "";
  }
  return nlohmann::json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>() + "\n";
}

TEST_F(Cli, ServedRepliesWithAdaptersEqualGenerateWholeAndSplit) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path work = story_data("serve-adapters");
  const std::string gen =
      "generate --model " + dir_.string() + " --prompt \"" + kPrompt + "\" --temp 0 --max-tokens 40";
  const Result base = lmx_run(gen);
  ASSERT_EQ(base.status, 0);
  for (const char* type : {"lora", "dora"}) {
    SCOPED_TRACE(type);
    const fs::path adapters = work / type, peft = work / (std::string(type) + "-peft");
    const Result train = lmx_run("lora --model " + dir_.string() + " --data " + (work / "data").string() +
                                     " -t 1 --train --iters 30 --num-layers -1 --learning-rate 1e-3 "
                                     "--steps-per-eval 0 --val-batches 2 --steps-per-report 30 --save-every 0 "
                                     "--fine-tune-type " + type + " --adapter-path " + adapters.string() +
                                     " --export-peft " + peft.string(),
                                 "", true);
    ASSERT_EQ(train.status, 0) << train.out;
    for (const fs::path& a : {adapters, peft}) {
      const Result generated = lmx_run(gen + " --adapter-path " + a.string());
      ASSERT_EQ(generated.status, 0) << generated.out;
      EXPECT_NE(generated.out, base.out) << a;  // the adapters matter
      for (const char* ranks : {"1", "2"}) {
        EXPECT_EQ(served_reply({"-m", dir_.string(), "--adapter-path", a.string(), "--tensor-parallel", ranks},
                               work / "serve.log"),
                  generated.out)
            << a << " at " << ranks << " ranks";
      }
    }
  }
  fs::remove_all(work);
}

// Writes `tensors` (name -> shape, f32 values 0.5) as a safetensors file.
void write_f32_safetensors(const fs::path& path, const std::vector<std::pair<std::string, std::vector<int>>>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t n = 1;
    for (int d : shape) n *= static_cast<uint64_t>(d);
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t size = text.size();
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((size >> (8 * i)) & 0xff));
  out << text;
  const float half = 0.5f;
  for (uint64_t i = 0; i < offset / 4; ++i) out.write(reinterpret_cast<const char*>(&half), sizeof half);
}

// Bad adapters end `lmx serve` before it listens (whole or split): a missing folder is
// named before the model loads; adapters of another model (a layer stories260K lacks, a
// shape its q_proj does not take) are refused with every problem, naming file and tensors.
TEST_F(Cli, ServeRefusesBadAdaptersBeforeListening) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path work = fs::temp_directory_path() / ("lmx-cli-bad-adapters-" + std::to_string(::getpid()));
  const fs::path other = work / "other-model";
  fs::create_directories(other);
  std::ofstream(other / "adapter_config.json")
      << R"({"fine_tune_type": "lora", "num_layers": -1, "lora_parameters": {"rank": 4, "scale": 20.0}})";
  write_f32_safetensors(other / "adapters.safetensors", {{"model.layers.0.self_attn.q_proj.lora_a", {7, 4}},
                                                         {"model.layers.0.self_attn.q_proj.lora_b", {4, 64}},
                                                         {"model.layers.9.self_attn.q_proj.lora_a", {64, 4}},
                                                         {"model.layers.9.self_attn.q_proj.lora_b", {4, 64}}});
  for (const char* ranks : {"1", "2"}) {
    SCOPED_TRACE(ranks);
    const std::string serve = "serve --model " + dir_.string() + " --port 0 --tensor-parallel " + ranks;
    const Result missing = lmx_run(serve + " --adapter-path " + (work / "none").string(), "", true);
    EXPECT_NE(missing.status, 0);
    EXPECT_EQ(missing.out, "lmx: error: adapters: no folder " + (work / "none").string() + "\n");

    const Result misfit = lmx_run(serve + " --adapter-path " + other.string(), "", true);
    EXPECT_NE(misfit.status, 0);
    EXPECT_NE(misfit.out.find("lmx: error: " + (other / "adapters.safetensors").string() +
                              ": adapters do not fit this model:"),
              std::string::npos)
        << misfit.out;
    EXPECT_NE(misfit.out.find("'model.layers.0.self_attn.q_proj.lora_a': shape [7, 4] does not fit the layer "
                              "(in 64, out 64, rank 4)"),
              std::string::npos)
        << misfit.out;
    EXPECT_NE(misfit.out.find("the model has no Linear layer 'model.layers.9.self_attn.q_proj'"), std::string::npos)
        << misfit.out;
    EXPECT_EQ(misfit.out.find("http://"), std::string::npos) << misfit.out;
  }
  fs::remove_all(work);
}

}  // namespace
}  // namespace lmx::testing
