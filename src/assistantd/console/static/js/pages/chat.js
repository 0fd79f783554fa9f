// The playground: pick an assistant, pick or start a thread, chat with a streamed run.
// Text arrives token by token (thread.message.delta); citations become footnotes linked to
// the cited file; code_interpreter code, logs and images show inline; the inspector lists
// each run step; requires_action gets a form for the function outputs.

import { api, fileUrl, stream } from "../api.js";
import { markdown } from "../markdown.js";
import { banner, clear, explain, field, h, when } from "../ui.js";

const FINAL = new Set(["completed", "failed", "cancelled", "expired", "incomplete"]);

const state = { assistantId: null, threadId: null, run: null, fileNames: new Map() };

async function fileName(id) {
  if (!state.fileNames.has(id)) {
    state.fileNames.set(id, api.get(`/files/${id}`).then((f) => f.filename, () => id));
  }
  return state.fileNames.get(id);
}

function fileLink(id, label) {
  return h("a", { href: "#", class: "file-link", dataset: { fileId: id }, onclick: async (e) => {
    e.preventDefault();
    try {
      const a = h("a", { href: await fileUrl(id), download: await fileName(id) });
      a.click();
    } catch (err) { banner(explain(err)); }
  } }, label);
}

function image(id) {
  const img = h("img", { alt: `Image ${id}`, class: "inline-image", dataset: { fileId: id } });
  fileUrl(id).then((u) => { img.src = u; }, () => { img.alt = `Image ${id} (unavailable)`; });
  return img;
}

/** One text part: markdown with each annotation's marker replaced by a footnote number. */
function renderText(text) {
  const notes = [];
  const markers = new Map();
  for (const ann of text.annotations || []) {
    if (!ann.text || markers.has(ann.text)) continue;
    notes.push(ann);
    markers.set(ann.text, notes.length);
  }
  const split = (plain) => {
    if (!markers.size) return [plain];
    const out = [];
    let rest = plain;
    for (;;) {
      let best = null;
      for (const [m, n] of markers) {
        const i = rest.indexOf(m);
        if (i >= 0 && (!best || i < best.i)) best = { i, m, n };
      }
      if (!best) { out.push(rest); return out; }
      out.push(rest.slice(0, best.i), h("sup", {}, h("a", { href: `#note-${best.n}`, class: "cite",
        "aria-label": `Citation ${best.n}` }, `[${best.n}]`)));
      rest = rest.slice(best.i + best.m.length);
    }
  };
  const body = markdown(text.value || "", split);
  if (!notes.length) return body;
  const list = h("ol", { class: "footnotes", "aria-label": "Citations" });
  notes.forEach((ann, i) => {
    const id = ann.file_citation?.file_id || ann.file_path?.file_id;
    const li = h("li", { id: `note-${i + 1}` }, id ? fileLink(id, id) : ann.text);
    if (id) fileName(id).then((n) => { li.querySelector("a").textContent = n; });
    list.append(li);
  });
  return [...body, list];
}

function renderContent(content) {
  return content.map((part) => {
    if (part.type === "text") return renderText(part.text);
    if (part.type === "image_file") return image(part.image_file.file_id);
    if (part.type === "image_url") return h("img", { alt: "Image", src: part.image_url.url, class: "inline-image" });
    return h("pre", {}, JSON.stringify(part));
  });
}

function bubble(role, ...children) {
  return h("article", { class: `msg ${role}`, "aria-label": `${role} message` },
    h("div", { class: "who" }, role), h("div", { class: "body" }, ...children));
}

function toolBubble(call) {
  if (call.type === "code_interpreter") {
    const ci = call.code_interpreter || {};
    return bubble("tool", h("div", { class: "tool-title" }, "code_interpreter"),
      h("pre", { class: "code" }, h("code", {}, ci.input || "")),
      (ci.outputs || []).map((o) => o.type === "logs" ? h("pre", { class: "logs" }, o.logs)
        : image(o.image.file_id)));
  }
  if (call.type === "file_search") {
    const results = call.file_search?.results || [];
    return bubble("tool", h("div", { class: "tool-title" }, `file_search: ${results.length} result(s)`));
  }
  return bubble("tool", h("div", { class: "tool-title" }, `function ${call.function.name}`),
    h("pre", {}, call.function.arguments), call.function.output ? h("pre", { class: "logs" }, call.function.output) : null);
}

