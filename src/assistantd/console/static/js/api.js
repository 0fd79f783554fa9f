// The one place that talks to the server: fetch with the session's key as a Bearer token,
// OpenAI-shaped errors as ApiError, and run streams read from SSE with resume.
// Keys live in sessionStorage only: never in a URL, never logged.

const KEY = "assistantd.apiKey";
const ADMIN_KEY = "assistantd.adminKey";

export const keys = {
  api: () => sessionStorage.getItem(KEY),
  admin: () => sessionStorage.getItem(ADMIN_KEY),
  setApi: (v) => sessionStorage.setItem(KEY, v),
  setAdmin: (v) => sessionStorage.setItem(ADMIN_KEY, v),
  clear: () => { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ADMIN_KEY); },
};

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.type = err.type || null;
    this.code = err.code || null;
    this.param = err.param || null;
  }
}

function headers(admin, extra = {}) {
  const key = admin ? keys.admin() : keys.api();
  const h = { "OpenAI-Beta": "assistants=v2", ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) q.append(k, String(item));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function request(method, path, { body, params, admin = false, signal } = {}) {
  const init = { method, headers: headers(admin), signal };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(`/v1${path}${query(params)}`, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const api = {
  get: (path, params, opts) => request("GET", path, { params, ...opts }),
  post: (path, body, opts) => request("POST", path, { body, ...opts }),
  del: (path, opts) => request("DELETE", path, opts),
  admin: {
    get: (path, params) => request("GET", path, { params, admin: true }),
    post: (path, body) => request("POST", path, { body, admin: true }),
    del: (path) => request("DELETE", path, { admin: true }),
  },
};

/** A file's content as a blob: URL (images and downloads need the key, so no plain <img src>). */
export async function fileUrl(fileId) {
  const res = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers(false) });
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return URL.createObjectURL(await res.blob());
}

/** Upload with progress (fetch has no upload progress; XMLHttpRequest does). */
export function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/files");
    for (const [k, v] of Object.entries(headers(false))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: "Network error during upload." } }));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file);
    xhr.send(form);
  });
}

// SSE frames: `id:`, `event:`, `data:` lines ended by a blank line; `:` lines are comments.
async function* frames(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let frame = {};
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (frame.event) yield frame;
        frame = {};
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") frame.data = frame.data === undefined ? val : `${frame.data}\n${val}`;
        else frame[field] = val;
      }
    }
  }
}

/**
 * POST a streaming request (create run, submit tool outputs) and call onEvent(name, data)
 * for each event until `done`. A stream that drops resumes from the last event id on the
 * run's events endpoint (an extension), up to `retries` times.
 */
export async function stream(path, body, onEvent, { signal, retries = 5 } = {}) {
  let lastId = null;
  let runPath = null;
  let res = await fetch(`/v1${path}`, {
    method: "POST", signal,
    headers: headers(false, { "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
  });
  for (let attempt = 0; ; attempt += 1) {
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    try {
      for await (const f of frames(res.body)) {
        if (f.id) lastId = f.id;
        if (f.event === "done") return;
        const data = JSON.parse(f.data);
        if (data && data.object === "thread.run") runPath = `/threads/${data.thread_id}/runs/${data.id}`;
        onEvent(f.event, data);
      }
    } catch (err) {
      if (signal && signal.aborted) throw err;
      if (err instanceof SyntaxError) throw err;
    }
    if (!runPath || lastId === null || attempt >= retries) {
      throw new ApiError(0, { error: { message: "The stream ended before the run did." } });
    }
    onEvent("console.resumed", { after: lastId });
    res = await fetch(`/v1${runPath}/events`, {
      signal, headers: headers(false, { Accept: "text/event-stream", "Last-Event-ID": lastId }),
    });
  }
}
