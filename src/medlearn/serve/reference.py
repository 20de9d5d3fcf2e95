"""The API reference page at ``/docs``: the OpenAPI schema rendered as plain HTML on the server.

FastAPI's Swagger UI loads its JavaScript and CSS from a CDN, so on a hospital network without internet
access it is a blank page. This page needs nothing but the schema: every endpoint with its summary,
parameters, request bodies and responses, and a link to ``/openapi.json`` for tools (Swagger UI, Postman,
client generators) that can read it.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["REFERENCE_CSP", "reference_html"]

#: nothing to load: one inline style block, no scripts
REFERENCE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "code{background:#f3f3f3;padding:0 .2rem}section{border-top:1px solid #ddd;padding:.5rem 0}"
          ".m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}td,th{text-align:left;padding:0 1rem 0 0}")


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else schema.get("type", "")


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f"<section><p><span class='m'>{escape(method)}</span><code>{escape(path)}</code> "
           f"{escape(op.get('summary', ''))}</p>"]
    if op.get("description"):
        out.append("".join(f"<p>{escape(par)}</p>" for par in op["description"].split("\n\n")))
    params = op.get("parameters", [])
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th></tr>")
        out += [f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
                f"<td>{escape(_schema_name(p.get('schema', {})))}</td></tr>" for p in params]
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {})
    if body:
        out.append("<p>request body: " + ", ".join(f"<code>{escape(c)}</code>" for c in body) + "</p>")
    responses = op.get("responses", {})
    if responses:
        out.append("<table><tr><th>status</th><th>meaning</th></tr>")
        out += [f"<tr><td>{escape(code)}</td><td>{escape(r.get('description', ''))}</td></tr>"
                for code, r in responses.items()]
        out.append("</table>")
    return [*out, "</section>"]


def reference_html(schema: dict[str, Any]) -> str:
    """The page for an OpenAPI ``schema`` (a dict as ``/openapi.json`` returns it)."""
    info = schema.get("info", {})
    lines = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{escape(info.get('title', 'API'))} API</title><style>{_STYLE}</style></head><body>",
             f"<h1>{escape(info.get('title', 'API'))} {escape(str(info.get('version', '')))}</h1>",
             f"<p>{escape(info.get('description', ''))}</p>",
             "<p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a>. With a token, send "
             "<code>Authorization: Bearer TOKEN</code>.</p>"]
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            lines += _operation(path, method, op)
    lines.append("</body></html>")
    return "\n".join(lines)
