//! The function: `handle` answers one request.

pub struct Request {
    pub method: String,
    /// The path and query, e.g. `/items/7?full=1`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

pub fn handle(_request: Request) -> Response {
    Response::text(200, "Hello from Fjord!\n")
}
