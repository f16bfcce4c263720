//! OpenFaaS's `stack.yml` (faas-cli's format, schema version 1.0) and its translation to
//! Fjord's [`FunctionSpec`], one spec per entry of `functions:`.
//!
//! Reading a stack goes as faas-cli's does: `${VAR}` substitution over the whole text from the
//! caller's environment lookup ([`substitute`]), the YAML parsed into faas-cli's schema
//! ([`file`]), then each function translated ([`translate`]): `image`, `environment` and
//! `environment_file` (the files win, as in faas-cli), `fprocess`, `limits`/`requests`, the
//! scale labels, other labels, and the cron-connector's `topic: cron-function` + `schedule`
//! annotations. The mapping, key by key, is in [`translate`]'s documentation.
//!
//! **Nothing is dropped silently.** A key Fjord cannot honour, one it reads differently from
//! OpenFaaS, or one it does not know at all, gives a [`Notice`] naming it by path
//! (`functions.api.annotations.prometheus.io.scrape: not supported, ignored`). **Errors name
//! the key**, and the line where the YAML reader knows it: a malformed file, a value of the
//! wrong shape or a bad memory or CPU amount carry `line L column C`; a value the translation
//! refuses names its key; a spec that fails [`FunctionSpec::validate`] names the stack key
//! the failing field came from.
//!
//! What `fjord build` needs of a function (`image`, `lang`, `handler`, `build_args`) is read
//! by [`Stack::build_settings`]; building itself is fjord-build's. Not done here: named secrets
//! (`secrets:`, for Fjord's secret store), deploying.

pub(crate) mod file;
mod quantity;
mod substitute;
#[cfg(test)]
mod tests;
pub(crate) mod translate;

pub use translate::Translation;

use fjord_core::{FunctionSpec, SpecError};
use std::fmt;
use std::path::{Path, PathBuf};

/// A stack file larger than this is refused before it is parsed.
pub const MAX_STACK_BYTES: usize = 1024 * 1024;
/// The only schema version faas-cli accepts.
pub const SCHEMA_VERSION: &str = "1.0";

/// A key of the stack Fjord does not honour as OpenFaaS would, by path, and what Fjord does
/// instead. Shown as `KEY: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The key's path from the top of the file (`functions.api.secrets`), or `line N` for
    /// something found in the text before it was parsed.
    pub key: String,
    pub message: String,
}

