#!/usr/bin/env python3
"""lmx vs Hugging Face `tokenizers`: encode / decode throughput and load time on the
same tokenizer.json files and the same text, single-threaded on both sides, with the
ids checked equal. Run through tools/bench/tokenizer_vs_hf.sh (it builds the lmx
binary and sets RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false).

The text is a fixed corpus built from ../shared/data (chat templates and configs as
code, the Markdown/licence files as English prose, the multilingual test strings of
the tokenizer goldens, and sentences drawn per script from the vocabularies of the
shared tokenizer.json files), cut into chunks of at most 4 KB at line breaks; both
sides encode the chunks one call each (HF's encode_batch is reported apart).
Timings: best pass of >= 2 passes, until --min-seconds are spent (at most 5).
"""
import argparse
import array
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata

# Single-threaded reference (set before `tokenizers` is imported).
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# name -> (root, path of tokenizer.json under it)
TOKENIZERS = [
    ("llama3", "npm", "llama3/tokenizer.json"),
    ("qwen3", "npm", "qwen3/tokenizer.json"),
    ("gemma3", "npm", "gemma3/tokenizer.json"),
    ("deepseek_v3", "npm", "deepseek_v3/tokenizer.json"),
    ("gptoss", "npm", "gptoss/tokenizer.json"),
    ("mistral (npm llama2)", "npm", "llama2/tokenizer.json"),
    ("phi3_mini (Llama-2 SPM)", "shared", "tokenizers/ortx-testdata/phi-3-mini/tokenizer.json"),
]
CHUNK = 4096
SCRIPTS = ["CYRILLIC", "GREEK", "ARABIC", "HEBREW", "CJK", "HIRAGANA", "KATAKANA",
           "HANGUL", "THAI", "DEVANAGARI", "LATIN"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- corpus

def chunks_of(text):
    """Pieces of at most CHUNK bytes, cut after a newline where possible."""
    out, cur = [], []
    size = 0
    for line in text.splitlines(keepends=True):
        b = len(line.encode("utf-8"))
        if size + b > CHUNK and cur:
            out.append("".join(cur))
            cur, size = [], 0
        while b > CHUNK:  # a very long line: cut at a character boundary
            head = line.encode("utf-8")[:CHUNK].decode("utf-8", errors="ignore")
            out.append(head)
            line = line[len(head):]
            b = len(line.encode("utf-8"))
        cur.append(line)
        size += b
    if cur:
        out.append("".join(cur))
    return [c for c in out if c]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().replace("\0", "")


def script_of(word):
    try:
        return unicodedata.name(word[0]).split()[0]
    except ValueError:
        return None


def vocab_words(shared):
    """Word-like vocabulary entries of the shared tokenizer.json files, by script."""
    byte_dec = {}
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    for b in range(256):
        if b in keep:
            byte_dec[chr(b)] = b
        else:
            byte_dec[chr(256 + extra)] = b
            extra += 1
    words = {s: set() for s in SCRIPTS}
    for rel, byte_level in [("ortx-testdata/llama2", False), ("ortx-testdata/phi-3-mini", False),
                            ("ortx-testdata/falcon-tokenizer", True),
                            ("ortx-testdata/tokenizer/t5-small", False)]:
        path = os.path.join(shared, "tokenizers", rel, "tokenizer.json")
        if not os.path.exists(path):
            log(f"note: corpus source missing: {path}")
            continue
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)["model"]["vocab"]
        pieces = vocab.keys() if isinstance(vocab, dict) else [v[0] for v in vocab]
        for p in pieces:
            if byte_level:
                try:
                    p = bytes(byte_dec[c] for c in p).decode("utf-8")
                except (KeyError, UnicodeDecodeError):
                    continue
            w = p.replace("\u2581", " ").replace("\u0120", " ").strip()
            if len(w) < 1 or not w[0].isalpha():
                continue
            s = script_of(w)
            if s in words:
                words[s].add(w)
    return {s: sorted(ws) for s, ws in words.items() if ws}


def real_strings(repo, shared):
    out = []
    corpus = os.path.join(repo, "tests", "data", "tokenizer", "corpus.json")
    if os.path.exists(corpus):
        with open(corpus, encoding="utf-8") as f:
            out += json.load(f)["strings"]
    for inp in sorted(glob.glob(os.path.join(shared, "tokenizers", "llama.cpp-vocab-gguf", "*.inp"))):
        out += read(inp).split("\n__ggml_vocab_test__\n")
    golden = os.path.join(shared, "tokenizers", "golden-swift-transformers", "tokenizer_tests.json")
    if os.path.exists(golden):
        with open(golden, encoding="utf-8") as f:
            g = json.load(f)
        for cases in (g.values() if isinstance(g, dict) else []):
            for c in (cases if isinstance(cases, list) else []):
                if isinstance(c, dict) and isinstance(c.get("input"), str):
                    out.append(c["input"])
    return [s.replace("\0", "") for s in out if s]


