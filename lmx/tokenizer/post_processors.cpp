#include "lmx/tokenizer/post_processors.h"

namespace lmx::tokenizer::detail {

namespace {
void append(Sequence& out, const Sequence& s, int32_t type_id) {
  out.ids.insert(out.ids.end(), s.ids.begin(), s.ids.end());
  out.type_ids.insert(out.type_ids.end(), s.ids.size(), type_id);
  out.special.insert(out.special.end(), s.special.begin(), s.special.end());
}
Sequence concat_plain(Sequence a, const Sequence* b) {
  if (b) {
    a.ids.insert(a.ids.end(), b->ids.begin(), b->ids.end());
    a.type_ids.insert(a.type_ids.end(), b->type_ids.begin(), b->type_ids.end());
    a.special.insert(a.special.end(), b->special.begin(), b->special.end());
  }
  return a;
}
}  // namespace

size_t TemplateProcessor::added_tokens(bool is_pair) const {
  size_t n = 0;
  for (const auto& p : is_pair ? pair_ : single_) {
    if (!p.is_sequence) n += p.ids.size();
  }
  return n;
}

Sequence TemplateProcessor::process(Sequence a, const Sequence* b, bool add_special_tokens) const {
  if (!add_special_tokens) return concat_plain(std::move(a), b);
  Sequence out;
  for (const auto& p : b ? pair_ : single_) {
    if (p.is_sequence) {
      const Sequence* s = p.sequence == 0 ? &a : b;
      if (s) append(out, *s, p.type_id);
    } else {
      out.ids.insert(out.ids.end(), p.ids.begin(), p.ids.end());
      out.type_ids.insert(out.type_ids.end(), p.ids.size(), p.type_id);
      out.special.insert(out.special.end(), p.ids.size(), 1);
    }
  }
  return out;
}

Sequence PassThroughProcessor::process(Sequence a, const Sequence* b, bool) const {
  return concat_plain(std::move(a), b);
}

size_t SequenceProcessor::added_tokens(bool is_pair) const {
  size_t n = 0;
  for (const auto& p : items_) n += p->added_tokens(is_pair);
  return n;
}

Sequence SequenceProcessor::process(Sequence a, const Sequence* b, bool add_special_tokens) const {
  // Only templates add tokens; applying the first one that consumes the pair matches
  // HF for the sequences seen in practice (ByteLevel + Template).
  if (items_.empty()) return concat_plain(std::move(a), b);
  Sequence out = items_[0]->process(std::move(a), b, add_special_tokens);
  for (size_t k = 1; k < items_.size(); ++k) {
    out = items_[k]->process(std::move(out), nullptr, add_special_tokens);
  }
  return out;
}

std::unique_ptr<PostProcessor> make_bert_processor(int32_t cls, int32_t sep) {
  std::vector<TemplatePiece> single = {
      {false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0}};
  std::vector<TemplatePiece> pair = {{false, 0, {cls}, 0},
                                     {true, 0, {}, 0},
                                     {false, 0, {sep}, 0},
                                     {true, 1, {}, 1},
                                     {false, 0, {sep}, 1}};
  return std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
}

std::unique_ptr<PostProcessor> make_roberta_processor(int32_t cls, int32_t sep) {
  std::vector<TemplatePiece> single = {
      {false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0}};
  std::vector<TemplatePiece> pair = {{false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0},
                                     {false, 0, {sep}, 0}, {true, 1, {}, 0}, {false, 0, {sep}, 0}};
  return std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
}

}  // namespace lmx::tokenizer::detail
