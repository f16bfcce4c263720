//! `fjord invoke`: calls a function through the lb, as any HTTP client would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{IsTerminal, Read, Write};

pub struct InvokeArgs<'a> {
    pub lb: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub data: Option<&'a str>,
    pub method: Option<&'a str>,
    pub headers: &'a [String],
    pub include: bool,
}

pub async fn invoke(args: InvokeArgs<'_>) -> anyhow::Result<()> {
    let body: Option<Vec<u8>> = match args.data {
        Some("@-") => Some(read_stdin()?),
        Some(data) => Some(data.as_bytes().to_vec()),
        None if !std::io::stdin().is_terminal() => Some(read_stdin()?),
        None => None,
    };
    let method = match (args.method, &body) {
        (Some(m), _) => m.to_ascii_uppercase(),
        (None, Some(_)) => "POST".into(),
        (None, None) => "GET".into(),
    };
    let path = if args.path.starts_with('/') {
        args.path.to_string()
    } else {
        format!("/{}", args.path)
    };
    let lb = args.lb.trim_end_matches('/');
    let uri = format!("{lb}/function/{}{}", args.name, if path == "/" { "" } else { &path });
    let mut request = hyper::Request::builder().method(method.as_str()).uri(&uri);
    for header in args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("header {header:?} is not 'Name: value'"))?;
        request = request.header(name.trim(), value.trim());
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| anyhow::anyhow!("building the request to {uri}: {e}"))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the lb at {lb}: {e}.\nIs it running? `fjord dev` starts one; elsewhere set FJORD_LB."
        )
    })?;
    let status = response.status();
    let (parts, mut body) = response.into_parts();
    // The body goes to stdout as it arrives; a reader that went away ends the command quietly.
    let mut stdout = std::io::stdout().lock();
    let to_stdout = |written: std::io::Result<()>| written.unwrap_or_else(|e| crate::output::exit_on_write_error(&e));
    if args.include {
        to_stdout(writeln!(stdout, "{:?} {}", parts.version, status));
        for (name, value) in &parts.headers {
            to_stdout(writeln!(stdout, "{name}: {}", value.to_str().unwrap_or("<binary>")));
        }
        to_stdout(writeln!(stdout));
    }
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            to_stdout(stdout.write_all(data));
        }
    }
    to_stdout(stdout.flush());
    if !status.is_success() {
        anyhow::bail!("function {} answered {status}", args.name);
    }
    Ok(())
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    std::io::stdin().read_to_end(&mut buffer)?;
    Ok(buffer)
}