def build_corpus(repo, shared, megabytes):
    rng = random.Random(20240601)
    code = []
    for pattern in ("chat-templates/**/*.jinja", "configs/*.json"):
        for p in sorted(glob.glob(os.path.join(shared, pattern), recursive=True)):
            code += chunks_of(read(p))
    prose = []
    for p in sorted(glob.glob(os.path.join(shared, "**", "*.md"), recursive=True) +
                    glob.glob(os.path.join(shared, "**", "LICENSE*"), recursive=True)):
        prose += chunks_of(read(p))
    strings = real_strings(repo, shared)
    words = vocab_words(shared)
    if not code or not prose or not words:
        sys.exit(f"error: corpus sources missing under {shared} (code {len(code)}, "
                 f"prose {len(prose)}, scripts {len(words)})")
    extras = ["2024", "3.14", "1,000", "😀", "👍🏽", "🦙", "—", "«", "»", "(", ")", "\n", "\t"]

    def sentence():
        s = rng.choice(list(words))
        join = "" if s in ("CJK", "HIRAGANA", "KATAKANA", "THAI") else " "
        parts = [rng.choice(words[s]) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(extras))
        end = rng.choice([". ", "。", "! ", "? ", "، ", "\n"])
        return join.join(parts) + end

    target = megabytes * 1_000_000
    budget = {"code": 0.35 * target, "prose": 0.15 * target, "multi": 0.5 * target}
    out, sizes = [], {k: 0 for k in budget}

    def take(kind, chunk):
        out.append(chunk)
        sizes[kind] += len(chunk.encode("utf-8"))

    while sizes["code"] < budget["code"]:
        take("code", code[rng.randrange(len(code))])
    while sizes["prose"] < budget["prose"]:
        take("prose", prose[rng.randrange(len(prose))])
    while sizes["multi"] < budget["multi"]:
        text = "".join(sentence() for _ in range(rng.randint(5, 30)))
        text += " " + rng.choice(strings)
        take("multi", text.encode("utf-8")[:CHUNK].decode("utf-8", errors="ignore"))
    rng.shuffle(out)
    return out, sizes


# ---------------------------------------------------------------- sides

def best_pass(min_seconds, fn):
    best, spent, pass_ = 1e30, 0.0, 0
    while pass_ < 5 and (pass_ < 2 or spent < min_seconds):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, pass_ = min(best, dt), spent + dt, pass_ + 1
    return best


