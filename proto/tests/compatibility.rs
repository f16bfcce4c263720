//! The compatibility promise of `fjord.v1`: it changes only by adding. Every message, field,
//! enum value, service and method of the released descriptors (proto/released/fjord_v1.binpb)
//! must still be there with the same number, name, type and shape, so a client built against
//! the released version keeps working. New messages, fields and methods are free.
//!
//! On a release, the current descriptors become the released ones:
//! `FJORD_WRITE_RELEASED_PROTO=1 cargo test -p fjord-proto --test compatibility`.

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use std::collections::BTreeMap;

const RELEASED: &[u8] = include_bytes!("../released/fjord_v1.binpb");

#[derive(Debug, Default)]
struct Api {
    /// "message.field" -> (number, type, type name, label)
    fields: BTreeMap<
        String,
        (
            i32,
            prost_types::field_descriptor_proto::Type,
            String,
            prost_types::field_descriptor_proto::Label,
        ),
    >,
    messages: Vec<String>,
    /// "enum.VALUE" -> number
    enum_values: BTreeMap<String, i32>,
    /// "service/method" -> (input, output, client streaming, server streaming)
    methods: BTreeMap<String, (String, String, bool, bool)>,
}

fn walk_enum(prefix: &str, e: &EnumDescriptorProto, api: &mut Api) {
    let name = format!("{prefix}.{}", e.name());
    for value in &e.value {
        api.enum_values
            .insert(format!("{name}.{}", value.name()), value.number());
    }
}

fn walk_message(prefix: &str, m: &DescriptorProto, api: &mut Api) {
    let name = format!("{prefix}.{}", m.name());
    api.messages.push(name.clone());
    for f in &m.field {
        api.fields.insert(
            format!("{name}.{}", f.name()),
            (f.number(), f.r#type(), f.type_name().to_string(), f.label()),
        );
    }
    for nested in &m.nested_type {
        walk_message(&name, nested, api);
    }
    for e in &m.enum_type {
        walk_enum(&name, e, api);
    }
}

fn api(set: &FileDescriptorSet) -> Api {
    let mut api = Api::default();
    for file in &set.file {
        let package = format!(".{}", file.package());
        for m in &file.message_type {
            walk_message(&package, m, &mut api);
        }
        for e in &file.enum_type {
            walk_enum(&package, e, &mut api);
        }
        for service in &file.service {
            for method in &service.method {
                api.methods.insert(
                    format!("{package}.{}/{}", service.name(), method.name()),
                    (
                        method.input_type().to_string(),
                        method.output_type().to_string(),
                        method.client_streaming(),
                        method.server_streaming(),
                    ),
                );
            }
        }
    }
    api
}

/// What `current` breaks of `released`, one line each.
fn breaks(released: &FileDescriptorSet, current: &FileDescriptorSet) -> Vec<String> {
    let (old, new) = (api(released), api(current));
    let mut found = Vec::new();
    for message in &old.messages {
        if !new.messages.contains(message) {
            found.push(format!("message {message} was removed"));
        }
    }
    for (field, shape) in &old.fields {
        match new.fields.get(field) {
            None => found.push(format!("field {field} was removed or renamed")),
            Some(now) if now != shape => found.push(format!("field {field} changed: {shape:?} -> {now:?}")),
            _ => {}
        }
    }
    // A number once used in a message is never given to another field.
    let numbers = |api: &Api| -> BTreeMap<(String, i32), String> {
        api.fields
            .iter()
            .map(|(path, (number, ..))| {
                let (message, field) = path.rsplit_once('.').expect("message.field");
                ((message.to_string(), *number), field.to_string())
            })
            .collect()
    };
    let (old_numbers, new_numbers) = (numbers(&old), numbers(&new));
    for (key, field) in &old_numbers {
        if let Some(other) = new_numbers.get(key).filter(|f| *f != field) {
            found.push(format!("{}: number {} moved from {field} to {other}", key.0, key.1));
        }
    }
    for (value, number) in &old.enum_values {
        if new.enum_values.get(value) != Some(number) {
            found.push(format!("enum value {value} ({number}) was removed or renumbered"));
        }
    }
    for (method, shape) in &old.methods {
        match new.methods.get(method) {
            None => found.push(format!("method {method} was removed")),
            Some(now) if now != shape => found.push(format!("method {method} changed: {shape:?} -> {now:?}")),
            _ => {}
        }
    }
    found
}

fn current() -> FileDescriptorSet {
    FileDescriptorSet::decode(fjord_proto::FILE_DESCRIPTOR_SET).expect("the built descriptors")
}

#[test]
fn fjord_v1_changes_only_by_adding() {
    if std::env::var_os("FJORD_WRITE_RELEASED_PROTO").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("released/fjord_v1.binpb");
        std::fs::write(&path, fjord_proto::FILE_DESCRIPTOR_SET).expect("writing the released descriptors");
        return;
    }
    let released = FileDescriptorSet::decode(RELEASED).expect("the released descriptors");
    let found = breaks(&released, &current());
    assert!(
        found.is_empty(),
        "fjord.v1 may only grow; these changes break clients of the released version:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_removed_renamed_retyped_and_renumbered_parts() {
    let released = FileDescriptorSet::decode(RELEASED).expect("the released descriptors");
    let mut changed = released.clone();
    let file = &mut changed.file[0];
    let spec = file
        .message_type
        .iter_mut()
        .find(|m| m.name() == "FunctionSpec")
        .expect("FunctionSpec");
    spec.field.retain(|f| f.name() != "image");
    let memory = spec.field.iter_mut().find(|f| f.name() == "memory_mib").unwrap();
    memory.r#type = Some(prost_types::field_descriptor_proto::Type::String as i32);
    let timeout = spec.field.iter_mut().find(|f| f.name() == "timeout_ms").unwrap();
    timeout.name = Some("timeout_millis".into());
    file.service[0].method.retain(|m| m.name() != "Deploy");
    let found = breaks(&released, &changed).join("\n");
    for expected in [
        "field .fjord.v1.FunctionSpec.image was removed",
        "field .fjord.v1.FunctionSpec.memory_mib changed",
        "field .fjord.v1.FunctionSpec.timeout_ms was removed or renamed",
        "method .fjord.v1.Admin/Deploy was removed",
    ] {
        assert!(found.contains(expected), "{expected} in:\n{found}");
    }
    assert!(breaks(&released, &released).is_empty());
}
