#include "lmx/models/recurrent/mamba2_config.h"

#include <cmath>
#include <limits>

namespace lmx::models::recurrent {
namespace {

// [min, max]; transformers 5 writes infinity as {"__float__": "Infinity"}.
void read_time_step_limit(const ConfigReader& c, nn::Mamba2Options& o) {
  if (!c.has("time_step_limit")) return;
  const auto& limit = c.json().at("time_step_limit");
  auto bound = [&](const nlohmann::json& v) -> float {
    if (v.is_number()) return v.get<float>();
    if (v.is_object() && v.contains("__float__") && v["__float__"] == "Infinity") {
      return std::numeric_limits<float>::infinity();
    }
    c.fail("time_step_limit", "must be two numbers");
  };
  if (!limit.is_array() || limit.size() != 2) c.fail("time_step_limit", "must be two numbers");
  o.dt_min = bound(limit[0]);
  o.dt_max = bound(limit[1]);
  if (!(o.dt_min >= 0.0f) || !(o.dt_max > o.dt_min)) c.fail("time_step_limit", "must be 0 <= min < max");
}

}  // namespace

Mamba2Keys hybrid_mamba2_keys() {
  Mamba2Keys keys{"mamba_n_heads", "mamba_d_head", "mamba_d_state"};
  keys.groups = "mamba_n_groups";
  keys.conv_kernel = "mamba_d_conv";
  keys.expand = "mamba_expand";
  keys.bias = "mamba_proj_bias";
  keys.conv_bias = "mamba_conv_bias";
  keys.eps = "rms_norm_eps";
  return keys;
}

nn::Mamba2Options read_mamba2_options(const ConfigReader& c, int64_t hidden, const Mamba2Keys& keys) {
  nn::Mamba2Options o;
  o.hidden = hidden;
  o.heads = c.require_int(keys.heads);
  if (o.heads <= 0) c.fail(keys.heads, "must be positive");
  if (keys.intermediate && c.has(keys.intermediate)) {
    o.intermediate = c.get_int(keys.intermediate, 0);
    if (o.intermediate <= 0) c.fail(keys.intermediate, "must be positive");
  } else if (keys.expand) {
    o.intermediate = static_cast<int64_t>(std::llround(c.get_positive(keys.expand, 2.0) * static_cast<double>(hidden)));
  }
  const bool auto_head_dim = c.has(keys.head_dim) && c.json().at(keys.head_dim).is_string();
  if (auto_head_dim && (c.get_string(keys.head_dim, "") != "auto" || o.intermediate == 0)) {
    c.fail(keys.head_dim, "must be a number or \"auto\"");
  }
  o.head_dim = auto_head_dim ? o.intermediate / o.heads : c.get_int(keys.head_dim, 64);
  if (o.intermediate == 0) o.intermediate = o.heads * o.head_dim;  // no expand key: heads * head_dim
  o.state = c.get_int(keys.state, 128);
  o.groups = c.get_int(keys.groups, 1);
  o.conv_kernel = c.get_int(keys.conv_kernel, 4);
  o.bias = c.get_bool(keys.bias, false);
  o.conv_bias = c.get_bool(keys.conv_bias, true);
  o.norm_eps = static_cast<float>(c.get_non_negative(keys.eps, 1e-5));
  read_time_step_limit(c, o);
  if (o.head_dim <= 0) c.fail(keys.head_dim, "must be positive");
  if (o.state <= 0) c.fail(keys.state, "must be positive");
  if (o.groups <= 0 || o.heads % o.groups != 0) c.fail(keys.groups, "must be positive and divide the heads");
  if (o.conv_kernel <= 0) c.fail(keys.conv_kernel, "must be positive");
  if (o.intermediate != o.heads * o.head_dim) {
    c.fail(keys.intermediate && c.has(keys.intermediate) ? keys.intermediate : keys.expand,
           "gives an intermediate size of " + std::to_string(o.intermediate) + ", not " + keys.heads + " * " +
               keys.head_dim + " = " + std::to_string(o.heads * o.head_dim));
  }
  return o;
}

}  // namespace lmx::models::recurrent