function stepView(step) {
  const took = step.completed_at && step.created_at ? `${step.completed_at - step.created_at} s` : "";
  const d = step.step_details || {};
  const calls = d.type === "tool_calls" ? d.tool_calls || [] : [];
  return h("details", { class: "step", open: true, dataset: { stepId: step.id } },
    h("summary", {}, `${d.type === "tool_calls" ? "tool calls" : "message"} · ${step.status} ${took}`),
    step.usage ? h("div", { class: "muted" },
      `tokens: ${step.usage.prompt_tokens} in, ${step.usage.completion_tokens} out`) : null,
    calls.map((c) => h("div", { class: "call" }, h("strong", {}, c.type === "function" ? c.function.name : c.type),
      h("pre", {}, c.type === "function" ? `${c.function.arguments}\n→ ${c.function.output ?? "(no output yet)"}`
        : c.type === "code_interpreter" ? c.code_interpreter.input
          : JSON.stringify(c.file_search?.results?.map((r) => ({ file: r.file_name, score: r.score })) || [], null, 1)))),
    step.last_error ? h("p", { class: "error-text" }, step.last_error.message) : null);
}

export async function render(main) {
  const assistantSelect = h("select", { id: "assistant-select" });
  const threadList = h("ul", { class: "threads", "aria-label": "Threads" });
  const threadFilter = h("input", { type: "search", id: "thread-filter", placeholder: "key=value" });
  threadFilter.addEventListener("change", () => loadThreads());
  const messages = h("div", { class: "messages", "aria-live": "polite", "aria-label": "Conversation" });
  const inspector = h("div", { class: "inspector", "aria-label": "Run steps" });
  const status = h("div", { class: "run-status", role: "status" });
  const input = h("textarea", { id: "composer", rows: 3, placeholder: "Message… (Ctrl+Enter to send)" });
  const send = h("button", { type: "submit", id: "send" }, "Send");
  const cancel = h("button", { type: "button", id: "cancel", class: "secondary", disabled: true }, "Cancel run");
  const form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); sendMessage(); } },
    field("Message", input), h("div", { class: "row" }, send, cancel));
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });

  clear(main, h("div", { class: "chat" },
    h("aside", { class: "panel" }, field("Assistant", assistantSelect),
      h("div", { class: "row spread" }, h("h2", {}, "Threads"),
        h("button", { type: "button", class: "secondary", id: "new-thread", onclick: () => openThread(null) }, "New")),
      field("Filter by metadata", threadFilter), threadList),
    h("section", { class: "conversation", "aria-label": "Chat" }, status, messages, form),
    h("aside", { class: "panel" }, h("h2", {}, "Run inspector"), inspector)));

  const steps = new Map();
  const showStep = (step) => {
    steps.set(step.id, step);
    clear(inspector, [...steps.values()].map(stepView));
  };

  const threadItem = (t) => h("li", {}, h("button", { type: "button", class: "thread-link",
    "aria-current": t.id === state.threadId ? "true" : null, dataset: { threadId: t.id },
    onclick: () => openThread(t.id) }, t.metadata?.title || t.id, h("small", {}, when(t.created_at))));

  async function loadThreads(after = null) {
    try {
      const params = { limit: 30, after };
      const [key, ...value] = threadFilter.value.split("=");
      if (key.trim() && value.length) params[`metadata[${key.trim()}]`] = value.join("=").trim();
      const page = await api.get("/threads", params);
      if (!after) clear(threadList);
      threadList.querySelector(".more")?.remove();
      threadList.append(...page.data.map(threadItem));
      if (!threadList.children.length) threadList.append(h("li", { class: "muted" }, "No threads yet."));
      if (page.has_more) {
        threadList.append(h("li", { class: "more" }, h("button", { type: "button", class: "secondary",
          onclick: () => loadThreads(page.last_id) }, "More threads")));
      }
    } catch (err) { banner(explain(err, "The thread list")); }
  }

  async function openThread(id) {
    state.threadId = id;
    steps.clear();
    clear(inspector);
    clear(messages);
    status.textContent = "";
    loadThreads();
    if (!id) { input.focus(); return; }
    try {
      const page = await api.get(`/threads/${id}/messages`, { order: "asc", limit: 100 });
      for (const m of page.data) messages.append(bubble(m.role, renderContent(m.content)));
      const runs = await api.get(`/threads/${id}/runs`, { limit: 1 });
      if (runs.data[0]) {
        const s = await api.get(`/threads/${id}/runs/${runs.data[0].id}/steps`, { order: "asc", limit: 100 });
        s.data.forEach(showStep);
      }
    } catch (err) { banner(explain(err)); }
  }

  function setRunning(run) {
    state.run = run;
    const active = run && !FINAL.has(run.status) && run.status !== "requires_action";
    send.disabled = Boolean(active);
    cancel.disabled = !active;
    status.textContent = run ? `Run ${run.id}: ${run.status}` : "";
    if (run && FINAL.has(run.status) && run.usage) {
      status.textContent += ` · ${run.usage.prompt_tokens} + ${run.usage.completion_tokens} tokens`;
    }
    if (run && run.last_error) status.textContent += ` · ${run.last_error.message}`;
  }

  cancel.addEventListener("click", async () => {
    if (!state.run) return;
    try { await api.post(`/threads/${state.run.thread_id}/runs/${state.run.id}/cancel`); } catch (err) { banner(explain(err)); }
  });

  function requiresAction(run) {
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    const outputs = new Map();
    const box = h("form", { class: "card action", "aria-label": "Function outputs", onsubmit: async (e) => {
      e.preventDefault();
      box.remove();
      const tool_outputs = calls.map((c) => ({ tool_call_id: c.id, output: outputs.get(c.id).value }));
      await follow(`/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs });
    } }, h("h3", {}, "The run needs function outputs"),
    calls.map((c) => {
      const out = h("textarea", { rows: 2, class: "mono", dataset: { toolCallId: c.id } });
      outputs.set(c.id, out);
      return h("div", { class: "call" }, h("strong", {}, c.function.name), h("pre", {}, c.function.arguments),
        field(`Output of ${c.function.name}`, out));
    }), h("button", { type: "submit" }, "Submit outputs"));
    messages.append(box);
    box.querySelector("textarea").focus();
  }

  async function follow(path, body) {
    let current = null;
    let raw = "";
    const live = new Map(); // step id + call index -> the bubble of a tool call still streaming
    const liveCode = (step, delta) => {
      for (const call of delta.step_details?.tool_calls || []) {
        if (call.type !== "code_interpreter") continue;
        const key = `${step}:${call.index}`;
        if (!live.has(key)) {
          const code = h("code");
          const el = bubble("tool", h("div", { class: "tool-title" }, "code_interpreter"), h("pre", { class: "code" }, code));
          live.set(key, { el, code });
          messages.append(el);
        }
        live.get(key).code.textContent += call.code_interpreter?.input || "";
      }
    };
    const onEvent = (event, data) => {
      if (event.startsWith("thread.run.step.")) {
        if (event === "thread.run.step.delta") { liveCode(data.id, data.delta); return; }
        showStep(data);
        if (event === "thread.run.step.completed" && data.step_details.type === "tool_calls") {
          data.step_details.tool_calls.forEach((call, i) => {
            const el = toolBubble(call);
            const streamed = live.get(`${data.id}:${call.index ?? i}`);
            if (streamed) streamed.el.replaceWith(el); else messages.append(el);
          });
        }
      } else if (event.startsWith("thread.run.")) {
        setRunning(data);
        if (event === "thread.run.requires_action") requiresAction(data);
      } else if (event === "thread.message.created") {
        raw = "";
        current = bubble("assistant");
        current.classList.add("streaming");
        messages.append(current);
      } else if (event === "thread.message.delta" && current) {
        for (const part of data.delta.content || []) if (part.type === "text") raw += part.text.value || "";
        clear(current.querySelector(".body"), markdown(raw));
      } else if (event === "thread.message.completed" && current) {
        current.classList.remove("streaming");
        clear(current.querySelector(".body"), renderContent(data.content));
      } else if (event === "console.resumed") {
        status.textContent = `Reconnected after event ${data.after}`;
      } else if (event === "error") banner(data.error?.message || "Stream error");
      messages.scrollTop = messages.scrollHeight;
    };
    try { await stream(path, body, onEvent); } catch (err) { banner(explain(err)); }
    if (state.run && !state.run.required_action) setRunning(state.run);
    if (state.run && FINAL.has(state.run.status)) {
      try {
        const s = await api.get(`/threads/${state.run.thread_id}/runs/${state.run.id}/steps`, { order: "asc" });
        s.data.forEach(showStep);
      } catch { /* the streamed steps stay */ }
    }
  }

  async function sendMessage() {
    const text = input.value.trim();
    if (!text) return;
    if (!state.assistantId) { banner("Create an assistant first (Assistants page)."); return; }
    input.value = "";
    send.disabled = true;
    try {
      if (!state.threadId) {
        const t = await api.post("/threads", { metadata: { title: text.slice(0, 60) } });
        state.threadId = t.id;
        loadThreads();
      }
      await api.post(`/threads/${state.threadId}/messages`, { role: "user", content: text });
      messages.append(bubble("user", markdown(text)));
      steps.clear();
      clear(inspector);
      await follow(`/threads/${state.threadId}/runs`, { assistant_id: state.assistantId });
    } catch (err) { banner(explain(err)); }
    send.disabled = Boolean(state.run && !FINAL.has(state.run.status) && state.run.status !== "requires_action");
  }

  try {
    const page = await api.get("/assistants", { limit: 100 });
    const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("assistant");
    clear(assistantSelect, page.data.map((a) => h("option", { value: a.id }, `${a.name || "(unnamed)"} · ${a.model}`)));
    if (!page.data.length) assistantSelect.append(h("option", { value: "" }, "No assistants yet"));
    state.assistantId = page.data.some((a) => a.id === wanted) ? wanted : (page.data[0]?.id || null);
    if (state.assistantId) assistantSelect.value = state.assistantId;
  } catch (err) { banner(explain(err)); }
  assistantSelect.addEventListener("change", () => { state.assistantId = assistantSelect.value || null; });
  await openThread(state.threadId);
}
