// `lmx bench --image PATH --model M`: a vision-language model's image path, median of runs:
// image preprocessing (decode, then the folder's image processor), the vision encoder
// (tower and projector), and the prefill of a prompt holding the image (tokens/s, the
// encoder included, as a generation's first step runs it). --device cuda runs the tower,
// the projector and the text model on the GPU; every timing ends with the device
// synchronised.
#pragma once

#include <string>

namespace lmx::cli {

struct VisionBenchArgs {
  std::string model;
  std::string image;
  int prompt_tokens = 64;  // text tokens around the image's placeholders
  int runs = 3;
  int threads = 0;
  std::string device = "cpu";
  bool json = false;
};

void run_vision_bench(const VisionBenchArgs& args);

}  // namespace lmx::cli
