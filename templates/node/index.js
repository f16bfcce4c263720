// Fjord's node wrapper: serves $PORT and calls function/handler.js with (event, context).
// The handler returns a string, a Buffer, or { statusCode, body, headers }.
"use strict";
const http = require("http");
const handler = require("./function/handler");

function send(res, status, body, headers) {
  if (body === undefined || body === null) body = "";
  if (typeof body === "object" && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    headers = Object.assign({ "Content-Type": "application/json" }, headers);
  }
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(String(body));
  res.writeHead(status, Object.assign({ "Content-Type": "text/plain; charset=utf-8", "Content-Length": bytes.length }, headers));
  res.end(bytes);
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const url = new URL(req.url, "http://localhost");
      if (url.pathname === "/_/health") return send(res, 200, "ok");
      const event = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      try {
        const result = await handler(event, { hostname: process.env.HOSTNAME || "localhost" });
        if (result && typeof result === "object" && !Buffer.isBuffer(result) && "statusCode" in result) {
          send(res, result.statusCode, result.body, result.headers);
        } else {
          send(res, 200, result);
        }
      } catch (e) {
        console.error(e);
        send(res, 500, "the handler threw an exception\n");
      }
    });
  })
  .listen(Number(process.env.PORT || 8080), "0.0.0.0");
