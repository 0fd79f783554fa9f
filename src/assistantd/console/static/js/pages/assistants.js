// Assistants: list, create, edit, delete. Function tools are edited as JSON and checked
// before they are sent; file_search takes vector store ids, code_interpreter file ids.

import { api } from "../api.js";
import { banner, clear, explain, field, h, table, when } from "../ui.js";

const FUNCTION_EXAMPLE = `[
  {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
      "type": "object",
      "properties": {"city": {"type": "string"}},
      "required": ["city"]
    }
  }
]`;

/** The function definitions in `text`, or an error message naming what is wrong. */
export function parseFunctions(text) {
  if (!text.trim()) return { functions: [] };
  let value;
  try { value = JSON.parse(text); } catch (err) { return { error: `Not JSON: ${err.message}` }; }
  if (!Array.isArray(value)) value = [value];
  for (const [i, fn] of value.entries()) {
    if (!fn || typeof fn !== "object") return { error: `Function ${i + 1} is not an object.` };
    if (!/^[a-zA-Z0-9_-]{1,64}$/.test(fn.name || "")) {
      return { error: `Function ${i + 1}: 'name' must be 1–64 letters, digits, _ or -.` };
    }
    const p = fn.parameters;
    if (p !== undefined && (typeof p !== "object" || Array.isArray(p) || p === null)) {
      return { error: `Function '${fn.name}': 'parameters' must be a JSON Schema object.` };
    }
    if (p && p.type !== undefined && p.type !== "object") {
      return { error: `Function '${fn.name}': 'parameters.type' must be "object".` };
    }
  }
  return { functions: value };
}

const ids = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

