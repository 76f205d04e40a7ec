// Post-processors (internal): add the special tokens around encoded sequences.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/tokenizer/components.h"

namespace lmx::tokenizer::detail {

// One element of a template: a special token's ids, or sequence A/B.
struct TemplatePiece {
  bool is_sequence = false;
  int sequence = 0;  // 0 = A, 1 = B
  std::vector<int32_t> ids;
  int32_t type_id = 0;
};

class TemplateProcessor final : public PostProcessor {
 public:
  TemplateProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair)
      : single_(std::move(single)), pair_(std::move(pair)) {}
  size_t added_tokens(bool is_pair) const override;
  Sequence process(Sequence a, const Sequence* b, bool add_special_tokens) const override;

 private:
  std::vector<TemplatePiece> single_, pair_;
};

// ByteLevel's post-processor only trims offsets; ids pass through.
class PassThroughProcessor final : public PostProcessor {
 public:
  size_t added_tokens(bool) const override { return 0; }
  Sequence process(Sequence a, const Sequence* b, bool add_special_tokens) const override;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> items)
      : items_(std::move(items)) {}
  size_t added_tokens(bool is_pair) const override;
  Sequence process(Sequence a, const Sequence* b, bool add_special_tokens) const override;

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

// BertProcessing = [CLS] A [SEP] (B [SEP]); RobertaProcessing = <s> A </s> (</s> B </s>).
std::unique_ptr<PostProcessor> make_bert_processor(int32_t cls, int32_t sep);
std::unique_ptr<PostProcessor> make_roberta_processor(int32_t cls, int32_t sep);

}  // namespace lmx::tokenizer::detail
