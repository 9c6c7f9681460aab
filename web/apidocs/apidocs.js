// Renders the server's OpenAPI document (/api/v1/openapi.json) as a
// reference page, with no library: operations by tag, their parameters,
// bodies and responses, and the schemas they use.
"use strict";

const el = (tag, attrs, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
};

// paragraphs renders the documents' plain text with **bold** and `code`.
function paragraphs(text) {
  return (text || "").split(/\n\s*\n/).map((p) => {
    const out = el("p");
    for (const part of p.split(/(\*\*[^*]+\*\*|`[^`]+`)/)) {
      if (part.startsWith("**")) out.append(el("strong", {}, part.slice(2, -2)));
      else if (part.startsWith("`")) out.append(el("code", {}, part.slice(1, -1)));
      else out.append(part);
    }
    return out;
  });
}

const refName = (ref) => ref.split("/").pop();

// typeOf describes a schema in one line, linking named schemas.
function typeOf(s) {
  if (!s) return el("span", { class: "type" }, "any");
  if (s.$ref) return el("a", { class: "type", href: "#schema-" + refName(s.$ref) }, refName(s.$ref));
  if (s.type === "array") {
    const span = el("span", { class: "type" }, "array of ");
    span.append(typeOf(s.items));
    return span;
  }
  let t = Array.isArray(s.type) ? s.type.filter((x) => x !== "null").join("|") : s.type || "object";
  if (s.format) t += ` (${s.format})`;
  if (s.enum) t += ": " + s.enum.join(", ");
  return el("span", { class: "type" }, t);
}

function constraints(s) {
  const c = [];
  for (const k of ["minimum", "maximum", "minLength", "maxLength", "pattern", "default"]) if (s && s[k] !== undefined) c.push(`${k} ${s[k]}`);
  if (s && s.writeOnly) c.push("write-only");
  return c.join(", ");
}

function paramTable(params) {
  const t = el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")));
  for (const p of params) {
    t.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? " *" : ""))), el("td", {}, p.in),
      el("td", {}, typeOf(p.schema)), el("td", {}, [p.description || "", constraints(p.schema)].filter(Boolean).join(" — "))));
  }
  return t;
}

function renderOp(path, method, op, doc) {
  const id = op.operationId || method + path;
  const box = el("section", { class: "op", id: "op-" + id, "data-testid": "op-" + id });
  box.append(el("h3", {}, el("span", { class: "method " + method.toUpperCase() }, method.toUpperCase()), path));
  box.append(el("strong", {}, op.summary || ""));
  box.append(...paragraphs(op.description));
  if (op.parameters && op.parameters.length) box.append(el("h4", {}, "Parameters"), paramTable(op.parameters));
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (body) {
    const p = el("p", {}, "application/json: ");
    p.append(typeOf(body.schema));
    box.append(el("h4", {}, "Request body"), p);
  }
  const rt = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "content"), el("th", {}, "description")));
  for (const [code, r] of Object.entries(op.responses || {})) {
    const cell = el("td");
    for (const [mt, m] of Object.entries(r.content || {})) {
      cell.append(el("code", {}, mt), " ", typeOf(m.schema), el("br"));
    }
    rt.append(el("tr", {}, el("td", {}, code), cell, el("td", {}, r.description || "")));
  }
  box.append(el("h4", {}, "Responses"), rt);
  return box;
}

function renderSchema(name, s) {
  const box = el("section", { class: "schema", id: "schema-" + name });
  box.append(el("h3", {}, name), ...paragraphs(s.description));
  const props = s.properties || {};
  if (Object.keys(props).length) {
    const req = new Set(s.required || []);
    const t = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")));
    for (const [k, p] of Object.entries(props)) {
      t.append(el("tr", {}, el("td", {}, el("code", {}, k + (req.has(k) ? " *" : ""))), el("td", {}, typeOf(p)),
        el("td", {}, [p.description || "", constraints(p)].filter(Boolean).join(" — "))));
    }
    box.append(t);
  } else {
    box.append(el("p", {}, typeOf(s)));
  }
  return box;
}

async function main() {
  const doc = await (await fetch("/api/v1/openapi.json")).json();
  document.getElementById("version").textContent = doc.info.version;
  document.getElementById("intro").append(el("h2", {}, doc.info.title), ...paragraphs(doc.info.description));
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "Other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  const toc = document.getElementById("toc"), ops = document.getElementById("ops");
  for (const [tag, list] of byTag) {
    if (!list.length) continue;
    toc.append(el("h3", {}, tag));
    ops.append(el("h2", { id: "tag-" + tag }, tag));
    for (const [path, method, op] of list) {
      toc.append(el("a", { href: "#op-" + (op.operationId || method + path) }, `${method.toUpperCase()} ${path}`));
      ops.append(renderOp(path, method, op, doc));
    }
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  toc.append(el("h3", {}, "Schemas"));
  for (const [name, s] of Object.entries(schemas).sort()) {
    toc.append(el("a", { href: "#schema-" + name }, name));
    document.getElementById("schemas").append(renderSchema(name, s));
  }
  document.body.dataset.ready = "1";
}

main().catch((e) => { document.getElementById("intro").textContent = "Could not load the API description: " + e; });
