// lmx lora beyond LoRA on stories260K: DoRA training stopped by Ctrl-C saves its adapters,
// --resume-adapter-file continues from them, --export-peft writes a PEFT folder that
// generate and fuse take and that gives the text of the mlx-lm files; an unknown
// --fine-tune-type is named; adapters on a split model (--tensor-parallel) give the whole
// model's text; full, LoRA and DoRA fine-tuning of a split model save the whole model's
// files.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "cli_run.h"

namespace lmx::testing {
namespace {

namespace fs = std::filesystem;
using Cli = Stories260KCli;
using Result = CliResult;

// Starts `lmx ARGS` with stdout and stderr into `log`; sends SIGINT once `log` shows a
// training step; returns the exit status.
int run_and_interrupt(const std::string& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string cmd = "exec " + std::string(LMX_CLI) + " " + args + " > " + log.string() + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read_all(log).find("train loss") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// The "Test loss" line of `lmx lora --test`'s output and what follows.
std::string test_line(const Result& r) {
  const size_t at = r.out.find("Test loss");
  return at == std::string::npos ? "no test loss in: " + r.out : r.out.substr(at);
}

// story_data with test.jsonl (valid.jsonl's examples) for --test.
fs::path story_data_with_test(const std::string& name) {
  const fs::path work = story_data(name);
  fs::copy_file(work / "data" / "valid.jsonl", work / "data" / "test.jsonl");
  return work;
}

// The greedy continuation of "Ben had a" (40 tokens) by the model in `dir`.
std::string greedy_story(const fs::path& dir) {
  return "generate --model " + dir.string() + " --prompt \"Ben had a\" --temp 0 --max-tokens 40";
}

// `lora` (lmx lora --train --test ...) run whole into `whole_dir` and over 2 ranks (with
// `split_args`) into `split_dir`: both succeed, with the same test loss, the same
// adapter_config.json and a weights file of the same size (the same names and shapes).
// Returns the whole run's test line.
std::string expect_split_run_like_whole(const std::string& lora, const fs::path& whole_dir, const fs::path& split_dir,
                                        const std::string& split_args = "") {
  const Result whole = lmx_run(lora + " --adapter-path " + whole_dir.string(), "", true);
  const Result split =
      lmx_run(lora + " --tensor-parallel 2 --adapter-path " + split_dir.string() + split_args, "", true);
  EXPECT_EQ(whole.status, 0) << whole.out;
  EXPECT_EQ(split.status, 0) << split.out;
  EXPECT_EQ(test_line(split), test_line(whole));
  EXPECT_EQ(read_all(split_dir / "adapter_config.json"), read_all(whole_dir / "adapter_config.json"));
  std::error_code ec;
  EXPECT_EQ(fs::file_size(split_dir / "adapters.safetensors", ec), fs::file_size(whole_dir / "adapters.safetensors", ec));
  return test_line(whole);
}

TEST_F(Cli, DoraInterruptedResumedExportedToPeftAndFused) {
  const fs::path work = story_data("finetune");
  const std::string common = "lora --model " + dir_.string() + " --data " + (work / "data").string() +
                             " -t 1 --fine-tune-type dora --learning-rate 5e-4 --steps-per-eval 0 --val-batches 2";
  const int status = run_and_interrupt(
      common + " --train --iters 1000000 --steps-per-report 1 --save-every 0 --adapter-path " + (work / "a").string(),
      work / "log");
  const std::string log = read_all(work / "log");
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 0) << log;
  EXPECT_NE(log.find("Interrupted at iteration"), std::string::npos) << log;
  ASSERT_TRUE(fs::exists(work / "a" / "adapters.safetensors")) << log;

  Result resumed = lmx_run(common + " --train --iters 20 --steps-per-report 10 --adapter-path " + (work / "b").string() +
                               " --resume-adapter-file " + (work / "a" / "adapters.safetensors").string() +
                               " --export-peft " + (work / "peft").string(),
                           "", true);
  EXPECT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("Resuming from"), std::string::npos) << resumed.out;
  EXPECT_TRUE(fs::exists(work / "peft" / "adapter_model.safetensors")) << resumed.out;

  const std::string gen = " --prompt \"Ben had a\" --temp 0 --max-tokens 12";
  Result mlx = lmx_run("generate --model " + dir_.string() + gen + " --adapter-path " + (work / "b").string());
  Result peft = lmx_run("generate --model " + dir_.string() + gen + " --adapter-path " + (work / "peft").string());
  EXPECT_EQ(mlx.status, 0);
  EXPECT_EQ(peft.out, mlx.out);
  EXPECT_NE(mlx.out.find("took the"), std::string::npos) << mlx.out;
  Result fuse = lmx_run("fuse --model " + dir_.string() + " --adapter-path " + (work / "peft").string() +
                            " --save-path " + (work / "fused").string(),
                        "", true);
  EXPECT_EQ(fuse.status, 0) << fuse.out;
  EXPECT_EQ(lmx_run("generate --model " + (work / "fused").string() + gen).out, mlx.out);

