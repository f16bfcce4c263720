"use strict";
// Answers a request: event.body is a Buffer; event.headers, event.method, event.path and
// event.query describe the rest. Return a string, a Buffer, or { statusCode, body, headers }.
module.exports = async (event, context) => {
  return { statusCode: 200, body: "Hello from Fjord!\n" };
};
