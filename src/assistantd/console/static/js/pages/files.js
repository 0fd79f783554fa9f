// Files and vector stores: upload with progress, attach to a store, watch ingestion, search.

import { api, upload } from "../api.js";
import { banner, clear, explain, field, h, table, when } from "../ui.js";

export async function render(main) {
  const fileInput = h("input", { type: "file", id: "file-input" });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const files = h("div");
  const stores = h("div");
  const storeName = h("input", { id: "store-name", placeholder: "docs" });
  const detail = h("div");
  clear(main, h("div", { class: "page" }, h("h1", {}, "Files and vector stores"),
    h("form", { class: "card row", onsubmit: async (e) => {
      e.preventDefault();
      if (!fileInput.files[0]) return;
      progress.hidden = false;
      try {
        const f = await upload(fileInput.files[0], "assistants", (p) => { progress.value = p; });
        banner(`Uploaded ${f.filename} (${f.id}).`, "ok");
        fileInput.value = "";
        loadFiles();
      } catch (err) { banner(explain(err)); }
      progress.hidden = true;
    } }, field("File", fileInput), progress, h("button", { type: "submit" }, "Upload")),
    h("h2", {}, "Files"), files,
    h("div", { class: "row spread" }, h("h2", {}, "Vector stores"),
      h("form", { class: "row", onsubmit: async (e) => {
        e.preventDefault();
        try { await api.post("/vector_stores", { name: storeName.value || null }); storeName.value = ""; loadStores(); }
        catch (err) { banner(explain(err)); }
      } }, field("New store", storeName), h("button", { type: "submit" }, "Create"))),
    stores, detail));

  let fileRows = [];
  async function loadFiles() {
    try {
      fileRows = (await api.get("/files", { limit: 100 })).data;
      clear(files, table([
        { label: "Name", cell: (f) => f.filename }, { label: "Id", cell: (f) => h("code", {}, f.id) },
        { label: "Bytes", cell: (f) => f.bytes }, { label: "Purpose", cell: (f) => f.purpose },
        { label: "Created", cell: (f) => when(f.created_at) },
      ], fileRows, "No files yet."));
    } catch (err) { banner(explain(err)); }
  }

  async function openStore(vs) {
    const pick = h("select", { "aria-label": "File to attach" }, fileRows.map((f) => h("option", { value: f.id }, f.filename)));
    const q = h("input", { type: "search", placeholder: "What to look for" });
    const results = h("div");
    const list = h("div");
    const refresh = async () => {
      const page = await api.get(`/vector_stores/${vs.id}/files`, { limit: 100 });
      clear(list, table([
        { label: "File", cell: (f) => fileRows.find((r) => r.id === f.id)?.filename || h("code", {}, f.id) },
        { label: "Status", cell: (f) => f.status },
        { label: "Error", cell: (f) => f.last_error?.message || "" },
      ], page.data, "No files in this store."));
      if (page.data.some((f) => f.status === "in_progress")) setTimeout(() => refresh().catch(() => {}), 1000);
      else if (detail.isConnected) loadStores(); // the store's file counts changed
    };
    clear(detail, h("section", { class: "card" }, h("h2", {}, `Store ${vs.name || vs.id}`),
      h("form", { class: "row", onsubmit: async (e) => {
        e.preventDefault();
        try { await api.post(`/vector_stores/${vs.id}/files`, { file_id: pick.value }); refresh(); }
        catch (err) { banner(explain(err)); }
      } }, pick, h("button", { type: "submit" }, "Attach")), list,
      h("form", { class: "row", onsubmit: async (e) => {
        e.preventDefault();
        try {
          const page = await api.post(`/vector_stores/${vs.id}/search`, { query: q.value, max_num_results: 5 });
          clear(results, page.data.map((r) => h("div", { class: "chunk" },
            h("strong", {}, `${r.filename} · ${r.score.toFixed(3)}`),
            r.content.map((c) => h("p", {}, c.text)))));
        } catch (err) { banner(explain(err)); }
      } }, field("Search", q), h("button", { type: "submit" }, "Search")), results));
    refresh().catch((err) => banner(explain(err)));
  }

  async function loadStores() {
    try {
      const page = await api.get("/vector_stores", { limit: 100 });
      clear(stores, table([
        { label: "Name", cell: (s) => h("button", { type: "button", class: "link", onclick: () => openStore(s) }, s.name || s.id) },
        { label: "Id", cell: (s) => h("code", {}, s.id) }, { label: "Status", cell: (s) => s.status },
        { label: "Files", cell: (s) => `${s.file_counts.completed}/${s.file_counts.total} ready, ${s.file_counts.failed} failed` },
      ], page.data, "No vector stores yet."));
    } catch (err) { banner(explain(err)); }
  }
  await loadFiles();
  await loadStores();
}