  Result bad = lmx_run("lora --model " + dir_.string() + " --train --fine-tune-type qlora", "", true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("fine-tune type: unknown 'qlora' (lora, dora, full)"), std::string::npos) << bad.out;
  fs::remove_all(work);
}

// --grad-checkpoint trains the same adapters (with dropout; stories260K's 512-token
// vocabulary puts these batches' loss in one chunk, which is bit for bit the plain loss)
// and says so in the config.
TEST_F(Cli, GradCheckpointTrainsTheSameAdapters) {
  const fs::path work = story_data("checkpoint");
  const std::string common = "lora --model " + dir_.string() + " --data " + (work / "data").string() +
                             " -t 1 --train --iters 6 --lora-dropout 0.1 --learning-rate 5e-4 --steps-per-eval 0 "
                             "--val-batches 2 --steps-per-report 3 --adapter-path ";
  Result plain = lmx_run(common + (work / "plain").string(), "", true);
  Result checkpointed = lmx_run(common + (work / "ckpt").string() + " --grad-checkpoint", "", true);
  ASSERT_EQ(plain.status, 0) << plain.out;
  ASSERT_EQ(checkpointed.status, 0) << checkpointed.out;
  EXPECT_EQ(read_all(work / "plain" / "adapters.safetensors"), read_all(work / "ckpt" / "adapters.safetensors"));
  EXPECT_NE(read_all(work / "ckpt" / "adapter_config.json").find("\"grad_checkpoint\": true"), std::string::npos);
  fs::remove_all(work);
}

// Adapters on a split model: LoRA and DoRA trained by lmx lora on every Linear of every
// block (q / k / v, o_proj, gate / up, down_proj), mlx-lm's files and PEFT's, applied to
// stories260K split over 2 and 4 ranks give the greedy text of the whole model with the
// same adapters (generate), and of its two-turn chat (chat at 2 ranks).
TEST_F(Cli, AdaptersOnASplitModelGiveTheWholeModelsText) {
  const fs::path work = story_data("split-adapters");
  for (const char* type : {"lora", "dora"}) {
    SCOPED_TRACE(type);
    const fs::path adapters = work / type, peft = work / (std::string(type) + "-peft");
    Result train = lmx_run("lora --model " + dir_.string() + " --data " + (work / "data").string() +
                               " -t 1 --train --iters 30 --num-layers -1 --learning-rate 1e-3 --steps-per-eval 0 "
                               "--val-batches 2 --steps-per-report 30 --save-every 0 --fine-tune-type " + type +
                               " --adapter-path " + adapters.string() + " --export-peft " + peft.string(),
                           "", true);
    ASSERT_EQ(train.status, 0) << train.out;
    const std::string gen = "generate --model " + dir_.string() + " --prompt \"Ben had a\" --temp 0 --max-tokens 40";
    const Result base = lmx_run(gen);
    for (const fs::path& a : {adapters, peft}) {
      const Result whole = lmx_run(gen + " --adapter-path " + a.string());
      ASSERT_EQ(whole.status, 0) << whole.out;
      EXPECT_NE(whole.out, base.out);  // the adapters matter
      for (const char* ranks : {"2", "4"}) {
        const Result split = lmx_run(gen + " --tensor-parallel " + ranks + " --adapter-path " + a.string());
        ASSERT_EQ(split.status, 0) << split.out;
        EXPECT_EQ(split.out, whole.out) << a.filename() << " at " << ranks << " ranks";
      }
    }
    const std::string chat =
        "chat --model " + dir_.string() + " --temp 0 --max-tokens 20 --adapter-path " + adapters.string();
    const std::string turns = "Tell me a story\nAnd then?\n/quit\n";
    const Result chat_whole = lmx_run(chat, turns), chat_split = lmx_run(chat + " --tensor-parallel 2", turns);
    ASSERT_EQ(chat_split.status, 0) << chat_split.out;
    EXPECT_EQ(chat_split.out, chat_whole.out);
  }
  fs::remove_all(work);
}

// Full fine-tuning of stories260K split over 2 ranks (--fine-tune-type full --tensor-parallel
// 2) writes the file whole-model training writes: the same config and tensors (names and
// shapes: the same file size), values equal up to float rounding, so its test loss and the
// greedy text of the whole model with it are those of the whole-trained weights (SGD, whose
// update keeps the split's float rounding that small; Adam's magnifies it where gradients are
// near zero: lmx/train's split_training_test bounds both); tested split without training too.
// Adafactor on a split model is refused.
TEST_F(Cli, FullFineTuningOfASplitModelSavesTheWholeModelsWeights) {
  const fs::path work = story_data_with_test("split-full");
  const std::string lora = "lora --model " + dir_.string() + " --data " + (work / "data").string() +
                           " -t 1 --train --test --iters 12 --num-layers -1 --fine-tune-type full --optimizer sgd "
                           "--learning-rate 0.05 "
                           "--steps-per-eval 0 --val-batches 2 --test-batches 2 --steps-per-report 12 --save-every 0";
  const std::string want = expect_split_run_like_whole(lora, work / "whole", work / "split");
  const Result tested = lmx_run("lora --model " + dir_.string() + " --data " + (work / "data").string() +
                                    " -t 1 --test --test-batches 2 --tensor-parallel 2 --adapter-path " +
                                    (work / "split").string(),
                                "", true);
  EXPECT_EQ(test_line(tested), want);
  const std::string gen = greedy_story(dir_);
  const Result base = lmx_run(gen), tuned = lmx_run(gen + " --adapter-path " + (work / "whole").string());
  ASSERT_EQ(tuned.status, 0) << tuned.out;
  EXPECT_NE(tuned.out, base.out);  // the training matters
  EXPECT_EQ(lmx_run(gen + " --adapter-path " + (work / "split").string()).out, tuned.out);

  const Result refused = lmx_run("lora --model " + dir_.string() + " --data " + (work / "data").string() +
                                     " --train --iters 1 --optimizer adafactor --tensor-parallel 2 --adapter-path " +
                                     (work / "adafactor").string(),
                                 "", true);
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.out.find("Adafactor on a split model is not supported yet"), std::string::npos) << refused.out;
  fs::remove_all(work);
}

