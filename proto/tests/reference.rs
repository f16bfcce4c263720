//! docs/api.md, the reference of `fjord.v1`, is generated from the .proto file's own comments
//! by this test and must match it: a change to the contract that leaves the page behind fails
//! here. Regenerate with `FJORD_WRITE_API_DOCS=1 cargo test -p fjord-proto --test reference`.

use std::fmt::Write;
use std::path::Path;

const PROTO: &str = include_str!("../proto/fjord/v1/fjord.proto");

#[derive(Debug, Default)]
struct Field {
    name: String,
    number: String,
    kind: String,
    doc: String,
}

#[derive(Debug, Default)]
struct Message {
    name: String,
    doc: String,
    fields: Vec<Field>,
    /// Enum values, for enums (nested ones are named `Outer.Inner`).
    values: Vec<Field>,
    is_enum: bool,
}

#[derive(Debug, Default)]
struct Rpc {
    name: String,
    request: String,
    response: String,
    doc: String,
}

#[derive(Debug, Default)]
struct Service {
    name: String,
    doc: String,
    rpcs: Vec<Rpc>,
}

/// A line-based reader for the style of fjord.proto: comments on the lines before what they
/// describe (or after it on the same line), one declaration per line, one-line messages. A
/// one-line message of one field takes the comment before it, its field the one after it.
fn parse(text: &str) -> (Vec<Service>, Vec<Message>) {
    let mut services = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    // Open blocks: indexes into `messages` (None for a service).
    let mut stack: Vec<Option<usize>> = Vec::new();
    let take = |comment: &mut Vec<String>| std::mem::take(comment).join(" ");
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(c) = line.strip_prefix("//") {
            comment.push(c.trim().to_string());
            continue;
        }
        let (code, trailing) = match line.split_once("//") {
            Some((code, c)) => (code.trim(), c.trim().to_string()),
            None => (line, String::new()),
        };
        if code.is_empty() || code.starts_with("syntax") || code.starts_with("package") {
            comment.clear();
            continue;
        }
        let leading = take(&mut comment);
        let doc = match (leading.is_empty(), trailing.is_empty()) {
            (_, true) => leading.clone(),
            (true, false) => trailing.clone(),
            (false, false) => format!("{leading} {trailing}"),
        };
        if let Some(rest) = code.strip_prefix("service ") {
            services.push(Service {
                name: rest.trim_end_matches('{').trim().to_string(),
                doc,
                rpcs: Vec::new(),
            });
            stack.push(None);
        } else if let Some(rest) = code.strip_prefix("rpc ") {
            let (name, rest) = rest.split_once('(').expect("rpc Name(");
            let (request, rest) = rest.split_once(')').expect("(Request)");
            let response = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(r, _)| r)
                .expect("returns (Response)");
            services.last_mut().expect("an rpc in a service").rpcs.push(Rpc {
                name: name.trim().into(),
                request: request.trim().into(),
                response: response.trim().into(),
                doc,
            });
        } else if let Some(rest) = code.strip_prefix("message ").or_else(|| code.strip_prefix("enum ")) {
            let is_enum = code.starts_with("enum ");
            let (name, body) = rest.split_once('{').expect("a block");
            let outer = stack.iter().rev().find_map(|s| *s).map(|i| messages[i].name.clone());
            let name = match outer {
                Some(outer) => format!("{outer}.{}", name.trim()),
                None => name.trim().to_string(),
            };
            let body = body.trim();
            let one_line: Option<Vec<&str>> = body
                .strip_suffix('}')
                .map(|inner| inner.split(';').map(str::trim).filter(|d| !d.is_empty()).collect());
            let (doc, field_doc) = match &one_line {
                Some(declarations) if declarations.len() == 1 && !trailing.is_empty() => (leading, trailing),
                _ => (doc, String::new()),
            };
            messages.push(Message {
                name,
                doc,
                is_enum,
                ..Default::default()
            });
            let index = messages.len() - 1;
            if let Some(declarations) = one_line {
                for declaration in declarations {
                    if let Some(field) = field(declaration, field_doc.clone()) {
                        messages[index].fields.push(field);
                    }
                }
            } else {
                stack.push(Some(index));
            }
        } else if code == "}" {
            stack.pop();
        } else if let Some(Some(index)) = stack.last() {
            if let Some(f) = field(code.trim_end_matches(';'), doc) {
                if messages[*index].is_enum {
                    messages[*index].values.push(f);
                } else {
                    messages[*index].fields.push(f);
                }
            }
        }
    }
    (services, messages)
}

