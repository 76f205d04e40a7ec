// Idefics3 and SmolVLM: each tile of an image (rows x columns of them, then the global
// image; or the global image alone) through a SigLIP tower, the patches pixel-shuffled
// (scale_factor^2 neighbours side by side) and projected into a Llama-style text model.
// The prompt of an image names each tile (<fake_token_around_image><row_r_col_c> and its
// placeholders, a "\n" after each row) and then the global image.
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vit_tower.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models::vlm {
namespace {

// Token ids of a prompt made of special tokens and text runs, each run encoded whole (as
// the processor's string is tokenized between its special tokens).
class PromptBuilder {
 public:
  explicit PromptBuilder(const tokenizer::Tokenizer& tok) : tok_(tok) {}
  void text(const std::string& s) { pending_ += s; }
  void token(int32_t id) {
    flush();
    ids_.push_back(id);
  }
  void tokens(int32_t id, int64_t count) {
    flush();
    ids_.insert(ids_.end(), static_cast<size_t>(count), id);
  }
  std::vector<int32_t> take() {
    flush();
    return std::move(ids_);
  }

 private:
  void flush() {
    if (pending_.empty()) return;
    for (int32_t id : tok_.encode(pending_, false)) ids_.push_back(id);
    pending_.clear();
  }
  const tokenizer::Tokenizer& tok_;
  std::string pending_;
  std::vector<int32_t> ids_;
};

struct ModalityProjection : nn::Module {
  ModalityProjection(int64_t in, int64_t out) : proj(in, out, false) { register_module("proj", proj); }
  nn::Linear proj;
};

struct Connector : nn::Module {
  Connector(int64_t in, int64_t out) : modality_projection(in, out) {
    register_module("modality_projection", modality_projection);
  }
  ModalityProjection modality_projection;
};

class Idefics3 : public VisionLanguageModel {
 public:
  Idefics3(const ConfigReader& raw, const ConfigReader& text, std::string model_type)
      : VisionLanguageModel(std::move(model_type), make_text_model(text), raw.get_int("image_token_id", 128257)) {
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    tower_ = std::make_unique<VitTower>(read_vit_tower(*vision, false));
    scale_ = raw.get_int("scale_factor", 2);
    const int64_t side = tower_->options().image_size / tower_->options().patch;
    if (scale_ <= 0 || side % scale_ != 0) raw.fail("scale_factor", "must divide the patches per side");
    seq_len_ = side * side / (scale_ * scale_);
    connector_ = std::make_unique<Connector>(tower_->options().hidden * scale_ * scale_, text_->spec().hidden);
    register_module("vision_model", *tower_);
    register_module("connector", *connector_);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    std::vector<int64_t> out;
    for (const auto& [rows, cols] : layout(images)) out.push_back((rows * cols + 1) * seq_len_);  // tiles + global
    return out;
  }

  // Idefics3Processor / SmolVLMProcessor's expansion of one <image>.
  std::vector<int32_t> image_prompt(const ImageInputs& images, size_t index,
                                    const tokenizer::Tokenizer& tok) const override {
    const auto [rows, cols] = layout(images).at(index);
    const int32_t fake = required_token(tok, "<fake_token_around_image>", model_type_);
    const int32_t global = required_token(tok, "<global-img>", model_type_);
    const auto image = static_cast<int32_t>(image_token_);
    PromptBuilder p(tok);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        p.token(fake);
        p.token(required_token(tok, "<row_" + std::to_string(r + 1) + "_col_" + std::to_string(c + 1) + ">", model_type_));
        p.tokens(image, seq_len_);
      }
      p.text("\n");
    }
    if (rows * cols > 0) p.text("\n");
    p.token(fake);
    p.token(global);
    p.tokens(image, seq_len_);
    p.token(fake);
    return p.take();
  }

  Tensor image_features(const ImageInputs& images) const override {
    const Tensor& pv = images.pixel_values;
    if (pv.ndim() != 5 && pv.ndim() != 4) {
      throw ShapeError(model_type_ + ": pixel_values must be [1, tiles, 3, H, W], got " + shape_str(pv.shape()));
    }
    if (images.pixel_attention_mask.defined()) {
      for (float v : images.pixel_attention_mask.to(Dtype::f32).to_float_vector()) {
        if (v == 0.0f) throw Unsupported(model_type_ + ": tiles with padding (pixel_attention_mask zeros)");
      }
    }
    Tensor tiles = pv.ndim() == 5 ? pv.reshape({pv.dim(0) * pv.dim(1), pv.dim(2), pv.dim(3), pv.dim(4)}) : pv;
    // Idefics3VisionEmbeddings buckets each patch's fractional coordinate h * (1 / n) by
    // float32 boundaries: for whole tiles that gives row h of the n x n table for the
    // released n = 26 (Idefics3) and 32 (SmolVLM) and the fixtures' 4, checked with torch
    // 2.11 and 1.13; rounding moves some rows by one for other n (19, 25, 29, ...), which
    // lmx does not reproduce.
    Tensor x = tower_->last_hidden_state(tiles.to(Dtype::f32));  // [N, seq, d]
    // Pixel shuffle: scale^2 neighbouring patches side by side (Idefics3Connector.pixel_shuffle).
    const int64_t N = x.dim(0), seq = x.dim(1), d = x.dim(2), s = scale_;
    const auto h = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(seq)))), w = h;
    x = x.reshape({N, h, w / s, d * s}).permute({0, 2, 1, 3}).contiguous();
    x = x.reshape({N, w / s, h / s, d * s * s}).permute({0, 2, 1, 3}).contiguous();
    x = connector_->modality_projection.proj.forward(x.reshape({N * seq / (s * s), d * s * s}));
    return x;
  }

 private:
  // (rows, cols) of each image; without them every tile is an image of its own.
  std::vector<std::pair<int64_t, int64_t>> layout(const ImageInputs& images) const {
    std::vector<std::pair<int64_t, int64_t>> out;
    if (!images.rows.defined() || !images.cols.defined()) {
      const Tensor& pv = images.pixel_values;
      const int64_t tiles = pv.ndim() == 5 ? pv.dim(0) * pv.dim(1) : pv.dim(0);
      return std::vector<std::pair<int64_t, int64_t>>(static_cast<size_t>(tiles), {0, 0});
    }
    const std::vector<float> r = images.rows.to(Dtype::f32).to_float_vector();
    const std::vector<float> c = images.cols.to(Dtype::f32).to_float_vector();
    if (r.size() != c.size()) throw ShapeError(model_type_ + ": rows and cols differ in length");
    for (size_t i = 0; i < r.size(); ++i) out.emplace_back(static_cast<int64_t>(r[i]), static_cast<int64_t>(c[i]));
    return out;
  }

  std::unique_ptr<VitTower> tower_;
  std::unique_ptr<Connector> connector_;
  int64_t scale_ = 2, seq_len_ = 0;
};

}  // namespace

std::unique_ptr<LanguageModel> idefics3(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Idefics3>(raw, text, "idefics3");
}

std::unique_ptr<LanguageModel> smolvlm(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Idefics3>(raw, text, "smolvlm");
}

}  // namespace lmx::models::vlm
