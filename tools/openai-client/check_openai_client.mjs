// lmx's server driven by the official openai npm client (the version pinned in
// package.json; `npm ci` here first): models, a greedy chat whole and streamed (the
// stream must concatenate to the same text and usage), a tool call whole and streamed,
// the tool-result round, and a 400 the client surfaces with its param.
//
//   node tools/openai-client/check_openai_client.mjs build/tests/server/scripted_server
//
// Exit 0: all passed; 1: a check failed; 77: skipped (no node_modules, no shared data).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScriptedServer } from '../../tests/server/start_scripted_server.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch {
  console.log('SKIP: the openai package is not installed (npm ci in tools/openai-client)');
  process.exit(77);
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fx = JSON.parse(readFileSync(join(root, 'tests/data/chat/tool_loop.json'), 'utf8'));
const dir = mkdtempSync(join(tmpdir(), 'lmx-openai-'));
const scriptFile = join(dir, 'script.txt');
writeFileSync(scriptFile, '');
const { server, port } = await startScriptedServer(process.argv[2], [scriptFile]);

const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'none', timeout: 60000, maxRetries: 0 });
const model = 'stories260K';
let checks = 0;
const check = (fn) => { fn(); ++checks; };

async function collect(stream) {
  const out = { content: '', finish: null, usage: null, calls: [] };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      out.content += c.delta.content ?? '';
      for (const t of c.delta.tool_calls ?? []) {
        out.calls[t.index] ??= { id: '', name: '', arguments: '' };
        const call = out.calls[t.index];
        call.id += t.id ?? '';
        call.name += t.function?.name ?? '';
        call.arguments += t.function?.arguments ?? '';
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

try {
  const models = await client.models.list();
  check(() => assert.deepEqual(models.data.map((m) => m.id), [model]));

  // Greedy chat, whole and streamed.
  const req = { model, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 30, temperature: 0 };
  const whole = await client.chat.completions.create(req);
  check(() => assert.equal(whole.choices[0].finish_reason, 'length'));
  check(() => assert.equal(whole.usage.completion_tokens, 30));
  check(() => assert.ok(whole.choices[0].message.content.length > 0));
  const streamed = await collect(await client.chat.completions.create(
      { ...req, stream: true, stream_options: { include_usage: true } }));
  check(() => assert.equal(streamed.content, whole.choices[0].message.content));
  check(() => assert.equal(streamed.finish, 'length'));
  // The same prompt again: the counts are equal, and the second asking reuses the
  // first's prompt from the prefix cache: all but the last token (the first stored its
  // prompt and reply, so the block holding the prompt's end is there to be used in part).
  const { prompt_tokens_details: wholeDetails, ...wholeCounts } = whole.usage;
  const { prompt_tokens_details: streamedDetails, ...streamedCounts } = streamed.usage;
  check(() => assert.deepEqual(streamedCounts, wholeCounts));
  check(() => assert.equal(wholeDetails.cached_tokens, 0));
  check(() => assert.equal(streamedDetails.cached_tokens, whole.usage.prompt_tokens - 1));

  // A tool call, whole and streamed.
  writeFileSync(scriptFile, fx.scripted_replies[0]);
  const ask = { model, messages: [{ role: 'user', content: fx.user }], tools: fx.tools, max_tokens: 200 };
  const called = await client.chat.completions.create(ask);
  const message = called.choices[0].message;
  check(() => assert.equal(called.choices[0].finish_reason, 'tool_calls'));
  check(() => assert.equal(message.tool_calls.length, 1));
  check(() => assert.equal(message.tool_calls[0].function.name, 'get_weather'));
  check(() => assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris', days: 0 }));
  const streamedCall = await collect(await client.chat.completions.create({ ...ask, stream: true }));
  check(() => assert.equal(streamedCall.finish, 'tool_calls'));
  check(() => assert.equal(streamedCall.content, ''));
  check(() => assert.equal(streamedCall.calls.length, 1));
  check(() => assert.equal(streamedCall.calls[0].name, 'get_weather'));
  check(() => assert.deepEqual(JSON.parse(streamedCall.calls[0].arguments), { city: 'Paris', days: 0 }));

  // The tool result goes back with the assistant message as the client returned it.
  writeFileSync(scriptFile, fx.scripted_replies[1]);
  const answer = await client.chat.completions.create({
    model, tools: fx.tools, max_tokens: 100,
    messages: [...ask.messages, message,
      { role: 'tool', tool_call_id: message.tool_calls[0].id, content: JSON.stringify({ forecast: 'sunny', celsius: 21.5 }) }],
  });
  check(() => assert.equal(answer.choices[0].message.content, fx.scripted_replies[1]));
  check(() => assert.equal(answer.choices[0].finish_reason, 'stop'));

  // An invalid request surfaces as the client's BadRequestError with the field.
  writeFileSync(scriptFile, '');
  await assert.rejects(client.chat.completions.create({ ...req, max_tokens: -1 }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'max_tokens');
  ++checks;
  console.log(`openai npm client: ${checks} checks passed`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  server.stdin.end();
  rmSync(dir, { recursive: true, force: true });
}
