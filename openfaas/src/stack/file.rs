//! The stack file as faas-cli's schema has it (`stack.Services` in OpenFaaS's go-sdk), read
//! with serde so that a value of the wrong shape is reported with its key path and line, and
//! every key the schema does not know is collected by path instead of being dropped.
//!
//! Values parse here only as far as their shape; what they mean to Fjord (units, scale labels)
//! is the translation's business, which reads the memory and CPU amounts through
//! [`Amount`] so that a bad one still carries its line.

use super::quantity;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

/// The whole file: `version`, `provider`, `functions`, `configuration`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StackFile {
    pub version: Option<String>,
    pub provider: Option<Provider>,
    pub functions: Option<Entries<Function>>,
    /// Templates to pull and paths to copy, for building.
    pub configuration: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Provider {
    pub name: Option<String>,
    pub gateway: Option<String>,
}

/// One entry of `functions:`, its name being the key.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Function {
    pub image: Option<String>,
    pub lang: Option<String>,
    pub handler: Option<String>,
    pub fprocess: Option<String>,
    pub environment: Option<Entries<String>>,
    pub environment_file: Option<Vec<String>>,
    pub secrets: Option<Vec<String>>,
    pub labels: Option<Entries<String>>,
    pub annotations: Option<Entries<String>>,
    pub limits: Option<Resources>,
    pub requests: Option<Resources>,
    pub readonly_root_filesystem: Option<bool>,
    pub constraints: Option<Vec<String>>,
    pub namespace: Option<String>,
    /// For `fjord build` (`build_args`); the others are read to be named.
    pub build_args: Option<serde_yaml_ng::Value>,
    pub build_options: Option<serde_yaml_ng::Value>,
    pub build_secrets: Option<serde_yaml_ng::Value>,
    pub platforms: Option<serde_yaml_ng::Value>,
    /// Whether `faas-cli build` skips this function; a deploy never builds, so it has no effect.
    #[serde(rename = "skip_build")]
    pub _skip_build: Option<serde_yaml_ng::Value>,
}

/// `limits:` or `requests:`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Resources {
    pub memory: Option<Amount<Memory>>,
    pub cpu: Option<Amount<Cpu>>,
}

/// An environment file: faas-cli reads its variables from the `environment:` key.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EnvironmentFile {
    pub environment: Option<Entries<String>>,
}

/// A mapping in the order written. A key given twice is an error, as it is for faas-cli's YAML
/// reader (`mapping key already defined`); serde's own maps would keep the last silently.
#[derive(Debug)]
pub(crate) struct Entries<V>(pub Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<V> Entries<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("`{key}` is given twice")));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// How one kind of amount reads its text.
pub(crate) trait Unit {
    fn parse(text: &str) -> Result<u32, String>;
}

#[derive(Debug)]
pub(crate) struct Memory;
impl Unit for Memory {
    fn parse(text: &str) -> Result<u32, String> {
        quantity::memory_mib(text)
    }
}

#[derive(Debug)]
pub(crate) struct Cpu;
impl Unit for Cpu {
    fn parse(text: &str) -> Result<u32, String> {
        quantity::cpu_millis(text)
    }
}

/// A memory (MiB) or CPU (millicores) amount, parsed while the file is read, so that a bad one
/// is reported with its key path and line, and kept as written for messages.
#[derive(Debug)]
pub(crate) struct Amount<U> {
    pub value: u32,
    pub text: String,
    unit: PhantomData<U>,
}

impl<U: Unit> Amount<U> {
    /// Reads `text` (`128Mi`, `500m`); the error says what was wrong with it.
    pub fn read(text: &str) -> Result<Amount<U>, String> {
        Ok(Amount {
            value: U::parse(text)?,
            text: text.to_string(),
            unit: PhantomData,
        })
    }
}

impl<'de, U: Unit> Deserialize<'de> for Amount<U> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor: an error raised there gets the scalar's own path and
        // line from the YAML reader, where one raised after it returned would get its parent's.
        struct AmountVisitor<U>(PhantomData<U>);
        impl<U: Unit> Visitor<'_> for AmountVisitor<U> {
            type Value = Amount<U>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount such as 128Mi or 500m")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Amount::read(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(AmountVisitor(PhantomData))
    }
}

/// A key the schema does not know, by path (`functions.api.topic`), and the function it sits
/// in, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownKey {
    pub path: String,
    pub function: Option<String>,
}

/// Parses `text` as `T`, collecting the keys `T` does not read.
pub(crate) fn parse<'de, T: Deserialize<'de>>(text: &'de str) -> Result<(T, Vec<UnknownKey>), serde_yaml_ng::Error> {
    let mut unknown = Vec::new();
    let value = serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |path| {
        let segments = segments(&path);
        let function = match segments.as_slice() {
            [functions, name, _, ..] if functions == "functions" => Some(name.clone()),
            _ => None,
        };
        unknown.push(UnknownKey {
            path: segments.join("."),
            function,
        });
    })?;
    Ok((value, unknown))
}

/// A path's keys from the root; a list index is written after its list's key (`secrets[1]`).
fn segments(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Map { parent, key } => {
            let mut segments = segments(parent);
            segments.push(key.clone());
            segments
        }
        Path::Seq { parent, index } => {
            let mut segments = segments(parent);
            match segments.last_mut() {
                Some(last) => last.push_str(&format!("[{index}]")),
                None => segments.push(format!("[{index}]")),
            }
            segments
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => segments(parent),
    }
}
