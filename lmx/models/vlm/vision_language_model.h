// The part every vision-language model shares: a text model (one of lmx's decoders)
// whose placeholder tokens take projected image features. A family adds its vision
// tower and projector (image_features) and, where it needs them, the positions and
// attention blocks of image tokens (attention_context).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/transformer.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::vlm {

// A processor's outputs under transformers' names (lmx preprocess writes them).
struct ImageInputs {
  // f32: [images, channels, H, W], Qwen2-VL's [patches, values], Idefics3's
  // [1, tiles, channels, H, W]
  Tensor pixel_values;
  Tensor image_grid_thw;        // i64 [images, 3] (Qwen2-VL families)
  Tensor image_sizes;           // i64 [images, 2]: (height, width) before padding (Pixtral)
  Tensor pixel_attention_mask;  // i64 [1, tiles, H, W]: real pixels (Idefics3)
  Tensor rows, cols;            // i64 [1, images]: tile rows / columns per image, 0 unsplit (Idefics3)
  // Videos (Qwen2-VL families): the video processor's patches and grids, and Qwen2.5-VL's
  // seconds per temporal patch of each video (the processor's second_per_grid_ts).
  Tensor pixel_values_videos;   // f32 [patches, values]
  Tensor video_grid_thw;        // i64 [videos, 3]
  std::vector<double> second_per_grid_ts;
  // Qwen3-VL: per video, the seconds its prompt states before each temporal patch.
  std::vector<std::vector<double>> video_timestamps;
  bool has_images() const { return pixel_values.defined(); }
  bool has_videos() const { return pixel_values_videos.defined(); }
  bool empty() const { return !has_images() && !has_videos(); }
};

