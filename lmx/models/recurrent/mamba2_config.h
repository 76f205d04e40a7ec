// Mamba2 mixer options read from a config.json under a family's key names: mamba2 and
// nemotron_h spell them "num_heads" / "mamba_num_heads" ..., the hybrids Granite 4.0 and
// Falcon-H1 "mamba_n_heads", "mamba_d_head" (possibly "auto": intermediate / heads), ...
#pragma once

#include "lmx/models/config_reader.h"
#include "lmx/nn/ssm/mamba2_mixer.h"

namespace lmx::models::recurrent {

struct Mamba2Keys {
  const char* heads;
  const char* head_dim;
  const char* state;
  const char* groups = "n_groups";
  const char* conv_kernel = "conv_kernel";
  const char* expand = "expand";  // null: intermediate = heads * head_dim (Nemotron-H)
  const char* bias = "use_bias";
  const char* conv_bias = "use_conv_bias";
  const char* eps = "layer_norm_epsilon";
  // Key of an explicit intermediate size (Falcon-H1's "mamba_d_ssm"; null or absent:
  // expand * hidden).
  const char* intermediate = nullptr;
};

// The "mamba_*" names of the hybrids (Granite 4.0, Falcon-H1), epsilon "rms_norm_eps".
Mamba2Keys hybrid_mamba2_keys();

// The options with intermediate = heads * head_dim checked against the config (a
// FormatError naming the field otherwise), time_step_limit read as [min, max].
nn::Mamba2Options read_mamba2_options(const ConfigReader& c, int64_t hidden, const Mamba2Keys& keys);

}  // namespace lmx::models::recurrent
