// libFuzzer target: chat-session files (ChatSession::restore). The input is the session
// JSON (version, instructions, messages, template_context, ledger) of a file that is
// otherwise valid: a real session of stories260K (imported from ../shared/data once per
// process) saved after one short turn, so the ledger is checked against a real cache.
// After a restore the session must save again.
#include <memory>
#include <string>

#include "lmx/generate/chat_session.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

constexpr const char* kSessionKey = "1.lmx.chat_session";  // ChatSession's metadata key

struct Fixture {
  lmx::fuzz::ScratchFile file{"session.safetensors"};
  std::shared_ptr<lmx::generate::ModelContainer> container;
  std::unique_ptr<lmx::io::SafetensorsFile> saved;  // the valid session file

  Fixture() {
    const std::filesystem::path src = "../shared/data/models/stories260K";
    lmx::io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", file.dir() / "model");
    container = lmx::generate::ModelContainer::load((file.dir() / "model").string());
    lmx::generate::GenerateParameters p;
    p.max_tokens = 3;
    p.temperature = 0;
    lmx::generate::ChatSession session(container, "Tell a story.", p);
    (void)session.respond("Once");
    session.save(file.dir() / "valid.safetensors");
    saved = std::make_unique<lmx::io::SafetensorsFile>(
        lmx::io::SafetensorsFile::open(file.dir() / "valid.safetensors"));
  }

  // The valid file with its session JSON replaced by `json`.
  std::filesystem::path with_session(std::string_view json) const {
    lmx::io::SafetensorsWriter w;
    for (const auto& t : saved->tensors()) w.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
    for (const auto& [k, v] : saved->metadata()) w.set_metadata(k, k == kSessionKey ? std::string(json) : v);
    const auto path = file.dir() / "session.safetensors";
    w.write(path);
    return path;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fx;
  return lmx::fuzz::guarded([&] {
    const auto path = fx.with_session(lmx::fuzz::as_text(data, size));
    lmx::generate::ChatSession session(fx.container);
    session.restore(path);
    session.save(fx.file.dir() / "again.safetensors");
  });
}
