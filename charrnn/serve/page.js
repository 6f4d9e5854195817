// The playground of `charrnn serve`: streams completions from POST /v1/completions (each
// character coloured by its probability, from logprobs) and offers rnn-writer's writing mode
// through GET /generate. No dependencies; it talks only to the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const LOOKBACK = 256; // characters before the cursor sent as start_text (rnn-writer: 48..256)
const SUGGESTIONS = 3; // continuations asked for per Tab
let apiKey = sessionStorage.getItem("charrnn-key") || "";
let running = null; // the AbortController of the completion being streamed

function status(text) { $("status").textContent = text || ""; }

// fetch with the API key; a 401 asks for the key once, then retries
async function call(url, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (apiKey) headers.Authorization = "Bearer " + apiKey;
  const response = await fetch(url, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    await askKey();
    return call(url, options);
  }
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function askKey() {
  $("keybox").style.display = "block";
  $("key").focus();
  return new Promise((resolve) => {
    $("keysave").onclick = () => {
      apiKey = $("key").value.trim();
      sessionStorage.setItem("charrnn-key", apiKey);
      $("keybox").style.display = "none";
      resolve();
    };
  });
}

async function loadModels() {
  const models = (await (await call("v1/models")).json()).data;
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = `${m.id} (${m.cell} ${m.num_layers}×${m.hidden_size})`;
    $("model").appendChild(option);
  }
}

function options() {
  const body = {
    model: $("model").value,
    temperature: Number($("temperature").value),
    max_tokens: Number($("max_tokens").value),
  };
  const topP = Number($("top_p").value);
  if (topP > 0 && topP < 1) body.top_p = topP;
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  return body;
}

// background colour for a character of probability p: red (unlikely) to green (likely)
function colour(p) { return `hsl(${Math.round(120 * p)}, 80%, 85%)`; }

function addChars(out, logprobs, text) {
  if (!logprobs) { out.append(text); return; }
  logprobs.tokens.forEach((ch, i) => {
    const span = document.createElement("span");
    const p = Math.exp(logprobs.token_logprobs[i]);
    span.textContent = ch;
    span.style.background = colour(p);
    span.title = `p = ${p.toFixed(3)}; ` + Object.entries(logprobs.top_logprobs[i])
      .map(([c, lp]) => `${JSON.stringify(c)} ${Math.exp(lp).toFixed(3)}`).join(", ");
    out.appendChild(span);
  });
}

// read server-sent events: calls onData(object) per `data:` line until [DONE]
async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 2);
      if (!line.startsWith("data: ")) continue;
      const data = line.slice(6);
      if (data === "[DONE]") return;
      onData(JSON.parse(data));
    }
  }
}

async function generate() {
  const out = $("output");
  out.textContent = "";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = $("prompt").value;
  out.appendChild(prompt);
  running = new AbortController();
  $("generate").disabled = true;
  $("stop").disabled = false;
  status("");
  try {
    const body = Object.assign(options(), { prompt: $("prompt").value, stream: true, logprobs: 1 });
    const response = await call("v1/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: running.signal,
    });
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      for (const choice of chunk.choices) addChars(out, choice.logprobs, choice.text);
    });
  } catch (e) {
    if (e.name !== "AbortError") status(e.message);
  } finally {
    running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
  }
}

// ---- writing mode: rnn-writer's Tab, arrows, Enter, Esc over GET /generate

const writer = { suggestions: [], index: 0, start: 0, length: 0, active: false };

async function suggest() {
  const editor = $("editor");
  const cursor = editor.selectionStart;
  const before = editor.value.slice(Math.max(0, cursor - LOOKBACK), cursor);
  const model = encodeURIComponent($("model").value);
  $("suggestions").textContent = "…";
  try {
    const url = `generate?start_text=${encodeURIComponent(before)}&n=${SUGGESTIONS}&model=${model}`;
    const body = await (await call(url)).json();
    if (decodeURIComponent(body.start_text) !== before) return; // an outdated reply
    Object.assign(writer, { suggestions: body.completions, index: 0, start: cursor, length: 0,
                            active: true });
    show();
  } catch (e) {
    $("suggestions").textContent = "";
    status(e.message);
  }
}

// put the current suggestion after the cursor, selected, and list them all
function show() {
  const editor = $("editor");
  const text = writer.suggestions[writer.index];
  const v = editor.value;
  editor.value = v.slice(0, writer.start) + text + v.slice(writer.start + writer.length);
  writer.length = text.length;
  editor.setSelectionRange(writer.start, writer.start + text.length);
  const list = $("suggestions");
  list.textContent = "";
  writer.suggestions.forEach((s, i) => {
    const item = document.createElement("div");
    item.textContent = `${i + 1}. ${s}`;
    if (i === writer.index) item.className = "current";
    list.appendChild(item);
  });
}

function finish(keep) {
  const editor = $("editor");
  if (!keep) {
    const v = editor.value;
    editor.value = v.slice(0, writer.start) + v.slice(writer.start + writer.length);
  }
  const at = writer.start + (keep ? writer.length : 0);
  editor.setSelectionRange(at, at);
  Object.assign(writer, { suggestions: [], active: false, length: 0 });
  $("suggestions").textContent = "";
}

function onEditorKey(event) {
  if (event.key === "Tab") {
    event.preventDefault();
    if (writer.active) finish(true);
    else suggest();
    return;
  }
  if (!writer.active || ["Shift", "Control", "Alt", "Meta"].includes(event.key)) return;
  const moves = { ArrowDown: 1, ArrowUp: -1 };
  if (event.key in moves) {
    event.preventDefault();
    const n = writer.suggestions.length;
    writer.index = (writer.index + moves[event.key] + n) % n;
    show();
  } else if (event.key === "Enter") {
    event.preventDefault();
    finish(true);
  } else if (event.key === "Escape") {
    event.preventDefault();
    finish(false);
  } else {
    finish(true); // typing on keeps the suggestion, as rnn-writer does
  }
}

$("generate").onclick = generate;
$("stop").onclick = () => running && running.abort();
$("editor").addEventListener("keydown", onEditorKey);
loadModels().catch((e) => status(e.message));