// LoRA and DoRA training of stories260K split over 2 ranks (lora --train --tensor-parallel 2,
// every block's q / k / v / o / gate / up / down, Adam) writes the files whole-model training
// writes: the same config, a file of the same size (names and shapes), whose adapters give
// the same test loss and greedy text as the whole-trained ones, whole or split, tested split
// without training, exported to PEFT and fused. A split run resumed from the whole run's file
// (--resume-adapter-file) tests as the whole run resumed does. Adam at a learning rate where
// training is smooth (the validation loss 2.82 -> 0.40): at 1e-3 the loss jumps between 0.9
// and 3.9, and Adam's per-element step turns the split's float rounding of near-zero
// gradients into whole steps, so runs at 2 and 4 ranks part from the whole run (and from
// each other) after 6 steps; one rank stays the whole run bit for bit.
TEST_F(Cli, LoraTrainingOfASplitModelSavesTheWholeModelsAdapters) {
  const fs::path work = story_data_with_test("split-lora");
  const std::string common = "lora --model " + dir_.string() + " --data " + (work / "data").string() +
                             " -t 1 --num-layers -1 --learning-rate 2e-4 --steps-per-eval 0 --val-batches 2 "
                             "--test-batches 2 --steps-per-report 10 --save-every 0";
  const std::string gen = greedy_story(dir_);
  const Result base = lmx_run(gen);
  for (const std::string type : {"lora", "dora"}) {
    SCOPED_TRACE(type);
    const fs::path whole_dir = work / (type + "-whole"), split_dir = work / (type + "-split");
    const std::string lora = common + " --fine-tune-type " + type + " --train --test --iters 30";
    const std::string want = expect_split_run_like_whole(lora, whole_dir, split_dir,
                                                         " --export-peft " + (split_dir / "peft").string());
    const Result tested = lmx_run(common + " --fine-tune-type " + type + " --test --tensor-parallel 2 --adapter-path " +
                                      split_dir.string(),
                                  "", true);
    EXPECT_EQ(test_line(tested), want);

    const Result tuned = lmx_run(gen + " --adapter-path " + whole_dir.string());
    ASSERT_EQ(tuned.status, 0) << tuned.out;
    EXPECT_NE(tuned.out, base.out);  // the training matters
    for (const fs::path& a : {split_dir, split_dir / "peft"}) {
      EXPECT_EQ(lmx_run(gen + " --adapter-path " + a.string()).out, tuned.out) << a;
      EXPECT_EQ(lmx_run(gen + " --tensor-parallel 2 --adapter-path " + a.string()).out, tuned.out) << a;
    }
    const Result fuse = lmx_run("fuse --model " + dir_.string() + " --adapter-path " + split_dir.string() +
                                    " --save-path " + (work / (type + "-fused")).string(),
                                "", true);
    ASSERT_EQ(fuse.status, 0) << fuse.out;
    EXPECT_EQ(lmx_run(greedy_story(work / (type + "-fused"))).out, tuned.out);
  }
  const std::string resume = common + " --train --test --iters 5 --resume-adapter-file " +
                             (work / "lora-whole" / "adapters.safetensors").string() + " --adapter-path ";
  const Result whole_resumed = lmx_run(resume + (work / "resumed-whole").string(), "", true);
  const Result split_resumed = lmx_run(resume + (work / "resumed-split").string() + " --tensor-parallel 2", "", true);
  ASSERT_EQ(split_resumed.status, 0) << split_resumed.out;
  EXPECT_NE(split_resumed.out.find("Resuming from"), std::string::npos) << split_resumed.out;
  EXPECT_EQ(test_line(split_resumed), test_line(whole_resumed));
  fs::remove_all(work);
}

}  // namespace
}  // namespace lmx::testing
