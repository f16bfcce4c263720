//! `echo`: answers with the request body. Each request header named `x-echo-*` comes back as a
//! response header of the same name, so callers can see headers pass through both ways.
//! `GET /headers` answers with every request header the function received, one per line.

use http_body_util::BodyExt;

pub fn run() {
    crate::serve(|request: hyper::Request<hyper::body::Incoming>| async move {
        if request.uri().path() == "/headers" {
            let lines: String = request
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap_or("<binary>")))
                .collect();
            return crate::reply(200, lines);
        }
        let echoed: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)> = request
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-echo-"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let content_type = request.headers().get(hyper::header::CONTENT_TYPE).cloned();
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return crate::reply(400, format!("reading the body: {e}")),
        };
        let mut response = crate::reply(200, body);
        for (name, value) in echoed {
            response.headers_mut().insert(name, value);
        }
        if let Some(content_type) = content_type {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, content_type);
        }
        response
    });
}