class VisionLanguageModel : public LanguageModel {
 public:
  // The images of the next forward call, which must hold all of their placeholders
  // (a prompt with images is prefilled in one call). That call consumes them.
  void set_images(ImageInputs images) { pending_ = std::move(images); }
  // For the next forward call (which consumes them), per batch row: how far the
  // positions of its text tokens lie past their cache positions, as position_shift()
  // reported after the row's last call. Unset: the model's record of its own last call
  // (one sequence at a time). Only models whose positions shift (Qwen2-VL) read them.
  void set_position_shifts(std::vector<int64_t> shifts) { pending_shifts_ = std::move(shifts); }
  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) override;
  int64_t vocab_size() const override { return text_->vocab_size(); }
  int64_t num_layers() const override { return text_->num_layers(); }
  std::vector<int64_t> layer_windows() const override { return text_->layer_windows(); }
  bool positions_depend_on_length() const override { return text_->positions_depend_on_length(); }
  // Checkpoint layouts to lmx's: transformers 5 (model.language_model.*, model.vision_tower.*,
  // lm_head), the hub's older ones (language_model.model.*, vision_tower.vision_model.*;
  // Qwen2-VL's model.* + visual.*) and mlx-vlm's all load.
  void sanitize(WeightDict& weights) const override;

  int64_t image_token_id() const { return image_token_; }
  // The placeholder of video features (-1: the model takes no videos).
  int64_t video_token_id() const { return video_token_; }
  // Per video of `inputs`: its placeholder count (Qwen2-VL families).
  virtual std::vector<int64_t> video_token_counts(const ImageInputs& inputs) const;
  // The projected features of the videos, then their DeepStack additions (as image_feature_stack).
  virtual std::vector<Tensor> video_feature_stack(const ImageInputs& inputs) const;
  // How many placeholder tokens each image of `images` takes in the prompt.
  virtual std::vector<int64_t> image_token_counts(const ImageInputs& images) const = 0;
  // The projected features [placeholders, text hidden] that replace the placeholders.
  virtual Tensor image_features(const ImageInputs& images) const = 0;
  // image_features, then features of the same shape added to the placeholders' rows of the
  // outputs of text layers 0, 1, ... (Qwen3-VL's DeepStack). Default: image_features alone.
  virtual std::vector<Tensor> image_feature_stack(const ImageInputs& images) const { return {image_features(images)}; }
  // The token a chat template writes once per image (LLaVA's <image>, Qwen2-VL's
  // <|image_pad|>, Gemma 3's <start_of_image>).
  virtual int64_t prompt_image_marker() const { return image_token_; }
  // What the processor puts in place of the marker of image `index` of `images` (default:
  // the placeholder as many times as image_token_counts gives).
  virtual std::vector<int32_t> image_prompt(const ImageInputs& images, size_t index,
                                            const tokenizer::Tokenizer& tok) const;
  // What the processor puts in place of the video marker (the placeholder itself) of video
  // `index` (default: the placeholder as many times as video_token_counts gives).
  virtual std::vector<int32_t> video_prompt(const ImageInputs& inputs, size_t index,
                                            const tokenizer::Tokenizer& tok) const;
  // Tokens right before and after a video marker that video_prompt replaces too (Qwen3-VL:
  // <|vision_start|>, <|vision_end|>, which its prompt repeats per frame group); -1: none.
  virtual std::pair<int64_t, int64_t> video_marker_wrapping() const { return {-1, -1}; }
  const TransformerLM& text_model() const { return *text_; }
  // Whether a call with images must hold the whole prompt over a fresh cache (image
  // tokens in blocks that attend both ways: Gemma 3, PaliGemma's prefix).
  virtual bool image_calls_need_whole_prompt() const { return false; }
  // After a forward call on one sequence: how far the positions of its following text
  // tokens lie past their cache positions (Qwen2-VL: rope_deltas; 0 for the others). A
  // caller running several sequences keeps each one's and passes them back with
  // set_position_shifts.
  virtual int64_t position_shift() const { return 0; }

 protected:
  VisionLanguageModel(std::string model_type, std::unique_ptr<TransformerLM> text, int64_t image_token);
  // Fills ctx for this call's tokens [1 or batch, seq] (positions of image tokens,
  // bidirectional image blocks); false: plain causal attention at cache positions.
  // `images` is empty on calls without images; `shifts`: set_position_shifts' (or empty).
  virtual bool attention_context(const Tensor& tokens, const nn::KVCacheList* caches, const ImageInputs& images,
                                 const std::vector<int64_t>& shifts, nn::AttentionContext& ctx) const;
  // Consecutive runs of `token` (default: the image placeholder) in a single-sequence
  // call: (start, length).
  std::vector<std::pair<int64_t, int64_t>> placeholder_runs(const Tensor& tokens, int64_t token = -1) const;

  std::unique_ptr<TransformerLM> text_;
  int64_t image_token_;
  int64_t video_token_ = -1;

 private:
  ImageInputs pending_;
  std::vector<int64_t> pending_shifts_;
};

// A prompt's token ids with the marker of each image (and video) of `images` expanded: the
// prompt must hold one marker per image and one video placeholder per video.
std::vector<int32_t> expand_image_prompt(const VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                         const ImageInputs& images, const tokenizer::Tokenizer& tok);
// The id of a token the model's processor writes (Idefics3's <row_1_col_1>, Pixtral's
// [IMG_BREAK]); lmx::InvalidArgument naming the model when the vocabulary lacks it.
int32_t required_token(const tokenizer::Tokenizer& tok, const std::string& token, const std::string& model_type);

// A vision_feature_layer value as the index of a hidden state of a tower of `layers` blocks
// (0: the embeddings; negative: counted from the last, -1 = the last block's output); one
// outside the tower fails naming the field of `raw`.
int64_t feature_layer_index(const ConfigReader& raw, int64_t value, int64_t layers);

// The text model a VLM's text config describes (a decoder of the registry).
std::unique_ptr<TransformerLM> make_text_model(const ConfigReader& text);
// Number of tokens of the cache's first layer (0 without caches).
int64_t cache_offset(const nn::KVCacheList* caches);

}  // namespace lmx::models::vlm
