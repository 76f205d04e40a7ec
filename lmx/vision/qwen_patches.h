// What Qwen2-VL's image and video processors share (detail): smart_resize and the cut of
// frames into patch rows in transformers' order: rows (temporal group, block row, block
// column, row in block, column in block), columns (channel, frame, y in patch, x in patch).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lmx/vision/image_ops.h"
#include "lmx/vision/image_processor.h"
#include "lmx/vision/resample.h"

namespace lmx::vision::detail {

// transformers' smart_resize (Python's round: half to even): (height, width) in multiples
// of `factor` within [min_pixels, max_pixels]; an aspect ratio over 200 is refused, naming `source`.
std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels,
                                      const std::string& source);

// Appends the patch rows of `frames` (all of one size, whole merged patches, a multiple of
// temporal frames), normalized through `table`, to `pixels`; returns the grid
// (t, h / patch, w / patch).
std::vector<int64_t> append_qwen_patches(ProcessorTensor& pixels, const std::vector<const Image*>& frames,
                                         const NormalizationTable& table, int temporal, int patch, int merge);

// One image (repeated to `temporal` frames), resized to width x height (whole merged
// patches) band by band as it is cut: the same rows as resize() then append_qwen_patches(),
// without the resized image in memory.
std::vector<int64_t> append_qwen_image(ProcessorTensor& pixels, const Image& image, int width, int height,
                                       Resample filter, const NormalizationTable& table, int temporal, int patch,
                                       int merge);

}  // namespace lmx::vision::detail
