// The chat page: sends the conversation to POST /v1/chat/completions with stream: true,
// reads the server-sent events as they come and renders the reply as Markdown
// (markdown.js escapes the text first). Stop aborts the fetch: the connection closes and
// the server ends the generation at its next chunk. Errors (an OpenAI-shaped body, an
// error event mid-stream, a network failure) show in the red box.
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const messagesEl = $("messages"), promptEl = $("prompt"), sendEl = $("send"), stopEl = $("stop");
const errorEl = $("error"), modelEl = $("model"), keyEl = $("api-key");

let history = [];      // {role, content} as the API takes them
let modelId = null;
let controller = null; // the running request's AbortController

function setState(state) {
  document.body.dataset.state = state;  // "idle" | "streaming" (tests wait on it)
  sendEl.disabled = state === "streaming";
  stopEl.disabled = state !== "streaming";
}

function showError(text) {
  errorEl.textContent = text;  // text, never markup
  errorEl.hidden = !text;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyEl.value) h.Authorization = "Bearer " + keyEl.value;
  return h;
}

// An OpenAI-shaped error body as one line: "401 invalid_api_key: message".
async function errorOf(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    if (body && body.error) detail = (body.error.code ? body.error.code + ": " : "") + body.error.message;
  } catch { /* not JSON: keep the status text */ }
  return `${response.status} ${detail}`;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    if (!r.ok) throw new Error(await errorOf(r));
    const body = await r.json();
    modelId = body.data && body.data.length ? body.data[0].id : null;
    modelEl.textContent = modelId || "(no model)";
    showError("");
  } catch (e) {
    modelEl.textContent = "(unknown model)";
    showError("Could not list the models: " + e.message);
  }
}

function addMessage(role, text) {
  const el = document.createElement("div");
  el.className = "message " + role;
  const roleEl = document.createElement("div");
  roleEl.className = "role";
  roleEl.textContent = role;
  const content = document.createElement("div");
  content.className = "content";
  if (role === "user") content.textContent = text; else content.innerHTML = renderMarkdown(text);
  el.append(roleEl, content);
  messagesEl.append(el);
  messagesEl.scrollTop = messagesEl.scrollHeight;
  return el;
}

// Feeds the event-stream text to onData once per complete "data:" event.
function sseReader(onData) {
  let buffer = "";
  return (text) => {
    buffer += text;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onData(data);
    }
  };
}

async function send(text) {
  showError("");
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  const content = reply.querySelector(".content");
  let answer = "", reasoning = "";
  const render = () => {
    content.innerHTML = (reasoning ? `<div class="reasoning">${renderMarkdown(reasoning)}</div>` : "") + renderMarkdown(answer);
    messagesEl.scrollTop = messagesEl.scrollHeight;
  };
  controller = new AbortController();
  setState("streaming");
  try {
    const body = { messages: history, stream: true };
    if (modelId) body.model = modelId;
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) throw new Error(await errorOf(r));
    const decoder = new TextDecoder();
    const feed = sseReader((data) => {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error("the server stopped the reply: " + chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (!delta) return;
      if (delta.content) answer += delta.content;
      if (delta.reasoning_content) reasoning += delta.reasoning_content;
      render();
    });
    const reader = r.body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    if (e.name === "AbortError") reply.classList.add("stopped");
    else showError(e.message);
  } finally {
    controller = null;
    // What was shown stays in the conversation, stopped or not.
    if (answer) history.push({ role: "assistant", content: answer });
    else if (!reply.classList.contains("stopped")) reply.remove();
    setState("idle");
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = promptEl.value.trim();
  if (!text || controller) return;
  promptEl.value = "";
  send(text);
});
promptEl.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
stopEl.addEventListener("click", () => controller && controller.abort());
$("clear").addEventListener("click", () => {
  if (controller) controller.abort();
  history = [];
  messagesEl.replaceChildren();
  showError("");
});
keyEl.addEventListener("change", loadModel);

setState("idle");
loadModel();