impl Notice {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Notice {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A stack file Fjord cannot deploy. Every variant is the file's fault, and says where.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("the file is {bytes} bytes; a stack file may be at most {MAX_STACK_BYTES}")]
    TooLarge { bytes: usize },
    /// A `${...}` that cannot be substituted.
    #[error("line {line}: {reason}")]
    Substitution { line: usize, reason: String },
    /// Not YAML, or a value of the wrong shape: the YAML reader's message, with the key's
    /// path when it has one and `at line L column C`.
    #[error("{0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("no functions: a stack file lists them under `functions:`")]
    NoFunctions,
    /// A value the translation refuses, or a function it cannot deploy.
    #[error("{key}: {reason}")]
    Value { key: String, reason: String },
    /// An environment file that cannot be read or parsed.
    #[error("{key}: {}: {reason}", file.display())]
    EnvironmentFile { key: String, file: PathBuf, reason: String },
    /// The translated spec fails Fjord's validation; `key` is where the field came from.
    #[error("{key}: {error}")]
    Spec { key: String, error: SpecError },
    /// A `--filter` pattern that matches no function of the file.
    #[error("--filter {pattern}: no function of the file matches; it has {}", names.join(", "))]
    Filter { pattern: String, names: Vec<String> },
}

impl StackError {
    /// The stack key at fault, when one is known.
    pub fn key(&self) -> Option<&str> {
        match self {
            StackError::Value { key, .. } | StackError::EnvironmentFile { key, .. } | StackError::Spec { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }

    /// The 1-based line at fault, when the reader knows it.
    pub fn line(&self) -> Option<usize> {
        match self {
            StackError::Substitution { line, .. } => Some(*line),
            StackError::Yaml(e) => e.location().map(|l| l.line()),
            _ => None,
        }
    }
}

/// Whether a file given to `fjord deploy -f` is a stack file rather than a `fjord.yaml`: it is
/// named `stack.yml` or `stack.yaml`, or its top level has `functions:` and `provider:` or
/// `version:`. Read line by line, so a stack with a syntax error is still known as one (and
/// its error reported with the line) rather than read as a malformed `fjord.yaml`.
pub fn is_stack_file(file_name: Option<&str>, text: &str) -> bool {
    if matches!(file_name, Some("stack.yml" | "stack.yaml")) {
        return true;
    }
    let top_level = |key: &str| {
        text.lines()
            .any(|line| line.strip_prefix(key).is_some_and(|rest| rest.starts_with(':')))
    };
    top_level("functions") && (top_level("provider") || top_level("version"))
}

/// A parsed stack file: its functions, ready to translate one by one.
#[derive(Debug)]
pub struct Stack {
    file: file::StackFile,
    unknown: Vec<file::UnknownKey>,
    notices: Vec<Notice>,
}

impl Stack {
    /// Substitutes `${VAR}` from `lookup` (the process environment, for the CLI) and parses
    /// the text. Every function must be well-formed; what they mean is checked when each is
    /// translated.
    pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Stack, StackError> {
        if text.len() > MAX_STACK_BYTES {
            return Err(StackError::TooLarge { bytes: text.len() });
        }
        let (text, unset) = substitute::substitute(text, lookup)?;
        if text.trim().is_empty() {
            return Err(StackError::NoFunctions);
        }
        let (file, unknown): (file::StackFile, _) = file::parse(&text)?;
        if file.functions.as_ref().is_none_or(|f| f.0.is_empty()) {
            return Err(StackError::NoFunctions);
        }
        let mut notices: Vec<Notice> = unset
            .into_iter()
            .map(|u| {
                Notice::new(
                    format!("line {}", u.line),
                    format!("${{{}}} is not set; substituted an empty string", u.name),
                )
            })
            .collect();
        notices.extend(translate::file_notices(&file, &unknown));
        Ok(Stack { file, unknown, notices })
    }

    /// What the file says outside its functions that Fjord does not honour.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The functions' names, in the file's order.
    pub fn function_names(&self) -> Vec<&str> {
        self.functions().map(|(name, _)| name.as_str()).collect()
    }

    /// Function `name`, or an error listing the names the file has.
    fn function(&self, name: &str) -> Result<&file::Function, StackError> {
        self.functions()
            .find(|(n, _)| n == name)
            .map(|(_, function)| function)
            .ok_or_else(|| StackError::Filter {
                pattern: name.to_string(),
                names: self.function_names().iter().map(|n| n.to_string()).collect(),
            })
    }

    fn functions(&self) -> impl Iterator<Item = &(String, file::Function)> {
        self.file.functions.iter().flat_map(|f| f.0.iter())
    }

    /// The functions `patterns` select, in the file's order: all of them when there is no
    /// pattern. A pattern is a name, or a glob with `*` as faas-cli's `--filter` takes it; one
    /// that matches nothing is an error listing the names the file has.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<&str>, StackError> {
        let names = self.function_names();
        if patterns.is_empty() {
            return Ok(names);
        }
        for pattern in patterns {
            if !names.iter().any(|name| glob_matches(pattern, name)) {
                return Err(StackError::Filter {
                    pattern: pattern.clone(),
                    names: names.iter().map(|n| n.to_string()).collect(),
                });
            }
        }
        Ok(names
            .into_iter()
            .filter(|name| patterns.iter().any(|p| glob_matches(p, name)))
            .collect())
    }

    /// Translates function `name` (one of [`Stack::function_names`]) to a validated spec.
    /// `base_dir` is where its relative `environment_file` paths start: the stack file's folder.
    pub fn translate(&self, name: &str, base_dir: &Path) -> Result<Translation, StackError> {
        let function = self.function(name)?;
        let unknown: Vec<&file::UnknownKey> = self
            .unknown
            .iter()
            .filter(|u| u.function.as_deref() == Some(name))
            .collect();
        translate::translate(name, function, base_dir, &unknown, translate::KeyStyle::Stack)
    }
}

/// What `fjord build` reads of one function of a stack: `image`, `lang`, `handler` (relative
/// to the stack file's folder) and `build_args`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSettings {
    pub image: Option<String>,
    pub lang: Option<String>,
    pub handler: Option<String>,
    pub build_args: std::collections::BTreeMap<String, String>,
}

impl Stack {
    /// The build settings of function `name` (one of [`Stack::function_names`]); a build arg
    /// that is not a plain value names its key.
    pub fn build_settings(&self, name: &str) -> Result<BuildSettings, StackError> {
        let function = self.function(name)?;
        let mut build_args = std::collections::BTreeMap::new();
        if let Some(args) = &function.build_args {
            let serde_yaml_ng::Value::Mapping(args) = args else {
                return Err(StackError::Value {
                    key: format!("functions.{name}.build_args"),
                    reason: "expected a mapping of names to values".into(),
                });
            };
            for (key, value) in args {
                let key = key.as_str().map(str::to_string).unwrap_or_else(|| format!("{key:?}"));
                let value = match value {
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    serde_yaml_ng::Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(StackError::Value {
                            key: format!("functions.{name}.build_args.{key}"),
                            reason: "expected a string, number or boolean".into(),
                        })
                    }
                };
                build_args.insert(key, value);
            }
        }
        Ok(BuildSettings {
            image: function
                .image
                .as_deref()
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_string),
            lang: function.lang.clone(),
            handler: function.handler.clone(),
            build_args,
        })
    }
}

/// `pattern` against `name`, where `*` stands for any run of characters (faas-cli's glob).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A spec field's value came from this stack key; kept so a validation error names the key.
pub(crate) type Origins = Vec<(String, String)>;

/// The stack key a validation error's field came from (`memory_mib` from
/// `functions.api.limits.memory`), or the function itself.
pub(crate) fn key_of_field(function_key: &str, origins: &Origins, field: Option<&str>) -> String {
    let Some(field) = field else {
        return function_key.to_string();
    };
    origins
        .iter()
        .find(|(f, _)| f == field)
        .or_else(|| {
            let head = field.split(['.', '[']).next().unwrap_or(field);
            origins.iter().find(|(f, _)| f == head)
        })
        .map(|(_, key)| key.clone())
        .unwrap_or_else(|| function_key.to_string())
}

/// The result of validating a translated spec, with the stack key named on failure.
pub(crate) fn validated(spec: FunctionSpec, function_key: &str, origins: &Origins) -> Result<FunctionSpec, StackError> {
    match spec.validate() {
        Ok(()) => Ok(spec),
        Err(error) => Err(StackError::Spec {
            key: key_of_field(function_key, origins, error.field_name()),
            error,
        }),
    }
}
