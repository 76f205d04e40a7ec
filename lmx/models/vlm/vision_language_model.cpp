#include "lmx/models/vlm/vision_language_model.h"

#include <algorithm>
#include <string_view>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/registry.h"

namespace lmx::models::vlm {
namespace {

bool take_prefix(std::string& name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return false;
  name.erase(0, prefix.size());
  return true;
}

// One checkpoint name in lmx's layout: language_model.{model,lm_head}.*, vision_tower.*,
// multi_modal_projector.* (Idefics3: vision_model.*, connector.*).
std::string canonical_name(std::string n) {
  if (take_prefix(n, "model.language_model.")) {
    n = "language_model.model." + n;
  } else if (n.starts_with("lm_head.")) {
    n = "language_model." + n;
  } else if (take_prefix(n, "model.text_model.")) {  // Idefics3 / SmolVLM
    n = "language_model.model." + n;
  } else if (take_prefix(n, "model.")) {
    const bool vision = n.starts_with("vision_tower.") || n.starts_with("visual.") ||
                        n.starts_with("multi_modal_projector.") || n.starts_with("vision_model.") ||
                        n.starts_with("connector.");
    if (!vision) n = "language_model.model." + n;  // Qwen2-VL's original layout
  }
  if (take_prefix(n, "visual.")) n = "vision_tower." + n;
  if (take_prefix(n, "vision_tower.vision_model.")) n = "vision_tower." + n;
  return n;
}

// mlx-vlm stores patch convolutions channels last ([out, kernel..., channels]); ours are
// transformers' [out, channels, kernel...]. RGB: 3 channels, and no tower has a
// (temporal) kernel of 3 in its second axis.
Tensor channels_first(const Tensor& w) {
  if ((w.ndim() != 4 && w.ndim() != 5) || w.dim(-1) != 3 || w.dim(1) == 3) return w;
  std::vector<int> axes{0, static_cast<int>(w.ndim()) - 1};
  for (int a = 1; a + 1 < static_cast<int>(w.ndim()); ++a) axes.push_back(a);
  return w.permute(axes).contiguous();
}

}  // namespace

std::unique_ptr<TransformerLM> make_text_model(const ConfigReader& text) {
  std::unique_ptr<LanguageModel> m = create_model(text);
  auto* t = dynamic_cast<TransformerLM*>(m.get());
  if (!t) {
    throw Unsupported(text.source() + ": text model '" + m->model_type() + "' is not a decoder a VLM can drive");
  }
  m.release();
  return std::unique_ptr<TransformerLM>(t);
}

std::vector<int32_t> VisionLanguageModel::image_prompt(const ImageInputs& images, size_t index,
                                                      const tokenizer::Tokenizer&) const {
  const int64_t count = image_token_counts(images).at(index);
  return std::vector<int32_t>(static_cast<size_t>(count), static_cast<int32_t>(image_token_));
}

std::vector<int32_t> VisionLanguageModel::video_prompt(const ImageInputs& inputs, size_t index,
                                                      const tokenizer::Tokenizer&) const {
  const int64_t count = video_token_counts(inputs).at(index);
  return std::vector<int32_t>(static_cast<size_t>(count), static_cast<int32_t>(video_token_));
}

std::vector<int32_t> expand_image_prompt(const VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                         const ImageInputs& images, const tokenizer::Tokenizer& tok) {
  const size_t count = images.has_images() ? model.image_token_counts(images).size() : 0;
  const size_t markers = static_cast<size_t>(std::count(ids.begin(), ids.end(), model.prompt_image_marker()));
  if (markers != count) {
    throw InvalidArgument(model.model_type() + ": the prompt holds " + std::to_string(markers) +
                          " image markers (token " + std::to_string(model.prompt_image_marker()) + ") for " +
                          std::to_string(count) + " images");
  }
  const int64_t video_marker = model.video_token_id();
  const size_t videos = images.has_videos() ? model.video_token_counts(images).size() : 0;
  const size_t video_markers =
      video_marker < 0 ? 0 : static_cast<size_t>(std::count(ids.begin(), ids.end(), static_cast<int32_t>(video_marker)));
  if (video_markers != videos) {
    throw InvalidArgument(model.model_type() + ": the prompt holds " + std::to_string(video_markers) +
                          " video markers (token " + std::to_string(video_marker) + ") for " + std::to_string(videos) +
                          " videos");
  }
  const auto [wrap_start, wrap_end] = model.video_marker_wrapping();
  std::vector<int32_t> out;
  size_t image = 0, video = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    std::vector<int32_t> piece;
    if (id == model.prompt_image_marker()) {
      piece = model.image_prompt(images, image++, tok);
    } else if (video_marker >= 0 && id == video_marker) {
      piece = model.video_prompt(images, video++, tok);
      if (wrap_start >= 0 && !out.empty() && out.back() == wrap_start && i + 1 < ids.size() && ids[i + 1] == wrap_end) {
        out.pop_back();  // the prompt repeats the wrapping around each of its parts
        ++i;
      }
    } else {
      out.push_back(id);
      continue;
    }
    out.insert(out.end(), piece.begin(), piece.end());
  }
  return out;
}