/// `repeated string name = 3` (or an enum value, `NAME = 0`).
fn field(declaration: &str, doc: String) -> Option<Field> {
    let (left, number) = declaration.split_once('=')?;
    let mut words: Vec<&str> = left.split_whitespace().collect();
    let name = words.pop()?.to_string();
    Some(Field {
        name,
        number: number.trim().trim_end_matches(';').to_string(),
        kind: words.join(" "),
        doc,
    })
}

fn cell(text: &str) -> String {
    if text.is_empty() {
        "".into()
    } else {
        text.replace('|', "\\|")
    }
}

fn render(services: &[Service], messages: &[Message]) -> String {
    let mut out = String::new();
    out.push_str(
        "# The `fjord.v1` gRPC API\n\n\
         Generated from `proto/proto/fjord/v1/fjord.proto` by `proto/tests/reference.rs`; the test \
         fails when this page and the .proto disagree (regenerate with \
         `FJORD_WRITE_API_DOCS=1 cargo test -p fjord-proto --test reference`).\n\n\
         Every control-plane member serves these services on its gRPC port (7400 in `fjord dev`), \
         with server reflection and the standard `grpc.health.v1.Health` service. Admin needs the \
         admin token (`authorization: Bearer TOKEN`); Agent, Routes and Health also take the join \
         token; Raft is for members only and is not listed by reflection.\n\n\
         **Compatibility:** `fjord.v1` changes only by adding messages, fields, enum values and \
         methods; nothing is removed, renamed, renumbered or retyped (`proto/tests/compatibility.rs` \
         holds it to `proto/released/fjord_v1.binpb`).\n\n\
         **Errors:** a refusal has a gRPC code, a message in the caller's terms, and a \
         `google.rpc.ErrorInfo` (domain `fjord.v1`) whose `reason` is stable: `INVALID_SPEC` \
         (metadata `field`), `INVALID_REQUEST`, `BAD_PAGE_SIZE`, `BAD_PAGE_TOKEN`, \
         `BAD_LABEL_SELECTOR` (metadata `field`), `FUNCTION_NOT_FOUND` (`function`), \
         `NODE_NOT_FOUND` (`node`), `SECRET_NOT_FOUND`, `SECRET_EXISTS`, `SECRET_IN_USE` \
         (`secret`, `used_by`), `NO_SECRETS_KEY`, `SECRET_UNREADABLE`, `INVALID_POLICY`, \
         `NO_LEADER`, `UNAVAILABLE`, `UNCONFIRMED` (a write that may or may not have applied: \
         retrying is safe), `MEMBERSHIP_REFUSED`, `CALL_NOT_FOUND`, `CALL_WRONG_STATE`, \
         `NO_QUEUE`, `QUEUE_FULL`, `QUEUE_UNAVAILABLE`, `INTERNAL`.\n\n## Services\n",
    );
    for service in services {
        let _ = write!(out, "\n### {}\n\n", service.name);
        if !service.doc.is_empty() {
            let _ = write!(out, "{}\n\n", service.doc);
        }
        out.push_str("| RPC | request | response | what it does |\n|---|---|---|---|\n");
        for rpc in &service.rpcs {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | `{}` | {} |",
                rpc.name,
                rpc.request,
                rpc.response,
                cell(&rpc.doc)
            );
        }
    }
    out.push_str("\n## Messages\n");
    for message in messages {
        let _ = write!(
            out,
            "\n### {} `{}`\n\n",
            if message.is_enum { "enum" } else { "message" },
            message.name
        );
        if !message.doc.is_empty() {
            let _ = write!(out, "{}\n\n", message.doc);
        }
        if message.is_enum {
            out.push_str("| value | number | meaning |\n|---|---|---|\n");
            for v in &message.values {
                let _ = writeln!(out, "| `{}` | {} | {} |", v.name, v.number, cell(&v.doc));
            }
        } else if message.fields.is_empty() {
            out.push_str("No fields.\n");
        } else {
            out.push_str("| field | number | type | what it holds |\n|---|---|---|---|\n");
            for f in &message.fields {
                let _ = writeln!(out, "| `{}` | {} | `{}` | {} |", f.name, f.number, f.kind, cell(&f.doc));
            }
        }
    }
    out
}

