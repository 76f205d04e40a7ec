// An embedder folder's Transformer module as a module tree, for Embedder::load and for
// `lmx convert` (quantized or cast, then written back with the sentence-transformers
// modules beside it, in the layout of the source).
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/sentence_transformers_folder.h"
#include "lmx/models/save.h"

namespace lmx::models::embed {

struct LoadedEncoder {
  SentenceTransformerModules modules;
  std::unique_ptr<Encoder> encoder;  // weights assigned (MLX-quantized ones too), not prepared
};

// modules.json & co., then the Transformer module's config and weights, moved to `device`.
// Errors name the file (see Embedder::load).
LoadedEncoder load_encoder(const std::filesystem::path& dir, Device device = Device::cpu());

// The Dense layers of `modules`, checked: the Pooling module's word_embedding_dimension
// against `hidden`, each layer's in_features against what reaches it (`hidden` times
// `pooling_modes`, then the previous out_features), the stored matrices against the
// configs. FormatError naming the file.
std::vector<std::unique_ptr<DenseLayer>> load_dense_layers(const SentenceTransformerModules& modules, int64_t hidden,
                                                           int64_t pooling_modes);

// Whether `dir` is an embedder for `lmx convert`: a sentence-transformers folder
// (modules.json), or a plain folder whose model_type only an encoder has (bert, roberta,
// xlm-roberta, distilbert, modernbert, nomic_bert). Unsupported for a sequence-
// classification folder (a cross-encoder: its head is not an embedder's, not converted yet).
bool is_embedder_folder(const std::filesystem::path& dir);

// Writes `loaded` (after quantize_module or a cast) to `out` in the layout of `src`: the
// Transformer module's folder gets the encoder's tensors (under the names the encoder
// reads; heads an embedder does not use, such as BERT's pooler or an MLM head, are not
// written) and config.json with the "quantization" entry; every other file of that folder
// except the source weights, and the other modules' folders (Pooling, Dense, Normalize),
// are copied as they are (Dense weights are neither quantized nor cast).
void save_embedder(LoadedEncoder& loaded, const std::filesystem::path& src, const std::filesystem::path& out,
                   const SaveOptions& options);

}  // namespace lmx::models::embed