def run_lmx(binary, tok_path, chunks_path, work, min_seconds):
    ids_path, dec_path = os.path.join(work, "lmx.ids"), os.path.join(work, "lmx.decoded")
    r = subprocess.run([binary, "--compare", tok_path, chunks_path, "--min-seconds",
                        str(min_seconds), "--ids", ids_path, "--decoded", dec_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"lmx failed: {r.stderr.strip() or r.stdout.strip()}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    raw = array.array("i")
    with open(ids_path, "rb") as f:
        raw.frombytes(f.read())
    ids, k = [], 0
    while k < len(raw):
        n = raw[k]
        ids.append(raw[k + 1:k + 1 + n].tolist())
        k += 1 + n
    with open(dec_path, "rb") as f:
        decoded = f.read().decode("utf-8", errors="replace").split("\0")
    return res, ids, decoded


def run_hf(tok_path, chunks, min_seconds):
    from tokenizers import Tokenizer
    load = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(tok_path)
        load = min(load, time.perf_counter() - t0)
    tok.no_truncation()
    tok.no_padding()
    ids = [None] * len(chunks)

    def enc():
        for k, c in enumerate(chunks):
            ids[k] = tok.encode(c, add_special_tokens=False).ids
    encode_s = best_pass(min_seconds, enc)
    decoded = [None] * len(chunks)

    def dec():
        for k, v in enumerate(ids):
            decoded[k] = tok.decode(v, skip_special_tokens=False)
    decode_s = best_pass(min_seconds, dec)
    t0 = time.perf_counter()
    tok.encode_batch(chunks, add_special_tokens=False)
    batch_s = time.perf_counter() - t0
    return {"load_ms": load * 1e3, "encode_s": encode_s, "decode_s": decode_s,
            "batch_s": batch_s}, ids, decoded


# ---------------------------------------------------------------- report

def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", required=True, help="path of the tokenizer_bench binary")
    ap.add_argument("--repo", default=os.getcwd())
    ap.add_argument("--shared", default=None, help="../shared/data (default: beside the repo)")
    ap.add_argument("--npm", default=None, help="default: <repo>/.cache/npm-tokenizers")
    ap.add_argument("--mb", type=float, default=4.0, help="corpus size in MB")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--only", default="", help="comma-separated names (prefix match)")
    ap.add_argument("--out", default=os.environ.get("OUT", ""), help="writes tokenizer_bench.md there")
    args = ap.parse_args()
    repo = os.path.abspath(args.repo)
    shared = args.shared or next((p for p in (os.path.join(repo, "..", "shared", "data"),
                                              os.path.join(repo, "shared", "data"))
                                  if os.path.isdir(p)), os.path.join(repo, "..", "shared", "data"))
    npm = args.npm or os.path.join(repo, ".cache", "npm-tokenizers")
    roots = {"npm": npm, "shared": shared}

    try:
        import tokenizers
        hf_version = tokenizers.__version__
    except ImportError as e:
        hf_version = None
        log(f"ERROR: HF `tokenizers` is not importable ({e}): only the lmx half runs. "
            "Run this on the GPU machine (pip tokenizers present) for the comparison.")

    work = tempfile.mkdtemp(prefix="tokbench-")
    try:
        run_all(args, repo, shared, roots, hf_version, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args, repo, shared, roots, hf_version, work):
    t0 = time.perf_counter()
    chunks, sizes = build_corpus(repo, shared, args.mb)
    chunks_path = os.path.join(work, "corpus.chunks")
    with open(chunks_path, "wb") as f:
        f.write("\0".join(chunks).encode("utf-8"))
    total = sum(sizes.values())
    log(f"corpus: {len(chunks)} chunks, {total / 1e6:.2f} MB "
        f"(code {sizes['code'] / 1e6:.2f}, prose {sizes['prose'] / 1e6:.2f}, "
        f"multilingual {sizes['multi'] / 1e6:.2f}) in {time.perf_counter() - t0:.1f} s")

    rows, problems = [], []
    for name, root, rel in TOKENIZERS:
        if args.only and not any(name.startswith(o) for o in args.only.split(",")):
            continue
        path = os.path.join(roots[root], rel)
        if not os.path.exists(path):
            problems.append(f"{name}: MISSING {path}")
            log(f"{name}: MISSING {path} (skipped)")
            continue
        log(f"{name}: {path}")
        row = {"name": name}
        try:
            lmx, lmx_ids, lmx_dec = run_lmx(args.bench, path, chunks_path, work, args.min_seconds)
            row.update(lmx_load=lmx["load_ms"], lmx_enc=total / lmx["encode_s"] / 1e6,
                       lmx_dec=total / lmx["decode_s"] / 1e6, tokens=lmx["tokens"])
        except (RuntimeError, OSError, ValueError) as e:
            problems.append(f"{name}: {e}")
            log(f"  {e}")
            rows.append(row)
            continue
        if hf_version:
            try:
                hf, hf_ids, hf_dec = run_hf(path, chunks, args.min_seconds)
            except Exception as e:  # HF raises its own exception types on bad files
                problems.append(f"{name}: HF failed: {e}")
                log(f"  HF failed: {e}")
                rows.append(row)
                continue
            row.update(hf_load=hf["load_ms"], hf_enc=total / hf["encode_s"] / 1e6,
                       hf_dec=total / hf["decode_s"] / 1e6, hf_batch=total / hf["batch_s"] / 1e6)
            bad = [k for k in range(len(chunks)) if lmx_ids[k] != hf_ids[k]]
            bad_dec = [k for k in range(len(chunks)) if lmx_dec[k] != hf_dec[k]]
            row["ids"] = "equal" if not bad else f"{len(bad)}/{len(chunks)} chunks differ"
            row["dec"] = "equal" if not bad_dec else f"{len(bad_dec)} differ"
            for k in bad[:3]:
                a, b = lmx_ids[k], hf_ids[k]
                at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
                problems.append(f"{name}: chunk {k} ids differ at token {at}: lmx {a[at:at + 8]} "
                                f"hf {b[at:at + 8]}; text near: {chunks[k][:80]!r}")
        rows.append(row)
        log(f"  done ({time.perf_counter() - t0:.0f} s so far)")

    header = ("| tokenizer | lmx encode MB/s | HF encode MB/s | ratio | lmx decode MB/s | "
              "HF decode MB/s | ratio | lmx load ms | HF load ms | ids equal | "
              "HF encode_batch MB/s (1 thread) |")
    lines = [f"Corpus {total / 1e6:.2f} MB in {len(chunks)} chunks of <= {CHUNK} B "
             f"(code {sizes['code'] / 1e6:.1f} MB, prose {sizes['prose'] / 1e6:.1f} MB, "
             f"multilingual {sizes['multi'] / 1e6:.1f} MB); one call per chunk, single thread, "
             f"best of >= 2 passes; HF tokenizers {hf_version or 'NOT INSTALLED'}; "
             f"{os.cpu_count()} cores visible.", "", header,
             "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["name"], fmt(r.get("lmx_enc"), ".2f"), fmt(r.get("hf_enc"), ".2f"),
            fmt(ratio(r.get("lmx_enc"), r.get("hf_enc")), ".2f"), fmt(r.get("lmx_dec"), ".1f"),
            fmt(r.get("hf_dec"), ".1f"), fmt(ratio(r.get("lmx_dec"), r.get("hf_dec")), ".2f"),
            fmt(r.get("lmx_load"), ".0f"), fmt(r.get("hf_load"), ".0f"),
            r.get("ids", "n/a") + ("" if r.get("dec", "equal") == "equal" else f", decode {r['dec']}"),
            fmt(r.get("hf_batch"), ".2f")]) + " |")
    if problems:
        lines += ["", "Problems:"] + [f"- {p}" for p in problems]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        path = os.path.join(args.out, "tokenizer_bench.md")
        with open(path, "w", encoding="utf-8") as f:
            f.write(report)
        log(f"wrote {path}")
    if not hf_version:
        sys.exit(3)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
