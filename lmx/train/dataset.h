// Fine-tuning data as mlx-lm reads it: a folder with train.jsonl / valid.jsonl / test.jsonl,
// one JSON object a line, each {"text": ...}, {"prompt": ..., "completion": ...} or
// {"messages": [...], "tools": [...]?} (rendered with the model's chat template), and the
// batches built from them: sorted by length, right-padded, inputs tokens[:-1] and targets
// tokens[1:], with a weight per target (0 for padding and, with mask_prompt, the prompt).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::generate {
class ModelContainer;
}

namespace lmx::train {

struct Example {
  std::vector<int32_t> tokens;
  int64_t prompt_len = 0;  // leading tokens that --mask-prompt leaves out of the loss
};

// Tokenized records of one .jsonl file. FormatError naming the file and line for a line
// that is not JSON or not one of the record kinds; an empty file (no records) too.
// Prompt/completion records use the chat template when the model has one, else the plain
// concatenation prompt + completion. Each sequence ends with EOS (appended if missing).
std::vector<Example> load_jsonl(const std::filesystem::path& file, const generate::ModelContainer& model);

struct Batch {
  Tensor inputs;   // i32 [B, T]
  Tensor targets;  // i32 [B * T]
  Tensor weights;  // f32 [B * T]: 1 where the target counts
  int64_t tokens = 0;  // targets that count
};

// Indices of the examples in batches of batch_size, each batch of similar lengths
// (sorted by length; a last short batch is dropped, as mlx-lm does). InvalidArgument when
// there are fewer examples than batch_size.
std::vector<std::vector<size_t>> length_sorted_batches(const std::vector<Example>& data, int64_t batch_size);

// The batch of these examples, each cut to max_seq_length tokens.
Batch make_batch(const std::vector<Example>& data, const std::vector<size_t>& indices, int64_t max_seq_length,
                 bool mask_prompt);

// How many examples are longer than max_seq_length (they are truncated).
int64_t count_longer_than(const std::vector<Example>& data, int64_t max_seq_length);

}  // namespace lmx::train
