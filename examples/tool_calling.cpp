// A ChatSession with a typed tool: the model's calls are parsed in its own format, run,
// and their results fed back until it answers in text.
//   example_tool_calling MODEL        (e.g. a Qwen2.5 / Qwen3 / Qwen3.5 / Llama-3.1 / gpt-oss
//                                     instruct folder; the call format comes from the model)
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/generate/chat_session.h"

struct WeatherQuery {
  std::string city;
};
struct Weather {
  std::string city;
  double celsius = 0;
  std::string sky;
};
void from_json(const nlohmann::ordered_json& j, WeatherQuery& q) { j.at("city").get_to(q.city); }
void to_json(nlohmann::ordered_json& j, const Weather& w) {
  j = {{"city", w.city}, {"celsius", w.celsius}, {"sky", w.sky}};
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  try {
    lmx::chat::ToolSpec spec;
    spec.name = "get_weather";
    spec.description = "The current weather in a city";
    spec.parameters = {{"type", "object"},
                       {"properties", {{"city", {{"type", "string"}, {"description", "City name"}}}}},
                       {"required", {"city"}}};
    auto tools = std::make_shared<lmx::chat::ToolRegistry>();
    tools->add(lmx::chat::Tool<WeatherQuery, Weather>(spec, [](const WeatherQuery& q) {
      return Weather{q.city, 18.5, "partly cloudy"};  // a real tool would look it up
    }));

    lmx::generate::GenerateParameters params;
    params.max_tokens = 256;
    params.temperature = 0;
    lmx::generate::ChatSession session(lmx::generate::ModelContainer::load(argv[1]), "", params);
    session.set_tools(tools);
    session.stream_details("What's the weather like in Lisbon?", [](const lmx::generate::GenerationEvent& e) {
      using Kind = lmx::generate::GenerationEvent::Kind;
      if (e.kind == Kind::text) std::fputs(e.text.c_str(), stdout);
      if (e.kind == Kind::tool_call)
        std::printf("[calling %s(%s)]\n", e.call.name.c_str(), e.call.arguments.dump().c_str());
      if (e.kind == Kind::rejected_tool_call) std::printf("[rejected call: %s]\n", e.error.c_str());
      std::fflush(stdout);
      return true;
    });
    std::printf("\n%zu messages in the history\n", session.history().size());
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
