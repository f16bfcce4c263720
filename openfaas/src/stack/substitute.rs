//! `${VAR}` substitution over a stack file's whole text, before it is parsed, as faas-cli does
//! (it runs the file through the envsubst library unless `--envsubst=false`).
//!
//! Read: `${VAR}` (unset: the empty string, reported), `${VAR:-default}` and `${VAR:=default}`
//! (the default when VAR is unset or empty), `${VAR=default}` (the default when VAR is unset),
//! a default that holds substitutions itself, and `$$` for a literal `$`. A `$` not followed by
//! `{` or `$` is kept as it is. The library's string functions (`${VAR^^}`, `${VAR#prefix}`,
//! `${VAR:1:2}`, ...) are refused by name rather than half done. Environment files are not
//! substituted: faas-cli reads them as they are.

use super::StackError;

/// A variable that was unset where the text used it without a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unset {
    pub name: String,
    /// 1-based line of its first use.
    pub line: usize,
}

/// The text with every substitution made, and the variables found unset (each once).
pub(crate) fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Unset>), StackError> {
    let mut reader = Reader {
        text,
        position: 0,
        lookup,
        unset: Vec::new(),
    };
    let out = reader.until(None)?;
    Ok((out, reader.unset))
}

struct Reader<'a> {
    text: &'a str,
    position: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: Vec<Unset>,
}

impl Reader<'_> {
    fn line_at(&self, position: usize) -> usize {
        1 + self.text[..position].bytes().filter(|b| *b == b'\n').count()
    }

    fn rest(&self) -> &str {
        &self.text[self.position..]
    }

    fn error(&self, at: usize, reason: String) -> StackError {
        StackError::Substitution {
            line: self.line_at(at),
            reason,
        }
    }

    /// Copies and substitutes text up to `stop` (a default's closing `}`, not consumed) or the end.
    fn until(&mut self, stop: Option<usize>) -> Result<String, StackError> {
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let next = rest.find(['$', '}']).map(|i| self.position + i);
            let Some(at) = next else {
                if let Some(opened) = stop {
                    return Err(self.error(opened, "`${` has no closing `}`".into()));
                }
                out.push_str(rest);
                self.position = self.text.len();
                return Ok(out);
            };
            out.push_str(&self.text[self.position..at]);
            self.position = at;
            let rest = self.rest();
            if rest.starts_with('}') {
                if stop.is_some() {
                    return Ok(out);
                }
                out.push('}');
                self.position += 1;
            } else if rest.starts_with("$$") {
                out.push('$');
                self.position += 2;
            } else if rest.starts_with("${") {
                out.push_str(&self.substitution()?);
            } else {
                out.push('$');
                self.position += 1;
            }
        }
    }

    /// Reads one `${...}` at the current position and returns what it stands for.
    fn substitution(&mut self) -> Result<String, StackError> {
        let opened = self.position;
        self.position += 2;
        let rest = self.rest();
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_string();
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let shown = self.shown(opened).to_string();
        if !valid_name {
            return Err(self.error(
                opened,
                format!("`{shown}` does not start with a variable name (letters, digits and '_')"),
            ));
        }
        self.position += name_len;
        let value = (self.lookup)(&name);
        let rest = self.rest();
        let (default_if_empty, operator_len) = if rest.starts_with('}') {
            self.position += 1;
            return Ok(match value {
                Some(value) => value,
                None => {
                    if !self.unset.iter().any(|u| u.name == name) {
                        let line = self.line_at(opened);
                        self.unset.push(Unset { name, line });
                    }
                    String::new()
                }
            });
        } else if rest.starts_with(":-") || rest.starts_with(":=") {
            (true, 2)
        } else if rest.starts_with('=') {
            (false, 1)
        } else if rest.is_empty() || rest.starts_with('\n') {
            return Err(self.error(opened, format!("`{shown}` has no closing `}}`")));
        } else {
            return Err(self.error(
                opened,
                format!(
                    "`{shown}` is a substitution Fjord does not read; write ${{VAR}}, ${{VAR:-default}}, \
                     ${{VAR:=default}} or ${{VAR=default}}"
                ),
            ));
        };
        self.position += operator_len;
        let default = self.until(Some(opened))?;
        self.position += 1; // the closing `}`
        Ok(match value {
            Some(value) if !(default_if_empty && value.is_empty()) => value,
            _ => default,
        })
    }

    /// The substitution starting at `opened` as written, up to its `}` or the end of its line.
    fn shown(&self, opened: usize) -> &str {
        let rest = &self.text[opened..];
        let end = rest
            .find('}')
            .map(|i| i + 1)
            .into_iter()
            .chain(rest.find('\n'))
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    }
}
