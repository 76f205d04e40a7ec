#!/usr/bin/env python3
"""Builds the seed corpus of every fuzz target (tests/fuzz) under OUT/seeds/<target>/.

    python3 tools/fuzz/seed_corpora.py OUT

Seeds come from ../shared/data (real tokenizers, configs, chat templates), cut down to a
few hundred vocabulary entries so that one execution stays fast, plus small hand-made
inputs written here (tool-call texts, request bodies, safetensors and prompt-cache files).
The image targets' seeds are this repository's own test images and processor cases
(tests/data/vision). Nothing is downloaded; nothing from ../shared/data is committed.
"""
import json
import pathlib
import struct
import sys

DATA = pathlib.Path("../shared/data")
VOCAB = 300  # entries kept of each real vocabulary


def main():
    out = pathlib.Path(sys.argv[1]) / "seeds"
    if not DATA.is_dir():
        sys.exit(f"seed_corpora: {DATA.resolve()} is missing (run from the repository root)")
    seeds = {
        "safetensors": safetensors_seeds(),
        "prompt_cache": prompt_cache_seeds(),
        "config_json": config_seeds(),
        "tokenizer_json": tokenizer_json_seeds(),
        "tokenizer_config": tokenizer_config_seeds(),
        "sentencepiece": sentencepiece_seeds(),
        "tiktoken": tiktoken_seeds(),
        "gguf_vocab": gguf_seeds(),
        "jinja": jinja_seeds(),
        "tool_calls": tool_call_seeds(),
        "request_body": request_body_seeds(),
        "session": session_seeds(),
        "image": image_seeds(),
        "image_processor": image_processor_seeds(),
    }
    for target, items in seeds.items():
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for name, data in items:
            (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        print(f"seed_corpora: {target}: {len(items)} seeds")


# --- binary containers -------------------------------------------------------------

def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, bytes)."""
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def f32(n, start=0.25):
    return struct.pack(f"<{n}f", *[start + 0.5 * i for i in range(n)])


def safetensors_seeds():
    return [
        ("mixed.safetensors", safetensors({
            "model.embed_tokens.weight": ("F32", [3, 4], f32(12)),
            "scales": ("BF16", [2], b"\x80\x3f\x00\x40"),
            "ids": ("I64", [2], struct.pack("<2q", 7, -1)),
            "empty": ("U8", [0], b""),
            "flag": ("BOOL", [], b"\x01")}, {"format": "mlx"})),
        ("f16.safetensors", safetensors({"w": ("F16", [2, 2], struct.pack("<4e", 1, -2, 0.5, 3))})),
        ("empty.safetensors", safetensors({})),
    ]


def prompt_cache_seeds():
    kv = lambda seq: f32(1 * 2 * seq * 4)  # [1, heads 2, seq, head_dim 4]
    shape = lambda seq: [1, 2, seq, 4]
    u32 = lambda n: struct.pack(f"<{n}I", *[(0x9E3779B9 * (i + 1)) & 0xFFFFFFFF for i in range(n)])
    return [
        ("simple.safetensors", safetensors(
            {"0.0": ("F32", shape(3), kv(3)), "0.1": ("F32", shape(3), kv(3))},
            {"2.0": "KVCache", "1.model": "tiny"})),
        ("rotating.safetensors", safetensors(
            {"0.0": ("F32", shape(4), kv(4)), "0.1": ("F32", shape(4), kv(4))},
            {"2.0": "RotatingKVCache", "0.0.0": "0", "0.0.1": "4", "0.0.2": "6", "0.0.3": "2"})),
        ("chunked.safetensors", safetensors(
            {"0.0": ("F32", shape(2), kv(2)), "0.1": ("F32", shape(2), kv(2))},
            {"2.0": "ChunkedKVCache", "0.0.0": "8", "0.0.1": "0"})),
        # mlx layout of a 4-bit cache: per side weights [.., seq, dim*bits/32], scales, biases.
        ("quantized.safetensors", safetensors(
            {"0.0.0": ("U32", [1, 2, 2, 4], u32(16)), "0.0.1": ("F32", [1, 2, 2, 1], f32(4)),
             "0.0.2": ("F32", [1, 2, 2, 1], f32(4)), "0.1.0": ("U32", [1, 2, 2, 4], u32(16)),
             "0.1.1": ("F32", [1, 2, 2, 1], f32(4)), "0.1.2": ("F32", [1, 2, 2, 1], f32(4))},
            {"2.0": "QuantizedKVCache", "0.0.0": "2", "0.0.1": "32", "0.0.2": "4"})),
        ("two_layers_empty.safetensors", safetensors({}, {"2.0": "KVCache", "2.1": "RotatingKVCache",
            "0.1.0": "0", "0.1.1": "8", "0.1.2": "0", "0.1.3": "0"})),
    ]


# --- JSON files ----------------------------------------------------------------------

def config_seeds():
    out = [(p.name, p.read_bytes()) for p in sorted((DATA / "configs").glob("*.json"))]
    out.append(("minilm.json", (DATA / "tokenizers/all-MiniLM-L6-v2-tokenizer-and-config/config.json").read_bytes()))
    for model_type in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "phi3"):
        out.append((f"tiny_{model_type}.json", json.dumps({
            "model_type": model_type, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 64, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "tie_word_embeddings": True, "max_position_embeddings": 128,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})))
    return out


def shrink_tokenizer_json(doc):
    model = doc.get("model", {})
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        model["vocab"] = {k: v for k, v in vocab.items() if isinstance(v, int) and v < VOCAB}
        kept = set(model["vocab"])
    elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        model["vocab"] = vocab[:VOCAB]
        kept = {p[0] for p in model["vocab"]}
    else:
        kept = set()
    merges = model.get("merges")
    if isinstance(merges, list):
        def parts(m):
            return m.split(" ", 1) if isinstance(m, str) else m
        model["merges"] = [m for m in merges if len(parts(m)) == 2 and parts(m)[0] in kept
                           and parts(m)[1] in kept and parts(m)[0] + parts(m)[1] in kept][:VOCAB]
    doc["added_tokens"] = doc.get("added_tokens", [])[:20]
    return json.dumps(doc, ensure_ascii=False)


def tokenizer_json_seeds():
    out = []
    for p in sorted(DATA.glob("tokenizers/**/tokenizer.json")):
        name = p.parent.name + ".json"
        out.append((name, shrink_tokenizer_json(json.loads(p.read_text()))))
    return out


def tokenizer_config_seeds():
    out = []
    for p in sorted(DATA.glob("tokenizers/**/tokenizer_config.json")):
        if p.stat().st_size < 64 * 1024:
            out.append((p.parent.name + ".json", p.read_bytes()))
    return out


# --- tokenizer model files ------------------------------------------------------------

def varint(data, i):
    v, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def shrink_sentencepiece(data):
    """Keeps the first VOCAB pieces (field 1) of a ModelProto and every other field."""
    out, i, pieces = bytearray(), 0, 0
    while i < len(data):
        start = i
        key, i = varint(data, i)
        wire = key & 7
        if wire == 0:
            _, i = varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = varint(data, i)
            i += n
        elif wire == 5:
            i += 4
        else:
            raise ValueError("unexpected wire type")
        if key >> 3 == 1:
            pieces += 1
            if pieces > VOCAB:
                continue
        out += data[start:i]
    return bytes(out)


def sentencepiece_seeds():
    files = [DATA / "tokenizers/llama2-sentencepiece-llama2.c/tokenizer.model"]
    files += sorted((DATA / "tokenizers/mistral-sentencepiece-mistral-common").glob("*.model*"))
    files += sorted((DATA / "tokenizers/sentencepiece-unigram-botchan").glob("*.model"))
    return [(p.name, shrink_sentencepiece(p.read_bytes())) for p in files]


def tiktoken_seeds():
    lines = (DATA / "tokenizers/llama3-tiktoken-meta/tokenizer.model").read_text().splitlines()
    return [("llama3.tiktoken", "\n".join(lines[:VOCAB]) + "\n"),
            ("llama3_tail.tiktoken", "\n".join(lines[:50] + lines[-50:]) + "\n")]


GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def shrink_gguf(data):
    """Rewrites the metadata with every array cut to VOCAB items; drops the tensor infos."""
    pos = 24
    version = struct.unpack_from("<I", data, 4)[0]
    kv_count = struct.unpack_from("<Q", data, 16)[0]

    def take_str():
        nonlocal pos
        n = struct.unpack_from("<Q", data, pos)[0]
        s = data[pos:pos + 8 + n]
        pos += 8 + n
        return s

    def take_value(t):
        nonlocal pos
        if t == 8:
            return take_str()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            items = [take_value(et) for _ in range(n)]
            items = items[:VOCAB]
            return struct.pack("<IQ", et, len(items)) + b"".join(items)
        n = GGUF_SCALAR[t]
        v = data[pos:pos + n]
        pos += n
        return v

    out = b"GGUF" + struct.pack("<IQQ", version, 0, kv_count)
    for _ in range(kv_count):
        key = take_str()
        t = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        out += key + struct.pack("<I", t) + take_value(t)
    return out


def gguf_seeds():
    return [(p.name, shrink_gguf(p.read_bytes()))
            for p in sorted((DATA / "tokenizers/llama.cpp-vocab-gguf").glob("*.gguf"))]


# --- text inputs -----------------------------------------------------------------------

def jinja_seeds():
    out = []
    for p in sorted(DATA.glob("chat-templates/**/*.jinja")):
        if p.stat().st_size < 32 * 1024:
            out.append((p.parent.name + "-" + p.name, p.read_bytes()))
    return out


# Byte 0: format index (ToolCallFormat order) | 0x80 to declare tools; byte 1: chunk size.
TOOL_CALLS = [
    (0, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'),
    (0, 'Sure. {"name": "f", "arguments": {"a": 1}} <think>hmm</think>'),
    (1, "<|tool_call_start|>[get_weather(city='Paris', days=3), f(a=None)]<|tool_call_end|>"),
    (2, "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"),
    (3, "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>"),
    (4, "<start_function_call>call:get_weather{city:<escape>Paris<escape>,days:3}<end_function_call>"),
    (4, '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>'),
    (5, "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>'),
    (6, '<minimax:tool_call>\n<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n'
        "</invoke>\n</minimax:tool_call>"),
    (7, '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}'),
    (7, '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
    (8, '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'),
    (9, "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>'),
    (10, "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>"),
    (11, '<atem:function_calls><atem:invoke name="get_weather"><atem:parameter name="city">Paris'
         "</atem:parameter></atem:invoke></atem:function_calls>"),
]


def tool_call_seeds():
    out = []
    for n, (fmt, text) in enumerate(TOOL_CALLS):
        for declared in (0, 0x80):
            out.append((f"{n:02d}-{fmt}-{declared}", bytes([fmt | declared, 7]) + text.encode()))
    return out


def request_body_seeds():
    chat = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0.7, "top_p": 0.9, "max_tokens": 16, "stop": ["\n\n"], "seed": 3,
            "stream": True, "stream_options": {"include_usage": True}, "logit_bias": {"5": -100},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto"}
    tool_turn = {"messages": [{"role": "user", "content": "x"},
                              {"role": "assistant", "content": None, "tool_calls": [
                                  {"id": "c1", "type": "function",
                                   "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
                              {"role": "tool", "tool_call_id": "c1", "content": "2"}],
                 "max_completion_tokens": 4, "frequency_penalty": 0.5, "presence_penalty": 0.1}
    completion = {"prompt": "Once upon", "max_tokens": 8, "top_k": 20, "min_p": 0.05,
                  "repetition_penalty": 1.1, "stop": "END", "response_format": {"type": "text"}}
    return [("chat", b"\x00" + json.dumps(chat).encode()),
            ("chat_tools", b"\x00" + json.dumps(tool_turn).encode()),
            ("completion", b"\x01" + json.dumps(completion).encode())]


def session_seeds():
    turn = [{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "Once"},
            {"role": "assistant", "content": "upon a"}]
    return [(f"session{n}.json", json.dumps({"version": 1, "instructions": "Tell a story.",
                                             "messages": turn[:n], "template_context": ctx,
                                             "ledger": list(range(1, 1 + 4 * n))}))
            for n, ctx in ((0, None), (2, {"enable_thinking": False}), (3, None))]


VISION = pathlib.Path("tests/data/vision")


def image_seeds():
    """The decoder tests' images (every format and colour mode, EXIF, the damaged ones)."""
    files = sorted(p for p in (VISION / "decode").rglob("*") if p.is_file() and not p.name.endswith(".expected.png"))
    return [(p.relative_to(VISION / "decode").as_posix().replace("/", "_"), p.read_bytes()) for p in files]


def image_processor_seeds():
    """Each processor case's config, as preprocessor_config.json text."""
    cases = json.loads((VISION / "processors" / "cases.json").read_text())["cases"]
    return [(case["name"] + ".json", json.dumps(case["config"])) for case in cases]


if __name__ == "__main__":
    main()