#[test]
fn docs_api_md_is_the_reference_generated_from_the_proto() {
    let (services, messages) = parse(PROTO);
    let page = render(&services, &messages);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    if std::env::var_os("FJORD_WRITE_API_DOCS").is_some() {
        std::fs::write(&path, &page).expect("writing docs/api.md");
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == page,
        "docs/api.md is not what fjord.proto says: regenerate it with FJORD_WRITE_API_DOCS=1 cargo test -p fjord-proto --test reference"
    );
}

#[test]
fn the_reader_finds_every_service_rpc_message_and_field() {
    let (services, messages) = parse(PROTO);
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Admin", "Agent", "Routes", "Raft"]);
    let admin = &services[0];
    let deploy = admin.rpcs.iter().find(|r| r.name == "Deploy").expect("Deploy");
    assert_eq!(
        (deploy.request.as_str(), deploy.response.as_str()),
        ("DeployRequest", "FunctionStatus")
    );
    let watch = admin.rpcs.iter().find(|r| r.name == "Watch").expect("Watch");
    assert_eq!(watch.response, "stream ChangeEvent");
    // As many rpcs as the file declares.
    let declared = PROTO.lines().filter(|l| l.trim_start().starts_with("rpc ")).count();
    assert_eq!(services.iter().map(|s| s.rpcs.len()).sum::<usize>(), declared);
    let spec = messages
        .iter()
        .find(|m| m.name == "FunctionSpec")
        .expect("FunctionSpec");
    let secret_names = spec
        .fields
        .iter()
        .find(|f| f.name == "secret_names")
        .expect("secret_names");
    assert_eq!(
        (secret_names.number.as_str(), secret_names.kind.as_str()),
        ("18", "repeated string")
    );
    assert!(secret_names.doc.contains("Named secrets"), "{secret_names:?}");
    let mode = messages
        .iter()
        .find(|m| m.name == "PutSecretRequest.Mode")
        .expect("a nested enum");
    assert_eq!(mode.values.len(), 3);
    let one_line = messages
        .iter()
        .find(|m| m.name == "GetFunctionRequest")
        .expect("one-line message");
    assert_eq!(one_line.fields[0].name, "name");
    assert_eq!(one_line.doc, "Which function GetFunction returns.");
    assert_eq!(one_line.fields[0].doc, "The function's name.");
    let declared = PROTO
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("message ") || t.starts_with("enum ")
        })
        .count();
    assert_eq!(messages.len(), declared);
}

/// Every message, enum, field, enum value, service and RPC of fjord.proto, named, and its doc.
fn docs(services: &[Service], messages: &[Message]) -> Vec<(String, String)> {
    let mut items = Vec::new();
    for service in services {
        items.push((format!("service {}", service.name), service.doc.clone()));
        for rpc in &service.rpcs {
            items.push((format!("rpc {}.{}", service.name, rpc.name), rpc.doc.clone()));
        }
    }
    for message in messages {
        let kind = if message.is_enum { "enum" } else { "message" };
        items.push((format!("{kind} {}", message.name), message.doc.clone()));
        for f in message.fields.iter().chain(&message.values) {
            items.push((format!("{kind} {}.{}", message.name, f.name), f.doc.clone()));
        }
    }
    items
}

#[test]
fn every_message_enum_field_value_and_rpc_has_a_doc() {
    let (services, messages) = parse(PROTO);
    let items = docs(&services, &messages);
    let undocumented: Vec<&str> = items
        .iter()
        .filter(|(_, doc)| doc.trim().is_empty())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        undocumented.is_empty(),
        "{} of {} items of fjord.proto have no comment (write one on the line above, or after it on the same line):\n  {}",
        undocumented.len(),
        items.len(),
        undocumented.join("\n  ")
    );
    // The walk covers every field and enum value the file declares (each `NAME = N;`), so one
    // the reader skipped cannot pass unnoticed.
    let declared = PROTO
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .flat_map(|code| code.split(';'))
        .filter(|d| {
            d.rsplit_once('=')
                .is_some_and(|(_, n)| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    let read: usize = messages.iter().map(|m| m.fields.len() + m.values.len()).sum();
    assert_eq!(read, declared, "fields and enum values read vs declared");
}