function editor(root, existing, models, done) {
  const a = existing || { tools: [], tool_resources: {}, temperature: 1, top_p: 1, response_format: "auto" };
  const tools = a.tools || [];
  const has = (t) => tools.some((x) => x.type === t);
  const fns = tools.filter((t) => t.type === "function").map((t) => t.function);
  const inputs = {
    name: h("input", { value: a.name || "", maxlength: 256 }),
    model: h("input", { value: a.model || (models[0] || ""), required: true, list: "model-list" }),
    instructions: h("textarea", { rows: 4 }, a.instructions || ""),
    temperature: h("input", { type: "number", min: 0, max: 2, step: 0.1, value: a.temperature ?? 1 }),
    top_p: h("input", { type: "number", min: 0, max: 1, step: 0.05, value: a.top_p ?? 1 }),
    response_format: h("textarea", { rows: 2 },
      typeof a.response_format === "string" ? a.response_format : JSON.stringify(a.response_format)),
    file_search: h("input", { type: "checkbox", checked: has("file_search") }),
    stores: h("input", { value: (a.tool_resources?.file_search?.vector_store_ids || []).join(", "),
      placeholder: "vs_…" }),
    code_interpreter: h("input", { type: "checkbox", checked: has("code_interpreter") }),
    ci_files: h("input", { value: (a.tool_resources?.code_interpreter?.file_ids || []).join(", "),
      placeholder: "file-…" }),
    functions: h("textarea", { rows: 8, spellcheck: false, class: "mono",
      placeholder: FUNCTION_EXAMPLE }, fns.length ? JSON.stringify(fns, null, 2) : ""),
  };
  const fnError = h("p", { class: "error-text", role: "status", "aria-live": "polite" });
  inputs.functions.addEventListener("input", () => {
    fnError.textContent = parseFunctions(inputs.functions.value).error || "";
  });
  const form = h("form", { class: "card", "aria-label": existing ? "Edit assistant" : "New assistant",
    onsubmit: async (e) => {
      e.preventDefault();
      const parsed = parseFunctions(inputs.functions.value);
      if (parsed.error) { fnError.textContent = parsed.error; inputs.functions.focus(); return; }
      let rf = inputs.response_format.value.trim() || "auto";
      if (rf !== "auto") {
        try { rf = JSON.parse(rf); } catch { banner("response_format must be \"auto\" or a JSON object."); return; }
      }
      const body = {
        name: inputs.name.value || null, model: inputs.model.value,
        instructions: inputs.instructions.value || null,
        temperature: Number(inputs.temperature.value), top_p: Number(inputs.top_p.value),
        response_format: rf,
        tools: [
          ...(inputs.file_search.checked ? [{ type: "file_search" }] : []),
          ...(inputs.code_interpreter.checked ? [{ type: "code_interpreter" }] : []),
          ...parsed.functions.map((f) => ({ type: "function", function: f })),
        ],
        tool_resources: {
          file_search: { vector_store_ids: ids(inputs.stores.value) },
          code_interpreter: { file_ids: ids(inputs.ci_files.value) },
        },
      };
      try {
        const saved = existing ? await api.post(`/assistants/${existing.id}`, body) : await api.post("/assistants", body);
        banner(`Saved ${saved.name || saved.id}.`, "ok");
        done(saved);
      } catch (err) { banner(explain(err)); }
    } },
  h("h2", {}, existing ? `Edit ${existing.name || existing.id}` : "New assistant"),
  h("datalist", { id: "model-list" }, models.map((m) => h("option", { value: m }))),
  h("div", { class: "grid2" }, field("Name", inputs.name), field("Model", inputs.model)),
  field("Instructions", inputs.instructions),
  h("div", { class: "grid2" }, field("Temperature", inputs.temperature), field("top_p", inputs.top_p)),
  field("Response format", inputs.response_format, "auto, {\"type\":\"json_object\"} or a json_schema object"),
  h("fieldset", {}, h("legend", {}, "Tools"),
    h("label", { class: "check" }, inputs.file_search, " file_search"),
    field("Vector store ids", inputs.stores),
    h("label", { class: "check" }, inputs.code_interpreter, " code_interpreter"),
    field("Code interpreter file ids", inputs.ci_files),
    field("Functions (JSON array of definitions)", inputs.functions), fnError),
  h("div", { class: "row" }, h("button", { type: "submit" }, existing ? "Save" : "Create"),
    h("button", { type: "button", class: "secondary", onclick: () => done(null) }, "Cancel")));
  clear(root, form);
  inputs.name.focus();
}

export async function render(main) {
  const list = h("div");
  const side = h("div");
  let models = [];
  const open = (a) => editor(side, a, models, () => { clear(side); load(); });
  clear(main, h("div", { class: "page" },
    h("div", { class: "row spread" }, h("h1", {}, "Assistants"),
      h("button", { type: "button", id: "new-assistant", onclick: () => open(null) }, "New assistant")),
    list, side));
  try { models = (await api.get("/models")).data.map((m) => m.id); } catch { models = []; }
  async function load() {
    try {
      const page = await api.get("/assistants", { limit: 100 });
      clear(list, table([
        { label: "Name", cell: (a) => h("a", { href: `#/chat?assistant=${a.id}` }, a.name || "(unnamed)") },
        { label: "Model", cell: (a) => a.model },
        { label: "Tools", cell: (a) => a.tools.map((t) => t.type === "function" ? t.function.name : t.type).join(", ") || "—" },
        { label: "Created", cell: (a) => when(a.created_at) },
        { label: "", cell: (a) => h("div", { class: "row" },
          h("button", { type: "button", class: "secondary", onclick: () => open(a) }, "Edit"),
          h("button", { type: "button", class: "danger", "aria-label": `Delete ${a.name || a.id}`, onclick: async () => {
            if (!confirm(`Delete ${a.name || a.id}?`)) return;
            try { await api.del(`/assistants/${a.id}`); load(); } catch (err) { banner(explain(err)); }
          } }, "Delete")) },
      ], page.data, "No assistants yet: create one."));
    } catch (err) { banner(explain(err)); }
  }
  await load();
}
