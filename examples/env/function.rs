//! `env`: answers with selected environment variables as JSON lines `NAME=value`. Ask with
//! `?names=A,B`; by default it shows GREETING, FJORD_FUNCTION and FJORD_INSTANCE_ID.

pub fn run() {
    crate::serve(|request: hyper::Request<hyper::body::Incoming>| async move {
        let names =
            crate::query_param(&request, "names").unwrap_or_else(|| "GREETING,FJORD_FUNCTION,FJORD_INSTANCE_ID".into());
        let body: String = names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|name| format!("{name}={}\n", std::env::var(name).unwrap_or_default()))
            .collect();
        crate::reply(200, body)
    });
}
