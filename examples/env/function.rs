//! `env`: shows what an instance can see of its surroundings.
//!
//! - `GET /` answers with selected environment variables as lines `NAME=value`. Ask with
//!   `?names=A,B`; by default it shows GREETING, FJORD_FUNCTION and FJORD_INSTANCE_ID.
//! - `GET /connect?to=HOST:PORT` tries a TCP connection from inside the instance (1 s at most)
//!   and answers `connected` or `unreachable: <why>`: what a function can reach on the network.
//! - `GET /write?path=P` tries to create the file P and answers `written` or `refused: <why>`:
//!   which parts of its filesystem a function may write.
//! - `GET /secret/NAME` answers with the secret NAME as the function reads it: the file
//!   `$FJORD_SECRETS_DIR/NAME` (a command function), else `/var/fjord/secrets/NAME` (a container);
//!   `?dir=D` reads it in D instead (`/var/openfaas/secrets`, where OpenFaaS functions look).

use std::time::Duration;

pub fn run() {
    crate::serve(|request: hyper::Request<hyper::body::Incoming>| async move {
        if let Some(name) = request.uri().path().strip_prefix("/secret/") {
            let dir = crate::query_param(&request, "dir")
                .or_else(|| std::env::var("FJORD_SECRETS_DIR").ok())
                .unwrap_or_else(|| "/var/fjord/secrets".into());
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return crate::reply(400, "give /secret/NAME\n");
            }
            return match std::fs::read(std::path::Path::new(&dir).join(name)) {
                Ok(value) => crate::reply(200, value),
                Err(e) => crate::reply(404, format!("cannot read secret {name} in {dir}: {e}\n")),
            };
        }
        match request.uri().path() {
            "/connect" => {
                let Some(to) = crate::query_param(&request, "to") else {
                    return crate::reply(400, "give ?to=HOST:PORT\n");
                };
                let attempt = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&to)).await;
                match attempt {
                    Ok(Ok(_)) => crate::reply(200, "connected\n"),
                    Ok(Err(e)) => crate::reply(200, format!("unreachable: {e}\n")),
                    Err(_) => crate::reply(200, "unreachable: no answer within 1 s\n"),
                }
            }
            "/write" => {
                let Some(path) = crate::query_param(&request, "path") else {
                    return crate::reply(400, "give ?path=P\n");
                };
                match std::fs::write(&path, b"x") {
                    Ok(()) => crate::reply(200, "written\n"),
                    Err(e) => crate::reply(200, format!("refused: {e}\n")),
                }
            }
            _ => {
                let names = crate::query_param(&request, "names")
                    .unwrap_or_else(|| "GREETING,FJORD_FUNCTION,FJORD_INSTANCE_ID".into());
                let body: String = names
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(|name| format!("{name}={}\n", std::env::var(name).unwrap_or_default()))
                    .collect();
                crate::reply(200, body)
            }
        }
    });
}