int64_t feature_layer_index(const ConfigReader& raw, int64_t value, int64_t layers) {
  const int64_t i = value < 0 ? value + layers + 1 : value;
  if (i < 0 || i > layers) raw.fail("vision_feature_layer", "is out of the tower's range");
  return i;
}

int32_t required_token(const tokenizer::Tokenizer& tok, const std::string& token, const std::string& model_type) {
  const auto id = tok.token_to_id(token);
  if (!id) throw InvalidArgument(model_type + ": the tokenizer has no '" + token + "' token, which image prompts need");
  return *id;
}

int64_t cache_offset(const nn::KVCacheList* caches) {
  return caches && !caches->empty() && (*caches)[0] ? (*caches)[0]->offset() : 0;
}

VisionLanguageModel::VisionLanguageModel(std::string model_type, std::unique_ptr<TransformerLM> text,
                                         int64_t image_token)
    : text_(std::move(text)), image_token_(image_token) {
  model_type_ = std::move(model_type);
  register_module("language_model", *text_);
}

void VisionLanguageModel::sanitize(WeightDict& weights) const {
  WeightDict text, rest;
  for (auto& [name, t] : weights) {
    std::string n = canonical_name(name);
    if (take_prefix(n, "language_model.")) {
      text[n] = t;
    } else {
      const bool conv = n.ends_with("patch_embedding.weight") || n.ends_with("patch_embed.proj.weight") ||
                        n.ends_with("patch_conv.weight");
      rest[n] = conv ? channels_first(t) : t;
    }
  }
  text_->sanitize(text);
  for (auto& [name, t] : text) rest["language_model." + name] = t;
  weights = std::move(rest);
}

std::vector<int64_t> VisionLanguageModel::video_token_counts(const ImageInputs&) const {
  throw Unsupported(model_type_ + " takes no videos");
}

std::vector<Tensor> VisionLanguageModel::video_feature_stack(const ImageInputs&) const {
  throw Unsupported(model_type_ + " takes no videos");
}

std::vector<std::pair<int64_t, int64_t>> VisionLanguageModel::placeholder_runs(const Tensor& tokens,
                                                                               int64_t token) const {
  const std::vector<float> ids = tokens.to(Dtype::f32).to_float_vector();
  std::vector<std::pair<int64_t, int64_t>> runs;
  const auto id = static_cast<float>(token < 0 ? image_token_ : token);
  for (int64_t i = 0; i < static_cast<int64_t>(ids.size()); ++i) {
    if (ids[static_cast<size_t>(i)] != id) continue;
    if (!runs.empty() && runs.back().first + runs.back().second == i) {
      ++runs.back().second;
    } else {
      runs.emplace_back(i, 1);
    }
  }
  return runs;
}

bool VisionLanguageModel::attention_context(const Tensor&, const nn::KVCacheList*, const ImageInputs&,
                                            const std::vector<int64_t>&, nn::AttentionContext&) const {
  return false;
}

