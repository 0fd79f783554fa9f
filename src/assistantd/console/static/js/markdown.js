// A small, safe markdown renderer: it builds DOM nodes, never HTML strings, so a model's
// output cannot inject markup. Fenced code, headings, lists, paragraphs; inline code,
// bold, italics and http(s) links.

import { h } from "./ui.js";

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g;

export function inline(text, extra) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(...(extra ? extra(text.slice(last, m.index)) : [text.slice(last, m.index)]));
    if (m[1]) out.push(h("code", {}, m[1].slice(1, -1)));
    else if (m[2]) out.push(h("strong", {}, m[2].slice(2, -2)));
    else if (m[3]) out.push(h("em", {}, m[3].slice(1, -1)));
    else out.push(h("a", { href: m[5], rel: "noopener noreferrer", target: "_blank" }, m[4]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...(extra ? extra(text.slice(last)) : [text.slice(last)]));
  return out;
}

/** `extra(text)` may split plain text further (the chat turns citation markers into links). */
export function markdown(src, extra) {
  const blocks = [];
  const lines = src.replace(/\r\n/g, "\n").split("\n");
  let para = [];
  let list = null;
  const flush = () => {
    if (para.length) blocks.push(h("p", {}, inline(para.join(" "), extra)));
    para = [];
    if (list) blocks.push(list);
    list = null;
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const fence = line.match(/^```(\w*)/);
    if (fence) {
      flush();
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      blocks.push(h("pre", {}, h("code", { class: fence[1] ? `lang-${fence[1]}` : null }, code.join("\n"))));
      continue;
    }
    const heading = line.match(/^(#{1,4})\s+(.*)/);
    const item = line.match(/^\s*(?:[-*]|(\d+)\.)\s+(.*)/);
    if (heading) { flush(); blocks.push(h(`h${heading[1].length + 2}`, {}, inline(heading[2], extra))); }
    else if (item) {
      if (para.length) { const l = list; list = null; flush(); list = l; }
      list = list || h(item[1] ? "ol" : "ul");
      list.append(h("li", {}, inline(item[2], extra)));
    } else if (!line.trim()) flush();
    else { if (list) flush(); para.push(line); }
  }
  flush();
  return blocks;
}