Tensor VisionLanguageModel::forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) {
  if (tokens.ndim() != 2) throw ShapeError("forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  ImageInputs images = std::move(pending_);
  pending_ = {};
  const std::vector<int64_t> shifts = std::move(pending_shifts_);
  pending_shifts_.clear();
  ForwardOptions opt = options;
  Tensor ids = tokens;
  if (!images.empty()) {
    if (tokens.dim(0) != 1) throw InvalidArgument(model_type_ + ": images need a batch of one sequence");
    if (images.has_videos() && video_token_ < 0) throw Unsupported(model_type_ + " takes no videos");
    // Image features fill the image placeholders in order, video features the video ones.
    std::vector<Tensor> stack, vstack;
    if (images.has_images()) stack = image_feature_stack(images);
    if (images.has_videos()) vstack = video_feature_stack(images);
    const int64_t L = tokens.dim(1);
    const std::vector<float> v = tokens.to(Dtype::f32).to_float_vector();
    const int64_t n_image = stack.empty() ? 0 : stack[0].dim(0), n_video = vstack.empty() ? 0 : vstack[0].dim(0);
    int64_t count_image = 0, count_video = 0;
    for (float id : v) {
      count_image += id == static_cast<float>(image_token_);
      count_video += video_token_ >= 0 && id == static_cast<float>(video_token_);
    }
    if (count_image != n_image) {
      throw InvalidArgument(model_type_ + ": the tokens hold " + std::to_string(count_image) +
                            " image placeholders (token " + std::to_string(image_token_) +
                            ") but pixel_values gives " + std::to_string(n_image) + " image features");
    }
    if (count_video != n_video) {
      throw InvalidArgument(model_type_ + ": the tokens hold " + std::to_string(count_video) +
                            " video placeholders (token " + std::to_string(video_token_) +
                            ") but pixel_values_videos gives " + std::to_string(n_video) + " video features");
    }
    // One table of features: the images', then the videos' (and so for DeepStack layers).
    std::vector<Tensor> all_stack;
    for (size_t i = 0; i < std::max(stack.size(), vstack.size()); ++i) {
      std::vector<Tensor> parts;
      if (i < stack.size()) parts.push_back(stack[i]);
      if (i < vstack.size()) parts.push_back(vstack[i]);
      all_stack.push_back(parts.size() == 1 ? parts[0] : ops::concat(parts, 0));
    }
    const Tensor& features = all_stack.at(0);  // [N, hidden]
    // Row i of the merged embeddings: text row i, or feature k (row L + k).
    std::vector<int32_t> rows(static_cast<size_t>(L));
    std::vector<int32_t> safe_ids(static_cast<size_t>(L));
    int64_t ki = 0, kv = n_image;
    for (int64_t i = 0; i < L; ++i) {
      const float id = v[static_cast<size_t>(i)];
      const bool image = id == static_cast<float>(image_token_);
      const bool video = video_token_ >= 0 && id == static_cast<float>(video_token_);
      rows[static_cast<size_t>(i)] = static_cast<int32_t>(image ? L + ki++ : video ? L + kv++ : i);
      // Placeholder ids may lie past the vocabulary (Gemma 3): their rows are replaced anyway.
      safe_ids[static_cast<size_t>(i)] = image || video ? 0 : static_cast<int32_t>(id);
    }
    ids = Tensor::from_vector(safe_ids, {1, L});
    auto outer = options.edit_embeddings;
    opt.edit_embeddings = [features, rows, L, outer](Tensor h) {
      const int64_t H = h.dim(2);
      Tensor all = ops::concat({h.reshape({L, H}), features.to(h.dtype())}, 0);
      Tensor merged = ops::take(all, Tensor::from_vector(rows, {L}), 0).reshape({1, L, H});
      return outer ? outer(merged) : merged;
    };
    if (all_stack.size() > 1) {
      if (!stack.empty() && !vstack.empty() && stack.size() != vstack.size()) {
        throw InternalError(model_type_ + ": image and video DeepStack depths differ");
      }
      // Row i of the additions: zero (row 0) or deep feature k (row 1 + k).
      std::vector<int32_t> add_rows(static_cast<size_t>(L));
      for (int64_t i = 0; i < L; ++i) {
        const int32_t r = rows[static_cast<size_t>(i)];
        add_rows[static_cast<size_t>(i)] = r >= L ? r - static_cast<int32_t>(L) + 1 : 0;
      }
      const Tensor index = Tensor::from_vector(add_rows, {L});
      std::vector<Tensor> deep(all_stack.begin() + 1, all_stack.end());
      auto outer_layer = options.edit_layer_output;
      opt.edit_layer_output = [deep, index, L, outer_layer](size_t layer, Tensor h) {
        if (layer < deep.size()) {
          const int64_t H = h.dim(2);
          Tensor table = ops::concat({Tensor::zeros({1, H}, h.dtype(), h.device()), deep[layer].to(h.dtype())}, 0);
          h = ops::add(h, ops::take(table, index, 0).reshape({1, L, H}));
        }
        return outer_layer ? outer_layer(layer, h) : h;
      };
    }
  } else if (cache_offset(caches) == 0 && !placeholder_runs(tokens).empty()) {
    throw InvalidArgument(model_type_ + ": the tokens hold image placeholders (token " + std::to_string(image_token_) +
                          ") but no pixel_values were given");
  } else if (cache_offset(caches) == 0 && video_token_ >= 0 && !placeholder_runs(tokens, video_token_).empty()) {
    throw InvalidArgument(model_type_ + ": the tokens hold video placeholders (token " + std::to_string(video_token_) +
                          ") but no pixel_values_videos were given");
  }
  nn::AttentionContext ctx;
  if (attention_context(tokens, caches, images, shifts, ctx)) opt.attention = &ctx;
  return text_->forward(ids, caches, opt);
}

}  // namespace lmx::models::vlm
